"""Hostile but fair inputs to the commands that need no torch: each is refused with one
line on stderr and exit code 2 (sizes, seeds, output paths, full disks, files that are
not archives), or handled (metrics of ±1e308 in figures)."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from optcmp_cli._plot_command import PlotKind
from optcmp_cli.app import app
from optcmp_data import CURVE_VARS, ArchiveIOError, write_archive
from optcmp_data._fs import LOW_SPACE_BYTES
from optcmp_data.testing import synthetic_archive
from tests.cli.helpers import NON_UTF8, one_line_error

runner = CliRunner()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "a.nc"
    write_archive(
        synthetic_archive(workloads=1, optimizers=("sgd", "momentum"), n_trials=4, n_evals=4),
        path,
    )
    return path


# --- item 3 (limits) and item 5 (seeds): refused before any work ----------------------------

CASES: dict[str, tuple[Callable[[Path, Path], list[str]], tuple[str, ...]]] = {
    "rank --n-boot 1e9": (
        lambda a, t: ["analyze", "rank", str(a), "--method", "bootstrap", "--n-boot", "1000000000"],
        ("bootstrap of 1000000000 draws", "GiB", "limit", "--n-boot"),
    ),
    "budget --n-boot 1e9": (
        lambda a, t: ["analyze", "budget", str(a), "--n-boot", "1000000000"],
        ("bootstrap of 1000000000 draws", "limit"),
    ),
    "inclusion --n-test-boot 1e9": (
        lambda a, t: ["analyze", "inclusion", str(a), "--n-test-boot", "1000000000"],
        ("bootstrap of 1000000000 draws", "limit", "--n-test-boot"),
    ),
    "targets --n-test-boot 1e9": (
        lambda a, t: ["analyze", "targets", str(a), "--n-test-boot", "1000000000"],
        ("bootstrap of 1000000000 draws", "limit", "--n-test-boot"),
    ),
    "plot --n-boot 1e9": (
        lambda a, t: [
            "plot",
            "budget",
            str(a),
            "--out",
            str(t / "x.png"),
            "--n-boot",
            "1000000000",
        ],
        ("bootstrap of 1000000000 draws", "limit"),
    ),
    "report --n-boot 1e9": (
        lambda a, t: ["report", str(a), "--out", str(t / "r"), "--n-boot", "1000000000"],
        ("bootstrap of 1000000000 draws", "limit"),
    ),
    "rank --seed -1": (
        lambda a, t: ["analyze", "rank", str(a), "--seed", "-1"],
        ("--seed -1", "non-negative"),
    ),
    "budget --seed -1": (
        lambda a, t: ["analyze", "budget", str(a), "--seed", "-1"],
        ("--seed -1",),
    ),
    "inclusion --seed -1": (
        lambda a, t: ["analyze", "inclusion", str(a), "--seed", "-1"],
        ("--seed -1",),
    ),
    "targets --seed -1": (
        lambda a, t: ["analyze", "targets", str(a), "--seed", "-1"],
        ("--seed -1",),
    ),
    "plot --seed -1": (
        lambda a, t: ["plot", "rank", str(a), "--out", str(t / "x.png"), "--seed", "-1"],
        ("--seed -1",),
    ),
    "report --seed -1": (
        lambda a, t: ["report", str(a), "--out", str(t / "r"), "--seed", "-1"],
        ("--seed -1",),
    ),
    # --- item 4: output paths ---
    "report --out a file": (
        lambda a, t: ["report", str(a), "--out", str(_file(t))],
        ("exists and is not a directory",),
    ),
    "report --out under a file": (
        lambda a, t: ["report", str(a), "--out", str(_file(t) / "sub")],
        ("is a file, not a directory",),
    ),
    "plot --out a directory": (
        lambda a, t: ["plot", "rank", str(a), "--out", str(_dir(t))],
        ("is a directory",),
    ),
    "plot --out under a file": (
        lambda a, t: ["plot", "rank", str(a), "--out", str(_file(t) / "x.png")],
        ("is a file, not a directory",),
    ),
    "plot --out non-UTF-8": (
        lambda a, t: ["plot", "rank", str(a), "--out", str(t / f"{NON_UTF8}.png")],
        ("not valid UTF-8",),
    ),
    "report --out non-UTF-8": (
        lambda a, t: ["report", str(a), "--out", str(t / NON_UTF8)],
        ("not valid UTF-8",),
    ),
    "import --out a directory": (
        lambda a, t: ["import", "deepobs", str(t), "--out", str(_dir(t))],
        ("is a directory",),
    ),
    # --- item 6: import --out must not overwrite a file that is not an archive ---
    "import --out a non-archive file": (
        lambda a, t: ["import", "deepobs", str(t), "--out", str(_file(t))],
        ("not a netCDF archive", "refusing to overwrite"),
    ),
    "import algoperf --out a non-archive file": (
        lambda a, t: ["import", "algoperf", str(t), "--out", str(_file(t))],
        ("not a netCDF archive",),
    ),
}


def _file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("someone's notes\n", encoding="utf-8")
    return path


def _dir(tmp: Path) -> Path:
    path = tmp / "existing.png"
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_one_line(archive: Path, tmp_path: Path, case: str) -> None:
    make_args, fragments = CASES[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    args = make_args(archive, tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = runner.invoke(app, args)
    one_line_error(result, *fragments)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing half-written"
    if "notes.txt" in before:
        assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "someone's notes\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
@pytest.mark.parametrize("command", ["plot", "report"])
def test_a_read_only_output_directory_is_one_line(
    archive: Path, tmp_path: Path, command: str
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        args = (
            ["plot", "rank", str(archive), "--out", str(ro / "x.png")]
            if command == "plot"
            else ["report", str(archive), "--out", str(ro / "r")]
        )
        one_line_error(runner.invoke(app, args), "not writable")
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_a_read_only_file_system_is_one_line(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a read-only mount answers (EROFS), whoever the user is.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    ds = synthetic_archive(workloads=1, optimizers=("sgd",), n_trials=2, n_evals=3)
    with monkeypatch.context() as patch:
        patch.setattr(os, "open", refuse)  # how the temp file is created
        with pytest.raises(ArchiveIOError, match=r"not writable \(Read-only file system"):
            write_archive(ds, tmp_path / "a.nc")
    assert not list(tmp_path.iterdir())


def test_a_full_disk_is_named_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # netCDF reports ENOSPC as "RuntimeError: NetCDF: HDF error"; the free space tells.
    def hdf_error(self: xr.Dataset, path: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"\x89HDF partial")
        raise RuntimeError("NetCDF: HDF error")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=LOW_SPACE_BYTES // 4))
    ds = synthetic_archive(workloads=1, optimizers=("sgd",), n_trials=2, n_evals=3)
    with pytest.raises(ArchiveIOError, match="no space left on device"):
        write_archive(ds, tmp_path / "a.nc")
    assert not list(tmp_path.iterdir()), "the temp file is removed"


def test_a_full_disk_during_import_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: xr.Dataset, path: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", no_space)
    ds = synthetic_archive(workloads=1, optimizers=("sgd",), n_trials=2, n_evals=3)
    with pytest.raises(ArchiveIOError, match=r"a\.nc: no space left on device"):
        write_archive(ds, tmp_path / "a.nc")


def test_an_existing_archive_may_be_replaced_by_import(archive: Path, tmp_path: Path) -> None:
    # The guard refuses only files that are not archives; replacing an archive is the
    # documented way to re-import (the importer then fails on the empty source, one line).
    target = tmp_path / "old.nc"
    target.write_bytes(archive.read_bytes())
    result = runner.invoke(
        app, ["import", "deepobs", str(tmp_path / "empty"), "--out", str(target)]
    )
    line = one_line_error(result)
    assert "not a netCDF archive" not in line
    assert target.read_bytes() == archive.read_bytes()


# --- item 5: metrics of ±1e308 ---------------------------------------------------------------


# The kinds that have nothing to show for such an archive, and what they say instead.
_NOTHING_TO_DRAW = {
    "aggregate": "no workload can be normalised",  # no target, no value before training
    "protocol": "no optimizer with a usable trial in both",  # every expected best overflows
}


# The statistics of such values overflow to inf (and numpy says so); figures must still
# draw, or refuse in one line: every kind of `optcmp plot` (from its registry, not a list).
@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
@pytest.mark.parametrize("kind", [str(k) for k in PlotKind])
def test_figures_of_metrics_near_the_float_limit(tmp_path: Path, kind: str) -> None:
    ds = synthetic_archive(workloads=1, optimizers=("sgd", "momentum", "adam"), n_trials=6)
    for name in CURVE_VARS:
        values = ds[name].values
        huge = np.where(np.arange(values.shape[-1]) % 2 == 0, 1e308, -1e308)
        ds[name].values[...] = np.where(np.isfinite(values), huge, values)
    path = tmp_path / "huge.nc"
    write_archive(ds, path)
    out = tmp_path / f"{kind}.png"
    extra = ["--compare", str(path)] if kind == "protocol" else []
    args = ["plot", kind, str(path), "--out", str(out), "--n-boot", "50", *extra]
    result = runner.invoke(app, args)
    if kind in _NOTHING_TO_DRAW:
        assert _NOTHING_TO_DRAW[kind] in one_line_error(result)
        assert not out.exists()
    else:
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 0
