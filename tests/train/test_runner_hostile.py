"""Hostile but fair inputs to `optcmp run`: each is refused before anything trains, with
one line on stderr and exit code 2 (sizes, worker and group counts, study files, study
records, output paths, full disks, time limits); an extension killed before it stored
anything can be taken back; a plug-in that kills its worker process (abort, segfault,
`os._exit`) or hangs past the group time limit costs only its own groups: one line, exit
code 2, every other group stored, and a rerun reruns nothing stored."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from typer.testing import CliRunner

from optcmp.runner import run_study
from optcmp.study import StudySpec
from optcmp_cli.app import app
from optcmp_data import ConfigError, open_archive
from optcmp_data._fs import LOW_SPACE_BYTES
from optcmp_data._io import list_shards
from tests.cli.helpers import NON_UTF8, one_line_error
from tests.train.archives import same_study

ROOT = Path(__file__).resolve().parents[2]

runner = CliRunner()
STUDY = """
workloads = ["noisy_quadratic"]
optimizers = ["sgd"]
trials = {trials}
seed = 2
step_budget = {budget}
eval_interval = 5
"""


def _study(tmp: Path, trials: int = 2, budget: int = 10, extra: str = "") -> Path:
    path = tmp / "study.toml"
    path.write_text(STUDY.format(trials=trials, budget=budget) + extra, encoding="utf-8")
    return path


def _file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("notes\n", encoding="utf-8")
    return path


def _bad_record(tmp: Path) -> Path:
    out = tmp / "out"
    out.mkdir()
    (out / "study.json").write_text("[]", encoding="utf-8")
    return out


def _non_utf8_study(tmp: Path) -> Path:
    path = tmp / "study.toml"
    path.write_bytes(b'workloads = ["noisy_quadratic"]\nname = "\xff\xfe"\n')
    return path


# (study file, --out, extra options) from tmp_path -> expected fragments of the line.
Case = Callable[[Path], tuple[Path, Path, list[str]]]
CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "trials = 1000000000": (
        lambda t: (_study(t, trials=1_000_000_000), t / "out", []),
        ("archive of 1000000000 trials per cell", "GiB", "limit", "--memory-limit"),
    ),
    "step_budget = 10**12": (
        lambda t: (_study(t, budget=10**12), t / "out", []),
        ("group(s) of 2 trials", "TiB", "limit"),
    ),
    "--memory-limit below the estimate": (
        lambda t: (_study(t), t / "out", ["--memory-limit", "0.0000001"]),
        ("needs about", "more than the limit of"),
    ),
    "--memory-limit 0": (
        lambda t: (_study(t), t / "out", ["--memory-limit", "0"]),
        ("--memory-limit 0",),
    ),
    "--workers 0": (lambda t: (_study(t), t / "out", ["--workers", "0"]), ("--workers 0",)),
    "--workers -3": (lambda t: (_study(t), t / "out", ["--workers", "-3"]), ("--workers -3",)),
    "--group-size 0": (
        lambda t: (_study(t), t / "out", ["--group-size", "0"]),
        ("--group-size 0",),
    ),
    "non-UTF-8 study file": (
        lambda t: (_non_utf8_study(t), t / "out", []),
        ("study.toml", "not UTF-8", "0xff"),
    ),
    "study.json holding []": (
        lambda t: (_study(t), _bad_record(t), []),
        ("study.json", "not a study record", "list"),
    ),
    "--out an existing file": (
        lambda t: (_study(t), _file(t), []),
        ("exists and is not a directory",),
    ),
    "--out under a file": (
        lambda t: (_study(t), _file(t) / "out", []),
        ("a path under a file",),
    ),
    "--out non-UTF-8": (
        lambda t: (_study(t), t / NON_UTF8, []),
        ("not valid UTF-8",),
    ),
    "--group-timeout inf": (
        lambda t: (_study(t), t / "out", ["--group-timeout", "inf"]),
        ("--group-timeout inf", "finite"),
    ),
    "--group-timeout -1": (
        lambda t: (_study(t), t / "out", ["--group-timeout", "-1"]),
        ("--group-timeout -1", ">= 0"),
    ),
    "group_timeout = nan": (
        lambda t: (_study(t, extra="group_timeout = nan"), t / "out", []),
        ("key 'group_timeout'", "positive, finite number of seconds", "nan"),
    ),
    "group_timeout = 0": (
        lambda t: (_study(t, extra="group_timeout = 0"), t / "out", []),
        ("key 'group_timeout'", "got 0"),
    ),
    'group_timeout = "1h"': (
        lambda t: (_study(t, extra='group_timeout = "1h"'), t / "out", []),
        ("key 'group_timeout'", "expected a number of seconds", "'1h'"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_run_refuses_with_one_line(tmp_path: Path, case: str) -> None:
    make, fragments = CASES[case]
    study, out, extra = make(tmp_path)
    before = {p: p.stat().st_size for p in tmp_path.rglob("*")}
    result = runner.invoke(app, ["run", str(study), "--out", str(out), "--json", *extra])
    one_line_error(result, *fragments)
    after = {p: p.stat().st_size for p in tmp_path.rglob("*")}
    # Nothing trained or stored: at most the study directory and its lock file appear.
    assert set(after) - set(before) <= {out, out / ".optcmp.lock"}
    assert result.stdout == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_study_directory_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = runner.invoke(app, ["run", str(_study(tmp_path)), "--out", str(out)])
        one_line_error(result, "not writable")
    finally:
        out.chmod(0o755)


def test_a_full_disk_is_one_line_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hdf_error(self: xr.Dataset, path: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"partial")
        raise RuntimeError("NetCDF: HDF error")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=LOW_SPACE_BYTES // 2))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(_study(tmp_path)), "--out", str(out), "--json"])
    one_line_error(result, "no space left on device")
    assert not list_shards(out)
    assert not list(out.glob(".*.tmp"))


def test_a_failing_lock_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_open = builtins.open

    def full(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith(".optcmp.lock"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    result = runner.invoke(app, ["run", str(_study(tmp_path)), "--out", str(tmp_path / "o")])
    one_line_error(result, "no space left on device")


# --- item 7: an extension that stored nothing can be taken back -----------------------------


class _KilledBeforeStoringError(Exception):
    pass


class _Kill:
    """Progress hook that stops the run after planning, before any group is stored."""

    def start(self, *, total: int, done: int, groups: int) -> None:
        raise _KilledBeforeStoringError

    def group_done(self, summary: Any) -> None:
        raise AssertionError("unreachable")


def test_an_extension_killed_before_storing_can_be_taken_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    small = StudySpec.from_toml(_study(tmp_path, trials=2))
    first = run_study(small, out, group_size=2)
    assert first.trials_run == 2
    before = open_archive(out)

    big = StudySpec.from_toml(_study(tmp_path, trials=4))
    with pytest.raises(_KilledBeforeStoringError):
        run_study(big, out, group_size=2, progress=_Kill())
    assert json.loads((out / "study.json").read_text())["trials"] == 4
    assert len(list_shards(out)) == 1

    again = run_study(small, out, group_size=2)  # the 2-trial file works again
    assert again.trials_run == 0
    assert json.loads((out / "study.json").read_text())["trials"] == 2
    assert open_archive(out).identical(before)

    # Once a trial of the extension is stored, the study cannot shrink below it.
    extended = run_study(big, out, group_size=2)
    assert extended.trials_run == 2
    with pytest.raises(ConfigError, match="stores trial 3; a study cannot shrink"):
        run_study(small, out, group_size=2)


# --- issue 20, item 6: a plug-in that kills or hangs its worker ----------------------------

PLUGINS = """
import os, signal, time
import torch


def _make(action):
    class Plugin(torch.optim.Adagrad):
        def step(self, closure=None):
            # Registration takes one step on 3 parameters in the driver; training has more.
            if sum(p.numel() for g in self.param_groups for p in g["params"]) > 3:
                action()
            return super().step(closure)

    return Plugin


Abort = _make(os.abort)
Segfault = _make(lambda: os.kill(os.getpid(), signal.SIGSEGV))
Exit3 = _make(lambda: os._exit(3))
Hang = _make(lambda: time.sleep(3600))
"""

HOSTILE_STUDY = """
workloads = ["noisy_quadratic"]
optimizers = ["sgd", "bad", "momentum"]
trials = 4
group_size = 2
seed = 5
step_budget = 10
eval_interval = 5
{extra}
[plugins]
bad = "i20_plugins:{attribute}"
[spaces.bad]
learning_rate = {{ low = 1e-3, high = 0.1, scale = "log" }}
"""

# attribute, extra study keys / options, what the line names.
KILLERS = {
    "os.abort": ("Abort", "", [], "died (SIGABRT)"),
    "segfault": ("Segfault", "", [], "died (SIGSEGV)"),
    "os._exit(3)": ("Exit3", "", [], "died (exit code 3)"),
    "hang, group_timeout": ("Hang", "group_timeout = 20", [], "time limit of 20 s"),
    "hang, --group-timeout": ("Hang", "", ["--group-timeout", "15.5"], "time limit of 15.5 s"),
}


def _run_cli(tmp: Path, study: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`optcmp run` in its own process: its workers' output lands in the same stderr."""
    path = [str(ROOT), str(ROOT / "data"), str(ROOT / "analysis"), str(ROOT / "cli"), str(tmp)]
    return subprocess.run(
        [sys.executable, "-m", "optcmp_cli", "run", str(study), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path), "COLUMNS": "400"},
        cwd=tmp,
        timeout=600,
        check=False,
    )


def _shards(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in list_shards(out)}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(KILLERS))
def test_a_plugin_that_kills_or_hangs_its_worker_costs_only_its_groups(
    tmp_path: Path, case: str
) -> None:
    attribute, extra, options, fate = KILLERS[case]
    (tmp_path / "i20_plugins.py").write_text(PLUGINS, encoding="utf-8")
    study = tmp_path / "study.toml"
    study.write_text(HOSTILE_STUDY.format(extra=extra, attribute=attribute), encoding="utf-8")
    out = tmp_path / "out"
    # One worker: it runs sgd's groups, dies (or is stopped) in bad's first group, and a
    # fresh worker runs momentum's; bad's second group is not run.
    result = _run_cli(tmp_path, study, out, "--workers", "1", *options)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: plug-in optimizer bad (i20_plugins:{attribute})")
    for fragment in (
        "group noisy_quadratic/bad trials 0-1",
        fate,
        "1 of its groups not run",
        f"8 of 12 trials stored in {out}",
    ):
        assert fragment in lines[0], (fragment, lines[0])
    assert result.stdout == ""
    stored = _shards(out)
    assert sorted(stored) == sorted(
        f"noisy_quadratic--{o}--{t}.nc"
        for o in ("sgd", "momentum")
        for t in ("00000-00001", "00002-00003")
    )
    assert not list(out.glob(".*.tmp"))
    if case != "os.abort":
        return
    # Running again reruns only the plug-in's groups (and fails the same way); the stored
    # groups are untouched and equal those of a study without the plug-in.
    again = _run_cli(tmp_path, study, out, "--workers", "2")
    assert again.returncode == 2
    resumed, error = again.stderr.strip().splitlines()
    assert resumed == "resuming: 8 of 12 trials already stored; 2 groups to run"
    assert error.startswith("error: plug-in optimizer bad (i20_plugins:Abort)"), error
    assert "died (SIGABRT)" in error
    assert f"8 of 12 trials stored in {out}" in error
    assert _shards(out) == stored
    reference = StudySpec.from_toml(_study_without_plugin(tmp_path))
    run_study(reference, tmp_path / "reference")
    assert same_study(open_archive(out), open_archive(tmp_path / "reference"))


def _study_without_plugin(tmp: Path) -> Path:
    text = HOSTILE_STUDY.format(extra="", attribute="Abort")
    text = text.replace('"sgd", "bad", "momentum"', '"sgd", "momentum"')
    text = text[: text.index("[plugins]")]
    path = tmp / "reference" / "study.toml"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_failures_without_a_plugin_are_one_line_per_group(tmp_path: Path) -> None:
    """A worker killed by the system (no plug-in involved) fails only its own group; each
    such group gets its own line, naming it and the signal or the time limit."""
    from optcmp.runner import GroupTask
    from optcmp.runner._group import FailureKind, GroupFailure
    from optcmp.runner._study import _failure_lines

    spec = StudySpec.from_toml(_study(tmp_path, trials=4))
    first, second = (
        GroupTask("noisy_quadratic", "sgd", (0, 1)),
        GroupTask("noisy_quadratic", "sgd", (2,)),
    )
    lines = _failure_lines(
        spec,
        [
            GroupFailure(first, FailureKind.DIED, "SIGKILL"),
            GroupFailure(second, FailureKind.TIMED_OUT, "60 s"),
        ],
        not_run=[],
    )
    assert lines == [
        "the worker process running group noisy_quadratic/sgd trials 0-1 died (SIGKILL)",
        "group noisy_quadratic/sgd trial 2 ran past the group time limit of 60 s; its worker "
        "process was stopped",
    ]
