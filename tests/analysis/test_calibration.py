"""Calibration and power of the inclusion test, by simulation.

The simulation shares no code with the estimator: it draws its own trial outcomes (below),
writes them into the value arrays of an archive skeleton (only the archive's structure comes
from `synthetic_archive`; every metric value and status is overwritten), and computes the
true expected best-of-k difference by simulating fresh k-trial studies from the model.

Model of one study (one workload of the archive): the special optimizer (sgd) and the
general one (momentum) run N trials each. A trial's quality is q = 0.1 + 0.05 |Z| (+ the
effect for the general optimizer); its final validation and test errors are q plus
independent N(0, noise^2) errors; 10% of trials diverge (no metrics). The general
optimizer's outcomes are the special one's shifted by the effect, so the true difference
of expected best-of-k test errors is the effect (checked by direct simulation below).

Checked for N in {8, 16, 32} and noise in {0.005, 0.02}, k = N (the default), 400 studies
per cell, alpha 0.05, margin 0.01:
- no difference: the unadjusted test flags a violation in at most 5% + 2 Monte Carlo
  standard errors of the studies;
- effect 0.02 (twice the margin) and effect 0.01 (the margin itself): "consistent" in at
  most 5% (+ 2 MC standard errors at the margin, where the bound is attained);
- power against effects 0.01 and 0.02 is printed (run pytest with -s) and quoted in
  docs/method.md;
- the sampled path (k = 8 of N = 16, 999 random splits) on one noise level alike.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import xarray as xr

from optcmp_analysis import Verdict, inclusion_consistency, restrict
from optcmp_data.testing import synthetic_archive

N_STUDIES = 400
ALPHA = 0.05
MARGIN = 0.01
N_PERM = 999
SIZES = (8, 16, 32)
NOISES = (0.005, 0.02)
EFFECTS = (0.0, 0.01, 0.02)
DIVERGED = 0.1


def _outcomes(
    rng: np.random.Generator, shape: tuple[int, ...], effect: float, noise: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid, test, diverged) for trials of the given shape."""
    q = 0.1 + effect + 0.05 * np.abs(rng.normal(size=shape))
    valid = q + noise * rng.normal(size=shape)
    test = q + noise * rng.normal(size=shape)
    diverged = rng.uniform(size=shape) < DIVERGED
    return valid, test, diverged


def _true_best_of_k(effect: float, noise: float, k: int, seed: int, reps: int = 200_000) -> float:
    """E[test error of the trial with the best validation error among k fresh trials],
    a study with no completed trial scoring the worst error seen (never happens in
    practice at these sizes)."""
    rng = np.random.default_rng(seed)
    valid, test, diverged = _outcomes(rng, (reps, k), effect, noise)
    score = np.where(diverged, np.inf, valid)
    best = np.argmin(score, axis=1)
    picked = test[np.arange(reps), best]
    failed = diverged.all(axis=1)
    return float(np.where(failed, np.nanmax(test), picked).mean())


@functools.cache
def _skeleton(n: int) -> xr.Dataset:
    """The archive structure only (its values are all overwritten)."""
    return synthetic_archive(
        workloads=N_STUDIES, optimizers=("sgd", "momentum"), n_trials=n, n_evals=2, seed=0
    )


def _archive(n: int, effect: float, noise: float, seed: int) -> xr.Dataset:
    """N_STUDIES studies as workloads; every value drawn by `_outcomes`."""
    ds = _skeleton(n).copy(deep=True)
    rng = np.random.default_rng(seed)
    shape = (N_STUDIES, 2, n)  # (workload, optimizer, trial); optimizer 1 is the general
    valid, test, diverged = _outcomes(rng, shape, 0.0, noise)
    valid[:, 1] += effect
    test[:, 1] += effect
    order = ("workload", "optimizer", "trial", "eval")
    names = [str(o) for o in ds["optimizer"].values]
    flip = names != ["sgd", "momentum"]
    if flip:  # keep "optimizer 1 is momentum" whatever the archive's order
        valid, test, diverged = valid[:, ::-1], test[:, ::-1], diverged[:, ::-1]
    for var, final in (("valid_metric", valid), ("test_metric", test)):
        arr = np.array(ds[var].transpose(*order).values)
        arr[..., 0] = 0.9
        arr[..., -1] = np.where(diverged, np.nan, final)
        ds[var] = (order, arr)
    ds["status"] = (
        ("workload", "optimizer", "trial"),
        np.where(diverged, "diverged", "completed").astype(ds["status"].dtype),
    )
    return ds


def _rates(
    n: int, effect: float, noise: float, seed: int, budget: int | None = None
) -> tuple[float, float]:
    """(share flagged violated by the unadjusted p-value, share with verdict "consistent")
    over N_STUDIES studies."""
    ds = _archive(n, effect, noise, seed=seed)
    result = inclusion_consistency(
        ds,
        budget=budget,
        n_perm=N_PERM,
        rng=np.random.default_rng(n),
        rules=["final-valid"],
        alpha=ALPHA,
        margin=MARGIN,
    )
    d = result.data.sel(rule="final-valid").isel(pair=0)
    assert (d["k"] == (n if budget is None else budget)).all()
    assert bool(d["exact"].all()) == (budget is None)
    p = d["p_value"].values
    assert np.isfinite(p).all()
    consistent = d["verdict"].values == Verdict.CONSISTENT
    # "consistent" is the non-inferiority test; the interval's upper end agrees with it.
    assert (d["hi"].values[consistent] <= MARGIN + 1e-12).all()
    return float(np.mean(p < ALPHA)), float(np.mean(consistent))


@pytest.fixture(scope="module")
def table() -> dict[tuple[int, float, float], tuple[float, float]]:
    """(N, noise, effect) -> `_rates` at the default budget k = N."""
    out = {}
    for n in SIZES:
        for noise in NOISES:
            for e_i, effect in enumerate(EFFECTS):
                out[(n, noise, effect)] = _rates(
                    n, effect, noise, seed=1000 * n + 10 * e_i + int(noise * 1000)
                )
    print("\ninclusion test, k = N, alpha 0.05 (unadjusted), margin 0.01, 400 studies per row")
    print("   N  noise | false viol. | power 0.01 | power 0.02 | consistent@0.01 | @0.02")
    for n in SIZES:
        for noise in NOISES:
            print(
                f"  {n:>2}  {noise:.3f} |"
                f"   {out[(n, noise, 0.0)][0]:6.3f}    |"
                f"   {out[(n, noise, 0.01)][0]:6.3f}   |"
                f"   {out[(n, noise, 0.02)][0]:6.3f}   |"
                f"      {out[(n, noise, 0.01)][1]:6.3f}     | {out[(n, noise, 0.02)][1]:6.3f}"
            )
    return out


def _mc_bound(rate: float = ALPHA) -> float:
    return rate + 2 * math.sqrt(rate * (1 - rate) / N_STUDIES)


def test_the_model_has_the_planted_difference() -> None:
    """The planted effect is the true difference of expected best-of-k: two independent
    simulations of 200,000 fresh k-trial studies each (standard error of the difference
    below 1e-4)."""
    for k in (8, 32):
        base = _true_best_of_k(0.0, 0.02, k, seed=k)
        shifted = _true_best_of_k(0.02, 0.02, k, seed=k + 1)
        assert shifted - base == pytest.approx(0.02, abs=5e-4)


@pytest.mark.slow
def test_false_violations_within_alpha(
    table: dict[tuple[int, float, float], tuple[float, float]],
) -> None:
    for n in SIZES:
        for noise in NOISES:
            rate = table[(n, noise, 0.0)][0]
            assert rate <= _mc_bound(), (n, noise, rate)


@pytest.mark.slow
def test_consistent_only_with_evidence(
    table: dict[tuple[int, float, float], tuple[float, float]],
) -> None:
    for n in SIZES:
        for noise in NOISES:
            assert table[(n, noise, 0.02)][1] <= ALPHA, (n, noise)
            assert table[(n, noise, 0.01)][1] <= _mc_bound(), (n, noise)


@pytest.mark.slow
def test_power_grows_with_the_effect_and_the_trials(
    table: dict[tuple[int, float, float], tuple[float, float]],
) -> None:
    for noise in NOISES:
        for n in SIZES:
            assert table[(n, noise, 0.02)][0] > table[(n, noise, 0.0)][0], (n, noise)
        assert table[(32, noise, 0.02)][0] > table[(8, noise, 0.02)][0], noise


@pytest.mark.slow
def test_sampled_permutations_at_a_smaller_budget() -> None:
    """k = N/2 < N: the permutation distribution is sampled (999 random splits)."""
    null = _rates(16, 0.0, 0.005, seed=77, budget=8)
    worse = _rates(16, 0.02, 0.005, seed=78, budget=8)
    print(
        f"\nk = 8 of N = 16, noise 0.005: false violations {null[0]:.3f}, "
        f"power 0.02 {worse[0]:.3f}, consistent@0.02 {worse[1]:.3f}"
    )
    assert null[0] <= _mc_bound()
    assert worse[1] <= ALPHA
    assert worse[0] > null[0]


def test_a_study_alone_gets_the_same_p_value() -> None:
    """Streams are keyed by labels: a workload analysed alone gets the p-value it gets in
    the big archive, and with one test Holm's correction is the identity."""
    ds = _archive(8, 0.0, 0.02, seed=5)
    whole = inclusion_consistency(
        ds, n_perm=199, rng=np.random.default_rng(5), rules=["final-valid"]
    ).data
    for w in ("w0", "w17", "w399"):
        alone = inclusion_consistency(
            restrict(ds, workloads=[w]),
            n_perm=199,
            rng=np.random.default_rng(5),
            rules=["final-valid"],
        ).data
        p_whole = whole["p_value"].sel(workload=w).values
        np.testing.assert_array_equal(alone["p_value"].sel(workload=w).values, p_whole)
        np.testing.assert_array_equal(alone["p_adjusted"].sel(workload=w).values, p_whole)
        flagged = str(alone["verdict"].sel(workload=w).values.item()) == Verdict.VIOLATED
        assert flagged == bool(p_whole.item() < ALPHA)
