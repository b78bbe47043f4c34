"""Reading, writing and merging archives: single files and study directories of shards.

Dependency rule: numpy, xarray, netCDF4 (as xarray's engine). Writing is atomic: a temp
file in the target's directory, fsync, then rename, so a crash never leaves a partial file
under a final name; readers ignore temp files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from optcmp_data._errors import ArchiveIOError, MergeError
from optcmp_data._fs import atomic_write, check_regular_file
from optcmp_data._schema import (
    CURVE_VARS,
    OPTIMIZER_VARS,
    STRING_VARS,
    WORKLOAD_VARS,
    Scale,
    Status,
    canonical_order,
    repeat_dims,
    validate,
)

__all__ = [
    "SHARD_SUFFIX",
    "list_shards",
    "merge_archives",
    "open_archive",
    "shard_path",
    "stored_cells",
    "write_archive",
    "write_shard",
]

SHARD_SUFFIX = ".nc"


# netCDF's default chunk cache is 64 MB per variable and stays full until the file is
# closed: writing or reading an archive of eight 90 MB curve variables held about one more
# archive's size in caches. Archives are written and read whole, each chunk once, so a
# small cache costs no time (benchmarks/import_speed.py --table: the table import's peak).
_CHUNK_CACHE_BYTES = 4 * 2**20


@contextlib.contextmanager
def _small_chunk_cache() -> Iterator[None]:
    import netCDF4

    size, nelems, preemption = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(min(size, _CHUNK_CACHE_BYTES), nelems, preemption)
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(size, nelems, preemption)


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        kind = var.dtype.kind
        if kind == "f":
            enc[str(name)] = {"zlib": True, "complevel": 1, "_FillValue": np.nan}
        elif kind in "iu":
            enc[str(name)] = {"_FillValue": None}
        elif kind in "UO":
            enc[str(name)] = {"dtype": str}
    return enc


def write_archive(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Validate `ds` and write it to `path` atomically (temp file + fsync + rename).

    `before_rename` runs just before the rename; whatever it raises leaves no file."""
    path = Path(path)
    validate(ds, source=str(path))
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveIOError(
            f"{os.fsdecode(path)!r}: the path is not valid UTF-8, which netCDF cannot write to"
        ) from None

    def write(tmp: Path) -> None:
        with _small_chunk_cache():
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds))

    return atomic_write(path, write, before_rename=before_rename)


def write_shard(
    ds: xr.Dataset,
    study_dir: str | os.PathLike[str],
    name: str,
    *,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Write one shard (`name` + .nc) into a study directory, atomically (see
    `write_archive` for `before_rename`)."""
    return write_archive(ds, shard_path(study_dir, name), before_rename=before_rename)


def shard_path(study_dir: str | os.PathLike[str], name: str) -> Path:
    """The path of shard `name` (+ .nc) in a study directory, which is created if absent."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    if "/" in name or name.startswith("."):
        raise ArchiveIOError(f"{study_dir}: invalid shard name {name!r}")
    return study_dir / f"{name}{SHARD_SUFFIX}"


def list_shards(study_dir: str | os.PathLike[str]) -> list[Path]:
    """Finished shards of a study directory, sorted; temp files and dotfiles are skipped."""
    study_dir = Path(study_dir)
    return sorted(
        p
        for p in study_dir.iterdir()
        if p.is_file() and p.suffix == SHARD_SUFFIX and not p.name.startswith(".")
    )


def _read_file(path: Path) -> xr.Dataset:
    check_regular_file(path, "archive file")
    try:
        with (
            _small_chunk_cache(),
            xr.open_dataset(
                path, engine="netcdf4", decode_times=False, decode_timedelta=False
            ) as handle,
        ):
            ds = handle.load()
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ArchiveIOError(f"{path}: not a readable netCDF4 archive ({detail})") from None
    ds = _canonical_strings(ds)
    ds.attrs = {k: v.item() if isinstance(v, np.generic) else v for k, v in ds.attrs.items()}
    validate(ds, source=str(path))
    return canonical_order(ds)


def _canonical_strings(ds: xr.Dataset) -> xr.Dataset:
    updates: dict[str, Any] = {}
    for name in STRING_VARS:
        if name in ds.variables and ds[name].dtype.kind == "O":
            values = ds[name].values
            if all(isinstance(v, str) for v in values.ravel()):
                updates[name] = ds[name].copy(data=values.astype(str))
    if not updates:
        return ds
    coords = {k: v for k, v in updates.items() if k in ds.coords}
    data = {k: v for k, v in updates.items() if k not in ds.coords}
    out = ds.assign_coords(coords) if coords else ds
    return out.assign(data) if data else out


def open_archive(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open and validate an archive file or a study directory of shards, fully in memory."""
    path = Path(path)
    if path.is_dir():
        shards = list_shards(path)
        if not shards:
            raise ArchiveIOError(f"{path}: study directory holds no shards (*{SHARD_SUFFIX})")
        datasets = [_read_file(p) for p in shards]
        merged = merge_archives(datasets, sources=[str(p) for p in shards])
        validate(merged, source=str(path))
        return merged
    return _read_file(path)


def stored_cells(study_dir: str | os.PathLike[str]) -> set[tuple[Any, ...]]:
    """(workload, optimizer, trial, *repeat values) of every trial stored in a study directory."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        return set()
    cells: set[tuple[Any, ...]] = set()
    for shard in list_shards(study_dir):
        ds = _read_file(shard)
        status = ds["status"]
        stacked = status.stack(cell=status.dims)
        present = stacked.values != Status.MISSING.value
        for index in stacked["cell"].values[present]:
            cells.add(tuple(index))
    return cells


# --- merging --------------------------------------------------------------------------


def _union(datasets: Sequence[xr.Dataset], dim: str) -> np.ndarray:
    values = np.concatenate([ds[dim].values for ds in datasets if dim in ds.dims])
    return np.unique(values)


def _check_agree(
    datasets: Sequence[xr.Dataset], sources: Sequence[str], dim: str, names: Iterable[str]
) -> None:
    """Per-`dim` variables must agree between every pair of shards sharing a label."""
    seen: dict[tuple[str, Any], tuple[Any, str]] = {}
    for ds, src in zip(datasets, sources, strict=True):
        for label in ds[dim].values:
            for name in names:
                value = ds[name].sel({dim: label}).values
                key = (name, label)
                if key in seen:
                    other, other_src = seen[key]
                    same = (
                        np.array_equal(other, value, equal_nan=True)
                        if np.asarray(value).dtype.kind == "f"
                        else np.array_equal(other, value)
                    )
                    if not same:
                        raise MergeError(
                            f"{src}: variable {name} for {dim} {label!r} is {value!r}, "
                            f"but {other_src} has {other!r}"
                        )
                else:
                    seen[key] = (value, src)


def _relations(ds: xr.Dataset) -> set[tuple[str, str]]:
    """The (special, general) inclusion relations an archive declares."""
    return set(
        zip(
            ds["inclusion_special"].values.astype(str),
            ds["inclusion_general"].values.astype(str),
            strict=True,
        )
    )


def _space_defined(ds: xr.Dataset, w: str, o: str) -> bool:
    cell = ds.sel(workload=w, optimizer=o)
    return bool(cell["space_name"].item() != "" or (cell["space_scale"].values != Scale.NONE).any())


_FILLS: dict[str, Any] = {
    **{name: np.nan for name in ("time", *CURVE_VARS)},
    "step": -1,
    "status": Status.MISSING.value,
    "trial_seed": -1,
    "hparams": np.nan,
    "space_low": np.nan,
    "space_high": np.nan,
    "space_scale": Scale.NONE.value,
    "space_name": "",
}
_SPACE_VARS = ("space_low", "space_high", "space_scale", "space_name")


def _check_mergeable(datasets: Sequence[xr.Dataset], sources: Sequence[str]) -> None:
    """Phase 1: same repeat axes and taxonomy everywhere; per-label facts agree."""
    rep0 = repeat_dims(datasets[0])
    tax0 = _relations(datasets[0])
    for ds, src in zip(datasets, sources, strict=True):
        if repeat_dims(ds) != rep0:
            mine = list(repeat_dims(ds))
            raise MergeError(f"{src}: repeat axes {mine} differ from {sources[0]}'s {list(rep0)}")
        if _relations(ds) != tax0:
            raise MergeError(f"{src}: its inclusion taxonomy differs from {sources[0]}'s")
    _check_agree(datasets, sources, "workload", WORKLOAD_VARS)
    _check_agree(datasets, sources, "optimizer", OPTIMIZER_VARS)


def _merged_index(datasets: Sequence[xr.Dataset]) -> dict[str, np.ndarray]:
    """Phase 2: the union of every coordinate label."""
    n_eval = max(ds.sizes["eval"] for ds in datasets)
    return {
        "workload": _union(datasets, "workload"),
        "optimizer": _union(datasets, "optimizer"),
        "trial": _union(datasets, "trial"),
        "hparam": _union(datasets, "hparam"),
        "eval": np.arange(n_eval, dtype=np.int64),
        **{d: _union(datasets, d) for d in repeat_dims(datasets[0])},
    }


class _Merge:
    """Phase 3 state: the merged arrays and which shard owns each trial, trial's
    hyperparameters and (workload, optimizer) search space."""

    def __init__(self, first: xr.Dataset, shard0: xr.Dataset, index: dict[str, np.ndarray]) -> None:
        self.index = index
        # Strings as objects while shards are written in: a fixed-width copy of the first
        # shard's array would cut longer values of later shards ('linear' into 'linea').
        self.out = {
            name: (
                first[name].values.astype(object)
                if first[name].dtype.kind == "U"
                else first[name].values.copy()
            )
            for name in _FILLS
        }
        self.owner = np.where(self.out["status"] != Status.MISSING.value, 0, -1)
        self.hp_owner = np.where(np.isnan(self.out["hparams"]).all(axis=-1), -1, 0)
        workloads, optimizers = index["workload"], index["optimizer"]
        self.space_owner = np.full((len(workloads), len(optimizers)), -1)
        for w, w_label in enumerate(workloads):
            for o, o_label in enumerate(optimizers):
                if (
                    w_label in shard0["workload"].values
                    and o_label in shard0["optimizer"].values
                    and _space_defined(shard0, w_label, o_label)
                ):
                    self.space_owner[w, o] = 0

    def add_trials(self, ds: xr.Dataset, k: int, sources: Sequence[str]) -> None:
        """Trials of shard k (reindexed): a trial stored twice is refused."""
        present = ds["status"].values != Status.MISSING.value
        clash = present & (self.owner >= 0)
        if clash.any():
            where = tuple(int(i[0]) for i in np.nonzero(clash))
            labels = [
                str(self.index[str(d)][i]) for d, i in zip(ds["status"].dims, where, strict=True)
            ]
            other = sources[self.owner[where]]
            raise MergeError(f"{sources[k]}: trial ({', '.join(labels)}) is also stored in {other}")
        for name in ("time", "step", "trial_seed", "status", *CURVE_VARS):
            arr = ds[name].values
            mask = present if arr.ndim == present.ndim else present[..., None]
            self.out[name] = np.where(mask, arr, self.out[name])
        self.owner = np.where(present, k, self.owner)

    def add_hparams(self, ds: xr.Dataset, k: int, sources: Sequence[str]) -> None:
        """Hyperparameters of shard k: the same trial must have the same values."""
        hp = ds["hparams"].values
        hp_present = ~np.isnan(hp).all(axis=-1)
        both = hp_present & (self.hp_owner >= 0)
        if both.any() and not np.array_equal(hp[both], self.out["hparams"][both], equal_nan=True):
            raise MergeError(
                f"{sources[k]}: a trial's hyperparameters differ from another shard's "
                "for the same trial"
            )
        self.out["hparams"] = np.where(hp_present[..., None], hp, self.out["hparams"])
        self.hp_owner = np.where(hp_present, k, self.hp_owner)

    def add_spaces(self, shard: xr.Dataset, ds: xr.Dataset, k: int, sources: Sequence[str]) -> None:
        """Search spaces of shard k: one space per (workload, optimizer)."""
        for w_label in shard["workload"].values:
            for o_label in shard["optimizer"].values:
                if not _space_defined(shard, w_label, o_label):
                    continue
                w = int(np.searchsorted(self.index["workload"], w_label))
                o = int(np.searchsorted(self.index["optimizer"], o_label))
                here: dict[str, Any] = {n: ds[n].values[w, o] for n in _SPACE_VARS}
                if self.space_owner[w, o] >= 0:
                    same = all(
                        np.array_equal(
                            here[n],
                            self.out[n][w, o],
                            equal_nan=(n in ("space_low", "space_high")),
                        )
                        for n in here
                    )
                    if not same:
                        raise MergeError(
                            f"{sources[k]}: search space of {o_label} on {w_label} differs from "
                            f"{sources[self.space_owner[w, o]]}'s"
                        )
                for n, v in here.items():
                    self.out[n][w, o] = v
                self.space_owner[w, o] = k


def _with_label_facts(
    merged: xr.Dataset, datasets: Sequence[xr.Dataset], index: dict[str, np.ndarray]
) -> xr.Dataset:
    """Phase 4: per-workload / per-optimizer facts from whichever shard holds each label."""
    for dim, names in (("workload", WORKLOAD_VARS), ("optimizer", OPTIMIZER_VARS)):
        for name in names:
            values = []
            for label in index[dim]:
                src_ds = next(ds for ds in datasets if label in ds[dim].values)
                values.append(src_ds[name].sel({dim: label}).values[()])
            arr = np.array(
                values,
                dtype=datasets[0][name].dtype if datasets[0][name].dtype.kind != "U" else str,
            )
            if name in merged.coords:
                merged = merged.assign_coords({name: (dim, arr)})
            else:
                merged[name] = (dim, arr)
    return merged


def merge_archives(
    datasets: Sequence[xr.Dataset], *, sources: Sequence[str] | None = None
) -> xr.Dataset:
    """Merge shards into one archive; the result does not depend on their order.

    Rejects (MergeError) a trial stored in two shards, per-workload facts that disagree,
    different search spaces for the same (workload, optimizer), different repeat axes,
    and different taxonomies. Phases: check, index, merge cells, label facts.
    """
    if not datasets:
        raise MergeError("merge: no archives given")
    sources = list(sources) if sources is not None else [f"shard {i}" for i in range(len(datasets))]
    _check_mergeable(datasets, sources)
    index = _merged_index(datasets)
    first = datasets[0].reindex(index, fill_value=_FILLS)
    state = _Merge(first, datasets[0], index)
    for k in range(1, len(datasets)):
        ds = datasets[k].reindex(index, fill_value=_FILLS)
        state.add_trials(ds, k, sources)
        state.add_hparams(ds, k, sources)
        state.add_spaces(datasets[k], ds, k, sources)

    merged = first.copy()
    for name, arr in state.out.items():
        merged[name] = (first[name].dims, arr)
    merged = _with_label_facts(merged, datasets, index)
    merged.attrs = _merge_attrs([ds.attrs for ds in datasets])
    merged = _canonical_strings(merged)
    for name in STRING_VARS:
        if name in merged.variables and merged[name].dtype.kind == "O":
            merged[name] = merged[name].astype(str)
    return canonical_order(merged)


def _merge_attrs(all_attrs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted({k for a in all_attrs for k in a})
    merged: dict[str, Any] = {}
    for key in keys:
        values = [a[key] for a in all_attrs if key in a]
        if key == "created":
            merged[key] = min(str(v) for v in values)
            continue
        if key == "caveats":
            lines = sorted({line for v in values for line in str(v).splitlines() if line})
            merged[key] = "\n".join(lines)
            continue
        unique = (
            sorted({str(v) for v in values})
            if any(isinstance(v, str) for v in values)
            else sorted(set(values))
        )
        merged[key] = unique[0] if len(unique) == 1 else " | ".join(str(u) for u in unique)
    return merged
