"""Writing, opening and merging archives: round trips, order independence, atomicity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from optcmp_data import (
    ArchiveIOError,
    MergeError,
    SchemaError,
    merge_archives,
    open_archive,
    stored_cells,
    write_archive,
)
from optcmp_data._io import list_shards, write_shard
from optcmp_data.testing import synthetic_archive

archives = st.builds(
    synthetic_archive,
    workloads=st.integers(1, 2),
    optimizers=st.lists(
        st.sampled_from(["sgd", "momentum", "adam", "nadam", "custom"]),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    n_trials=st.integers(1, 4),
    n_evals=st.integers(1, 5),
    ragged=st.booleans(),
    diverged_fraction=st.sampled_from([0.0, 0.3]),
    incomplete_fraction=st.sampled_from([0.0, 0.3]),
    repeats=st.sampled_from([None, {"seed": 2}, {"study": 2}, {"seed": 2, "study": 1}]),
    direction=st.sampled_from(["min", "max"]),
    seed=st.integers(0, 2**16),
)


def _assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert a.identical(b)
    assert a.attrs == b.attrs
    for name in a.variables:
        assert a[name].dtype.kind == b[name].dtype.kind, name


@given(ds=archives)
def test_write_then_open_is_identical(
    ds: xr.Dataset, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("rt") / "a.nc"
    write_archive(ds, path)
    _assert_same(ds, open_archive(path))


@given(
    ds=archives, order=st.randoms(use_true_random=False), by=st.sampled_from(["trial", "optimizer"])
)
def test_merge_is_order_independent(ds: xr.Dataset, order: object, by: str) -> None:
    shards = [ds.isel({by: [i]}) for i in range(ds.sizes[by])]
    shuffled = list(shards)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    _assert_same(merge_archives(shards), merge_archives(shuffled))
    _assert_same(merge_archives(shuffled), ds)


def test_study_directory_opens_as_one(tmp_path: Path) -> None:
    ds = synthetic_archive(n_trials=4, ragged=True)
    for i in range(4):
        write_shard(ds.isel(trial=[i]), tmp_path, f"shard-{i}")
    (tmp_path / ".shard-9.nc.abc.tmp").write_bytes(b"partial garbage")
    (tmp_path / "notes.txt").write_text("ignored")
    assert [p.name for p in list_shards(tmp_path)] == [f"shard-{i}.nc" for i in range(4)]
    _assert_same(open_archive(tmp_path), ds)
    cells = stored_cells(tmp_path)
    assert len(cells) == 6 * 4
    assert ("w0", "adam", 3) in cells


def test_duplicate_trial_rejected(tmp_path: Path) -> None:
    ds = synthetic_archive(n_trials=3)
    write_shard(ds.isel(trial=[0, 1]), tmp_path, "a")
    write_shard(ds.isel(trial=[1, 2]), tmp_path, "b")
    with pytest.raises(MergeError, match=r"b\.nc: trial \(w0, adam, 1\) is also stored in .*a\.nc"):
        open_archive(tmp_path)


def test_conflicting_workload_facts_rejected() -> None:
    ds = synthetic_archive(n_trials=2)
    a = ds.isel(trial=[0])
    b = ds.isel(trial=[1]).copy()
    b["metric_name"] = ("workload", np.array(["accuracy"]))
    with pytest.raises(MergeError, match="metric_name"):
        merge_archives([a, b])


def test_conflicting_space_rejected() -> None:
    ds = synthetic_archive(n_trials=2)
    a = ds.isel(trial=[0])
    b = ds.isel(trial=[1]).copy(deep=True)
    b["space_high"] = b["space_high"] * 2
    with pytest.raises(MergeError, match="search space"):
        merge_archives([a, b])


def test_conflicting_repeat_axes_rejected() -> None:
    a = synthetic_archive(n_trials=1, repeats={"seed": 1})
    b = synthetic_archive(n_trials=1, seed=3)
    with pytest.raises(MergeError, match="repeat axes"):
        merge_archives([a, b])


def test_open_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ArchiveIOError, match="no such file"):
        open_archive(tmp_path / "absent.nc")
    with pytest.raises(ArchiveIOError, match="holds no shards"):
        open_archive(tmp_path)
    bad = tmp_path / "bad.nc"
    bad.write_text("not a netcdf file")
    with pytest.raises(ArchiveIOError, match=r"bad\.nc: not a readable netCDF4 archive"):
        open_archive(bad)
    good = tmp_path / "good.nc"
    write_archive(synthetic_archive(), good)
    truncated = tmp_path / "cut.nc"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ArchiveIOError, match=r"cut\.nc"):
        open_archive(truncated)


def test_invalid_dataset_is_never_written(tmp_path: Path) -> None:
    ds = synthetic_archive()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "schema_version"}
    with pytest.raises(SchemaError):
        write_archive(ds, tmp_path / "x.nc")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.nc"
    first = synthetic_archive(seed=1)
    write_archive(first, path)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(ArchiveIOError, match=r"x\.nc: cannot write \(disk full"):
        write_archive(synthetic_archive(seed=2), path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["x.nc"]
    _assert_same(open_archive(path), first)


_WRITER = textwrap.dedent(
    """
    import sys
    from optcmp_data._io import write_shard
    from optcmp_data.testing import synthetic_archive

    ds = synthetic_archive(n_trials=40, n_evals=3000, workloads=2)
    for i in range(40):
        write_shard(ds.isel(trial=[i]), sys.argv[1], f"shard-{i:03d}")
        print(i, flush=True)
    """
)


def test_sigkill_mid_write_leaves_only_complete_shards(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    reported = []
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            reported.append(int(line))
            if len(reported) == 3:
                break
        time.sleep(0.05)  # land inside the next shard's write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    shards = list_shards(tmp_path)
    names = {p.name for p in shards}
    # Everything reported finished is there; at most the one in flight finished silently.
    assert {f"shard-{i:03d}.nc" for i in reported} <= names
    assert len(names) <= len(reported) + 2
    merged = open_archive(tmp_path)
    stored = sorted(int(t) for t in merged["trial"].values)
    assert stored == sorted(int(p.stem.split("-")[1]) for p in shards)
    assert (merged["status"].values != "missing").all()
