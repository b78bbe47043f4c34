"""Which device this process's groups train on, when an executor placed it on one.

Dependency rule: the standard library only (executors import it without torch).

`LocalExecutor(devices=[...])` gives each of its worker processes one entry of the list
or, running in-process, the first entry (both through `placed_on`); `run_group` trains
on `assigned_device()` when one is set, else on the study's `device`. Dask workers are
not placed: each owns one GPU (made visible to it alone, e.g. with CUDA_VISIBLE_DEVICES)
and trains on the study's `device`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["assigned_device", "placed_on"]

_ASSIGNED: str | None = None


def assigned_device() -> str | None:
    """The device this process was placed on, or None."""
    return _ASSIGNED


@contextlib.contextmanager
def placed_on(device: str | None) -> Iterator[None]:
    """Place this process on `device` while the block runs (None: leave as is)."""
    global _ASSIGNED
    before = _ASSIGNED
    if device is not None:
        _ASSIGNED = device
    try:
        yield
    finally:
        _ASSIGNED = before
