"""Number formatters shared by the CLI's tables, figures and reports.

Dependency rule: the standard library only. Every command formats numbers through these
functions, so a missing value reads "-" everywhere and a precision is chosen per call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "counted",
    "num",
    "num_column",
    "num_distinct",
    "pct",
    "rule_text",
    "same_digits",
    "signed",
]


def num(value: Any, digits: int = 4, *, inf: str = "-", neg_inf: str = "-") -> str:
    """A number to `digits` significant digits.

    None and NaN read "-"; +inf reads `inf` and -inf `neg_inf` (both "-" unless a caller
    gives them a meaning, e.g. "never" for a target that is never reached). Integers are
    printed whole, and a value that is not a number (a label) is printed as it is.
    """
    if value is None or isinstance(value, (bool, str)):
        return "-" if value is None else str(value)
    if isinstance(value, int) or type(value).__name__.startswith(("int", "uint")):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return inf if x > 0 else neg_inf
    return f"{x:.{digits}g}"


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, plural unless n is 1 ("1 workload", "3 workloads")."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def signed(value: Any, digits: int = 2) -> str:
    """A difference with its sign (+0.12, -0.034); "-" when missing or not finite."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{x:+.{digits}g}" if math.isfinite(x) else "-"


def pct(share: Any) -> str:
    """A share as a percentage ("-" when missing; "<0.1%" for a small positive share)."""
    if share is None:
        return "-"
    return "<0.1%" if 0 < share < 0.0005 else f"{100 * share:.1f}%"


def rule_text(rule: str, splits: dict[str, str]) -> str:
    """A selection rule as a header names it, with the split selection actually used
    where that is not the validation split its name suggests (`splits`: workload ->
    selection split; the train-loss rule selects on the training loss everywhere)."""
    if rule == "final-train-loss" or not splits:
        return rule
    on_test = [w for w, s in splits.items() if s == "test"]
    if not on_test:
        return rule
    if len(on_test) == len(splits):
        return f"{rule}, selected on the test split"
    return f"{rule}, selected on the test split for {', '.join(on_test)}"


def num_distinct(value: Any, digits: int = 3) -> str:
    """`num`, with more digits where `digits` would round the value onto a round number
    it is not (0.9999 to "1", 0.99999 to "1"): a hyperparameter just inside a space edge
    must not read as the edge itself."""
    text = num(value, digits)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return text
    while math.isfinite(x) and digits < 17 and float(text) != x and float(text) == round(x):
        digits += 1
        text = num(value, digits)
    return text


def num_column(values: Any, digits: int = 4, *, inf: str = "-") -> list[str]:
    """The numbers of one table column in one format: `digits` significant digits with
    trailing zeros kept (0.1260 is not shown as "0.126" above "0.1274"), and scientific
    notation for every value of the column where any needs it (learning rates from 1e-05
    to 1.585). Missing values read "-", +inf `inf`."""
    xs: list[float | None] = []
    for v in values:
        try:
            xs.append(None if v is None or isinstance(v, (bool, str)) else float(v))
        except (TypeError, ValueError):
            xs.append(None)
    finite = [x for x in xs if x is not None and math.isfinite(x)]
    sci = any("e" in f"{x:.{digits}g}" for x in finite)
    out = []
    for x in xs:
        if x is None or math.isnan(x):
            out.append("-")
        elif math.isinf(x):
            out.append(inf if x > 0 else "-")
        elif sci:
            out.append(f"{x:.{digits - 1}e}")
        elif x == int(x) and abs(x) < 10**digits and all(v == int(v) for v in finite):
            out.append(str(int(x)))  # a column of whole numbers stays whole
        else:
            out.append(
                f"{x:#.{digits}g}".rstrip(".")
                if "e" not in f"{x:#.{digits}g}"
                else f"{x:.{digits}g}"
            )
    return out


_PLAIN_NUMBER = re.compile(r"-?(\d+\.\d*|\d*\.\d+)")
_WHOLE = re.compile(r"-?\d+")


def _significant(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0")
    return len(digits) or 1


def same_digits(cells: Sequence[str]) -> list[str]:
    """Already formatted cells of one table column with one number of significant
    digits: where the plain decimal numbers among them differ in digits only because
    trailing zeros were dropped ("0.42" above "0.3805"), each gets the column's most, with
    its trailing zeros ("0.4200"). Whole numbers, words, scientific notation and composite
    cells are left as they are; a column holding any scientific notation is left alone."""
    decimals = [c for c in cells if _PLAIN_NUMBER.fullmatch(c)]
    if not decimals or any("e" in c.lower() for c in cells if _is_number(c)):
        return list(cells)
    # Whole numbers in a column of decimals (a profile area of 1) are decimals too.
    plain = {c for c in cells if _PLAIN_NUMBER.fullmatch(c) or _WHOLE.fullmatch(c)}
    most = max(_significant(c) for c in decimals)
    return [f"{float(c):#.{most}g}".rstrip(".") if c in plain else c for c in cells]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
