"""Shared plumbing of the importers: the result record and the bad-input policy.

Dependency rule: numpy, xarray, attrs and this package only (like all of optcmp_data).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from optcmp_data._builder import ArchiveBuilder, WorkloadInfo
from optcmp_data._errors import ArchiveIOError, ConfigError, DataFormatError
from optcmp_data._fs import check_regular_file
from optcmp_data._schema import Direction, Split

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "INT64_MAX",
    "BadInputs",
    "ImportResult",
    "LabelRule",
    "add_mapped_workload",
    "checked_float",
    "checked_int",
    "open_source_dir",
    "read_json_object",
    "read_text",
]

INT64_MAX = 2**63 - 1


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
    """The UTF-8 text of `path`; DataFormatError naming the file if it cannot be read
    (a FIFO or a device, which would block or never end, included)."""
    try:
        check_regular_file(path)
    except ArchiveIOError as err:
        raise DataFormatError(str(err)) from None
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
    except RecursionError:
        raise DataFormatError(f"{path}: JSON nested too deeply to be a results file") from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: holds a JSON {type(obj).__name__}, expected an object")
    return obj


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} characters)"


def checked_int(value: object, *, where: str, low: int = -INT64_MAX - 1) -> int:
    """`value` as an int within [low, 2**63 - 1]; DataFormatError naming `where` (file and
    field) and the value otherwise (bools, floats and huge integers are refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataFormatError(f"{where}: {_short(value)} is not an integer")
    if not low <= value <= INT64_MAX:
        raise DataFormatError(
            f"{where}: {_short(value)} is outside the range [{low}, {INT64_MAX}] an archive stores"
        )
    return value


def checked_float(value: object, *, where: str) -> float:
    """A JSON number as a float; DataFormatError naming `where` and the value when it is
    not a number or too large for a float (e.g. 10**400)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise DataFormatError(f"{where}: {_short(value)} is not a number")
    try:
        return float(value)
    except OverflowError:
        raise DataFormatError(f"{where}: {_short(value)} is too large for a float") from None


def open_source_dir(src: str | os.PathLike[str], what: str) -> Path:
    """The shared opening of a tree importer: `src` must be a non-empty directory;
    DataFormatError naming it and `what` (e.g. "a DeepOBS output tree") otherwise."""
    path = Path(src)
    if not path.is_dir():
        raise DataFormatError(f"{path}: not a directory (expected {what})")
    try:
        empty = not any(path.iterdir())
    except OSError as err:
        raise DataFormatError(f"{path}: cannot be listed ({err.strerror})") from None
    if empty:
        raise DataFormatError(f"{path}: empty folder; expected {what}")
    return path


@attrs.frozen
class LabelRule:
    """How a tracker importer (Optuna, MLflow) labels each trial: the optimizer is the
    value named `optimizer_from` (`--optimizer-from`); the workload is `workload` for
    every trial (`--workload`), or the value named `workload_from` (`--workload-from`),
    or the importer's default (the study or experiment name). `sources` says in words
    where values are looked up ("param or tag"), for the messages."""

    optimizer_from: str
    workload_from: str | None
    workload: str | None
    sources: str

    def __attrs_post_init__(self) -> None:
        if self.workload is not None and self.workload_from is not None:
            raise ConfigError("give --workload or --workload-from, not both")

    @property
    def names(self) -> set[str]:
        """The names that hold labels (not hyperparameters)."""
        return {self.optimizer_from, *([self.workload_from] if self.workload_from else [])}

    def labels(
        self,
        *sources: Mapping[str, Any],
        item: str,
        default_workload: str,
        bad: BadInputs,
        where: str,
    ) -> tuple[str, str] | None:
        """(workload, optimizer) of one trial, whose values are looked up in `sources` in
        order; None (after `bad.bad` naming `item`, e.g. "run 3f2a") when one is missing."""

        def find(name: str) -> str | None:
            for source in sources:
                if name in source:
                    return str(source[name])
            return None

        opt = find(self.optimizer_from)
        if opt is None:
            bad.bad(
                f"{where}: {item} has no {self.sources} {self.optimizer_from!r} naming its "
                "optimizer; choose one with --optimizer-from"
            )
            return None
        if self.workload is not None:
            return self.workload, opt
        if self.workload_from is None:
            return default_workload, opt
        found = find(self.workload_from)
        if found is None:
            bad.bad(
                f"{where}: {item} has no {self.sources} {self.workload_from!r} (--workload-from)"
            )
            return None
        return found, opt


def add_mapped_workload(
    builder: ArchiveBuilder,
    facts: Mapping[str, Any],
    *,
    name: str,
    source: object,
    direction: Direction | str,
    metric_name: str,
    step_budget: int,
) -> int:
    """Add workload `name` to `builder` with a mapping's facts (a tracker importer's
    [workload] or [workloads.NAME] table): its metric_name, valid_target, test_target,
    step_budget and selection_split where given, else `metric_name`, NaN targets,
    `step_budget` and "valid". Returns the step budget; ConfigError naming `source` (the
    mapping file) and the workload for a fact of the wrong type or value."""
    try:
        budget = int(facts.get("step_budget", step_budget))
        builder.add_workload(
            WorkloadInfo(
                name=name,
                metric_name=str(facts.get("metric_name", metric_name)),
                direction=Direction(direction),
                valid_target=float(facts.get("valid_target", math.nan)),
                test_target=float(facts.get("test_target", math.nan)),
                step_budget=budget,
                selection_split=Split(str(facts.get("selection_split", "valid"))),
            )
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: workload {name!r}: {err}") from None
    return budget
