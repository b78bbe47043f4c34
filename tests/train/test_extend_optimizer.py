"""Adding an optimizer, done once: one Python file of the user's (a family and a batched
rule) and the study file that names it. No file of optcmp changes: the optimizer is run by
`optcmp run`, stored, and analysed by `optcmp analyze best` like a built-in; through the
Python API the same file named in the study mapping (docs/architecture.md quotes these
counts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import archive_plugins, open_archive

runner = CliRunner()

# Sign descent, theta -= lr sign(g): the whole optimizer, in the user's one file.
SIGN_DESCENT = """
import math

import torch

from optcmp import Family, HyperparamSpec, Rule, SearchRange


def family(name):
    return Family(
        name,
        "Sign descent",
        (HyperparamSpec("learning_rate", "eta_t", 1e-3, 0.0, math.inf, True, False, "step"),),
        "theta -= eta_t sign(g)",
        presets={"lr-only": (SearchRange("learning_rate", 1e-4, 1e-2, "log"),)},
    )


class SignDescent(Rule):
    family = family("h_sign_cli")

    def _coefficients(self, h, lr, step):
        return {"neg_lr": -lr}

    def _kernel(self, p, g, bufs, c):
        direction = list(torch._foreach_sign(g))
        torch._foreach_mul_(direction, c["neg_lr"])
        torch._foreach_add_(p, direction)


class SignDescentApi(SignDescent):
    family = family("h_sign_api")


RULE = SignDescent()
API_RULE = SignDescentApi()
"""

STUDY = """
workloads = ["digits_mlp"]
optimizers = ["sgd", "{name}"]
trials = 2
step_budget = 20
eval_interval = 10
space = "lr-only"
seed = 3
{plugins}
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "h_sign_descent.py"
    path.write_text(SIGN_DESCENT, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


@pytest.mark.slow
def test_a_new_optimizer_is_one_file_and_a_study_line(user_module: Path, tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    plugins = '[plugins]\nh_sign_cli = "h_sign_descent:RULE"'
    study.write_text(STUDY.format(name="h_sign_cli", plugins=plugins), encoding="utf-8")
    # Everything the user wrote: the rule's file and the study file naming it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h_sign_descent.py", "study.toml"]

    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(study), "--out", str(out)])
    assert result.exit_code == 0, result.output
    archive = open_archive(out)
    assert sorted(archive["optimizer"].values) == ["h_sign_cli", "sgd"]
    assert archive_plugins(archive.attrs)["h_sign_cli"]["source"].startswith("h_sign_descent:RULE")
    # It trained: sign descent moves the loss, the analysis ranks it next to sgd.
    loss = archive["valid_loss"].sel(optimizer="h_sign_cli").values
    assert (loss[..., -1] != loss[..., 0]).all()
    best = runner.invoke(app, ["analyze", "best", str(out)], env={"COLUMNS": "200"})
    assert best.exit_code == 0, best.output
    assert "h_sign_cli" in best.output
    assert "sgd" in best.output


@pytest.mark.slow
def test_a_new_optimizer_through_the_python_api(user_module: Path, tmp_path: Path) -> None:
    """The same file named in a study given as a mapping: each worker process loads it (a
    rule registered with `optcmp.register_rule` lives only in the process that made it)."""
    import optcmp
    from optcmp.runner import run_study

    spec = optcmp.StudySpec.from_mapping(
        {
            "workloads": ["digits_mlp"],
            "optimizers": ["sgd", "h_sign_api"],
            "trials": 2,
            "step_budget": 20,
            "eval_interval": 10,
            "space": "lr-only",
            "seed": 3,
            "plugins": {"h_sign_api": "h_sign_descent:API_RULE"},
        }
    )
    run_study(spec, tmp_path / "runs")
    archive = open_archive(tmp_path / "runs")
    assert sorted(archive["optimizer"].values) == ["h_sign_api", "sgd"]
    assert "h_sign_api" in archive_plugins(archive.attrs)
