"""Shared CLI plumbing: consoles, the error boundary, JSON output.

Dependency rule: typer, rich, and the library packages; the only place that prints.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import typer
from rich.console import Console

from optcmp_data import OptcmpError

__all__ = ["console", "err_console", "fail", "print_json", "reports_errors"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> typer.Exit:
    """Print one line on stderr and return the Exit(2) to raise."""
    one_line = " ".join(message.split())
    err_console.print(f"error: {one_line}", markup=False)
    return typer.Exit(2)


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Errors of our own type become one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OptcmpError as err:
            raise fail(str(err)) from None

    return wrapper


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(payload: Any) -> None:
    """Only JSON on stdout: NaN/inf become null so every parser accepts it."""
    sys.stdout.write(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()
