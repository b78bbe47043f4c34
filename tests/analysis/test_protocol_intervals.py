"""Protocol comparison: calibration of "clear" differences by simulation.

The simulation draws its studies directly (hyperparameter quality uniform, validation and
test values that quality plus independent noise) and decides a study's "clear" from the
records protocol_sensitivity returns; it shares no code with the estimator.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import xarray as xr

from optcmp_analysis import protocol_sensitivity
from optcmp_data.testing import synthetic_archive


def _study(rng: np.random.Generator, n: int, noise: float, shift: float) -> xr.Dataset:
    """One cell per optimizer ('sgd', 'adam'): final validation and test error of n trials
    are a uniform quality plus Gaussian noise; `shift` moves both of adam's up."""
    ds = synthetic_archive(optimizers=("sgd", "adam"), n_trials=n, n_evals=2, seed=0)
    ds = ds.copy(deep=True)
    for oi, opt in enumerate(ds["optimizer"].values):
        quality = rng.uniform(0.2, 0.6, size=n) + (shift if opt == "adam" else 0.0)
        for var in ("valid_metric", "test_metric"):
            values = quality + noise * rng.standard_normal(n)
            ds[var].values[0, oi, :, :] = values[:, None]
    ds["status"].values[:] = "completed"
    return ds


def _clear_rate(n: int, noise: float, shift: float, studies: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    clear = 0
    for _ in range(studies):
        a = _study(rng, n, noise, 0.0)
        b = _study(rng, n, noise, shift)
        cells = protocol_sensitivity(a, b, n_boot=400, rng=rng).to_json()
        adam = next(r for r in cells if r["record"] == "cell" and r["optimizer"] == "adam")
        clear += bool(adam["clear"])
    return clear / studies


@pytest.mark.slow
@pytest.mark.parametrize(("n", "noise"), [(13, 0.01), (16, 0.01), (16, 0.05)])
def test_false_clear_rate_is_at_most_alpha(n: int, noise: float) -> None:
    studies = 200
    rate = _clear_rate(n, noise, 0.0, studies, seed=n)
    # One effect per study (Holm over adam and sgd can only make it stricter).
    bound = 0.05 + 2 * math.sqrt(0.05 * 0.95 / studies)
    print(f"N={n} noise={noise}: false clear rate {rate:.3f} (bound {bound:.3f})")
    assert rate <= bound


def test_a_large_protocol_effect_is_clear_and_none_is_not() -> None:
    rng = np.random.default_rng(7)
    a = _study(rng, 24, 0.005, 0.0)
    b = _study(rng, 24, 0.005, 0.3)
    records = protocol_sensitivity(a, b, n_boot=500, rng=rng).to_json()
    cells = {r["optimizer"]: r for r in records if r["record"] == "cell"}
    assert cells["adam"]["clear"]
    assert cells["adam"]["lo"] > 0
    assert cells["adam"]["p_adjusted"] < 0.05
    assert not cells["sgd"]["clear"] or cells["sgd"]["lo"] > 0 or cells["sgd"]["hi"] < 0
    # The same archive against itself: nothing differs, no flip, nothing clear.
    same = protocol_sensitivity(a, a, n_boot=200, rng=rng)
    assert not any(r.get("clear") or r.get("supported") for r in same.to_json())


@pytest.mark.slow
def test_power_for_a_shift_of_half_the_quality_range() -> None:
    # At N = 16 (k = 4) a shift of half the quality range (0.2) must be clear in most
    # studies.
    rate = _clear_rate(16, 0.01, 0.2, 40, seed=99)
    print(f"N=16 noise=0.01 shift=0.2: clear in {rate:.2f} of studies")
    assert rate >= 0.6


def _spread_study(
    rng: np.random.Generator, n: int, scale: float, shift: float, noise: float
) -> xr.Dataset:
    """One cell per optimizer: adam's trial quality 0.3 + scale |Z| + shift, sgd's
    0.3 + 0.05 |Z|; validation and test values that quality plus N(0, noise^2)."""
    ds = _skeleton(n).copy(deep=True)
    for oi, opt in enumerate(ds["optimizer"].values):
        s, m = (scale, shift) if opt == "adam" else (0.05, 0.0)
        quality = 0.3 + s * np.abs(rng.standard_normal(n)) + m
        for var in ("valid_metric", "test_metric"):
            ds[var].values[0, oi, :, :] = (quality + noise * rng.standard_normal(n))[:, None]
    ds["status"].values[:] = "completed"
    return ds


@functools.cache
def _skeleton(n: int) -> xr.Dataset:
    """The archive structure only (every value is overwritten)."""
    return synthetic_archive(optimizers=("sgd", "adam"), n_trials=n, n_evals=2, seed=0)


def _true_best_of_k(scale: float, k: int, noise: float) -> float:
    rng = np.random.default_rng(123)
    q = 0.3 + scale * np.abs(rng.standard_normal((200_000, k)))
    valid = q + noise * rng.standard_normal(q.shape)
    test = q + noise * rng.standard_normal(q.shape)
    return float(test[np.arange(len(q)), valid.argmin(axis=1)].mean())


@pytest.mark.slow
def test_protocols_that_differ_in_spread_only_are_not_clear() -> None:
    """The two protocols give adam trial distributions of different spread (narrow 0.02
    against wide 0.15) but the same expected best-of-k test value at the default budget
    (k = 4 of 16): adam's protocol effect is clear in at most alpha + 2 MC SE of studies."""
    n, noise, studies = 16, 0.005, 200
    k = max(1, n // 4)
    shift = _true_best_of_k(0.02, k, noise) - _true_best_of_k(0.15, k, noise)
    rng = np.random.default_rng(8)
    clear = 0
    for _ in range(studies):
        a = _spread_study(rng, n, 0.02, 0.0, noise)
        b = _spread_study(rng, n, 0.15, shift, noise)
        cells = protocol_sensitivity(a, b, n_boot=199, rng=rng).to_json()
        adam = next(r for r in cells if r["record"] == "cell" and r["optimizer"] == "adam")
        assert adam["k"] == k
        clear += bool(adam["clear"])
    rate = clear / studies
    bound = 0.05 + 2 * math.sqrt(0.05 * 0.95 / studies)
    print(f"spread only, N={n}, k={k}: false clear rate {rate:.3f} (bound {bound:.3f})")
    assert rate <= bound
