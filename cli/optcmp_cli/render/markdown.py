"""Markdown for the report: numbers, table cells, tables and file-name slugs.

Dependency rule: the standard library and optcmp_cli's number format. Labels that come
from files others wrote are escaped where a row is built (`optcmp_cli._escape.md`); the
helpers here only lay the cells out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from optcmp_cli.render.numbers import num, same_digits

__all__ = ["cell", "cell_num", "interval", "none_share", "number", "slug", "table"]


def number(value: Any, digits: int = 4) -> str:
    """A number for the report: +inf reads "never" (a target never reached)."""
    return num(value, digits, inf="never", neg_inf="-inf")


def cell(text: Any) -> str:
    """A table cell: labels in it are escaped where the row is built (`md`)."""
    return str(text).replace("\n", " ")


def cell_num(value: Any, digits: int = 3) -> str:
    """A JSON number for a table cell: None (NaN or inf in the record) as "-"."""
    return "-" if value is None else number(value, digits)


def interval(lo: Any, hi: Any, digits: int = 3) -> str:
    """`[lo, hi]` with the report's numbers."""
    return f"[{number(lo, digits)}, {number(hi, digits)}]"


def none_share(share: float) -> str:
    """ " none: x%" when some k-trial studies have no result, else nothing."""
    if not share > 0:
        return ""
    return " none: <0.1%" if share < 0.0005 else f" none: {100 * share:.1f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table (with the blank line after it), one number format per column."""
    cells = [[cell(c) for c in row] for row in rows]
    # One number format per column: "0.42" above "0.3805" becomes "0.4200".
    if cells and all(len(row) == len(headers) for row in cells):
        columns = [same_digits(list(col)) for col in zip(*cells, strict=True)]
        cells = [list(row) for row in zip(*columns, strict=True)]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    out.append("|" + "|".join("---" for _ in headers) + "|")
    out.extend("| " + " | ".join(row) + " |" for row in cells)
    return [*out, ""]


def slug(text: str) -> str:
    """`text` as a file-name stem: runs of other characters become one hyphen."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"
