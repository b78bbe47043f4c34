"""The archive schema, version 1: names, dims, enums and validation.

Dependency rule: numpy and xarray only. This module is the single place where the shape
of an archive is written down; docs/archive-format.md describes the same facts in prose.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

import numpy as np
import xarray as xr

from optcmp_data._errors import SchemaError

__all__ = [
    "CURVE_VARS",
    "OPTIMIZER_VARS",
    "REPEAT_DIMS",
    "SCHEMA_VERSION",
    "STRING_VARS",
    "WORKLOAD_VARS",
    "Direction",
    "Scale",
    "Split",
    "Status",
    "archive_caveats",
    "canonical_order",
    "parse_selection_repeats",
    "repeat_dims",
    "validate",
]

SCHEMA_VERSION: Final = 1

# Optional repeat axes, in canonical order: seeds of one setting, independent studies.
REPEAT_DIMS: Final = ("seed", "study")

# Per-evaluation series. Any of them may be all-NaN where a source does not record it.
CURVE_VARS: Final = (
    "train_loss",
    "train_metric",
    "valid_loss",
    "valid_metric",
    "test_loss",
    "test_metric",
)

# Facts stored per workload, and per optimizer; shards holding the same label must agree.
WORKLOAD_VARS: Final = (
    "metric_name",
    "metric_direction",
    "valid_target",
    "test_target",
    "step_budget",
    "selection_split",
)
OPTIMIZER_VARS: Final = ("optimizer_family",)


class Status(enum.StrEnum):
    """What happened to one trial (one cell of workload x optimizer x trial x repeats)."""

    COMPLETED = "completed"
    DIVERGED = "diverged"  # loss became NaN/inf; later evaluations are NaN
    INCOMPLETE = "incomplete"  # stopped before its step budget (crash, preemption, import)
    MISSING = "missing"  # no run exists at this cell (ragged trial or repeat counts)


class Direction(enum.StrEnum):
    """Whether smaller or larger metric values are better."""

    MIN = "min"
    MAX = "max"


class Scale(enum.StrEnum):
    """How a hyperparameter was searched."""

    LINEAR = "linear"
    LOG = "log"
    ONE_MINUS_LOG = "one_minus_log"  # 1 - x searched on a log scale (momentum, betas)
    FIXED = "fixed"  # held at one value (low == high)
    NONE = "none"  # the optimizer does not have this hyperparameter


class Split(enum.StrEnum):
    """Which split trial selection may use."""

    VALID = "valid"
    TEST = "test"


_CORE: Final = ("workload", "optimizer", "trial")
_CELL: Final = _CORE  # + repeat dims
_CURVE: Final = (*_CORE, "eval")  # + repeat dims before eval


def repeat_dims(ds: xr.Dataset) -> tuple[str, ...]:
    """The repeat axes present in an archive, in canonical order."""
    return tuple(d for d in REPEAT_DIMS if d in ds.dims)


def archive_caveats(ds: xr.Dataset) -> list[str]:
    """The archive's `caveats` attribute, one entry per non-empty line."""
    return [line for line in str(ds.attrs.get("caveats", "")).splitlines() if line]


def _expected_dims(ds: xr.Dataset) -> dict[str, tuple[str, ...]]:
    rep = repeat_dims(ds)
    cell = (*_CELL, *rep)
    curve = (*_CORE, *rep, "eval")
    dims: dict[str, tuple[str, ...]] = {name: curve for name in CURVE_VARS}
    dims.update(
        step=curve,
        time=curve,
        status=cell,
        trial_seed=cell,
        hparams=(*_CORE, "hparam"),
        optimizer_family=("optimizer",),
        **{name: ("workload",) for name in WORKLOAD_VARS},
        space_name=("workload", "optimizer"),
        space_low=("workload", "optimizer", "hparam"),
        space_high=("workload", "optimizer", "hparam"),
        space_scale=("workload", "optimizer", "hparam"),
        inclusion_special=("relation",),
        inclusion_general=("relation",),
    )
    return dims


_FLOAT_VARS: Final = frozenset(
    {*CURVE_VARS, "time", "hparams", "valid_target", "test_target", "space_low", "space_high"}
)
_INT_VARS: Final = frozenset({"step", "trial_seed", "step_budget", "trial", "eval", *REPEAT_DIMS})
STRING_VARS: Final = tuple(
    sorted(
        {
            "status",
            "optimizer_family",
            "metric_name",
            "metric_direction",
            "selection_split",
            "space_name",
            "space_scale",
            "inclusion_special",
            "inclusion_general",
            "workload",
            "optimizer",
            "hparam",
        }
    )
)
_ENUMS: Final[Mapping[str, type[enum.StrEnum]]] = {
    "status": Status,
    "metric_direction": Direction,
    "space_scale": Scale,
    "selection_split": Split,
}
REQUIRED_ATTRS: Final = (
    "schema_version",
    "optcmp_version",
    "torch_version",
    "git_commit",
    "command",
    "created",
    "source",
    "caveats",
)
# Optional attributes with a meaning analysis honours.
# selection_repeats: "seed=42" or "study=0,1": selection may use only these repeats
# (e.g. DeepOBS tuned on seed 42 before re-running the chosen setting with more seeds).
OPTIONAL_ATTRS: Final = ("selection_repeats",)
_ALLOWED_DIMS: Final = frozenset({*_CORE, "eval", "hparam", "relation", *REPEAT_DIMS})


def canonical_order(ds: xr.Dataset) -> xr.Dataset:
    """Transpose every variable to the schema's dim order (dims are named, never positional)."""
    expected = _expected_dims(ds)
    out = ds.copy()
    for name, dims in expected.items():
        if name in out.variables and set(out[name].dims) == set(dims):
            out[name] = out[name].transpose(*dims)
    return out


def _kind(arr: np.ndarray) -> str:
    return arr.dtype.kind


def validate(ds: xr.Dataset, *, source: str = "<dataset>") -> None:
    """Raise SchemaError naming `source`, the variable and the problem if `ds` is not valid."""

    def fail(var: str, problem: str) -> SchemaError:
        return SchemaError(f"{source}: {var}: {problem}")

    version = ds.attrs.get("schema_version")
    if version is None:
        raise fail("attribute schema_version", "missing; this is not an optcmp archive")
    try:
        version_int = int(version)
    except (TypeError, ValueError):
        raise fail("attribute schema_version", f"{version!r} is not an integer") from None
    if version_int != SCHEMA_VERSION:
        raise fail(
            "attribute schema_version",
            f"version {version_int} is not supported (this optcmp reads version {SCHEMA_VERSION})",
        )
    for attr in REQUIRED_ATTRS:
        if attr not in ds.attrs:
            raise fail(f"attribute {attr}", "missing")
    for dim in (*_CORE, "eval", "hparam", "relation"):
        if dim not in ds.dims:
            raise fail(f"dimension {dim}", "missing")
    for dim in map(str, ds.dims):
        if dim not in _ALLOWED_DIMS:
            raise fail(f"dimension {dim}", f"unexpected; allowed are {sorted(_ALLOWED_DIMS)}")
    for name, dims in _expected_dims(ds).items():
        if name not in ds.variables:
            raise fail(name, "missing variable")
        actual = ds[name].dims
        if set(actual) != set(dims) or len(actual) != len(dims):
            raise fail(name, f"has dims {tuple(actual)}, expected {dims}")
    for dim in (*_CORE, "eval", "hparam", *repeat_dims(ds)):
        if dim not in ds.coords:
            raise fail(dim, "missing coordinate")
        values = ds[dim].values
        if len(np.unique(values)) != len(values):
            raise fail(dim, "coordinate labels are not unique")
    for name in _FLOAT_VARS:
        if _kind(ds[name].values) != "f":
            raise fail(name, f"dtype {ds[name].dtype} is not floating point")
    for name in _INT_VARS:
        if name in ds.variables and _kind(ds[name].values) not in "iu":
            raise fail(name, f"dtype {ds[name].dtype} is not integer")
    for name in STRING_VARS:
        values = ds[name].values
        if values.size and _kind(values) not in "UO":
            raise fail(name, f"dtype {ds[name].dtype} is not string")
        if _kind(values) == "O" and not all(isinstance(v, str) for v in values.ravel()):
            raise fail(name, "holds values that are not strings")
    for name, enum_type in _ENUMS.items():
        allowed = {m.value for m in enum_type}
        bad = set(np.unique(ds[name].values.astype(str))) - allowed
        if bad:
            raise fail(name, f"invalid value {sorted(bad)[0]!r}; allowed: {sorted(allowed)}")
    for key, value in ds.attrs.items():
        if not isinstance(value, str | int | float | np.integer | np.floating):
            raise fail(
                f"attribute {key}", f"holds a {type(value).__name__}; only strings and numbers"
            )
    if "selection_repeats" in ds.attrs:
        parse_selection_repeats(ds, source=source)
    status = ds["status"].values.astype(str)
    step = ds["step"].values
    has_eval = (step >= 0).any(axis=-1)
    absent = status == Status.MISSING.value
    if (absent & has_eval).any():
        raise fail("step", "a trial with status 'missing' has evaluations")
    low, high = ds["space_low"].values, ds["space_high"].values
    searched = np.isin(
        ds["space_scale"].values.astype(str), [Scale.LINEAR, Scale.LOG, Scale.ONE_MINUS_LOG]
    )
    if (searched & ~(low < high)).any():
        raise fail("space_low", "a searched hyperparameter has low >= high (or NaN bounds)")
    logged = np.isin(ds["space_scale"].values.astype(str), [Scale.LOG])
    if (logged & ~(low > 0)).any():
        raise fail("space_low", "a log-scale hyperparameter has a bound <= 0")
    one_minus = ds["space_scale"].values.astype(str) == Scale.ONE_MINUS_LOG
    if (one_minus & ~(high < 1)).any():
        raise fail("space_high", "a one_minus_log hyperparameter has high >= 1 (1 - x must be > 0)")


def parse_selection_repeats(ds: xr.Dataset, *, source: str = "<dataset>") -> dict[str, list[int]]:
    """The repeats selection may use, from the optional `selection_repeats` attribute.

    Format: `DIM=V1,V2;DIM2=V3` over the archive's repeat axes; {} when absent (all repeats).
    """
    text = ds.attrs.get("selection_repeats")
    if text is None or text == "":
        return {}
    out: dict[str, list[int]] = {}
    for part in str(text).split(";"):
        dim, sep, values = part.partition("=")
        dim = dim.strip()
        if not sep or dim not in repeat_dims(ds):
            raise SchemaError(
                f"{source}: attribute selection_repeats: {part!r} does not name a repeat axis "
                f"of the archive ({list(repeat_dims(ds))})"
            )
        try:
            chosen = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise SchemaError(
                f"{source}: attribute selection_repeats: {values!r} is not a list of integers"
            ) from None
        missing = sorted(set(chosen) - set(ds[dim].values.tolist()))
        if not chosen or missing:
            raise SchemaError(
                f"{source}: attribute selection_repeats: {dim} values {missing or chosen} "
                "are not in the archive"
            )
        out[dim] = chosen
    return out
