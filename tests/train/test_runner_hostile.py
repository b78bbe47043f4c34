"""Hostile but fair inputs to `optcmp run`: each is refused before anything trains, with
one line on stderr and exit code 2 (sizes, worker and group counts, study files, study
records, output paths, full disks); an extension killed before it stored anything can be
taken back."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from typer.testing import CliRunner

from optcmp.runner import run_study
from optcmp.study import StudySpec
from optcmp_cli.app import app
from optcmp_data import ConfigError, list_shards, open_archive
from optcmp_data._fs import LOW_SPACE_BYTES
from tests.cli.test_hostile_inputs import NON_UTF8, one_line_error

runner = CliRunner()
STUDY = """
workloads = ["noisy_quadratic"]
optimizers = ["sgd"]
trials = {trials}
seed = 2
step_budget = {budget}
eval_interval = 5
"""


def _study(tmp: Path, trials: int = 2, budget: int = 10) -> Path:
    path = tmp / "study.toml"
    path.write_text(STUDY.format(trials=trials, budget=budget), encoding="utf-8")
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
