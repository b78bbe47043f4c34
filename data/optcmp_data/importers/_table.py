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

Other tables (experiment-tracker exports, results files of a sweep) are read through a
mapping (TOML) naming the columns and giving the facts a table lacks; trials may be a
column's ids, each row (`trial = "row"`) or each distinct hyperparameter setting
(`trial = "setting"`, repeated rows as seeds through `[repeats]`). A fact neither the
sidecar nor the mapping gives (the metric's direction, the search space) is asked for in
one error line naming every way to give it; `_infer.py` drafts a mapping.

Import fills the archive's arrays straight from the columns (`_columns.py` reads them in
chunks, keeping the row keys in memory and spilling the values to a temporary file), so
the table's values and the archive are never in memory together. Exports write label
cells through `escape_text` (spreadsheet-safe; the sidecar says so and import undoes it).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from optcmp_data._builder import (
    SpaceDim,
    SpaceRecord,
    WorkloadInfo,
    assemble_archive,
)
from optcmp_data._errors import ConfigError, DataFormatError
from optcmp_data._fs import atomic_write, check_regular_file
from optcmp_data._provenance import provenance_attrs
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
from optcmp_data._taxonomy import Taxonomy, default_taxonomy
from optcmp_data.importers._columns import (
    ColumnPlan,
    TableColumns,
    read_columns,
    release_memory,
    table_header,
)
from optcmp_data.importers._common import ImportResult, read_text
from optcmp_data.importers._registry import TABLE_FORMATS

__all__ = [
    "HP_PREFIX",
    "IMPORT_ATTRS",
    "REPEATED_ROWS",
    "SIDECAR_SUFFIX",
    "TABLE_FORMATS",
    "TEXT_CELLS",
    "TRIAL_MODES",
    "TableMapping",
    "archive_to_frame",
    "escape_text",
    "export_table",
    "import_table",
    "sidecar_path",
    "table_facts",
    "unescape_text",
]

SIDECAR_SUFFIX = ".meta.json"
HP_PREFIX = "hp."
_TABLE_VERSION = 1
# `trial = "row"` / "setting" in a mapping, and the [repeats] value numbering repeated rows.
TRIAL_MODES = ("row", "setting")
REPEATED_ROWS = "repeated rows"
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


# --- spreadsheet-safe text cells ---------------------------------------------------------

# The sidecar's `text_cells` value for tables whose label cells `escape_text` wrote.
TEXT_CELLS = "escaped-1"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def escape_text(text: str) -> str:
    """A label as a text cell a spreadsheet will not run (docs/importers.md): backslashes
    doubled, control characters written `\\xNN`, and a cell starting with =, +, -, @, tab,
    CR or a quote prefixed with a single quote (OWASP's advice against formula injection).
    `unescape_text` undoes it exactly."""
    out = text.replace("\\", "\\\\")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in out):
        out = "".join(
            f"\\x{ord(ch):02x}" if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 else ch for ch in out
        )
    if out.startswith(_FORMULA_START):
        out = "'" + out
    return out


def unescape_text(text: str) -> str:
    """The label `escape_text` wrote as `text`."""
    if text.startswith("'"):
        text = text[1:]
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(int(m.group(1)[1:], 16)), text)


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
    workloads = _workload_facts(ds)
    optimizers = {
        str(o): str(f)
        for o, f in zip(ds["optimizer"].values, ds["optimizer_family"].values, strict=True)
    }
    hparams = [str(h) for h in ds["hparam"].values]
    spaces = _space_facts(ds, hparams)
    extra = _extra_facts(ds)
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


def _workload_facts(ds: xr.Dataset) -> dict[str, Any]:
    """Each workload's metric, direction, targets, step budget and selection split."""
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
    return workloads


def _space_facts(ds: xr.Dataset, hparams: Sequence[str]) -> list[dict[str, Any]]:
    """The search space of each (workload, optimizer) that has a name or a searched
    dimension: its name and dimensions (name, low, high, scale)."""
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
    return spaces


def _extra_facts(ds: xr.Dataset) -> dict[str, Any]:
    """The coordinates and variables outside the schema (over workload, optimizer and
    hparam only; DataFormatError for another): dims, kind, values, whether a coordinate."""
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
    return extra


def _escaped(frame: pd.DataFrame) -> pd.DataFrame:
    """Label cells and hyperparameter column names through `escape_text`; numbers (a
    negative learning rate, a step) are not text cells and stay as they are."""
    for name in ("workload", "optimizer"):
        frame[name] = frame[name].cat.rename_categories(escape_text)
    return frame.rename(
        columns={
            c: HP_PREFIX + escape_text(c[len(HP_PREFIX) :])
            for c in frame.columns
            if c.startswith(HP_PREFIX)
        }
    )


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
    facts["text_cells"] = TEXT_CELLS
    frame = _escaped(archive_to_frame(ds))

    def write_table(tmp: Path) -> None:
        if fmt == "csv":
            frame.to_csv(tmp, index=False, na_rep="", float_format=None)
        else:
            frame.to_parquet(tmp, index=False)

    def write_facts(tmp: Path) -> None:
        tmp.write_text(json.dumps(facts, indent=1, allow_nan=False) + "\n", encoding="utf-8")

    side = atomic_write(sidecar_path(out), write_facts)
    try:
        table = atomic_write(out, write_table)
    except BaseException:
        side.unlink(missing_ok=True)
        raise
    return table, side


# --- mapping ------------------------------------------------------------------------------

_COLUMN_KEYS = ("workload", "optimizer", "trial", "step", "status", "trial_seed", *_VALUE_COLS)


class TableMapping:
    """What the columns of a table mean and the facts it lacks (docs/importers.md)."""

    def __init__(self, data: Mapping[str, Any], *, source: str) -> None:
        self.source = source
        self.columns: dict[str, str] = _mapped_columns(data.get("columns", {}), source)
        self.trial_mode: str = _trial_mode(data.get("trial"), self.columns, source)
        # The repeat axes named in [columns] move to the repeats.
        self.repeats: dict[str, str] = _mapped_repeats(
            data.get("repeats", {}), self.columns, source
        )
        if self.trial_mode == "row" and REPEATED_ROWS in self.repeats.values():
            raise ConfigError(
                f'{source}: trial = "row" makes every row its own trial, so rows cannot '
                f'repeat a setting; use trial = "setting" with [repeats] seed = "{REPEATED_ROWS}"'
            )
        self.values = _mapped_values(data.get("values", {}), source)
        self.hp_prefix, self.hp_columns = _mapped_hparams(data.get("hparams", {}), source)
        self.status_map = _status_map(data.get("status_map", {}), source)
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


def _mapped_columns(cols: Any, source: str) -> dict[str, str]:
    """[columns]: each known key (a value column, a label, a repeat axis) to a column name."""
    if not isinstance(cols, Mapping):
        raise ConfigError(f"{source}: [columns] must be a table of column names")
    unknown = sorted(set(cols) - set(_COLUMN_KEYS) - set(REPEAT_DIMS))
    if unknown:
        raise ConfigError(
            f"{source}: [columns] key {unknown[0]!r} is not one of "
            f"{sorted({*_COLUMN_KEYS, *REPEAT_DIMS})}"
        )
    columns: dict[str, str] = {}
    for key, value in cols.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: columns.{key}: expected a column name")
        columns[str(key)] = value
    return columns


def _trial_mode(trial: Any, columns: Mapping[str, str], source: str) -> str:
    """`trial = ...` (one of TRIAL_MODES), else "column"; not both it and a trial column."""
    if trial is not None and trial not in TRIAL_MODES:
        raise ConfigError(
            f"{source}: trial = {trial!r}: expected one of {list(TRIAL_MODES)} (or name "
            'the trial column with [columns] trial = "...")'
        )
    if trial is not None and "trial" in columns:
        raise ConfigError(
            f"{source}: both trial = {trial!r} and [columns] trial = {columns['trial']!r}; keep one"
        )
    return str(trial or "column")


def _mapped_repeats(repeats: Any, columns: dict[str, str], source: str) -> dict[str, str]:
    """[repeats]: each repeat axis to a column or REPEATED_ROWS, plus the repeat axes
    named in `columns` (popped from it; an axis may not be in both)."""
    if not isinstance(repeats, Mapping) or not all(
        isinstance(v, str) and v for v in repeats.values()
    ):
        raise ConfigError(
            f"{source}: [repeats] must map a repeat axis ({', '.join(REPEAT_DIMS)}) to a "
            f'column name or "{REPEATED_ROWS}"'
        )
    mapped: dict[str, str] = {}
    for key, value in repeats.items():
        if key not in REPEAT_DIMS:
            raise ConfigError(
                f"{source}: repeats.{key}: the archive's repeat axes are {list(REPEAT_DIMS)}"
            )
        mapped[str(key)] = str(value)
    for d in REPEAT_DIMS:
        if d in columns:
            if d in mapped:
                raise ConfigError(
                    f"{source}: repeat axis {d} given in both [columns] and [repeats]"
                )
            mapped[d] = columns.pop(d)
    return mapped


def _mapped_values(values: Any, source: str) -> dict[str, str]:
    """[values]: workload and optimizer to the labels they take in the archive."""
    if not isinstance(values, Mapping) or not all(
        isinstance(v, str) and v for v in values.values()
    ):
        raise ConfigError(f"{source}: [values] must map workload/optimizer to labels")
    mapped = {str(k): str(v) for k, v in values.items()}
    bad = sorted(set(mapped) - {"workload", "optimizer"})
    if bad:
        raise ConfigError(f"{source}: values.{bad[0]}: only workload and optimizer")
    return mapped


def _mapped_hparams(hp: Any, source: str) -> tuple[str, dict[str, str]]:
    """[hparams]: the hyperparameter columns' prefix and the columns named one by one."""
    if not isinstance(hp, Mapping):
        raise ConfigError(f"{source}: [hparams] must be a table")
    prefix = str(hp.get("prefix", HP_PREFIX))
    hp_cols = hp.get("columns", {})
    if not isinstance(hp_cols, Mapping) or not all(isinstance(v, str) for v in hp_cols.values()):
        raise ConfigError(f"{source}: hparams.columns must map names to column names")
    return prefix, {str(k): str(v) for k, v in hp_cols.items()}


def _status_map(status_map: Any, source: str) -> dict[str, str]:
    """[status_map]: the table's status labels to completed, diverged or incomplete."""
    mapped = {str(k): str(v) for k, v in dict(status_map).items()}
    for k, v in mapped.items():
        if v not in {s.value for s in Status} - {Status.MISSING.value}:
            raise ConfigError(
                f"{source}: status_map.{k} = {v!r}: expected completed, diverged or incomplete"
            )
    return mapped


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


def _int_label(text: str) -> int | None:
    """An integer trial id written as text ("7", "7.0"), else None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isfinite(value) and value == round(value) and abs(value) <= 2**53:
        return int(value)
    return None


def _columns_hint(names: Sequence[str]) -> str:
    return f"columns: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}"


def import_table(
    path: str | os.PathLike[str],
    /,
    *,
    mapping: str | os.PathLike[str] | TableMapping | None = None,
    skip_bad: bool = False,
    command: str | None = None,
) -> ImportResult:
    """Import a tidy table (optcmp's own with its sidecar, or any table a mapping
    describes). `skip_bad` skips runs whose rows are inconsistent, one warning each.

    The archive is filled straight from the table's columns (docs/importers.md): keys in
    memory, values spilled to a temporary file and scattered into the archive's arrays,
    so an import peaks near twice the archive's size."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: no such file")
    check_regular_file(path, "table file")  # a FIFO or a device would block or never end
    side = sidecar_path(path)
    facts = _read_sidecar(side)
    if isinstance(mapping, TableMapping):
        mapped = mapping
    elif mapping is not None:
        mapped = TableMapping.from_file(mapping)
    else:
        mapped = TableMapping({}, source=str(path))
    if facts is None and mapping is None:
        raise ConfigError(
            f"{path}: no sidecar {side.name} and no --mapping: the table does not say its "
            "metric's direction or search space; give a mapping file (`optcmp import table "
            f"{path.name} --infer` prints a draft)"
        )
    if path.suffix.lower() in (".parquet", ".pq"):
        _need_pyarrow(path)
    header = table_header(path)
    layout = _TableLayout.of(path, header, facts, mapped)
    cols = read_columns(path, layout.plan(header, mapped))
    try:
        return _import_columns(
            cols,
            path=path,
            side=side,
            facts=facts,
            mapped=mapped,
            layout=layout,
            skip_bad=skip_bad,
            command=command,
        )
    finally:
        cols.close()


def _read_sidecar(side: Path) -> dict[str, Any] | None:
    """The facts of an optcmp export's sidecar, or None where the table has none."""
    if not side.is_file():
        return None
    try:
        facts = json.loads(read_text(side))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{side}: not valid JSON ({err.msg})") from None
    except RecursionError:
        raise DataFormatError(f"{side}: JSON nested too deeply to be a sidecar") from None
    if not isinstance(facts, dict) or facts.get("optcmp_table") != _TABLE_VERSION:
        raise DataFormatError(f"{side}: not an optcmp table sidecar (version {_TABLE_VERSION})")
    return facts


@attrs.frozen
class _TableLayout:
    """Which columns of a table hold what: `col` maps each key (workload, optimizer,
    trial, step, status, trial_seed, time, curves) to its column; `reps` each repeat axis
    to its column (or REPEATED_ROWS); `hp_cols` each hyperparameter to its column;
    `trial_mode` is column, row or setting; `escaped` says the cells are escape_text'd."""

    col: Mapping[str, str]
    reps: Mapping[str, str]
    trial_mode: str
    hp_cols: Mapping[str, str]
    escaped: bool

    @classmethod
    def of(
        cls,
        path: Path,
        header: Sequence[str],
        facts: Mapping[str, Any] | None,
        mapped: TableMapping,
    ) -> _TableLayout:
        """The layout of the table at `path` from its sidecar's facts or the mapping;
        DataFormatError naming a column the table lacks."""
        escaped = facts is not None and facts.get("text_cells") == TEXT_CELLS
        col = {k: mapped.columns.get(k, k) for k in _COLUMN_KEYS}
        reps: dict[str, str] = (
            {str(d): str(d) for d in facts["repeat_dims"]} if facts is not None else mapped.repeats
        )
        trial_mode = "column" if facts is not None else mapped.trial_mode
        for key in ("workload", "optimizer"):
            if key not in mapped.values and col[key] not in header:
                raise DataFormatError(
                    f"{path}: no column {col[key]!r} for the {key} (name one in [columns] "
                    f'{key} = "...", or give one label for every row with [values] {key} = '
                    f'"..."; {_columns_hint(header)})'
                )
        if trial_mode == "column" and col["trial"] not in header:
            raise DataFormatError(
                f"{path}: no column {col['trial']!r} for the trial (name one in [columns] "
                'trial = "...", or set trial = "row" (each row is a trial) or trial = "setting" '
                "(each distinct hyperparameter setting is a trial) at the top of the mapping; "
                f"{_columns_hint(header)})"
            )
        for d, c in reps.items():
            if c != REPEATED_ROWS and c not in header:
                raise DataFormatError(
                    f"{path}: no column {c!r} for the repeat axis {d} (name one in [repeats] "
                    f'{d} = "...", or {d} = "{REPEATED_ROWS}" to number the repeated rows of a '
                    f"setting; {_columns_hint(header)})"
                )
        hp_cols = _hp_columns(path, header, facts, mapped, col, reps, escaped)
        if trial_mode == "setting" and not hp_cols:
            raise ConfigError(
                f'{mapped.source}: trial = "setting" needs hyperparameter columns (give '
                '[hparams] prefix = "..." or columns = {name = "column"})'
            )
        return cls(col, reps, trial_mode, hp_cols, escaped)

    def plan(self, header: Sequence[str], mapped: TableMapping) -> ColumnPlan:
        """What to read of each column: labels and keys in memory, values spilled."""
        col = self.col
        value_cols = [col[k] for k in _VALUE_COLS if col[k] in header]
        in_ram_hp = self.trial_mode == "setting"
        return ColumnPlan(
            labels=[
                *(col[k] for k in ("workload", "optimizer") if k not in mapped.values),
                *([col["trial"]] if self.trial_mode == "column" else []),
                col["status"],
            ],
            ints=[*(c for c in self.reps.values() if c != REPEATED_ROWS), col["step"]],
            nullable_ints=[col["step"]],
            floats=list(self.hp_cols.values()) if in_ram_hp else [],
            spill_floats=[*value_cols, *([] if in_ram_hp else self.hp_cols.values())],
            spill_ints=[col["trial_seed"]],
            finite=list(self.hp_cols.values()),
            flag=value_cols,
        )


def _hp_columns(
    path: Path,
    header: Sequence[str],
    facts: Mapping[str, Any] | None,
    mapped: TableMapping,
    col: Mapping[str, str],
    reps: Mapping[str, str],
    escaped: bool,
) -> dict[str, str]:
    """Hyperparameter -> its column: the sidecar's hparams, the mapping's columns, or the
    columns with the mapping's prefix (other than those of keys and repeats)."""
    if facts is not None:
        hp_all = [str(h) for h in facts["hparams"]]
        named = {h: HP_PREFIX + (escape_text(h) if escaped else h) for h in hp_all}
        return {h: c for h, c in named.items() if c in header}
    if mapped.hp_columns:
        hp_cols = dict(mapped.hp_columns)
        for h, c in hp_cols.items():
            if c not in header:
                raise DataFormatError(
                    f"{path}: no column {c!r} for hyperparameter {h} (hparams.columns in "
                    f"{mapped.source}; {_columns_hint(header)})"
                )
        return hp_cols
    used = set(col.values()) | set(mapped.values) | {c for c in reps.values() if c in header}
    prefix = mapped.hp_prefix
    return {
        c[len(prefix) :]: c
        for c in header
        if c.startswith(prefix) and c not in used and len(c) > len(prefix)
    }


def _rank_in_groups(keys: Sequence[npt.NDArray[Any]]) -> npt.NDArray[np.int64]:
    """Per row, how many earlier rows (in file order) share its keys."""
    frame = pd.DataFrame({f"k{i}": k for i, k in enumerate(keys)})
    return np.asarray(frame.groupby(list(frame.columns), sort=False).cumcount(), dtype=np.int64)


def _row_labels(
    cols: TableColumns, key: str, *, mapped: TableMapping, layout: _TableLayout
) -> tuple[npt.NDArray[np.int32], list[str]]:
    """Per row, the code of its workload or optimizer label (`key`), and the sorted
    labels: one label for all rows from the mapping's [values], else the column's."""
    n = cols.n_rows
    if key in mapped.values:
        return np.zeros(n, dtype=np.int32), [mapped.values[key]]
    codes, names = cols.labels.pop(layout.col[key])
    if layout.escaped:
        # Unescaped labels sort differently from their cells: renumber the codes.
        plain = [unescape_text(s) for s in names]
        order = sorted(range(len(plain)), key=plain.__getitem__)
        rank = np.empty(len(plain), dtype=np.int32)
        rank[order] = np.arange(len(plain), dtype=np.int32)
        codes, names = rank[codes], [plain[i] for i in order]
    return codes, names


def _row_trials(
    cols: TableColumns,
    wo: npt.NDArray[np.int64],
    layout: _TableLayout,
    caveats: list[str],
) -> npt.NDArray[np.int64]:
    """Per row, its trial id: the trial column's (integers, else ranks of the ids), the
    row's rank in its (workload, optimizer), or its distinct hyperparameter setting's."""
    if layout.trial_mode == "column":
        t_codes, t_names = cols.labels.pop(layout.col["trial"])
        ids = [_int_label(s) for s in t_names]
        if all(i is not None for i in ids):
            return np.array(ids, dtype=np.int64)[t_codes]
        caveats.append(
            f"trial ids of column {layout.col['trial']!r} are not integers; trials are "
            "numbered 0.. in the sorted order of the ids"
        )
        return t_codes.astype(np.int64)
    if layout.trial_mode == "row":
        caveats.append(
            "each row is a trial: trials are numbered 0.. per (workload, optimizer) in the "
            "table's row order"
        )
        return _rank_in_groups([wo])
    hp_keys = [np.nan_to_num(cols.floats[c], nan=np.inf) for c in layout.hp_cols.values()]
    frame = pd.DataFrame({f"h{i}": k for i, k in enumerate([wo, *hp_keys])})
    group = np.asarray(frame.groupby(list(frame.columns), sort=True).ngroup(), dtype=np.int64)
    del frame, hp_keys
    first = pd.Series(group).groupby(wo).transform("min").to_numpy()
    caveats.append(
        "trials are the distinct hyperparameter settings, numbered 0.. per (workload, "
        "optimizer) in sorted order of " + ", ".join(layout.hp_cols)
    )
    trial: npt.NDArray[np.int64] = group - first
    return trial


def _row_repeats(
    cols: TableColumns,
    reps: Mapping[str, str],
    keys: list[npt.NDArray[Any]],
    caveats: list[str],
) -> dict[str, npt.NDArray[np.int64]]:
    """Per repeat axis (in REPEAT_DIMS order), each row's repeat value: its column's, or
    the row's rank among the rows with the same `keys` (run, and step where given)."""
    values: dict[str, npt.NDArray[np.int64]] = {}
    for d in (d for d in REPEAT_DIMS if d in reps):
        if reps[d] == REPEATED_ROWS:
            values[d] = _rank_in_groups(keys)
            caveats.append(
                f"{d}: the repeated rows of a setting"
                + (" at one step" if len(keys) > 2 else "")
                + f" are its {d}s 0, 1, ... in the table's row order"
            )
        else:
            values[d] = cols.ints.pop(reps[d])
    return values


class _Runs:
    """The archive's cells (workload x optimizer x trial x repeats) of a table's rows, and
    the runs found bad: `mark` records, per cell, the first bad row and why."""

    def __init__(
        self,
        cell: npt.NDArray[np.int64],
        path: Path,
        workloads: Sequence[str],
        optimizers: Sequence[str],
        trials: npt.NDArray[np.int64],
        repeats: Mapping[str, npt.NDArray[np.int64]],
    ) -> None:
        self.cell: npt.NDArray[np.int64] | None = cell  # row -> cell; released before the fill
        self.path = path
        self.workloads, self.optimizers, self.trials = workloads, optimizers, trials
        self.repeats = repeats
        self.shape = (len(workloads), len(optimizers), len(trials), *map(len, repeats.values()))
        self.n_rep = int(np.prod([len(v) for v in repeats.values()], dtype=np.int64))
        self.n_cells = int(np.prod(self.shape, dtype=np.int64))
        self.bad: dict[int, tuple[int, str]] = {}

    def where(self, c: int) -> str:
        ix = [int(i) for i in np.unravel_index(c, self.shape)]
        text = (
            f"{self.path}: run {self.workloads[ix[0]]}/{self.optimizers[ix[1]]}/trial "
            f"{int(self.trials[ix[2]])}"
        )
        return text + "".join(
            f"/{d} {int(values[ix[3 + i]])}" for i, (d, values) in enumerate(self.repeats.items())
        )

    def mark(
        self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.int64], problem: Callable[[int], str]
    ) -> None:
        """Cells of `rows` (mask or indices) are bad; `problem(row)` says why."""
        assert self.cell is not None
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows
        if not len(idx):
            return
        cells, first = np.unique(self.cell[idx], return_index=True)
        for c, i in zip(cells.tolist(), first.tolist(), strict=True):
            row = int(idx[i])
            if c not in self.bad or self.bad[c][0] > row:
                self.bad[c] = (row, problem(row))

    def bad_cells(self, *, skip_bad: bool) -> tuple[npt.NDArray[np.bool_], list[str]]:
        """The bad cells and one warning each (in row order); without `skip_bad`, the
        first bad run raises DataFormatError."""
        ordered = sorted(self.bad.items(), key=lambda item: item[1][0])
        if ordered and not skip_bad:
            c, (_, problem) = ordered[0]
            raise DataFormatError(f"{self.where(c)}: {problem}")
        bad_cells = np.zeros(self.n_cells, dtype=bool)
        warnings: list[str] = []
        for c, (_, problem) in ordered:
            warnings.append(f"{self.where(c)}: {problem}")
            bad_cells[c] = True
        return bad_cells, warnings


def _row_cells(
    cols: TableColumns,
    *,
    path: Path,
    mapped: TableMapping,
    layout: _TableLayout,
    caveats: list[str],
) -> tuple[_Runs, npt.NDArray[np.int64] | None, npt.NDArray[np.bool_]]:
    """The runs of the table's rows: each row's cell (workload x optimizer x trial x
    repeats, built in place, each key released once used); the step column (None without
    one) and where it is empty."""
    n = cols.n_rows
    col = layout.col
    w_code, workload_names = _row_labels(cols, "workload", mapped=mapped, layout=layout)
    o_code, optimizer_names = _row_labels(cols, "optimizer", mapped=mapped, layout=layout)
    wo = w_code.astype(np.int64) * len(optimizer_names) + o_code
    del w_code, o_code
    trial = _row_trials(cols, wo, layout, caveats)
    step: npt.NDArray[np.int64] | None = None
    no_step = np.zeros(n, dtype=bool)
    if col["step"] in cols.ints:
        step = cols.ints.pop(col["step"])
        no_step = cols.int_null.pop(col["step"])
        step[no_step] = -1
    rep_values = _row_repeats(
        cols, layout.reps, [wo, trial, *([step] if step is not None else [])], caveats
    )
    trials_u, t_ix = np.unique(trial, return_inverse=True)
    del trial
    cell = wo * len(trials_u) + t_ix.reshape(-1)
    del t_ix, wo
    rep_u: dict[str, npt.NDArray[np.int64]] = {}
    for d in list(rep_values):
        values_u, r_ix = np.unique(rep_values.pop(d), return_inverse=True)
        rep_u[d] = values_u
        cell = cell * len(values_u) + r_ix.reshape(-1)
        del r_ix
    return _Runs(cell, path, workload_names, optimizer_names, trials_u, rep_u), step, no_step


def _check_steps(
    runs: _Runs,
    step: npt.NDArray[np.int64],
    no_step: npt.NDArray[np.bool_],
    rows_per_cell: npt.NDArray[np.int64],
) -> None:
    """Negative steps, and an empty step among a run's evaluations, make a run bad."""
    assert runs.cell is not None
    runs.mark((step < 0) & ~no_step, lambda r: f"negative step {int(step[r])} (row {r + 2})")
    runs.mark(
        no_step & (rows_per_cell[runs.cell] > 1),
        lambda r: f"a row with an empty step among evaluations (row {r + 2})",
    )


def _budget_steps(
    runs: _Runs,
    rows_per_cell: npt.NDArray[np.int64],
    *,
    facts: Mapping[str, Any] | None,
    mapped: TableMapping,
    repeats_given: bool,
) -> npt.NDArray[np.int64]:
    """A table without a step column: each run is one row (more make it bad), evaluated
    at its workload's step budget."""
    cell = runs.cell
    assert cell is not None
    hint = "" if repeats_given else ", or a repeat axis in [repeats]"
    runs.mark(
        rows_per_cell[cell] > 1,
        lambda r: (
            f"{int(rows_per_cell[cell[r]])} rows but no "
            f'step column to order them (name one in [columns] step = "..."{hint})'
        ),
    )
    budgets = np.array(
        [
            _workload_info(w, mapped.facts(w), source=mapped.source).step_budget
            if facts is None
            else int(facts["workloads"][w]["step_budget"])
            for w in runs.workloads
        ],
        dtype=np.int64,
    )
    if (budgets < 0).any():
        w = runs.workloads[int(np.argmax(budgets < 0))]
        raise ConfigError(
            f"{mapped.source}: the table has no step column; give [columns] step "
            f"or step_budget under [workload] (workload {w!r})"
        )
    return budgets[cell // (runs.n_cells // len(runs.workloads))]


def _eval_index(runs: _Runs, step: npt.NDArray[np.int64], hint: str) -> npt.NDArray[np.int64]:
    """Per row, its evaluation index: the rank of its step within its run; a step twice
    in a run makes the run bad."""
    cell = runs.cell
    assert cell is not None
    n = len(cell)
    dc = np.diff(cell)
    ordered = bool(((dc > 0) | ((dc == 0) & (np.diff(step) > 0))).all())
    del dc
    order = None if ordered else np.lexsort((step, cell))
    sorted_cell = cell if order is None else cell[order]
    sorted_step = step if order is None else step[order]
    same = (sorted_cell[1:] == sorted_cell[:-1]) & (sorted_step[1:] == sorted_step[:-1])
    if same.any():
        pos = np.flatnonzero(same)
        first_rows = pos if order is None else order[pos]
        second_rows = pos + 1 if order is None else order[pos + 1]
        pairs = dict(zip(second_rows.tolist(), first_rows.tolist(), strict=True))
        runs.mark(
            second_rows,
            lambda r: (
                f"step {int(step[r])} appears twice (rows {pairs[r] + 2} and {r + 2}: "
                f"duplicated (trial, step) key){hint}"
            ),
        )
    del same
    starts = np.flatnonzero(np.r_[True, sorted_cell[1:] != sorted_cell[:-1]])
    lengths = np.diff(np.r_[starts, n])
    rank = np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)
    del starts, lengths, sorted_step, sorted_cell
    if order is None:
        return rank
    eval_ix = np.empty(n, dtype=np.int64)
    eval_ix[order] = rank
    return eval_ix


_STATUS_IX = {s.value: i for i, s in enumerate(Status)}


def _run_status(
    cols: TableColumns,
    runs: _Runs,
    present: npt.NDArray[np.bool_],
    *,
    mapped: TableMapping,
    column: str,
) -> npt.NDArray[np.int8]:
    """Per cell, the index (in Status) of its run's status: the status column's, mapped
    through [status_map] and one value per run; else completed, or diverged where a
    value is not finite."""
    cell = runs.cell
    assert cell is not None
    valid_status = {s.value for s in Status} - {Status.MISSING.value}
    cell_status = np.full(runs.n_cells, _STATUS_IX[Status.MISSING.value], dtype=np.int8)
    if column in cols.labels:
        codes, labels = cols.labels.pop(column)
        mapped_labels = [mapped.status_map.get(s, s) for s in labels]
        unknown = np.array([s not in valid_status for s in mapped_labels] + [False])
        runs.mark(
            unknown[codes],
            lambda r: (
                f"status {labels[codes[r]]!r} is not one of {sorted(valid_status)} "
                "(map it with [status_map] in the mapping)"
            ),
        )
        per_cell = np.full(runs.n_cells, -1, dtype=np.int32)
        per_cell[cell] = codes
        runs.mark(
            codes != per_cell[cell],
            lambda r: (
                "status differs between its rows "
                f"({sorted({labels[codes[i]] for i in np.flatnonzero(cell == cell[r])})})"
            ),
        )
        lookup = np.array(
            [_STATUS_IX.get(s, _STATUS_IX[Status.MISSING.value]) for s in mapped_labels],
            dtype=np.int8,
        )
        cell_status[present] = lookup[per_cell[present]]
    else:
        cell_status[present] = _STATUS_IX[Status.COMPLETED.value]
        diverged = np.unique(cell[cols.nonfinite])
        cell_status[diverged] = _STATUS_IX[Status.DIVERGED.value]
    cols.nonfinite = np.zeros(0, dtype=bool)
    return cell_status


def _run_values(
    cols: TableColumns,
    runs: _Runs,
    present: npt.NDArray[np.bool_],
    layout: _TableLayout,
) -> tuple[npt.NDArray[np.int64], FloatArray, list[str]]:
    """Per cell its seed, per trial its hyperparameters (and their sorted names), each
    checked to be one value per run (rows that disagree make their run bad)."""
    cell = runs.cell
    assert cell is not None
    seed_col = layout.col["trial_seed"]

    def chunks(name: str) -> Iterator[tuple[int, npt.NDArray[Any]]]:
        if name in cols.floats:
            yield 0, cols.floats[name]
        else:
            yield from cols.chunks(name)

    def differs(name: str, row: int) -> str:
        what = "trial_seed" if name == seed_col else f"hyperparameter column {name!r}"
        return f"{what} differs between the rows of its trial (row {row + 2})"

    def per_run(name: str, target: npt.NDArray[Any], index: npt.NDArray[np.int64]) -> None:
        """target[index[row]] = value; rows disagreeing with their run's value are bad."""
        for start, values in chunks(name):
            target[index[start : start + len(values)]] = values
        for start, values in chunks(name):
            got = target[index[start : start + len(values)]]
            same = got == values
            if got.dtype.kind == "f":
                same |= np.isnan(got) & np.isnan(values)
            differ = ~same
            if differ.any():
                rows = start + np.flatnonzero(differ)
                runs.mark(rows, functools.partial(differs, name))

    cell_seed = np.full(runs.n_cells, -1, dtype=np.int64)
    if cols.spilled(seed_col):
        per_run(seed_col, cell_seed, cell)
        cell_seed[~present] = -1
    hp_names = sorted(layout.hp_cols)
    n_trials = runs.n_cells // runs.n_rep
    hparams = np.full((n_trials, len(hp_names)), np.nan)
    wot = cell // runs.n_rep
    for h, name in enumerate(hp_names):
        target = np.full(n_trials, np.nan)
        per_run(layout.hp_cols[name], target, wot)
        hparams[:, h] = target
    return cell_seed, hparams, hp_names


def _scatter_curves(
    cols: TableColumns,
    flat: npt.NDArray[np.int64],
    col: Mapping[str, str],
    shape: tuple[int, ...],
) -> dict[str, FloatArray]:
    """Each value column scattered, chunk by chunk, to its rows' flat curve index (-1:
    not stored); arrays of `shape` (cells x evaluations), NaN where no row."""
    size = int(np.prod(shape, dtype=np.int64))
    curves: dict[str, FloatArray] = {}
    for key in _VALUE_COLS:
        arr = np.full(size, np.nan)
        if cols.spilled(col[key]):
            for start, values in cols.chunks(col[key]):
                f = flat[start : start + len(values)]
                keep = f >= 0
                arr[f[keep]] = values[keep]
        curves[key] = arr.reshape(shape)
    return curves


def _table_facts(
    facts: Mapping[str, Any] | None,
    mapped: TableMapping,
    side: Path,
    workload_names: Sequence[str],
    optimizer_names: Sequence[str],
    hp_names: Sequence[str],
) -> tuple[list[WorkloadInfo], list[str], dict[tuple[str, str], SpaceRecord], Taxonomy]:
    """Workload facts, optimizer families, search spaces and taxonomy: from the sidecar
    of an optcmp export, else from the mapping (the default taxonomy)."""
    spaces: dict[tuple[str, str], SpaceRecord] = {}
    if facts is None:
        space = _mapped_space(mapped.space, hp_names, source=mapped.source)
        workload_infos = [
            _workload_info(name, mapped.facts(name), source=mapped.source)
            for name in workload_names
        ]
        families = [mapped.families.get(name, "") for name in optimizer_names]
        if space is not None:
            for w in workload_names:
                for o in optimizer_names:
                    spaces[(w, o)] = space
        return workload_infos, families, spaces, default_taxonomy()
    workload_infos = []
    for name in workload_names:
        if name not in facts["workloads"]:
            raise DataFormatError(f"{side}: workload {name!r} of the table has no facts")
        entry = dict(facts["workloads"][name])
        entry["direction"] = entry.get("direction")
        workload_infos.append(_workload_info(name, entry, source=str(side)))
    families = [str(facts["optimizers"].get(name, "")) for name in optimizer_names]
    for sp in facts["spaces"]:
        spaces[(sp["workload"], sp["optimizer"])] = SpaceRecord(
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
        )
    return (
        workload_infos,
        families,
        spaces,
        Taxonomy.from_mapping(facts["taxonomy"], source=str(side)),
    )


def _kept_hparams(
    hp_arr: FloatArray, hp_names: list[str], spaces: Mapping[tuple[str, str], SpaceRecord]
) -> tuple[FloatArray, list[str]]:
    """The hyperparameters some kept run has or some space names (as the builder keeps)."""
    in_space = {d.name for s in spaces.values() for d in s.dims}
    keep_h = [
        h
        for h, name in enumerate(hp_names)
        if name in in_space or not np.isnan(hp_arr[..., h]).all()
    ]
    if len(keep_h) == len(hp_names):
        return hp_arr, hp_names
    return hp_arr[..., keep_h], [hp_names[h] for h in keep_h]


def _drop_skipped(
    ds: xr.Dataset, kept: npt.NDArray[np.bool_], repeat_dims: tuple[str, ...]
) -> xr.Dataset:
    """Skipped runs leave no trace: trials and repeats that kept no run are dropped."""
    ds = ds.isel(trial=kept.any(axis=tuple(i for i in range(kept.ndim) if i != 2)))
    for i, d in enumerate(repeat_dims):
        axes = tuple(j for j in range(kept.ndim) if j != 3 + i)
        ds = ds.isel({d: kept.any(axis=axes)})
    return ds


def _import_columns(
    cols: TableColumns,
    *,
    path: Path,
    side: Path,
    facts: Mapping[str, Any] | None,
    mapped: TableMapping,
    layout: _TableLayout,
    skip_bad: bool,
    command: str | None,
) -> ImportResult:
    """The archive from a table's columns, in phases: row keys (labels, trials, steps,
    repeats) -> the row's cell; checks that mark bad runs; per-run status, seed and
    hyperparameters; the curves scattered in place; the facts; the archive."""
    if cols.n_rows == 0:
        raise DataFormatError(f"{path}: no rows")
    caveats: list[str] = []
    runs, step, no_step, eval_ix, present = _row_keys(
        cols, path=path, facts=facts, mapped=mapped, layout=layout, caveats=caveats
    )
    fields = _run_fields(
        cols, runs, present, path=path, mapped=mapped, layout=layout, skip_bad=skip_bad
    )

    # Fill the curves: one flat index per row, then each column scattered in chunks.
    flat = runs.cell  # the cell index becomes the flat curve index, in place
    assert flat is not None
    runs.cell = None
    row_ok = fields.good[flat] & ~no_step
    n_eval = int(eval_ix[row_ok].max()) + 1 if row_ok.any() else 0
    flat *= n_eval
    flat += eval_ix
    flat[~row_ok] = -1
    del eval_ix, row_ok, no_step
    release_memory()
    step_arr = np.full(runs.n_cells * n_eval, -1, dtype=np.int64)
    ok = flat >= 0
    step_arr[flat[ok]] = step[ok]
    del step, ok
    curves = _scatter_curves(cols, flat, layout.col, (*runs.shape, n_eval))
    del flat

    ds = _assemble(
        runs,
        fields,
        curves,
        step_arr.reshape((*runs.shape, n_eval)),
        path=path,
        side=side,
        facts=facts,
        mapped=mapped,
        command=command,
        caveats=caveats,
    )
    del curves, step_arr
    if fields.bad.any():
        ds = _drop_skipped(ds, fields.good.reshape(runs.shape), tuple(runs.repeats))
    if facts is not None:
        ds = _restore(ds, facts, side)
    else:
        ds.attrs["importer"] = "table"
    return ImportResult(dataset=ds, warnings=tuple(fields.warnings), files_read=1)


def _row_keys(
    cols: TableColumns,
    *,
    path: Path,
    facts: Mapping[str, Any] | None,
    mapped: TableMapping,
    layout: _TableLayout,
    caveats: list[str],
) -> tuple[
    _Runs,
    npt.NDArray[np.int64],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int64],
    npt.NDArray[np.bool_],
]:
    """The row keys: the runs (each row's cell in `runs.cell`), each row's step (the step
    column's, checked, else from the budget) and where it is empty, each row's evaluation
    index, and which cells have rows."""
    runs, step, no_step = _row_cells(cols, path=path, mapped=mapped, layout=layout, caveats=caveats)
    assert runs.cell is not None
    rows_per_cell = np.bincount(runs.cell, minlength=runs.n_cells)
    if step is not None:
        _check_steps(runs, step, no_step, rows_per_cell)
    else:
        step = _budget_steps(
            runs, rows_per_cell, facts=facts, mapped=mapped, repeats_given=bool(layout.reps)
        )
    hint = (
        f'; a setting run more than once? name its seed column in [repeats] seed = "..." '
        f'or give [repeats] seed = "{REPEATED_ROWS}"'
        if facts is None
        else ""
    )
    eval_ix = _eval_index(runs, step, hint)
    return runs, step, no_step, eval_ix, rows_per_cell > 0


@attrs.frozen
class _RunFields:
    """Per cell (flat, in `_Runs.shape` order): the status index (in Status), the seed,
    the bad and the good (present and not bad) cells, and the warnings of bad runs; per
    run without the repeats, the hyperparameters (columns `hp_names`)."""

    status: npt.NDArray[np.int8]
    seed: npt.NDArray[np.int64]
    hparams: FloatArray
    hp_names: list[str]
    bad: npt.NDArray[np.bool_]
    good: npt.NDArray[np.bool_]
    warnings: list[str]


def _run_fields(
    cols: TableColumns,
    runs: _Runs,
    present: npt.NDArray[np.bool_],
    *,
    path: Path,
    mapped: TableMapping,
    layout: _TableLayout,
    skip_bad: bool,
) -> _RunFields:
    """Each run's status, seed and hyperparameters; a skipped (bad) run is marked missing,
    its seed -1 and its hyperparameters NaN. DataFormatError when no run is left."""
    cell_status = _run_status(cols, runs, present, mapped=mapped, column=layout.col["status"])
    cell_seed, hparams, hp_names = _run_values(cols, runs, present, layout)
    bad_cells, warnings = runs.bad_cells(skip_bad=skip_bad)
    good_cells = present & ~bad_cells
    if not good_cells.any():
        raise DataFormatError(f"{path}: no run could be imported")
    cell_status[~good_cells] = _STATUS_IX[Status.MISSING.value]
    cell_seed[~good_cells] = -1
    hparams[~good_cells.reshape(-1, runs.n_rep).any(axis=1)] = np.nan
    return _RunFields(cell_status, cell_seed, hparams, hp_names, bad_cells, good_cells, warnings)


def _assemble(
    runs: _Runs,
    fields: _RunFields,
    curves: Mapping[str, FloatArray],
    step: npt.NDArray[np.int64],
    *,
    path: Path,
    side: Path,
    facts: Mapping[str, Any] | None,
    mapped: TableMapping,
    command: str | None,
    caveats: list[str],
) -> xr.Dataset:
    """The archive of the runs: their facts (the sidecar's, else the mapping's), the kept
    hyperparameters, the curves and `step` (shaped as the runs with an eval axis)."""
    workload_infos, families, spaces, taxonomy = _table_facts(
        facts, mapped, side, runs.workloads, runs.optimizers, fields.hp_names
    )
    hp_arr, hp_names = _kept_hparams(
        fields.hparams.reshape((*runs.shape[:3], len(fields.hp_names))), fields.hp_names, spaces
    )
    source = f"table {path}" + (
        f" (exported from: {facts['attrs'].get('source', '')})" if facts else ""
    )
    status_labels = np.array([s.value for s in Status])
    return assemble_archive(
        workloads=workload_infos,
        optimizers=list(runs.optimizers),
        families=families,
        trials=runs.trials,
        repeats=runs.repeats,
        hparam_names=hp_names,
        curves=curves,
        step=step,
        status=status_labels[fields.status].reshape(runs.shape),
        seed=fields.seed.reshape(runs.shape),
        hparams=hp_arr,
        spaces=spaces,
        taxonomy=taxonomy,
        attrs=provenance_attrs(source=source, command=command),
        caveats=caveats,
    )


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
