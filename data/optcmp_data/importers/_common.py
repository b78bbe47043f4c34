"""Shared plumbing of the importers: the result record and the bad-input policy.

Dependency rule: numpy, xarray, attrs and this package only (like all of optcmp_data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import xarray as xr

from optcmp_data._errors import DataFormatError

__all__ = ["BadInputs", "ImportResult", "read_json_object", "read_text"]


@attrs.frozen
class ImportResult:
    """An imported archive (validated, in memory) and what was skipped on the way.

    `warnings` holds one line per skipped input (only with `skip_bad`); `files_read`
    counts the input files that went into the archive.
    """

    dataset: xr.Dataset
    warnings: tuple[str, ...]
    files_read: int

    @property
    def skipped(self) -> int:
        return len(self.warnings)


class BadInputs:
    """Raise on the first malformed input, or (with `skip_bad`) collect one warning per
    skipped input so the caller can report them and a count."""

    def __init__(self, *, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.warnings: list[str] = []

    def bad(self, message: str) -> None:
        one_line = " ".join(message.split())
        if not self.skip_bad:
            raise DataFormatError(one_line)
        self.warnings.append(f"skipped {one_line}")


def read_text(path: Path) -> str:
    """The UTF-8 text of `path`; DataFormatError naming the file if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: cannot be read ({err})") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; bare NaN/Infinity tokens are accepted (DeepOBS writes
    them). Raises DataFormatError naming the file for unreadable, truncated or non-object
    content."""
    text = read_text(path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno}; "
            "the file may be cut short)"
        ) from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: holds a JSON {type(obj).__name__}, expected an object")
    return obj
