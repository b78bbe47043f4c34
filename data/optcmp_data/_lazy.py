"""Lazy package roots (PEP 562): a public name is imported from its module on first use.

Dependency rule: the standard library only (a package root imports it at start-up).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], object]:
    """The module `__getattr__` of `package`: a name of `table` (name -> submodule) is
    imported from `package.<submodule>` and kept in `namespace` (the package's globals),
    so the next lookup is a plain attribute; any other name is an AttributeError."""

    def load(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return load
