"""Tidy tables in and out: one row per evaluation, plus a sidecar of per-archive facts.

Dependency rule: numpy, pandas (xarray's own dependency), xarray, attrs and this package;
pyarrow only when a Parquet file is read or written (the optional extra `parquet`).

Table (docs/importers.md): columns `workload`, `optimizer`, `trial`, one per repeat axis
(`seed`, `study`), `trial_seed`, `status`, `step`, `time`, the curve variables
(`train_loss` ... `test_metric`) and `hp.NAME` per hyperparameter; one row per evaluation
of every stored run, in (cell, evaluation) order; a run without evaluations has one row
with an empty step. The sidecar (`FILE.meta.json`) holds what a row cannot: per-workload
facts, optimizer families, search spaces, the taxonomy, the repeat axes, other non-dim
coordinates and the archive's attributes.

Other tables (experiment-tracker exports) are read through a mapping (TOML) naming the
columns and giving the facts a table lacks; a fact neither the sidecar nor the mapping
gives (the metric's direction, the search space) is asked for in one error line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from optcmp_data._builder import (
    ArchiveBuilder,
    Curves,
    SpaceDim,
    SpaceRecord,
    TrialRecord,
    WorkloadInfo,
)
from optcmp_data._errors import ConfigError, DataFormatError
from optcmp_data._schema import (
    CURVE_VARS,
    REPEAT_DIMS,
    WORKLOAD_VARS,
    Direction,
    Scale,
    Split,
    Status,
    repeat_dims,
)
from optcmp_data._taxonomy import Taxonomy
from optcmp_data.importers._common import BadInputs, ImportResult, read_text

__all__ = [
    "HP_PREFIX",
    "IMPORT_ATTRS",
    "SIDECAR_SUFFIX",
    "TABLE_FORMATS",
    "TableMapping",
    "archive_to_frame",
    "export_table",
    "import_table",
    "sidecar_path",
    "table_facts",
]

TABLE_FORMATS = ("csv", "parquet")
SIDECAR_SUFFIX = ".meta.json"
HP_PREFIX = "hp."
_TABLE_VERSION = 1
_VALUE_COLS = ("time", *CURVE_VARS)
# Attributes that describe the import itself: set anew, never taken from the sidecar.
IMPORT_ATTRS = ("source", "command", "created", "optcmp_version", "git_commit")
# Columns of a table in optcmp's own shape.
_NATIVE_COLS = ("workload", "optimizer", "trial", "trial_seed", "status", "step", *_VALUE_COLS)
_SCHEMA_NAMES = frozenset(
    {
        *CURVE_VARS,
        *WORKLOAD_VARS,
        "time",
        "step",
        "status",
        "trial_seed",
        "hparams",
        "optimizer_family",
        "space_name",
        "space_low",
        "space_high",
        "space_scale",
        "inclusion_special",
        "inclusion_general",
        "workload",
        "optimizer",
        "trial",
        "eval",
        "hparam",
        *REPEAT_DIMS,
    }
)

FloatArray = npt.NDArray[np.float64]


def sidecar_path(table: str | os.PathLike[str]) -> Path:
    """The sidecar file next to a table: FILE + .meta.json."""
    table = Path(table)
    return table.with_name(table.name + SIDECAR_SUFFIX)


def _need_pyarrow(path: Path) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataFormatError(
            f"{path}: Parquet needs pyarrow, which is not installed "
            "(pip install 'optcmp[parquet]'); or use --format csv"
        ) from None


# --- export ------------------------------------------------------------------------------


def archive_to_frame(ds: xr.Dataset, /) -> pd.DataFrame:
    """One row per evaluation of every stored run (module docstring), in cell order."""
    reps = repeat_dims(ds)
    cell_dims = ("workload", "optimizer", "trial", *reps)
    curve_dims = (*cell_dims, "eval")
    status = ds["status"].transpose(*cell_dims).values.astype(str)
    step = ds["step"].transpose(*curve_dims).values
    present = status != Status.MISSING.value
    has = step >= 0
    no_eval = present & ~has.any(axis=-1)
    rows = has & present[..., None]
    if ds.sizes["eval"] == 0:
        rows = no_eval[..., None]
    else:
        rows[..., 0] |= no_eval
    index = np.nonzero(rows)
    cell = index[:-1]
    columns: dict[str, Any] = {}
    for i, dim in enumerate(("workload", "optimizer")):
        labels = ds[dim].values.astype(str)
        columns[dim] = pd.Categorical.from_codes(index[i], categories=pd.Index(labels))
    columns["trial"] = ds["trial"].values[index[2]]
    for i, dim in enumerate(reps):
        columns[dim] = ds[dim].values[index[3 + i]]
    columns["trial_seed"] = ds["trial_seed"].transpose(*cell_dims).values[cell]
    status_labels = np.array([s.value for s in Status])
    codes = np.searchsorted(status_labels, status[cell], sorter=np.argsort(status_labels))
    columns["status"] = pd.Categorical.from_codes(
        np.argsort(status_labels)[codes], categories=pd.Index(status_labels)
    )
    step_values = step[index]
    empty = no_eval[cell] if ds.sizes["eval"] else np.ones(len(step_values), dtype=bool)
    columns["step"] = pd.array(np.where(empty, 0, step_values), dtype="Int64")
    columns["step"][empty] = pd.NA
    for name in _VALUE_COLS:
        values = ds[name].transpose(*curve_dims).values[index] if ds.sizes["eval"] else None
        columns[name] = (
            np.where(empty, np.nan, values) if values is not None else np.full(len(empty), np.nan)
        )
    hp = ds["hparams"].transpose("workload", "optimizer", "trial", "hparam").values
    for h, name in enumerate(ds["hparam"].values.astype(str)):
        columns[HP_PREFIX + name] = hp[index[0], index[1], index[2], h]
    return pd.DataFrame(columns)


def _json_float(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _from_json_float(value: Any) -> float:
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return float(value)


def _json_values(values: npt.NDArray[Any], kind: str) -> Any:
    if kind in "UO":
        return values.astype(str).tolist()
    if kind == "f":
        return np.vectorize(_json_float, otypes=[object])(values).tolist() if values.size else []
    return values.tolist()


def table_facts(ds: xr.Dataset, /) -> dict[str, Any]:
    """The sidecar: per-workload facts, families, spaces, taxonomy, repeat axes, other
    non-dim coordinates and attributes (JSON-ready)."""
    workloads: dict[str, Any] = {}
    for w, name in enumerate(ds["workload"].values.astype(str)):
        workloads[name] = {
            "metric_name": str(ds["metric_name"].values[w]),
            "direction": str(ds["metric_direction"].values[w]),
            "valid_target": _json_float(float(ds["valid_target"].values[w])),
            "test_target": _json_float(float(ds["test_target"].values[w])),
            "step_budget": int(ds["step_budget"].values[w]),
            "selection_split": str(ds["selection_split"].values[w]),
        }
    optimizers = {
        str(o): str(f)
        for o, f in zip(ds["optimizer"].values, ds["optimizer_family"].values, strict=True)
    }
    hparams = [str(h) for h in ds["hparam"].values]
    spaces: list[dict[str, Any]] = []
    scale = ds["space_scale"].transpose("workload", "optimizer", "hparam").values.astype(str)
    low = ds["space_low"].transpose("workload", "optimizer", "hparam").values
    high = ds["space_high"].transpose("workload", "optimizer", "hparam").values
    names = ds["space_name"].transpose("workload", "optimizer").values.astype(str)
    for w, wname in enumerate(ds["workload"].values.astype(str)):
        for o, oname in enumerate(ds["optimizer"].values.astype(str)):
            dims = [
                {
                    "name": hparams[h],
                    "low": _json_float(float(low[w, o, h])),
                    "high": _json_float(float(high[w, o, h])),
                    "scale": scale[w, o, h],
                }
                for h in range(len(hparams))
                if scale[w, o, h] != Scale.NONE.value
            ]
            if names[w, o] or dims:
                spaces.append(
                    {"workload": wname, "optimizer": oname, "name": names[w, o], "dims": dims}
                )
    extra: dict[str, Any] = {}
    for name in list(ds.coords) + list(ds.data_vars):
        key = str(name)
        if key in _SCHEMA_NAMES:
            continue
        var = ds[key]
        allowed = {"workload", "optimizer", "hparam"}
        if not set(map(str, var.dims)) <= allowed:
            raise DataFormatError(
                f"variable {key!r} has dims {tuple(var.dims)}; a table export keeps only "
                "extra variables over workload, optimizer and hparam"
            )
        kind = var.dtype.kind
        extra[key] = {
            "dims": [str(d) for d in var.dims],
            "kind": "str" if kind in "UO" else ("int" if kind in "iu" else "float"),
            "values": _json_values(var.values, kind),
            "coord": key in ds.coords,
        }
    attrs = {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in ds.attrs.items()}
    return {
        "optcmp_table": _TABLE_VERSION,
        "repeat_dims": list(repeat_dims(ds)),
        "workloads": workloads,
        "optimizers": optimizers,
        "hparams": hparams,
        "spaces": spaces,
        "taxonomy": Taxonomy.from_archive(ds).to_mapping(),
        "extra": extra,
        "attrs": attrs,
    }


def _atomic_write(path: Path, write: Any) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DataFormatError(f"{path}: directory {parent} does not exist")
    if path.is_dir():
        raise DataFormatError(f"{path}: is a directory")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def export_table(
    ds: xr.Dataset, out: str | os.PathLike[str], /, *, fmt: str | None = None
) -> tuple[Path, Path]:
    """Write `ds` as a tidy table (csv or parquet; default from the suffix) and its
    sidecar, each atomically. Returns (table, sidecar)."""
    out = Path(out)
    fmt = fmt or (out.suffix.lstrip(".").lower() or "csv")
    if fmt not in TABLE_FORMATS:
        raise DataFormatError(f"{out}: format {fmt!r} is not one of {list(TABLE_FORMATS)}")
    if fmt == "parquet":
        _need_pyarrow(out)
    facts = table_facts(ds)
    frame = archive_to_frame(ds)

    def write_table(tmp: Path) -> None:
        if fmt == "csv":
            frame.to_csv(tmp, index=False, na_rep="", float_format=None)
        else:
            frame.to_parquet(tmp, index=False)

    def write_facts(tmp: Path) -> None:
        tmp.write_text(json.dumps(facts, indent=1, allow_nan=False) + "\n", encoding="utf-8")

    side = _atomic_write(sidecar_path(out), write_facts)
    try:
        table = _atomic_write(out, write_table)
    except BaseException:
        side.unlink(missing_ok=True)
        raise
    return table, side


# --- reading ------------------------------------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataFormatError(f"{path}: cannot be read ({err})") from None
    if not header:
        raise DataFormatError(f"{path}: empty file, expected a header row")
    return header


def _check_unique(path: Path, header: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataFormatError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)


def read_frame(path: str | os.PathLike[str], /, *, text_columns: Sequence[str] = ()) -> Any:
    """A table file (CSV, or Parquet by suffix) as a DataFrame; label columns as text,
    empty cells as missing, floats exact. DataFormatError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        _need_pyarrow(path)
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
            names = [str(c) for c in parquet.schema_arrow.names]
            _check_unique(path, names)
            batches = (b.to_pandas() for b in parquet.iter_batches(batch_size=_CHUNK_ROWS))
            text = [c for c in text_columns if c in names]
            frame = _fill_columns(batches, parquet.metadata.num_rows, text, names)
        except (OSError, ValueError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataFormatError(f"{path}: not a readable Parquet file ({detail})") from None
        return frame
    header = _csv_header(path)
    _check_unique(path, header)
    text = [c for c in text_columns if c in header]
    try:
        return _read_csv_chunked(path, text)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise DataFormatError(f"{path}: not a readable CSV table ({detail})") from None


_CHUNK_ROWS = 100_000


def _count_rows(path: Path) -> int:
    """Lines after the header (an upper bound on rows; the reader trims)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _read_csv_chunked(path: Path, text_columns: Sequence[str]) -> Any:
    """The CSV in chunks written straight into one array per column, so that memory
    peaks near the final columns rather than at pandas' whole-file parse (about three
    times them): label columns as categoricals, numbers as float64, and any other column
    as Python objects."""
    reader = pd.read_csv(
        path,
        dtype={c: "category" for c in text_columns},
        keep_default_na=False,
        na_values=[""],
        chunksize=_CHUNK_ROWS,
    )
    return _fill_columns(reader, max(_count_rows(path) - 1, 0), text_columns, _csv_header(path))


def _fill_columns(
    chunks: Any, capacity: int, text_columns: Sequence[str], header: Sequence[str]
) -> Any:
    """DataFrame chunks written into one array per column (see `_read_csv_chunked`)."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    labels: dict[str, dict[str, int]] = {c: {} for c in text_columns}
    pos = 0
    columns: list[str] = []
    for chunk in chunks:
        m = len(chunk)
        if not columns:
            columns = [str(c) for c in chunk.columns]
        if pos + m > capacity:  # quoted newlines make the line count a poor bound
            capacity = max(2 * capacity, pos + m)
            for c in arrays:
                arrays[c] = np.resize(arrays[c], capacity)
        for c in columns:
            col = chunk[c]
            if c in labels:
                codes, uniques = pd.factorize(col, use_na_sentinel=True)
                table = labels[c]
                mapping = np.array([table.setdefault(str(u), len(table)) for u in uniques] + [-1])
                values: npt.NDArray[Any] = mapping[codes].astype(np.int32)
                dtype: Any = np.int32
            elif col.dtype.kind in "fiub":
                values, dtype = col.to_numpy(dtype=np.float64, na_value=np.nan), np.float64
            else:
                values, dtype = col.to_numpy(dtype=object), object
            if c not in arrays:
                arrays[c] = np.empty(capacity, dtype=dtype)
            elif arrays[c].dtype != dtype and dtype is object:
                arrays[c] = arrays[c].astype(object)
            arrays[c][pos : pos + m] = values
        pos += m
    if not columns:
        return pd.DataFrame({c: [] for c in header})
    out: dict[str, Any] = {}
    for c in columns:
        arr = arrays.pop(c)[:pos]
        if c in labels:
            names = list(labels[c])
            out[c] = pd.Categorical.from_codes(arr, categories=pd.Index(names, dtype=object))
        else:
            out[c] = arr
    return pd.DataFrame(out, copy=False)


# --- mapping ------------------------------------------------------------------------------

_COLUMN_KEYS = ("workload", "optimizer", "trial", "step", "status", "trial_seed", *_VALUE_COLS)


class TableMapping:
    """What the columns of a table mean and the facts it lacks (docs/importers.md)."""

    def __init__(self, data: Mapping[str, Any], *, source: str) -> None:
        self.source = source
        cols = data.get("columns", {})
        if not isinstance(cols, Mapping):
            raise ConfigError(f"{source}: [columns] must be a table of column names")
        unknown = sorted(set(cols) - set(_COLUMN_KEYS) - set(REPEAT_DIMS))
        if unknown:
            raise ConfigError(
                f"{source}: [columns] key {unknown[0]!r} is not one of "
                f"{sorted({*_COLUMN_KEYS, *REPEAT_DIMS})}"
            )
        self.columns: dict[str, str] = {}
        for key, value in cols.items():
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{source}: columns.{key}: expected a column name")
            self.columns[str(key)] = value
        values = data.get("values", {})
        if not isinstance(values, Mapping) or not all(
            isinstance(v, str) and v for v in values.values()
        ):
            raise ConfigError(f"{source}: [values] must map workload/optimizer to labels")
        self.values = {str(k): str(v) for k, v in values.items()}
        bad = sorted(set(self.values) - {"workload", "optimizer"})
        if bad:
            raise ConfigError(f"{source}: values.{bad[0]}: only workload and optimizer")
        hp = data.get("hparams", {})
        if not isinstance(hp, Mapping):
            raise ConfigError(f"{source}: [hparams] must be a table")
        self.hp_prefix = str(hp.get("prefix", HP_PREFIX))
        hp_cols = hp.get("columns", {})
        if not isinstance(hp_cols, Mapping) or not all(
            isinstance(v, str) for v in hp_cols.values()
        ):
            raise ConfigError(f"{source}: hparams.columns must map names to column names")
        self.hp_columns = {str(k): str(v) for k, v in hp_cols.items()}
        self.status_map = {str(k): str(v) for k, v in dict(data.get("status_map", {})).items()}
        for k, v in self.status_map.items():
            if v not in {s.value for s in Status} - {Status.MISSING.value}:
                raise ConfigError(
                    f"{source}: status_map.{k} = {v!r}: expected completed, diverged or incomplete"
                )
        self.workload = dict(data.get("workload", {}))
        per = data.get("workloads", {})
        if not isinstance(per, Mapping):
            raise ConfigError(f"{source}: [workloads.NAME] must be tables")
        self.workloads = {str(k): dict(v) for k, v in per.items()}
        self.space = data.get("space")
        self.families = {str(k): str(v) for k, v in dict(data.get("families", {})).items()}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TableMapping:
        path = Path(path)
        try:
            data = tomllib.loads(read_text(path))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML ({err})") from None
        except RecursionError:
            raise ConfigError(f"{path}: TOML nested too deeply to be a mapping") from None
        return cls(data, source=str(path))

    def facts(self, workload: str) -> dict[str, Any]:
        return {**self.workload, **self.workloads.get(workload, {})}


def _workload_info(name: str, facts: Mapping[str, Any], *, source: str) -> WorkloadInfo:
    metric = facts.get("metric_name")
    direction = facts.get("direction")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(
            f"{source}: workload {name!r}: the metric's name is not given; add "
            f'metric_name = "..." under [workload] (or [workloads.{name}]) in the mapping'
        )
    if direction not in ("min", "max"):
        raise ConfigError(
            f"{source}: workload {name!r}: the direction of metric {metric!r} is not given; "
            f'add direction = "min" or "max" under [workload] (or [workloads.{name}]) in the '
            "mapping"
        )
    split = facts.get("selection_split", "valid")
    if split not in ("valid", "test"):
        raise ConfigError(f"{source}: workload {name!r}: selection_split {split!r}")
    try:
        return WorkloadInfo(
            name=name,
            metric_name=metric,
            direction=Direction(direction),
            valid_target=_from_json_float(facts.get("valid_target")),
            test_target=_from_json_float(facts.get("test_target")),
            step_budget=int(facts.get("step_budget", -1)),
            selection_split=Split(split),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: workload {name!r}: {err}") from None


def _mapped_space(space: Any, hparams: Sequence[str], *, source: str) -> SpaceRecord | None:
    """The mapping's [space]: `space = "none"` records none; a table gives `name` and one
    {low, high, scale} table per hyperparameter."""
    if space is None:
        raise ConfigError(
            f'{source}: no search space given; add a [space] table (name = "...", and '
            '<hparam> = {low = ..., high = ..., scale = "log"} per hyperparameter) or '
            'space = "none" to the mapping'
        )
    if space == "none":
        return None
    if not isinstance(space, Mapping):
        raise ConfigError(f'{source}: space: expected a table or "none"')
    dims: list[SpaceDim] = []
    for key, value in space.items():
        if key == "name":
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: space.{key}: expected {{low, high, scale}}")
        if key not in hparams:
            raise ConfigError(f"{source}: space.{key}: no such hyperparameter in the table")
        try:
            dims.append(
                SpaceDim(str(key), float(value["low"]), float(value["high"]), value["scale"])
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{source}: space.{key}: {err!r}") from None
    return SpaceRecord(str(space.get("name", "mapped")), tuple(dims))


# --- import -------------------------------------------------------------------------------


def _label_codes(series: Any, column: str, path: Path) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Integer codes and their labels for a label column; empty cells are an error."""
    codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
    if (codes < 0).any():
        row = int(np.argmax(codes < 0)) + 2
        raise DataFormatError(f"{path}: row {row}: column {column!r} is empty")
    return codes.astype(np.int64), [str(u) for u in uniques]


def _int_column(series: Any, column: str, path: Path) -> npt.NDArray[np.int64]:
    values = pd.to_numeric(series, errors="coerce")
    arr = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) > 2**53)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(
            f"{path}: row {row + 2}: column {column!r} holds "
            f"{str(series.iloc[row])!r}, not an integer"
        )
    return arr.astype(np.int64)


def _float_column(series: Any, column: str, path: Path) -> FloatArray:
    if series.dtype.kind in "fiu":
        return np.asarray(series, dtype=np.float64)
    values = pd.to_numeric(series, errors="coerce")
    arr = np.asarray(values, dtype=np.float64)
    bad = np.isnan(arr) & series.notna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataFormatError(
            f"{path}: row {row + 2}: column {column!r} holds "
            f"{str(series.iloc[row])!r}, not a number"
        )
    return arr


def _lex_sorted(keys: Sequence[npt.NDArray[np.int64]]) -> bool:
    """Whether rows are in non-decreasing lexicographic order of `keys`."""
    if not keys or len(keys[0]) < 2:
        return True
    undecided = np.ones(len(keys[0]) - 1, dtype=bool)
    for k in keys:
        d = k[1:] - k[:-1]
        if (undecided & (d < 0)).any():
            return False
        undecided &= d == 0
    return True


def import_table(
    path: str | os.PathLike[str],
    /,
    *,
    mapping: str | os.PathLike[str] | TableMapping | None = None,
    skip_bad: bool = False,
    command: str | None = None,
) -> ImportResult:
    """Import a tidy table (optcmp's own with its sidecar, or any table a mapping
    describes). `skip_bad` skips runs whose rows are inconsistent, one warning each."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    side = sidecar_path(path)
    facts: dict[str, Any] | None = None
    if side.is_file():
        try:
            facts = json.loads(read_text(side))
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{side}: not valid JSON ({err.msg})") from None
        except RecursionError:
            raise DataFormatError(f"{side}: JSON nested too deeply to be a sidecar") from None
        if not isinstance(facts, dict) or facts.get("optcmp_table") != _TABLE_VERSION:
            raise DataFormatError(f"{side}: not an optcmp table sidecar (version {_TABLE_VERSION})")
    if isinstance(mapping, TableMapping):
        mapped = mapping
    elif mapping is not None:
        mapped = TableMapping.from_file(mapping)
    else:
        mapped = TableMapping({}, source=str(path))
    if facts is None and mapping is None:
        raise ConfigError(
            f"{path}: no sidecar {side.name} and no --mapping: the table does not say its "
            "metric's direction or search space; give a mapping file"
        )
    col = {k: mapped.columns.get(k, k) for k in _COLUMN_KEYS}
    reps: list[str] = (
        list(facts["repeat_dims"])
        if facts is not None
        else [d for d in REPEAT_DIMS if d in mapped.columns]
    )
    for d in reps:
        col[d] = mapped.columns.get(d, d)
    frame = read_frame(path, text_columns=[col["workload"], col["optimizer"], col["status"]])
    names = [str(c) for c in frame.columns]
    n = len(frame)
    if n == 0:
        raise DataFormatError(f"{path}: no rows")

    def need(key: str) -> str:
        if col[key] not in names:
            raise DataFormatError(
                f"{path}: no column {col[key]!r} for {key} (columns: {', '.join(names[:12])}"
                f"{', ...' if len(names) > 12 else ''}); name it in the mapping's [columns]"
            )
        return col[key]

    labels: dict[str, tuple[npt.NDArray[np.int64], list[str]]] = {}
    for key in ("workload", "optimizer"):
        if key in mapped.values:
            labels[key] = (np.zeros(n, dtype=np.int64), [mapped.values[key]])
        else:
            labels[key] = _label_codes(frame[need(key)], col[key], path)
    trial_col = need("trial")
    trial_series = frame[trial_col]
    numeric_trial = pd.to_numeric(trial_series, errors="coerce")
    caveats: list[str] = []
    if numeric_trial.notna().all():
        trial = _int_column(trial_series, trial_col, path)
    else:
        codes, uniques = _label_codes(trial_series.astype(str), trial_col, path)
        trial = codes
        caveats.append(
            f"trial ids of column {trial_col!r} are not integers; trials are numbered 0.. "
            "in the sorted order of the ids"
        )
        del uniques
    repeat_values = {d: _int_column(frame[need(d)], col[d], path) for d in reps}

    if col["step"] in names:
        step_series = frame[col["step"]]
        no_step = step_series.isna().to_numpy()
        step = _int_column(step_series.where(~no_step, 0), col["step"], path)
    else:
        no_step = np.zeros(n, dtype=bool)
        step = np.full(n, -1, dtype=np.int64)
    values = {k: _float_column(frame[col[k]], col[k], path) for k in _VALUE_COLS if col[k] in names}
    # Status as codes into its labels: a text array per row would cost more than the rest.
    raw_status, status_labels = (
        _label_codes(frame[col["status"]], col["status"], path)
        if col["status"] in names
        else (None, [])
    )
    if facts is not None:
        hp_names = [str(h) for h in facts["hparams"]]
        hp_cols = {h: HP_PREFIX + h for h in hp_names if HP_PREFIX + h in names}
    elif mapped.hp_columns:
        hp_cols = dict(mapped.hp_columns)
        hp_names = sorted(hp_cols)
    else:
        used = set(col.values()) | set(mapped.values)
        hp_cols = {
            c[len(mapped.hp_prefix) :]: c
            for c in names
            if c.startswith(mapped.hp_prefix) and c not in used
        }
        hp_names = sorted(hp_cols)
    hp_values = {h: _float_column(frame[c], c, path) for h, c in hp_cols.items()}
    seed = (
        _int_column(frame[col["trial_seed"]], col["trial_seed"], path)
        if col["trial_seed"] in names
        else np.full(n, -1, dtype=np.int64)
    )
    del frame

    # Group rows into runs: stable sort by (workload, optimizer, trial, repeats), skipped
    # (no copies) when the rows are grouped already, as optcmp's own export writes them.
    workload_names = labels["workload"][1]
    optimizer_names = labels["optimizer"][1]
    keys = [labels["workload"][0], labels["optimizer"][0], trial, *repeat_values.values()]
    order = None if _lex_sorted(keys) else np.lexsort(keys[::-1])

    def take(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return values if order is None else values[order]

    sorted_keys = [take(k) for k in keys]
    del keys, trial, repeat_values, labels
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for k in sorted_keys:
        change |= k[1:] != k[:-1]
    starts = np.flatnonzero(np.r_[True, change])
    ends = np.r_[starts[1:], n]
    del change

    builder = ArchiveBuilder(
        source=f"table {path}"
        + (f" (exported from: {facts['attrs'].get('source', '')})" if facts else ""),
        command=command,
        repeat_dims=tuple(reps),
        taxonomy=Taxonomy.from_mapping(facts["taxonomy"], source=str(side)) if facts else None,
    )
    for c in caveats:
        builder.add_caveat(c)
    bad = BadInputs(skip_bad=skip_bad)
    if facts is not None:
        for name in workload_names:
            if name not in facts["workloads"]:
                raise DataFormatError(f"{side}: workload {name!r} of the table has no facts")
            entry = dict(facts["workloads"][name])
            entry["direction"] = entry.get("direction")
            builder.add_workload(_workload_info(name, entry, source=str(side)))
        for name in optimizer_names:
            builder.add_optimizer(name, str(facts["optimizers"].get(name, "")))
        for sp in facts["spaces"]:
            builder.add_space(
                sp["workload"],
                sp["optimizer"],
                SpaceRecord(
                    sp["name"],
                    tuple(
                        SpaceDim(
                            d["name"],
                            _from_json_float(d["low"]),
                            _from_json_float(d["high"]),
                            d["scale"],
                        )
                        for d in sp["dims"]
                    ),
                ),
            )
    else:
        space = _mapped_space(mapped.space, hp_names, source=mapped.source)
        for name in workload_names:
            builder.add_workload(_workload_info(name, mapped.facts(name), source=mapped.source))
        for name in optimizer_names:
            builder.add_optimizer(name, mapped.families.get(name, ""))
            if space is not None:
                for w in workload_names:
                    builder.add_space(w, name, space)

    # Rebinding drops the unsorted columns as soon as their sorted copies exist.
    sorted_step = take(step)
    sorted_no_step = take(no_step)
    del step, no_step
    sorted_values: dict[str, FloatArray] = {}
    for name in list(values):
        sorted_values[name] = take(values.pop(name))
    sorted_hp: dict[str, FloatArray] = {}
    for h in list(hp_values):
        sorted_hp[h] = take(hp_values.pop(h))
    sorted_seed = take(seed)
    sorted_status = take(raw_status) if raw_status is not None else None
    del seed, raw_status
    budgets = (
        {
            w: _workload_info(w, mapped.facts(w), source=mapped.source).step_budget
            if facts is None
            else int(facts["workloads"][w]["step_budget"])
            for w in workload_names
        }
        if col["step"] not in names
        else {}
    )
    valid_status = {s.value for s in Status} - {Status.MISSING.value}
    for a, b in zip(starts, ends, strict=True):
        w = workload_names[sorted_keys[0][a]]
        o = optimizer_names[sorted_keys[1][a]]
        t = int(sorted_keys[2][a])
        rep = {d: int(sorted_keys[3 + i][a]) for i, d in enumerate(reps)}
        where = f"{path}: run {w}/{o}/trial {t}" + "".join(f"/{d} {v}" for d, v in rep.items())
        hp = {h: float(v[a]) for h, v in sorted_hp.items() if not math.isnan(v[a])}
        if any(
            not np.array_equal(v[a:b], np.full(b - a, v[a]), equal_nan=True)
            for v in sorted_hp.values()
        ):
            bad.bad(f"{where}: hyperparameters differ between its rows")
            continue
        if sorted_seed[a:b].min() != sorted_seed[a:b].max():
            bad.bad(f"{where}: trial_seed differs between its rows")
            continue
        empty = sorted_no_step[a:b]
        if empty.any():
            if b - a != 1:
                bad.bad(f"{where}: a row with an empty step among evaluations")
                continue
            run_step = np.zeros(0, dtype=np.int64)
            curves = Curves(step=run_step)
        else:
            if col["step"] in names:
                run_step = sorted_step[a:b]
            else:
                if b - a != 1:
                    bad.bad(f"{where}: {b - a} rows but no step column to order them")
                    continue
                if budgets[w] < 0:
                    raise ConfigError(
                        f"{mapped.source}: the table has no step column; give [columns] step "
                        f"or step_budget under [workload] (workload {w!r})"
                    )
                run_step = np.array([budgets[w]], dtype=np.int64)
            if (run_step < 0).any():
                bad.bad(f"{where}: negative step {int(run_step.min())}")
                continue
            curves = Curves(step=run_step, **{k: v[a:b] for k, v in sorted_values.items()})
        if sorted_status is not None:
            codes = sorted_status[a:b]
            if codes.min() != codes.max():
                cells = sorted({status_labels[c] for c in codes})
                bad.bad(f"{where}: status differs between its rows ({cells})")
                continue
            raw = status_labels[codes[0]]
            status_text = mapped.status_map.get(raw, raw)
            if status_text not in valid_status:
                bad.bad(
                    f"{where}: status {raw!r} is not one of {sorted(valid_status)} "
                    "(map it with [status_map] in the mapping)"
                )
                continue
            status = Status(status_text)
        else:
            finite = all(
                np.isfinite(v[a:b][~np.isnan(v[a:b])]).all() for v in sorted_values.values()
            )
            status = Status.COMPLETED if finite else Status.DIVERGED
        builder.add_trial(
            TrialRecord(
                workload=w,
                optimizer=o,
                trial=t,
                status=status,
                hparams=hp,
                curves=curves,
                seed=int(sorted_seed[a]),
                repeat=rep,
            )
        )
    if len(builder) == 0:
        raise DataFormatError(f"{path}: no run could be imported")
    ds = builder.build()
    if facts is not None:
        ds = _restore(ds, facts, side)
    else:
        ds.attrs["importer"] = "table"
    return ImportResult(dataset=ds, warnings=tuple(bad.warnings), files_read=1)


def _restore(ds: xr.Dataset, facts: Mapping[str, Any], side: Path) -> xr.Dataset:
    """Put back what the sidecar holds beyond the rows: the hyperparameter list, other
    coordinates and variables, and the archive's attributes (except the import's own
    provenance)."""
    hp = [str(h) for h in facts["hparams"]]
    if [str(h) for h in ds["hparam"].values] != hp:
        ds = ds.reindex(hparam=np.array(hp, dtype=str))
        ds["space_scale"] = ds["space_scale"].fillna(Scale.NONE.value).astype(str)
    for name, spec in dict(facts.get("extra", {})).items():
        dims = tuple(spec["dims"])
        kind = spec["kind"]
        dtype = str if kind == "str" else (np.int64 if kind == "int" else np.float64)
        try:
            raw = np.array(spec["values"], dtype=object)
            if kind == "float" and raw.size:
                raw = np.vectorize(_from_json_float, otypes=[np.float64])(raw)
            arr = raw.astype(dtype).reshape([ds.sizes[d] for d in dims])
        except (ValueError, KeyError, TypeError) as err:
            raise DataFormatError(f"{side}: extra.{name}: {err}") from None
        var = xr.Variable(dims, arr)
        ds = ds.assign_coords({name: var}) if spec.get("coord") else ds.assign({name: var})
    attrs = dict(facts["attrs"])
    new = ds.attrs
    for key in IMPORT_ATTRS:
        attrs[key] = new[key]
    ds.attrs = attrs
    return ds
