"""A table's columns read chunk by chunk into what the table importer needs, in little
memory: label columns as codes, integer keys as int64, and the per-evaluation values spilled
to a temporary file (read back chunk by chunk while the archive is filled), so that a
table's columns and the archive built from them are never both in memory.

Dependency rule: numpy, pandas and the standard library; pyarrow only for Parquet.

Value rules (docs/importers.md, "Values a table cannot hold"): every cell is either stored
as it is or refused in one line naming the file, row and column:
- numbers: an empty cell (CSV) or null (Parquet) is a missing value; `nan`, `inf`, `-inf`
  written out in CSV are the same as NaN and inf floats in Parquet; a value beyond the
  float range (1e400) reads as inf; integers beyond 2**53 are refused (not exact as floats);
- labels: control characters (NUL, ESC, ...) are refused, as is a NUL byte anywhere in a
  CSV file (the CSV parser would cut the cell there);
- Parquet timestamp, date, time, duration, binary and decimal columns are refused, not
  reinterpreted (a timestamp's unit or a decimal's rounding would be a guess).
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import gc
import sys
import tempfile
import unicodedata
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from optcmp_data._errors import DataFormatError

__all__ = [
    "CHUNK_ROWS",
    "ColumnPlan",
    "TableColumns",
    "control_char",
    "read_columns",
    "release_memory",
]

CHUNK_ROWS = 100_000
_EXACT = 2**53
_NAN_TEXT = frozenset({"nan", "+nan", "-nan"})


def control_char(text: str) -> str | None:
    """The first control character of `text` (Unicode category Cc), if any."""
    for ch in text:
        if unicodedata.category(ch) == "Cc":
            return ch
    return None


class ColumnPlan:
    """Which columns to read and how: labels (codes), ints (keys, int64 in memory), floats
    kept in memory, floats and ints spilled to disk; `finite` columns must hold finite
    numbers (hyperparameters); `flag` columns mark a row non-finite where they hold NaN
    or inf written out (not an empty cell)."""

    def __init__(
        self,
        *,
        labels: Sequence[str] = (),
        ints: Sequence[str] = (),
        nullable_ints: Sequence[str] = (),
        floats: Sequence[str] = (),
        spill_floats: Sequence[str] = (),
        spill_ints: Sequence[str] = (),
        finite: Sequence[str] = (),
        flag: Sequence[str] = (),
    ) -> None:
        self.labels = list(dict.fromkeys(labels))
        self.ints = list(dict.fromkeys(ints))
        self.nullable_ints = set(nullable_ints)
        self.floats = list(dict.fromkeys(floats))
        self.spill_floats = list(dict.fromkeys(spill_floats))
        self.spill_ints = list(dict.fromkeys(spill_ints))
        self.finite = set(finite)
        self.flag = set(flag)

    @property
    def used(self) -> list[str]:
        return list(
            dict.fromkeys(
                [*self.labels, *self.ints, *self.floats, *self.spill_floats, *self.spill_ints]
            )
        )


class _Spill:
    """Columns written chunk by chunk to one temporary file, read back in chunks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, Path] = {}
        self.dtypes: dict[str, np.dtype[Any]] = {}

    def append(self, name: str, values: npt.NDArray[Any]) -> None:
        path = self.files.get(name)
        if path is None:
            path = self.files[name] = self.folder / f"c{len(self.files)}.bin"
            self.dtypes[name] = values.dtype
        try:
            with path.open("ab") as handle:
                handle.write(np.ascontiguousarray(values).tobytes())
        except OSError as err:
            raise DataFormatError(
                f"{self.folder}: the import's temporary copy of the values could not be "
                f"written ({err.strerror or err}); free space there or set TMPDIR"
            ) from None

    def chunks(self, name: str, n_rows: int) -> Iterator[tuple[int, npt.NDArray[Any]]]:
        """(first row, values) per chunk of CHUNK_ROWS rows."""
        dtype = self.dtypes[name]
        with self.files[name].open("rb") as handle:
            for start in range(0, n_rows, CHUNK_ROWS):
                count = min(CHUNK_ROWS, n_rows - start)
                yield start, np.fromfile(handle, dtype=dtype, count=count)


class TableColumns:
    """The columns of one table (see the module docstring); `close()` removes the spill."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self.n_rows = 0
        self.labels: dict[str, tuple[npt.NDArray[np.int32], list[str]]] = {}
        self.ints: dict[str, npt.NDArray[np.int64]] = {}
        self.int_null: dict[str, npt.NDArray[np.bool_]] = {}
        self.floats: dict[str, npt.NDArray[np.float64]] = {}
        self.nonfinite: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        try:
            self._tmp = tempfile.TemporaryDirectory(prefix="optcmp-table-")
        except OSError as err:
            raise DataFormatError(
                f"{path}: no temporary folder for the import ({err.strerror or err}); set TMPDIR"
            ) from None
        self.spill = _Spill(Path(self._tmp.name))

    def close(self) -> None:
        self._tmp.cleanup()

    def spilled(self, name: str) -> bool:
        return name in self.spill.files

    def chunks(self, name: str) -> Iterator[tuple[int, npt.NDArray[Any]]]:
        return self.spill.chunks(name, self.n_rows)


def _fail(path: Path, row: int, column: str, problem: str) -> DataFormatError:
    return DataFormatError(f"{path}: row {row + 2}: column {column!r} {problem}")


def _null_mask(series: Any) -> npt.NDArray[np.bool_]:
    return np.asarray(series.isna().to_numpy(), dtype=bool)


def _as_float(
    series: Any, null: npt.NDArray[np.bool_], column: str, path: Path, offset: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Floats of one chunk and where they are NaN or inf written out (not empty)."""
    kind = series.dtype.kind
    if kind in "iu":
        ints = series.to_numpy()
        big = np.abs(ints.astype(np.float64)) > _EXACT
        if big.any():
            row = int(np.argmax(big))
            raise _fail(
                path, offset + row, column, f"holds {ints[row]}, beyond 2**53 (inexact as a float)"
            )
        values = ints.astype(np.float64)
    elif kind in "fb" or str(series.dtype) in ("Int64", "Float64", "boolean"):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = np.asarray(pd.to_numeric(series, errors="coerce"), dtype=np.float64)
        nan = np.isnan(values) & ~null
        if nan.any():
            text = series.to_numpy(dtype=object)
            for at in np.flatnonzero(nan).tolist():
                if str(text[at]).strip().lower() not in _NAN_TEXT:
                    raise _fail(path, offset + at, column, f"holds {str(text[at])!r}, not a number")
    values = np.where(null, np.nan, values)
    return values, ~np.isfinite(values) & ~null


def _as_int(
    series: Any,
    null: npt.NDArray[np.bool_],
    column: str,
    path: Path,
    offset: int,
    *,
    nullable: bool,
) -> npt.NDArray[np.int64]:
    if series.dtype.kind in "iu":
        ints = series.to_numpy()
        if series.dtype.kind == "u" and (ints > np.iinfo(np.int64).max).any():
            row = int(np.argmax(ints > np.iinfo(np.int64).max))
            raise _fail(path, offset + row, column, f"holds {ints[row]}, too large")
        return np.asarray(ints, dtype=np.int64)
    values, _ = _as_float(series, null, column, path, offset)
    filled = np.where(null, 0.0, values) if nullable else values
    bad = ~np.isfinite(filled) | (filled != np.round(filled)) | (np.abs(filled) > _EXACT)
    if bad.any():
        row = int(np.argmax(bad))
        text = "" if null[row] else str(series.to_numpy(dtype=object)[row])
        raise _fail(path, offset + row, column, f"holds {text!r}, not an integer")
    return filled.astype(np.int64)


def _grow(arr: npt.NDArray[Any], need: int) -> npt.NDArray[Any]:
    if need <= len(arr):
        return arr
    out = np.empty(max(need, 2 * len(arr)), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _csv_nul(path: Path, header: Sequence[str]) -> int:
    """Refuse a NUL byte anywhere in a CSV file (the parser would cut its cell there).
    Returns the number of lines after the header (a bound on the rows, to size arrays)."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            at = block.find(b"\x00")
            if at >= 0:
                row = lines + block.count(b"\n", 0, at)
                start = block.rfind(b"\n", 0, at) + 1
                end = block.find(b"\n", at)
                line = block[start : end if end >= 0 else len(block)]
                fields = next(csv.reader([line.decode("utf-8", "replace")]), [])
                index = next((i for i, f in enumerate(fields) if "\x00" in f), None)
                column = header[index] if index is not None and index < len(header) else "?"
                raise DataFormatError(
                    f"{path}: row {row + 1}: column {column!r} holds a NUL byte; labels and "
                    "values cannot hold control characters"
                )
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines + (last != b"\n") - 1, 0)


def _csv_chunks(path: Path, plan: ColumnPlan, header: list[str]) -> Generator[Any]:
    used = [c for c in plan.used if c in header]
    if not used:
        return
    with pd.read_csv(
        path,
        usecols=used,
        dtype={c: str for c in plan.labels if c in header},
        keep_default_na=False,
        na_values=[""],
        chunksize=CHUNK_ROWS,
    ) as reader:
        for chunk in reader:
            yield chunk, {}


_REFUSED = {
    "timestamp": "its unit would be a guess",
    "date": "its unit would be a guess",
    "time": "its unit would be a guess",
    "duration": "its unit would be a guess",
    "binary": "bytes are not text; store labels as strings",
    "decimal": "converting decimals to floats would round them",
}


def parquet_type_problem(arrow_type: Any) -> str | None:
    import pyarrow as pa

    checks = {
        "timestamp": pa.types.is_timestamp,
        "date": pa.types.is_date,
        "time": pa.types.is_time,
        "duration": pa.types.is_duration,
        "binary": lambda t: (
            pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
        ),
        "decimal": pa.types.is_decimal,
    }
    for name, check in checks.items():
        if check(arrow_type):
            return f"is a Parquet {arrow_type} column: refused ({_REFUSED[name]})"
    if pa.types.is_nested(arrow_type):
        return f"is a Parquet {arrow_type} column: refused (nested values)"
    return None


def _parquet_chunks(
    path: Path, plan: ColumnPlan, header: list[str], parquet: Any
) -> Generator[Any]:
    used = [c for c in plan.used if c in header]
    schema = parquet.schema_arrow
    for c in used:
        problem = parquet_type_problem(schema.field(c).type)
        if problem:
            raise DataFormatError(f"{path}: column {c!r} {problem}")
    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=used):
        # Nulls from Arrow's validity: to_pandas makes a float null NaN, but NaN written
        # as a value is data (a diverged run), not an empty cell.
        nulls = {
            name: np.asarray(batch.column(i).is_null().to_numpy(zero_copy_only=False), dtype=bool)
            for i, name in enumerate(batch.schema.names)
        }
        yield batch.to_pandas(), nulls


def read_columns(path: Path, plan: ColumnPlan) -> TableColumns:
    """The table's columns by `plan` (columns the table lacks are skipped; the caller asks
    for them). DataFormatError naming the file, row and column for a refused cell."""
    cols = _read_columns(path, plan)
    # Only once the reader, its file and its chunks are gone can their memory go back.
    release_memory()
    return cols


def _read_columns(path: Path, plan: ColumnPlan) -> TableColumns:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except (OSError, ValueError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataFormatError(f"{path}: not a readable Parquet file ({detail})") from None
        header = [str(c) for c in parquet.schema_arrow.names]
        check_unique(path, header)
        chunks = _parquet_chunks(path, plan, header, parquet)
        errors: tuple[type[BaseException], ...] = (OSError, ValueError)
        what = "Parquet file"
        closing: Any = parquet
        capacity = int(parquet.metadata.num_rows)
    else:
        header = csv_header(path)
        check_unique(path, header)
        capacity = _csv_nul(path, header)
        chunks = _csv_chunks(path, plan, header)
        errors = (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError)
        what = "CSV table"
        closing = None
    cols = TableColumns(path, header)
    try:
        try:
            _fill(cols, chunks, plan, capacity)
        finally:
            chunks.close()
            if closing is not None:
                closing.close()
    except DataFormatError:
        cols.close()
        raise
    except errors as err:
        cols.close()
        detail = " ".join(str(err).split()) or type(err).__name__
        raise DataFormatError(f"{path}: not a readable {what} ({detail})") from None
    except BaseException:
        cols.close()
        raise
    return cols


def _fill(cols: TableColumns, chunks: Iterator[Any], plan: ColumnPlan, capacity: int) -> None:
    path = cols.path
    present = set(cols.header)
    tables: dict[str, dict[str, int]] = {c: {} for c in plan.labels if c in present}
    codes: dict[str, npt.NDArray[np.int32]] = {c: np.empty(capacity, np.int32) for c in tables}
    ints = {c: np.empty(capacity, np.int64) for c in plan.ints if c in present}
    int_null = {c: np.empty(capacity, bool) for c in ints if c in plan.nullable_ints}
    floats = {c: np.empty(capacity, np.float64) for c in plan.floats if c in present}
    nonfinite = np.empty(capacity, bool)
    pos = 0
    for chunk, nulls in chunks:
        m = len(chunk)
        end = pos + m
        nonfinite = _grow(nonfinite, end)
        nonfinite[pos:end] = False
        for c, table in tables.items():
            col = chunk[c]
            chunk_codes, uniques = pd.factorize(col, use_na_sentinel=True)
            new = []
            for u in uniques:
                text = str(u)
                if text not in table:
                    bad = control_char(text)
                    if bad is not None:
                        row = int(np.argmax(col.to_numpy(dtype=object) == u))
                        raise _fail(
                            path,
                            pos + row,
                            c,
                            f"holds {text!r} with the control character U+{ord(bad):04X}; "
                            "labels cannot hold control characters",
                        )
                new.append(table.setdefault(text, len(table)))
            mapping = np.array([*new, -1], dtype=np.int32)
            codes[c] = _grow(codes[c], end)
            codes[c][pos:end] = mapping[chunk_codes]
        for c in ints:
            col = chunk[c]
            null = nulls[c] if c in nulls else _null_mask(col)
            if c not in int_null and null.any():
                raise _fail(path, pos + int(np.argmax(null)), c, "is empty")
            ints[c] = _grow(ints[c], end)
            ints[c][pos:end] = _as_int(col, null, c, path, pos, nullable=c in int_null)
            if c in int_null:
                int_null[c] = _grow(int_null[c], end)
                int_null[c][pos:end] = null
        for c in [*plan.floats, *plan.spill_floats]:
            if c not in present:
                continue
            col = chunk[c]
            null = nulls[c] if c in nulls else _null_mask(col)
            values, odd = _as_float(col, null, c, path, pos)
            if c in plan.finite and odd.any():
                row = int(np.argmax(odd))
                raise _fail(
                    path,
                    pos + row,
                    c,
                    f"holds {values[row]}"
                    + (" (or a number beyond the float range)" if np.isinf(values[row]) else "")
                    + "; hyperparameters must be finite numbers (an empty cell is a "
                    "hyperparameter the run does not have)",
                )
            if c in plan.flag:
                nonfinite[pos:end] |= odd
            if c in floats:
                floats[c] = _grow(floats[c], end)
                floats[c][pos:end] = values
            else:
                cols.spill.append(c, values)
        for c in plan.spill_ints:
            if c not in present:
                continue
            col = chunk[c]
            null = nulls[c] if c in nulls else _null_mask(col)
            if null.any():
                raise _fail(path, pos + int(np.argmax(null)), c, "is empty")
            cols.spill.append(c, _as_int(col, null, c, path, pos, nullable=False))
        pos = end
    cols.n_rows = pos
    for c, table in tables.items():
        arr = codes[c][:pos]
        if (arr < 0).any():
            raise _fail(path, int(np.argmax(arr < 0)), c, "is empty")
        names = list(table)
        order = np.argsort(np.array(names, dtype=object), kind="stable")
        rank = np.empty(len(names), dtype=np.int32)
        rank[order] = np.arange(len(names), dtype=np.int32)
        cols.labels[c] = (rank[arr] if len(names) else _trim(arr, pos), [names[i] for i in order])
        del codes[c], arr
    cols.ints = {c: _trim(a, pos) for c, a in ints.items()}
    cols.int_null = {c: _trim(a, pos) for c, a in int_null.items()}
    cols.floats = {c: _trim(a, pos) for c, a in floats.items()}
    cols.nonfinite = _trim(nonfinite, pos)


def _trim(arr: npt.NDArray[Any], n: int) -> npt.NDArray[Any]:
    """The first n values, without keeping a larger buffer alive."""
    return arr if len(arr) == n else arr[:n].copy()


def release_memory() -> None:
    """Hand freed memory back to the system: pyarrow's pool keeps its freed buffers, and
    glibc's heap the chunks of the parser (both would count in the import's peak while the
    archive's arrays are allocated). Best effort: nothing happens where neither applies.
    A garbage collection first: the chunks pandas and pyarrow made hold reference cycles,
    and until they are collected their buffers stay allocated."""
    gc.collect()
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataFormatError(f"{path}: cannot be read ({err})") from None
    if not header:
        raise DataFormatError(f"{path}: empty file, expected a header row")
    return header


def check_unique(path: Path, header: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataFormatError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)


def table_header(path: Path) -> list[str]:
    """The column names of a CSV or Parquet table."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return [str(c) for c in pq.ParquetFile(path).schema_arrow.names]
        except (OSError, ValueError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataFormatError(f"{path}: not a readable Parquet file ({detail})") from None
    return csv_header(path)
