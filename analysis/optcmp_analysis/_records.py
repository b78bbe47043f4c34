"""Conventions shared by the result records: JSON-ready values, name filters, RNG streams.

Dependency rule: numpy, xarray, the standard library and optcmp_data. Every result record
of this package is an `attrs.frozen` class holding an `xr.Dataset` (`.to_dataset()`) whose
`.to_json()` is a list of flat records: plain str/int/float/bool/None/dict values, NaN and
inf written as None, keys `workload`, `optimizer`, `trial`, `k`, `metric`, `split`,
`value` wherever they apply.
"""

from __future__ import annotations

import difflib
import enum
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis._errors import AnalysisError

__all__ = [
    "Result",
    "attr",
    "cell_keys",
    "included_labels",
    "iter_cells",
    "json_value",
    "restrict",
    "root_seed",
    "stream",
    "variable",
]


def json_value(value: Any) -> Any:
    """A plain Python value for JSON: numpy scalars unwrapped, NaN/inf as None."""
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# --- the base of the result records ---------------------------------------------------


def attr(
    *, name: str | None = None, none: Any = None, encode: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Metadata of a result field stored as an attribute of `to_dataset()` (netCDF-ready):
    under `name` (default the field's), with None stored as `none`, enums as their value,
    bools as 0/1, a tuple of strings (caveats) as lines, anything else through `encode`
    or as it is."""
    return {"dataset": ("attr", name, none, encode)}


def variable() -> dict[str, Any]:
    """Metadata of a result field (a DataArray) that is a variable of `to_dataset()`."""
    return {"dataset": ("variable", None, None, None)}


def _attr_value(value: Any, none: Any, encode: Callable[[Any], Any] | None) -> Any:
    if value is None:
        return none
    if encode is not None:
        return encode(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return value


class Result:
    """The base of every result record (an `attrs.frozen` subclass).

    `to_dataset()`: the record's `data` field (a copy; or its `variable()` fields joined,
    or what `_dataset()` returns) with its `attr()` fields and `_extra_attrs()` as
    attributes. `to_json()`: flat JSON-ready records (module docstring), written by each
    subclass. `caveats`: () unless the record has a field of that name.
    """

    __slots__ = ()

    @property
    def caveats(self) -> tuple[str, ...]:
        return ()

    def _fields(self, kind: str) -> Iterator[tuple[attrs.Attribute[Any], tuple[Any, ...]]]:
        for f in attrs.fields(cast("Any", type(self))):
            spec = f.metadata.get("dataset")
            if spec is not None and spec[0] == kind:
                yield f, spec

    def _dataset(self) -> xr.Dataset:
        """The dataset before its attributes: the `data` field, or the `variable()` fields."""
        variables = {f.name: getattr(self, f.name) for f, _ in self._fields("variable")}
        if variables:
            return xr.Dataset(variables)
        data = getattr(self, "data")  # noqa: B009  (every record without variables has one)
        assert isinstance(data, xr.Dataset)
        return data.copy()

    def _extra_attrs(self) -> dict[str, Any]:
        """Attributes computed from more than one field (none by default)."""
        return {}

    def to_dataset(self) -> xr.Dataset:
        out = self._dataset()
        out.attrs = {
            (spec[1] or f.name): _attr_value(getattr(self, f.name), spec[2], spec[3])
            for f, spec in self._fields("attr")
        }
        out.attrs.update(self._extra_attrs())
        return out

    def to_json(self) -> list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__}.to_json")


def included_labels(data: xr.Dataset, dim: str = "workload") -> list[str]:
    """Labels along `dim` whose boolean `included` variable is set (e.g. the workloads
    that entered an aggregate or a profile)."""
    return [str(w) for w, ok in zip(data[dim].values, data["included"].values, strict=True) if ok]


def iter_cells(
    data: xr.Dataset, dims: Sequence[str]
) -> Iterator[tuple[dict[str, int], xr.Dataset, dict[str, Any]]]:
    """For every cell of the product of `dims` (last dim fastest): its positions, its slice
    of `data`, and a record of its labels ({dim: label}, JSON-ready)."""
    for index in np.ndindex(*(data.sizes[d] for d in dims)):
        at = dict(zip(dims, index, strict=True))
        yield at, data.isel(at), {d: json_value(data[d].values[at[d]]) for d in dims}


def _closest(name: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.0)
    return f"; did you mean {match[0]!r}?" if match else ""


def restrict(
    archive: xr.Dataset,
    /,
    *,
    workloads: Iterable[str] | None = None,
    optimizers: Iterable[str] | None = None,
) -> xr.Dataset:
    """The archive limited to the named workloads / optimizers (archive order kept).

    Raises AnalysisError naming an unknown name and the closest existing one.
    """
    out = archive
    for dim, names in (("workload", workloads), ("optimizer", optimizers)):
        if names is None:
            continue
        wanted = list(dict.fromkeys(names))
        present = [str(v) for v in archive[dim].values]
        for name in wanted:
            if name not in present:
                raise AnalysisError(
                    f"unknown {dim} {name!r} (the archive has {present}){_closest(name, present)}"
                )
        out = out.sel({dim: [n for n in present if n in wanted]})
    return out


def _label_key(label: Any) -> int:
    return zlib.crc32(str(label).encode("utf-8"))


def cell_keys(like: xr.DataArray, dims: Sequence[str]) -> xr.DataArray:
    """Per-cell integer keys (dim `key`) from the labels of `dims`, broadcast like `like`.

    Random streams are keyed by labels, not positions, so reordering or subsetting the
    optimizers (or workloads, or repeats) leaves every cell's draws unchanged.
    """
    parts = []
    for dim in dims:
        labels = like[dim].values
        parts.append(
            xr.DataArray(
                np.array([_label_key(v) for v in labels], dtype=np.int64),
                dims=dim,
                coords={dim: labels},
            )
        )
    if not parts:
        return xr.DataArray(np.zeros((0,), dtype=np.int64), dims="key")
    stacked = xr.concat(xr.broadcast(*parts), dim="key")
    return stacked.transpose(*dims, "key")


def stream(root: int, key: np.ndarray, *extra: int) -> np.random.Generator:
    """An independent generator for one cell: seeded by the call's root and the cell's key."""
    return np.random.default_rng([root, *(int(v) for v in key), *extra])


def root_seed(rng: np.random.Generator) -> int:
    """One draw from the caller's generator that seeds every stream of one analysis call."""
    return int(rng.integers(0, 2**63 - 1))


def where(cond: Any, x: Any, y: Any) -> xr.DataArray:
    """`xr.where`, typed (xarray leaves it unannotated)."""
    out = xr.where(cond, x, y)  # type: ignore[no-untyped-call]
    assert isinstance(out, xr.DataArray)
    return out


def finite(x: xr.DataArray) -> xr.DataArray:
    """Elementwise `np.isfinite` that keeps the DataArray's dims and coords."""
    return x.copy(data=np.isfinite(x.values))
