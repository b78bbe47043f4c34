"""Conventions shared by the result records: JSON-ready values, name filters, RNG streams.

Dependency rule: numpy, xarray, the standard library and optcmp_data. Every result record
of this package is an `attrs.frozen` subclass of `Result` holding an `xr.Dataset`
(`.to_dataset()`) whose `.to_json()` is a list of flat records: plain
str/int/float/bool/None/dict values, NaN and inf written as None, keys `workload`,
`optimizer`, `trial`, `k`, `metric`, `split`, `value` wherever they apply.

A record declares both as data, not as loops: `to_dataset()` from its fields' metadata
(`attr()`, `variable()`), `to_json()` from its class attribute `JSON`, e.g.

    JSON = (
        Records(
            dims_of="rank",                      # one record per cell of rank's dims
            keys=(
                Labels(),                        # workload, optimizer, [seed, study]
                Var("rank", cast=float),         # a variable at the cell
                Const("split", "test"),
                Field("rule"),                   # a field of the record (enum: its value)
                Columns("place", "p_rank_{label}", vars=("rank_probability",)),
                ByLabel("p_best_by_k", "p_best_by_k", "k", label_cast=int),
            ),
        ),
    )

`Records` walk named dims (never axis positions), ArviZ-style: each variable is read once,
transposed and broadcast to the walked dims by name. What no declaration covers is a
small hook: `Computed`/`Spread` (a method of the record, given the cell), `keep` (which
cells), `Extra` (a method returning records, with its keys declared) or `Interleaved`
(several kinds of record taken one label of a dim at a time).
"""

from __future__ import annotations

import difflib
import enum
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, cast

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis._errors import AnalysisError

__all__ = [
    "DIM_ORDER",
    "ByLabel",
    "Cell",
    "Columns",
    "Computed",
    "Const",
    "Extra",
    "Field",
    "Interleaved",
    "Label",
    "Labels",
    "Records",
    "Result",
    "Spread",
    "Var",
    "attr",
    "cell_keys",
    "included_labels",
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


# --- the JSON of the result records, declared ----------------------------------------
#
# A record class lists its JSON in `JSON`: a tuple of `Records` (one kind of flat record:
# the named dims whose cells make one record each, and its keys in order) and `Extra`
# (records a method of the class builds, for the few kinds that are not one record per
# cell). A key is one of `Labels`, `Label`, `Var`, `Const`, `Field`, `Columns`, `ByLabel`,
# `Computed` and `Spread`. `Result.to_json()` walks them in order.

Hook = Callable[[Any, "Cell"], Any]

#: The order in which records walk the dims they take from a variable (`Records.dims_of`),
#: whatever the order the variable stores them in; other dims follow, in stored order.
DIM_ORDER = (
    "rule",
    "condition",
    "pair",
    "protocol",
    "workload",
    "optimizer",
    "other",
    "seed",
    "study",
    "trial",
)


def _plain(value: Any) -> Any:
    """A field's value for JSON: enums as their value, the rest through `json_value`."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    return json_value(value)


def _call(result: Any, hook: str | Hook, cell: Cell) -> Any:
    """A hook: a method of the result named by `hook` (called with the cell), or a
    function of (result, cell)."""
    if isinstance(hook, str):
        return getattr(result, hook)(cell)
    return hook(result, cell)


class Cell:
    """One cell of a `Records` walk: `at` ({dim: position}), `labels` ({dim: label},
    JSON-ready), and `cell[var]`: the value of a variable (or coordinate) of the walked
    dataset there (a numpy scalar, or an array along the variable's other dims)."""

    __slots__ = ("_walk", "at", "index", "labels")

    def __init__(self, walk: _Walk, index: tuple[int, ...]) -> None:
        self._walk = walk
        self.index = index
        self.at = dict(zip(walk.dims, index, strict=True))
        self.labels = {
            d: json_value(walk.labels[d][i]) for d, i in zip(walk.dims, index, strict=True)
        }

    def __getitem__(self, var: str) -> Any:
        return self._walk.array(var)[self.index]

    def value(
        self,
        var: str,
        *,
        at: Mapping[str, int] | None = None,
        rename: Mapping[str, str] | None = None,
    ) -> Any:
        """`cell[var]` of the variable taken at positions `at` of dims that are not walked
        (e.g. {"protocol": 0}) and with its dims renamed by `rename` (e.g. {"optimizer":
        "other"}: its value at the cell's `other`)."""
        return self._walk.array(var, rename, at)[self.index]


class _Walk:
    """The dataset of one `Records`, its walked dims, their labels, and each variable
    read once as a plain array broadcast to the walked dims (by name)."""

    def __init__(self, data: xr.Dataset, dims: Sequence[str]) -> None:
        self.data = data
        self.dims = tuple(dims)
        self.shape = tuple(data.sizes[d] for d in self.dims)
        self.labels = {d: data[d].values for d in self.dims}
        self._arrays: dict[str, np.ndarray] = {}
        self.memo: dict[int, Any] = {}  # what a key works out once per walk

    def array(
        self,
        var: str,
        rename: Mapping[str, str] | None = None,
        at: Mapping[str, int] | None = None,
    ) -> np.ndarray:
        name = f"{var}|{sorted((rename or {}).items())}|{sorted((at or {}).items())}"
        if name not in self._arrays:
            da = self.data[var]
            if at:
                da = da.isel(dict(at))
            if rename:
                da = da.rename(dict(rename))
            present = [d for d in self.dims if d in da.dims]
            rest = [str(d) for d in da.dims if d not in self.dims]
            values = da.transpose(*present, *rest).values
            expanded = values.reshape(
                *(self.data.sizes[d] if d in da.dims else 1 for d in self.dims),
                *values.shape[len(present) :],
            )
            self._arrays[name] = np.broadcast_to(
                expanded, (*self.shape, *values.shape[len(present) :])
            )
        return self._arrays[name]

    def cells(self, where: Sequence[str]) -> Iterator[Cell]:
        if not where:
            indices: Iterable[tuple[int, ...]] = np.ndindex(*self.shape)
        else:
            mask = np.logical_and.reduce([self.array(w).astype(bool) for w in where])
            if mask.shape != self.shape:
                raise ValueError(f"where {where}: a dim beyond the walked {self.dims}")
            indices = (tuple(int(i) for i in row) for row in np.argwhere(mask))
        for index in indices:
            yield Cell(self, index)


@attrs.frozen
class Labels:
    """The labels of the walked dims (in walk order) under their dims' names, less `drop`."""

    drop: tuple[str, ...] = ()

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        for d, label in cell.labels.items():
            if d not in self.drop:
                out[d] = label

    def names(self, walk: _Walk) -> list[str]:
        return [d for d in walk.dims if d not in self.drop]


@attrs.frozen
class Label:
    """The label of one walked dim, under `key` (default the dim's name)."""

    dim: str
    key: str | None = None

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        out[self.key or self.dim] = cell.labels[self.dim]

    def names(self, walk: _Walk) -> list[str]:
        return [self.key or self.dim]


def _cast(value: Any, cast: Callable[[Any], Any] | None, missing: Any) -> Any:
    if cast is not None:
        value = cast(value)
    if missing is not None and value == missing:
        return None
    return json_value(value)


@attrs.frozen
class Var:
    """A variable's value at the cell under `key` (variable `var`, default `key`): through
    `cast` (float, int, bool, str; default by the variable's dtype), None where it equals
    `missing`. `rename` reads the variable with its dims renamed (e.g. {"optimizer":
    "other"}: its value at the cell's `other`), `at` at positions of dims that are not
    walked (e.g. {"protocol": 0}: under the first protocol)."""

    key: str
    var: str | None = None
    cast: Callable[[Any], Any] | None = None
    missing: Any = None
    rename: Mapping[str, str] | None = None
    at: Mapping[str, int] | None = None

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        value = walk.array(self.var or self.key, self.rename, self.at)[cell.index]
        out[self.key] = _cast(value, self.cast, self.missing)

    def names(self, walk: _Walk) -> list[str]:
        return [self.key]


@attrs.frozen
class Const:
    """A fixed value (e.g. split "test")."""

    key: str
    value: Any

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        out[self.key] = self.value

    def names(self, walk: _Walk) -> list[str]:
        return [self.key]


@attrs.frozen
class Field:
    """An attribute of the record (a field or property `name`, default `key`), the same in
    every record: enums as their value; `empty` where it is falsy (e.g. "" -> "all")."""

    key: str
    name: str | None = None
    empty: Any = None

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        value = getattr(result, self.name or self.key)
        out[self.key] = _plain(value if self.empty is None or value else self.empty)

    def names(self, walk: _Walk) -> list[str]:
        return [self.key]


@attrs.frozen
class Columns:
    """One key per label of `dim` (in the dim's order) and per variable of `vars` (default:
    every variable with `dim`), named `key.format(label=..., var=...)`; `label_text` maps a
    label (or a position along `dim`, given as a sequence) to its text in the name."""

    dim: str
    key: str
    vars: tuple[str, ...] | None = None
    label_text: Mapping[str, str] | Sequence[str] | None = None
    cast: Callable[[Any], Any] | None = None

    def _columns(self, walk: _Walk) -> list[tuple[str, np.ndarray]]:
        """(key, array over the walked dims) of each column, worked out once per walk."""
        if id(self) not in walk.memo:
            walk.memo[id(self)] = self._work_out(walk)
        return cast("list[tuple[str, np.ndarray]]", walk.memo[id(self)])

    def _work_out(self, walk: _Walk) -> list[tuple[str, np.ndarray]]:
        data = walk.data
        names = self.vars or tuple(str(v) for v in data.data_vars if self.dim in data[v].dims)
        out: list[tuple[str, np.ndarray]] = []
        for i, label in enumerate(data[self.dim].values):
            if self.label_text is None:
                text = str(json_value(label))
            elif isinstance(self.label_text, Mapping):
                text = self.label_text[str(label)]
            else:
                text = self.label_text[i]
            for var in names:
                axis = len(walk.dims) + _axis(walk, var, self.dim)
                column = np.take(walk.array(var), i, axis=axis)
                out.append((self.key.format(label=text, var=var), column))
        return out

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        for key, column in self._columns(walk):
            out[key] = _cast(column[cell.index], self.cast, None)

    def names(self, walk: _Walk) -> list[str]:
        return [key for key, _ in self._columns(walk)]


def _axis(walk: _Walk, var: str, dim: str) -> int:
    """The axis of `dim` in a cell's value of `var` (its dims that are not walked)."""
    rest = [str(d) for d in walk.data[var].dims if d not in walk.dims]
    return rest.index(dim)


@attrs.frozen
class ByLabel:
    """An object {label: value} of a variable along `dim` (its labels as text through
    `label_cast`, values through `cast`); `finite_only` leaves out NaN and inf."""

    key: str
    var: str
    dim: str
    cast: Callable[[Any], Any] = float
    label_cast: Callable[[Any], Any] = str
    finite_only: bool = False

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        values = np.moveaxis(walk.array(self.var)[cell.index], _axis(walk, self.var, self.dim), 0)
        out[self.key] = {
            str(self.label_cast(label)): _cast(v, self.cast, None)
            for label, v in zip(walk.data[self.dim].values, values, strict=True)
            if not self.finite_only or np.isfinite(v)
        }

    def names(self, walk: _Walk) -> list[str]:
        return [self.key]


@attrs.frozen
class Computed:
    """A value no declaration above gives: `hook(cell)` (a method name) or
    `hook(result, cell)` (a function)."""

    key: str
    hook: str | Hook

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        out[self.key] = json_value(_call(result, self.hook, cell))

    def names(self, walk: _Walk) -> list[str]:
        return [self.key]


@attrs.frozen
class Spread:
    """Several keys from one hook returning {key: value} with exactly `keys`, in order
    (TypeError otherwise)."""

    keys: tuple[str, ...]
    hook: str | Hook

    def put(self, out: dict[str, Any], result: Any, cell: Cell, walk: _Walk) -> None:
        values = _call(result, self.hook, cell)
        if tuple(values) != self.keys:
            raise TypeError(f"Spread {self.hook!r}: keys {tuple(values)}, declared {self.keys}")
        out.update((k, json_value(v)) for k, v in values.items())

    def names(self, walk: _Walk) -> list[str]:
        return list(self.keys)


Key = Labels | Label | Var | Const | Field | Columns | ByLabel | Computed | Spread


@attrs.frozen
class Records:
    """One kind of flat JSON record: one per cell of the walked dims (the last fastest) --
    the dims of variable `dims_of` less `exclude` (in `DIM_ORDER`), then `dims` -- or
    only the cells where the boolean variables `where` hold and the hook `keep` says so;
    keys in the order of `keys`, after "record": `record` where given; `sort` orders the
    records."""

    keys: tuple[Key, ...]
    dims: tuple[str, ...] = ()
    dims_of: str | None = None
    exclude: tuple[str, ...] = ()
    record: str | None = None
    where: tuple[str, ...] = ()
    keep: str | Hook | None = None
    sort: Callable[[dict[str, Any]], Any] | None = None

    def walk(self, data: xr.Dataset) -> _Walk:
        first = () if self.dims_of is None else data[self.dims_of].dims
        dims = [str(d) for d in first if d not in self.exclude and d not in self.dims]
        dims.sort(key=lambda d: DIM_ORDER.index(d) if d in DIM_ORDER else len(DIM_ORDER))
        return _Walk(data, [*dims, *self.dims])

    def key_names(self, result: Any, data: xr.Dataset) -> list[str]:
        """The keys of each record, in order."""
        walk = self.walk(data)
        head = ["record"] if self.record is not None else []
        return head + [name for key in self.keys for name in key.names(walk)]

    def records(self, result: Any, data: xr.Dataset) -> list[dict[str, Any]]:
        walk = self.walk(data)
        out = []
        for cell in walk.cells(self.where):
            if self.keep is not None and not _call(result, self.keep, cell):
                continue
            record: dict[str, Any] = {} if self.record is None else {"record": self.record}
            for key in self.keys:
                key.put(record, result, cell, walk)
            out.append(record)
        if self.sort is not None:
            out.sort(key=self.sort)
        return out


@attrs.frozen
class Extra:
    """Records built by the record's method `method` (no argument), declared here with
    their `record` kind and `keys` (or the name of a method returning them); each record
    is checked to have exactly these keys (TypeError otherwise)."""

    method: str
    record: str | None
    keys: tuple[str, ...] | str

    def _keys(self, result: Any) -> tuple[str, ...]:
        if isinstance(self.keys, str):
            return tuple(getattr(result, self.keys)())
        return self.keys

    def key_names(self, result: Any, data: xr.Dataset) -> list[str]:
        return list(self._keys(result))

    def records(self, result: Any, data: xr.Dataset) -> list[dict[str, Any]]:
        out = [json_value(r) for r in getattr(result, self.method)()]
        keys = self._keys(result)
        for r in out:
            if tuple(r) != keys:
                raise TypeError(f"Extra {self.method!r}: keys {tuple(r)}, declared {keys}")
        return cast("list[dict[str, Any]]", out)


@attrs.frozen
class Interleaved:
    """The records of `parts` taken one label of `dim` at a time: for each label, the
    records of every part at that label (e.g. a plan row's record, then its curve's)."""

    dim: str
    parts: tuple[Records | Extra, ...]

    @property
    def record(self) -> None:
        return None

    def key_names(self, result: Any, data: xr.Dataset) -> list[str]:
        raise TypeError("Interleaved holds several kinds of record: ask its parts")

    def records(self, result: Any, data: xr.Dataset) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(data.sizes[self.dim]):
            at = data.isel({self.dim: slice(i, i + 1)})
            for part in self.parts:
                out.extend(part.records(result, at))
        return out


Part = Records | Extra | Interleaved


class Result:
    """The base of every result record (an `attrs.frozen` subclass).

    `to_dataset()`: the record's `data` field (a copy; or its `variable()` fields joined,
    or what `_dataset()` returns) with its `attr()` fields and `_extra_attrs()` as
    attributes. `to_json()`: flat JSON-ready records (module docstring) as the class
    declares them in `JSON` (a tuple of `Records` and `Extra`), walked over the dataset
    `_json_data()` (the `data` field, or `_dataset()`) by named dims. `caveats`: () unless
    the record has a field of that name.
    """

    __slots__ = ()

    #: The record's JSON, declared (see `Records`).
    JSON: ClassVar[tuple[Part, ...]] = ()

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

    def _json_data(self) -> xr.Dataset:
        """The dataset `JSON` walks: the `data` field, or `_dataset()`."""
        data = getattr(self, "data", None)
        return data if isinstance(data, xr.Dataset) else self._dataset()

    def json_keys(self) -> dict[str | None, list[str]]:
        """The declared keys of each kind of record ({"record" value or None: keys})."""
        data = self._json_data()
        parts: list[Records | Extra] = []
        for part in type(self).JSON:
            parts.extend(part.parts if isinstance(part, Interleaved) else (part,))
        return {part.record: part.key_names(self, data) for part in parts}

    def json_records(self, *parts: Part) -> list[dict[str, Any]]:
        """The records of `parts` (default: every part of `JSON`), in order."""
        data = self._json_data()
        out: list[dict[str, Any]] = []
        for part in parts or type(self).JSON:
            out.extend(part.records(self, data))
        return out

    def to_json(self) -> list[dict[str, Any]]:
        if not type(self).JSON:
            raise NotImplementedError(f"{type(self).__name__} declares no JSON")
        return self.json_records()


def included_labels(data: xr.Dataset, dim: str = "workload") -> list[str]:
    """Labels along `dim` whose boolean `included` variable is set (e.g. the workloads
    that entered an aggregate or a profile)."""
    return [str(w) for w, ok in zip(data[dim].values, data["included"].values, strict=True) if ok]


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
