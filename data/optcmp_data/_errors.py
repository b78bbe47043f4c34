"""Exception hierarchy shared by every layer.

Dependency rule: standard library only, so every package (and the torch-free layers) can
raise and catch these.
"""

from __future__ import annotations

__all__ = [
    "ArchiveIOError",
    "ConfigError",
    "DataFormatError",
    "MergeError",
    "OptcmpError",
    "SchemaError",
]


class OptcmpError(Exception):
    """Base of every error optcmp raises on purpose; the CLI turns it into one line, exit 2."""


class SchemaError(OptcmpError):
    """An archive does not satisfy the schema: names the file, the variable and the problem."""


class ArchiveIOError(OptcmpError):
    """An archive file or study directory cannot be read or written."""


class MergeError(OptcmpError):
    """Shards cannot be merged: duplicate trials or conflicting per-workload data."""


class ConfigError(OptcmpError):
    """A study file, search space, taxonomy or hyperparameter value is invalid."""


class DataFormatError(OptcmpError):
    """An input data file (dataset, published archive) is missing or malformed."""
