"""examples/plugin installs as a package and its entry points work: a short study mixing
built-ins, the package's Lion rule and workload and a torch.optim class runs, and its
archive is analysed. The package is installed into this test environment (pip, no
network: its build backend comes from the local index or is already installed) and
uninstalled afterwards."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "plugin"


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="module")
def installed() -> Iterator[None]:
    done = _pip("install", "--no-deps", str(PACKAGE))
    if done.returncode != 0 and importlib.util.find_spec("hatchling") is not None:
        done = _pip("install", "--no-deps", "--no-build-isolation", str(PACKAGE))
    assert done.returncode == 0, done.stderr
    try:
        yield
    finally:
        _pip("uninstall", "-y", "optcmp-lion-example")


def optcmp(*args: str) -> subprocess.CompletedProcess[str]:
    """A fresh process, so entry points are discovered as a user's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "optcmp_cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={"OMP_NUM_THREADS": "1", "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.slow
def test_package_plugins_run_next_to_builtins_and_are_analysed(
    installed: None, tmp_path: Path
) -> None:
    listing = optcmp("optimizers", "--json")
    assert listing.returncode == 0, listing.stderr
    families = {f["name"]: f for f in json.loads(listing.stdout)["families"]}
    assert families["lion"]["provided_by"] == "optcmp-lion-example 0.1.0"
    workloads = optcmp("workloads", "--json")
    assert workloads.returncode == 0, workloads.stderr
    by_name = {w["name"]: w for w in json.loads(workloads.stdout)["workloads"]}
    assert by_name["sine_regression"]["provided_by"] == "optcmp-lion-example 0.1.0"

    study = tmp_path / "study.toml"
    study.write_text(
        'workloads = ["sine_regression"]\n'
        'optimizers = ["sgd", "adam", "lion", "adagrad"]\n'
        "trials = 2\nstep_budget = 40\neval_interval = 20\n"
        '[plugins]\nadagrad = "torch.optim:Adagrad"\n'
        '[spaces.adagrad]\nlearning_rate = { low = 1e-3, high = 1.0, scale = "log" }\n',
        encoding="utf-8",
    )
    out = tmp_path / "runs"
    run = optcmp("run", str(study), "--out", str(out), "--json")
    assert run.returncode == 0, run.stderr
    best = optcmp("analyze", "best", str(out), "--json")
    assert best.returncode == 0, best.stderr
    assert {"sgd", "adam", "lion", "adagrad"} <= set(best.stdout.split('"'))
    inclusion = optcmp("analyze", "inclusion", str(out), "--n-test-boot", "50")
    assert inclusion.returncode == 0, inclusion.stderr  # sgd ⊆ adam is a pair

    from optcmp_data import archive_plugins, open_archive

    records = archive_plugins(open_archive(out).attrs)
    assert records["lion"]["source"] == "optcmp-lion-example 0.1.0"
    assert records["adagrad"]["source"].startswith("torch.optim:Adagrad")
    workloads_used = archive_plugins(open_archive(out).attrs, "workload")
    assert workloads_used == {"sine_regression": {"source": "optcmp-lion-example 0.1.0"}}


def test_lion_matches_a_numpy_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's rule, imported from its source tree: K = 3 trials (and K = 1, the
    scalar path) against a plain numpy loop of Lion's three lines, 50 steps, 1e-6."""
    import numpy as np
    import torch

    monkeypatch.syspath_prepend(str(PACKAGE / "src"))
    from optcmp_lion_example import Lion

    rule = Lion()
    rng = np.random.default_rng(0)
    for k in (3, 1):
        theta0 = rng.normal(size=(k, 5))
        hp = {
            "beta1": rng.uniform(0.5, 0.95, k),
            "beta2": rng.uniform(0.9, 0.999, k),
            "weight_decay": rng.uniform(0.0, 0.5, k),
        }
        lr = rng.uniform(1e-3, 1e-2, k)
        params = [torch.tensor(theta0)]
        state = rule.init(params)
        hp_t = {n: torch.tensor(v) for n, v in hp.items()}
        theta, m = theta0.copy(), np.zeros_like(theta0)
        for t in range(50):
            g = np.sin(3 * theta) + 0.1 * rng.normal(size=theta.shape)
            rule.apply_(params, [torch.tensor(g)], state, hp_t, torch.tensor(lr), t)
            b1, b2, wd = (hp[n][:, None] for n in ("beta1", "beta2", "weight_decay"))
            c = b1 * m + (1 - b1) * g
            theta = theta * (1 - lr[:, None] * wd) - lr[:, None] * np.sign(c)
            m = b2 * m + (1 - b2) * g
            np.testing.assert_allclose(params[0].numpy(), theta, rtol=1e-6, atol=1e-12)
        assert np.abs(theta - theta0).max() > 0.05
