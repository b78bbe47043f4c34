"""Building archives from trial records: the one path by which the runner and every
importer produce the archive format.

Dependency rule: numpy, xarray, attrs; nothing from torch or the analysis layer.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_data._errors import ArchiveIOError, SchemaError
from optcmp_data._io import shard_path, write_archive
from optcmp_data._provenance import plugin_attr, provenance_attrs
from optcmp_data._schema import (
    CURVE_VARS,
    REPEAT_DIMS,
    SCHEMA_VERSION,
    Direction,
    Scale,
    Split,
    Status,
    canonical_order,
    validate,
)
from optcmp_data._taxonomy import Taxonomy, default_taxonomy

__all__ = [
    "ArchiveBuilder",
    "Curves",
    "SpaceDim",
    "SpaceRecord",
    "TrialRecord",
    "WorkloadInfo",
    "assemble_archive",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _int_array(values: npt.ArrayLike) -> IntArray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _float_array(values: Sequence[float] | npt.ArrayLike | None) -> FloatArray | None:
    if values is None:
        return None
    return np.asarray(values, dtype=np.float64).reshape(-1)


@attrs.frozen
class WorkloadInfo:
    """Per-workload facts stored as data: the metric, its direction, targets and budget."""

    name: str
    metric_name: str
    direction: Direction = attrs.field(converter=Direction)
    valid_target: float = math.nan
    test_target: float = math.nan
    step_budget: int = -1
    selection_split: Split = attrs.field(default=Split.VALID, converter=Split)


@attrs.frozen
class SpaceDim:
    """One searched (or fixed) hyperparameter of a search space."""

    name: str
    low: float
    high: float
    scale: Scale = attrs.field(converter=Scale)


@attrs.frozen
class SpaceRecord:
    """The named search space one optimizer's trials were drawn from on one workload."""

    name: str
    dims: tuple[SpaceDim, ...]


@attrs.frozen
class Curves:
    """Per-evaluation series of one trial; all arrays have the length of `step`."""

    step: IntArray = attrs.field(converter=_int_array)
    time: FloatArray | None = attrs.field(default=None, converter=_float_array)
    train_loss: FloatArray | None = attrs.field(default=None, converter=_float_array)
    train_metric: FloatArray | None = attrs.field(default=None, converter=_float_array)
    valid_loss: FloatArray | None = attrs.field(default=None, converter=_float_array)
    valid_metric: FloatArray | None = attrs.field(default=None, converter=_float_array)
    test_loss: FloatArray | None = attrs.field(default=None, converter=_float_array)
    test_metric: FloatArray | None = attrs.field(default=None, converter=_float_array)

    def __attrs_post_init__(self) -> None:
        n = len(self.step)
        for name in ("time", *CURVE_VARS):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise SchemaError(f"curves: {name} has {len(arr)} values but step has {n}")


@attrs.frozen
class TrialRecord:
    """One run: a (workload, optimizer, trial) cell, optionally one repeat of it."""

    workload: str
    optimizer: str
    trial: int
    status: Status = attrs.field(converter=Status)
    hparams: Mapping[str, float]
    curves: Curves
    seed: int = -1
    repeat: Mapping[str, int] = attrs.field(factory=dict)


class ArchiveBuilder:
    """Accumulates workloads, optimizers, spaces and trials, then builds a valid archive.

    Coordinates are sorted on build, so the same records in any order give the same
    dataset. Repeat axes are declared up front (`repeat_dims`), and every trial then gives
    a value for each of them.

    Provenance is stored as global attributes: `source`, `command` (default: this
    process's command line), `torch_version`, `git_commit` (default: the commit of this
    process's checkout; a run passes its driver's, so every shard of one run carries the
    same) and, for trials `optcmp run` trained, their `precision`.
    """

    def __init__(
        self,
        *,
        source: str,
        command: str | None = None,
        torch_version: str = "",
        git_commit: str | None = None,
        precision: str | None = None,
        caveats: Iterable[str] = (),
        taxonomy: Taxonomy | None = None,
        repeat_dims: Sequence[str] = (),
    ) -> None:
        for dim in repeat_dims:
            if dim not in REPEAT_DIMS:
                raise SchemaError(f"builder: repeat axis {dim!r} is not one of {REPEAT_DIMS}")
        self._repeat_dims = tuple(d for d in REPEAT_DIMS if d in repeat_dims)
        self._attrs: dict[str, Any] = provenance_attrs(
            source=source, command=command, torch_version=torch_version, commit=git_commit
        )
        self._precision = precision
        self._caveats: list[str] = list(caveats)
        self._taxonomy = taxonomy if taxonomy is not None else default_taxonomy()
        self._workloads: dict[str, WorkloadInfo] = {}
        self._families: dict[str, str] = {}
        self._spaces: dict[tuple[str, str], SpaceRecord] = {}
        self._trials: dict[tuple[Any, ...], TrialRecord] = {}

    def add_caveat(self, text: str) -> None:
        if text not in self._caveats:
            self._caveats.append(text)

    def add_workload(self, info: WorkloadInfo) -> None:
        old = self._workloads.get(info.name)
        if old is not None and not _same_workload(old, info):
            raise SchemaError(
                f"builder: workload {info.name!r} declared twice with different facts"
            )
        self._workloads[info.name] = info

    def add_optimizer(self, name: str, family: str = "") -> None:
        old = self._families.get(name)
        if old is not None and old != family:
            raise SchemaError(
                f"builder: optimizer {name!r} declared with families {old!r} and {family!r}"
            )
        self._families[name] = family

    def add_plugin(self, name: str, record: Mapping[str, Any], *, kind: str = "optimizer") -> None:
        """Provenance of a plug-in optimizer or workload (`kind`): its source
        (distribution and version, or module:attribute) and, for an optimizer, its
        family's hyperparameters, stored as JSON in the global attribute
        `plugin_<kind>_<name>` so an archive explains itself where the plug-in is not
        installed (`archive_plugins` reads it back)."""
        try:
            key = plugin_attr(name, kind)
        except ValueError as err:
            raise SchemaError(f"builder: {err}") from None
        self._attrs[key] = json.dumps(dict(record), sort_keys=True)

    def add_space(self, workload: str, optimizer: str, space: SpaceRecord) -> None:
        self._spaces[(workload, optimizer)] = space

    def add_trial(self, record: TrialRecord) -> None:
        if set(record.repeat) != set(self._repeat_dims):
            raise SchemaError(
                f"builder: trial {record.workload}/{record.optimizer}/{record.trial} gives repeat "
                f"values for {sorted(record.repeat)}, the archive has {list(self._repeat_dims)}"
            )
        if record.workload not in self._workloads:
            raise SchemaError(f"builder: trial names undeclared workload {record.workload!r}")
        if record.optimizer not in self._families:
            raise SchemaError(f"builder: trial names undeclared optimizer {record.optimizer!r}")
        key = (
            record.workload,
            record.optimizer,
            record.trial,
            *(record.repeat[d] for d in self._repeat_dims),
        )
        if key in self._trials:
            raise SchemaError(f"builder: trial {key} added twice")
        self._trials[key] = record

    def __len__(self) -> int:
        return len(self._trials)

    @staticmethod
    def shard_name(workload: str, optimizer: str, trials: Sequence[int]) -> str:
        """The name of the shard of one group of trials of (workload, optimizer), after
        its first and last trial: 'digits_mlp--adam--00000-00015'."""
        return f"{workload}--{optimizer}--{min(trials):05d}-{max(trials):05d}"

    def write_shard(
        self,
        study_dir: str | os.PathLike[str],
        *,
        before_rename: Callable[[], None] | None = None,
    ) -> Path:
        """Build the archive of one group (trials of one workload and optimizer) and store
        it in `study_dir` as the shard `shard_name` names, atomically (`before_rename` as
        for `write_archive`). A shard of that name already there is refused
        (ArchiveIOError): its trials would be stored twice."""
        if len(self._workloads) != 1 or len(self._families) != 1 or not self._trials:
            raise SchemaError(
                "builder: a shard holds trials of one workload and one optimizer; this one "
                f"has {len(self._workloads)} workload(s), {len(self._families)} optimizer(s) "
                f"and {len(self._trials)} trial(s)"
            )
        [workload], [optimizer] = self._workloads, self._families
        path = shard_path(
            study_dir, self.shard_name(workload, optimizer, [k[2] for k in self._trials])
        )
        if path.exists():
            raise ArchiveIOError(f"{path}: shard exists already; refusing to store trials twice")
        return write_archive(self.build(), path, before_rename=before_rename)

    def build(self) -> xr.Dataset:
        """The archive as a validated dataset. Phases: the sorted labels of every axis
        (`_labels`), the dense arrays filled trial by trial (`_fill`), then
        `assemble_archive`."""
        labels = self._labels()
        cells = self._fill(labels)
        return assemble_archive(
            workloads=[self._workloads[n] for n in labels.workloads],
            families=[self._families[o] for o in labels.optimizers],
            optimizers=labels.optimizers,
            trials=np.array(labels.trials, dtype=np.int64),
            repeats={d: np.array(labels.repeats[d], dtype=np.int64) for d in self._repeat_dims},
            hparam_names=labels.hparams,
            curves=cells.curves,
            step=cells.step,
            status=cells.status.astype(str),
            seed=cells.seed,
            hparams=cells.hparams,
            spaces=self._spaces,
            taxonomy=self._taxonomy,
            attrs={
                **self._attrs,
                **({"precision": self._precision} if self._precision is not None else {}),
            },
            caveats=self._caveats,
        )

    def _labels(self) -> _Labels:
        return _Labels(
            workloads=sorted(self._workloads),
            optimizers=sorted(self._families),
            trials=sorted({k[2] for k in self._trials}),
            repeats={
                d: sorted({k[3 + i] for k in self._trials}) for i, d in enumerate(self._repeat_dims)
            },
            hparams=sorted(
                {name for r in self._trials.values() for name in r.hparams}
                | {d.name for s in self._spaces.values() for d in s.dims}
            ),
            n_eval=max((len(r.curves.step) for r in self._trials.values()), default=0),
        )

    def _fill(self, labels: _Labels) -> _Cells:
        """The cells' arrays (missing cells: NaN, -1, 'missing'); a trial whose repeats
        give different hyperparameters is refused."""
        w_ix, o_ix = _positions(labels.workloads), _positions(labels.optimizers)
        t_ix = _positions(labels.trials)
        r_ix = [_positions(labels.repeats[d]) for d in self._repeat_dims]
        h_ix = _positions(labels.hparams)
        cells = _Cells.empty(labels, self._repeat_dims)
        hp_set = np.zeros(cells.hparams.shape[:3], dtype=bool)
        for key, rec in self._trials.items():
            w, o, t = w_ix[rec.workload], o_ix[rec.optimizer], t_ix[rec.trial]
            cell = (w, o, t, *(r_ix[i][key[3 + i]] for i in range(len(self._repeat_dims))))
            n = len(rec.curves.step)
            cells.step[cell][:n] = rec.curves.step
            for name in ("time", *CURVE_VARS):
                arr = getattr(rec.curves, name)
                if arr is not None:
                    cells.curves[name][cell][:n] = arr
            cells.status[cell] = rec.status.value
            cells.seed[cell] = rec.seed
            row = np.full(len(labels.hparams), np.nan)
            for name, value in rec.hparams.items():
                row[h_ix[name]] = value
            if hp_set[w, o, t] and not _nan_equal(cells.hparams[w, o, t], row):
                raise SchemaError(
                    f"builder: trial {rec.workload}/{rec.optimizer}/{rec.trial} has different "
                    "hyperparameters in different repeats"
                )
            cells.hparams[w, o, t] = row
            hp_set[w, o, t] = True
        return cells


def _positions(labels: Sequence[Any]) -> dict[Any, int]:
    return {n: i for i, n in enumerate(labels)}


@attrs.frozen
class _Labels:
    """The sorted labels of a build's axes and the length of its longest curve."""

    workloads: list[str]
    optimizers: list[str]
    trials: list[int]
    repeats: dict[str, list[int]]
    hparams: list[str]
    n_eval: int


@attrs.frozen
class _Cells:
    """The dense per-cell arrays of a build: cells `(workload, optimizer, trial,
    *repeats)`, curves and step with a trailing `eval`, hparams with a trailing `hparam`
    (one row per trial, shared by its repeats)."""

    curves: dict[str, FloatArray]
    step: IntArray
    status: npt.NDArray[np.object_]
    seed: IntArray
    hparams: FloatArray

    @classmethod
    def empty(cls, labels: _Labels, repeat_dims: Sequence[str]) -> _Cells:
        core = (len(labels.workloads), len(labels.optimizers), len(labels.trials))
        cell_shape = (*core, *(len(labels.repeats[d]) for d in repeat_dims))
        curve_shape = (*cell_shape, labels.n_eval)
        return cls(
            curves={name: np.full(curve_shape, np.nan) for name in ("time", *CURVE_VARS)},
            step=np.full(curve_shape, -1, dtype=np.int64),
            status=np.full(cell_shape, Status.MISSING.value, dtype=object),
            seed=np.full(cell_shape, -1, dtype=np.int64),
            hparams=np.full((*core, len(labels.hparams)), np.nan),
        )


def assemble_archive(
    *,
    workloads: Sequence[WorkloadInfo],
    optimizers: Sequence[str],
    families: Sequence[str],
    trials: IntArray,
    repeats: Mapping[str, IntArray],
    hparam_names: Sequence[str],
    curves: Mapping[str, FloatArray],
    step: IntArray,
    status: npt.NDArray[np.str_],
    seed: IntArray,
    hparams: FloatArray,
    spaces: Mapping[tuple[str, str], SpaceRecord],
    taxonomy: Taxonomy,
    attrs: Mapping[str, Any],
    caveats: Sequence[str],
) -> xr.Dataset:
    """The archive from dense arrays already in the schema's shape and sorted coordinates
    (cells `(workload, optimizer, trial, *repeats)`, curves with a trailing `eval`), as a
    validated dataset. The arrays are used as they are, not copied: the builder and the
    table importer (which fills them straight from a table's columns) both end here.
    Phases: the variables per workload (`_workload_vars`) and per search space
    (`_space_vars`), the dataset, its attributes, then validation."""
    info = list(workloads)
    repeat_names = tuple(d for d in REPEAT_DIMS if d in repeats)
    cell_dims = ("workload", "optimizer", "trial", *repeat_names)
    curve_dims = (*cell_dims, "eval")
    data_vars: dict[str, Any] = {name: (curve_dims, arr) for name, arr in curves.items()}
    n_eval = step.shape[-1]
    data_vars.update(
        step=(curve_dims, step),
        status=(cell_dims, status),
        trial_seed=(cell_dims, seed),
        **_workload_vars(info),
        **_space_vars(info, optimizers, hparam_names, spaces),
    )
    coords: dict[str, Any] = {
        "workload": np.array([i.name for i in info], dtype=str),
        "optimizer": np.array(list(optimizers), dtype=str),
        "trial": np.asarray(trials, dtype=np.int64),
        "eval": np.arange(n_eval, dtype=np.int64),
        "hparam": np.array(list(hparam_names), dtype=str),
        "optimizer_family": ("optimizer", np.array(list(families), dtype=str)),
        "hparams": (("workload", "optimizer", "trial", "hparam"), hparams),
    }
    for d in repeat_names:
        coords[d] = np.asarray(repeats[d], dtype=np.int64)
    ds = xr.Dataset(data_vars, coords=coords)
    ds = ds.assign(taxonomy.to_variables())
    ds.attrs = {
        "schema_version": SCHEMA_VERSION,
        **attrs,
        "caveats": "\n".join(caveats),
    }
    ds = canonical_order(ds)
    validate(ds, source=f"archive built from {attrs['source']}")
    return ds


def _workload_vars(info: Sequence[WorkloadInfo]) -> dict[str, Any]:
    """The per-workload facts as variables along `workload`."""
    return {
        "metric_name": ("workload", np.array([i.metric_name for i in info], dtype=str)),
        "metric_direction": ("workload", np.array([i.direction.value for i in info], dtype=str)),
        "valid_target": ("workload", np.array([i.valid_target for i in info], dtype=np.float64)),
        "test_target": ("workload", np.array([i.test_target for i in info], dtype=np.float64)),
        "step_budget": ("workload", np.array([i.step_budget for i in info], dtype=np.int64)),
        "selection_split": (
            "workload",
            np.array([i.selection_split.value for i in info], dtype=str),
        ),
    }


def _space_vars(
    workloads: Sequence[WorkloadInfo],
    optimizers: Sequence[str],
    hparam_names: Sequence[str],
    spaces: Mapping[tuple[str, str], SpaceRecord],
) -> dict[str, Any]:
    """The search spaces as variables: name per (workload, optimizer), bounds and scale
    per hyperparameter (NaN and 'none' where a space does not search it)."""
    w_ix = {info.name: i for i, info in enumerate(workloads)}
    o_ix = {n: i for i, n in enumerate(optimizers)}
    h_ix = {n: i for i, n in enumerate(hparam_names)}
    space_shape = (len(workloads), len(optimizers), len(hparam_names))
    space_low = np.full(space_shape, np.nan)
    space_high = np.full(space_shape, np.nan)
    space_scale = np.full(space_shape, Scale.NONE.value, dtype=object)
    space_name = np.full(space_shape[:2], "", dtype=object)
    for (wname, oname), space in spaces.items():
        if wname not in w_ix or oname not in o_ix:
            continue
        w, o = w_ix[wname], o_ix[oname]
        space_name[w, o] = space.name
        for dim in space.dims:
            h = h_ix[dim.name]
            space_low[w, o, h] = dim.low
            space_high[w, o, h] = dim.high
            space_scale[w, o, h] = dim.scale.value
    return {
        "space_name": (("workload", "optimizer"), space_name.astype(str)),
        "space_low": (("workload", "optimizer", "hparam"), space_low),
        "space_high": (("workload", "optimizer", "hparam"), space_high),
        "space_scale": (("workload", "optimizer", "hparam"), space_scale.astype(str)),
    }


def _same_workload(a: WorkloadInfo, b: WorkloadInfo) -> bool:
    return attrs.evolve(a, valid_target=0.0, test_target=0.0) == attrs.evolve(
        b, valid_target=0.0, test_target=0.0
    ) and all(
        _nan_equal(np.array([getattr(a, f)]), np.array([getattr(b, f)]))
        for f in ("valid_target", "test_target")
    )


def _nan_equal(a: FloatArray, b: FloatArray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))
