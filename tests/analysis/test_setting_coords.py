"""Imported archives carry settings as coordinates over (workload, optimizer) (DeepOBS:
batch_size, l2_reg, training_params). They differ between workloads, so every step that
splits an archive by workload and joins the pieces again meets them: no analysis may warn
about them (xarray's changing concat defaults) or let them change its records."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import xarray as xr

from optcmp_analysis import analyses
from optcmp_analysis._enums import Normalisation
from optcmp_data.testing import synthetic_archive

_SMALL: dict[str, dict[str, Any]] = {
    "budget": {"n_boot": 50},
    "rank": {"n_boot": 50},
    "inclusion": {"n_boot": 99},
    "targets": {"n_boot": 99},
    "protocol": {"n_boot": 99},
    "aggregate": {"n_boot": 50, "normalisation": Normalisation.MINMAX_COMPARED},
}


def _with_settings(archive: xr.Dataset) -> xr.Dataset:
    shape = (archive.sizes["workload"], archive.sizes["optimizer"])
    dims = ("workload", "optimizer")
    batch = np.arange(np.prod(shape), dtype=float).reshape(shape) + 32.0
    return archive.assign_coords(
        batch_size=(dims, batch),
        l2_reg=(dims, np.full(shape, 5e-4) * (1 + np.arange(shape[0]))[:, None]),
        training_params=(dims, np.full(shape, "")),
    )


@pytest.mark.parametrize("analysis", analyses(), ids=lambda a: a.name)
def test_settings_coordinates_change_no_record_and_raise_no_warning(analysis: Any) -> None:
    kw: dict[str, Any] = {"workloads": 3, "optimizers": ["sgd", "momentum", "adam"]}
    first = synthetic_archive(**kw, n_trials=12, ragged=True, diverged_fraction=0.1, seed=4)
    second = synthetic_archive(**kw, n_trials=12, seed=5)
    plain = (first, second) if analysis.second_archive else (first,)
    dressed = tuple(_with_settings(a) for a in plain)
    options = _SMALL.get(analysis.name, {})
    want = analysis.run(*plain, rng=np.random.default_rng(0), **options)
    got = analysis.run(*dressed, rng=np.random.default_rng(0), **options)  # warnings are errors
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())
