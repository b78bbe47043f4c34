"""Helpers shared by the runner's tests (not a test module)."""

from __future__ import annotations

import importlib
from typing import Any

import xarray as xr

from optcmp.runner import comparable


def same_study(a: xr.Dataset, b: xr.Dataset) -> bool:
    """Identical up to `comparable` and the git commit: the repository this test runs in
    may get a commit between two runs, which changes provenance but not the data."""
    a, b = comparable(a), comparable(b)
    a.attrs.pop("git_commit")
    b.attrs.pop("git_commit")
    return bool(a.identical(b))


def worker_processes(n_workers: int, **options: Any) -> Any:
    """A dask LocalCluster of `n_workers` one-thread worker processes, on a free dashboard
    port, logging errors only (`options`: more LocalCluster arguments)."""
    distributed: Any = importlib.import_module("distributed")  # untyped
    return distributed.LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",
        silence_logs=40,
        **options,
    )
