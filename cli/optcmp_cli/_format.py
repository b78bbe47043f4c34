"""Number formatters shared by the CLI's tables, figures and reports.

Dependency rule: the standard library only. Every command formats numbers through these
functions, so a missing value reads "-" everywhere and a precision is chosen per call.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["num", "pct", "signed"]


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
