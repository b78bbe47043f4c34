"""Helpers shared by the analysis tests (not a test module)."""

from __future__ import annotations

import numpy as np
import xarray as xr


def shuffled(ds: xr.Dataset, seed: int) -> xr.Dataset:
    """`ds` with its trials and its optimizers each in a random order (drawn from `seed`):
    an analysis must give the same results for each (workload, optimizer) on both."""
    rng = np.random.default_rng(seed)
    return ds.isel(
        trial=rng.permutation(ds.sizes["trial"]), optimizer=rng.permutation(ds.sizes["optimizer"])
    )
