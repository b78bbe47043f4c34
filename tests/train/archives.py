"""Helpers shared by the runner's tests (not a test module)."""

from __future__ import annotations

import xarray as xr

from optcmp.runner import comparable


def same_study(a: xr.Dataset, b: xr.Dataset) -> bool:
    """Identical up to `comparable` and the git commit: the repository this test runs in
    may get a commit between two runs, which changes provenance but not the data."""
    a, b = comparable(a), comparable(b)
    a.attrs.pop("git_commit")
    b.attrs.pop("git_commit")
    return bool(a.identical(b))
