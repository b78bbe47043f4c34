"""Budget curves: exact order-statistic probabilities, closed forms against the bootstrap,
monotonicity, unusable trials, equivariance, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_analysis import AnalysisError, budget_curve, default_budgets, trial_scores
from optcmp_analysis._kernels import exact_probabilities, sort_trials, weighted_summary
from optcmp_data import Status
from optcmp_data.importers import import_deepobs
from optcmp_data.testing import synthetic_archive
from tests.analysis.archives import shuffled
from tests.data.archive_trees import SHARED_ARCHIVES


def test_default_budgets() -> None:
    assert default_budgets(1) == (1,)
    assert default_budgets(16) == (1, 2, 4, 8, 16)
    assert default_budgets(20) == (1, 2, 4, 8, 16, 20)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (3, 2), (4, 3), (5, 5), (3, 4)])
def test_exact_probabilities_match_enumeration(n: int, k: int) -> None:
    with_repl = np.zeros(n)
    for draw in itertools.product(range(n), repeat=k):
        with_repl[min(draw)] += 1
    with_repl /= n**k
    np.testing.assert_allclose(exact_probabilities(np.array(n), k, n), with_repl, atol=1e-12)
    without = exact_probabilities(np.array(n), k, n, replace=False)
    if k > n:
        assert np.isnan(without).all()
        return
    counts = np.zeros(n)
    for combo in itertools.combinations(range(n), k):
        counts[min(combo)] += 1
    np.testing.assert_allclose(without, counts / math.comb(n, k), atol=1e-12)


def test_exact_probabilities_beyond_present_trials_are_zero() -> None:
    probs = exact_probabilities(np.array([2, 4]), 3, 5)
    assert probs[0, 2:].sum() == 0
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)


def test_weighted_summary_uses_inverted_cdf_quantiles() -> None:
    values = np.array([3.0, 1.0, 2.0, 9.0])
    probs = np.array([[0.2, 0.3, 0.3, 0.2]])
    mean, _, q, none = weighted_summary(probs, values, np.array(3), (0.05, 0.5, 0.95))
    # Position 3 is unusable: its 0.2 becomes "no result", the rest is renormalised.
    assert none[0] == pytest.approx(0.2)
    assert mean[0] == pytest.approx((0.2 * 3 + 0.3 * 1 + 0.3 * 2) / 0.8)
    np.testing.assert_allclose(q[0], [1.0, 2.0, 3.0])


def test_sort_trials_orders_usable_then_unusable_then_missing() -> None:
    score = np.array([0.3, np.nan, 0.1, 0.3, np.nan])
    usable = np.array([True, False, True, True, False])
    present = np.array([True, True, True, True, False])
    order, n_present, n_usable = sort_trials(score, usable, present)
    assert list(order) == [2, 0, 3, 1, 4]
    assert (int(n_present), int(n_usable)) == (4, 3)


@settings(max_examples=20)  # each example builds an archive and bootstraps it
@given(
    seed=st.integers(0, 10_000),
    n_trials=st.integers(2, 12),
    diverged=st.sampled_from([0.0, 0.25, 0.6]),
    direction=st.sampled_from(["min", "max"]),
)
def test_closed_form_is_monotone_and_matches_the_bootstrap(
    seed: int, n_trials: int, diverged: float, direction: str
) -> None:
    ds = synthetic_archive(
        optimizers=("sgd", "adam"),
        n_trials=n_trials,
        diverged_fraction=diverged,
        direction=direction,
        seed=seed,
    )
    if not bool(trial_scores(ds).data["usable"].any()):
        return
    curve = budget_curve(ds, n_boot=4000, rng=np.random.default_rng(seed))
    d = curve.data
    sel = d.sel(target="selection")
    sign = 1.0 if direction == "min" else -1.0
    expected = sign * sel["expected"].values  # smaller is better after orientation
    finite = np.isfinite(expected)
    steps = np.diff(np.where(finite, expected, np.nan), axis=-1)
    assert not (steps[np.isfinite(steps)] > 1e-12).any()
    # No-result share falls with k and equals ((N - U) / N)^k exactly.
    n_usable = trial_scores(ds).data["usable"].sum("trial").values
    for k_i, k in enumerate(d["k"].values):
        np.testing.assert_allclose(
            d["no_result_exact"].sel(target="test").values[..., k_i],
            ((n_trials - n_usable) / n_trials) ** k,
            atol=1e-12,
        )
    # Closed form and bootstrap mean agree within 5 Monte Carlo standard errors.
    for target in ("selection", "test"):
        t = d.sel(target=target)
        se = t["exact_sd"] / np.sqrt(t["n_boot_results"])
        gap = abs(t["mean"] - t["expected"])
        ok = (gap <= 5 * se + 1e-12) | ~np.isfinite(t["expected"])
        assert bool(ok.all()), (target, float(gap.max()))


def test_closed_form_within_three_standard_errors_of_the_bootstrap() -> None:
    ds = synthetic_archive(workloads=3, n_trials=24, diverged_fraction=0.2, seed=42)
    curve = budget_curve(ds, n_boot=10_000, rng=np.random.default_rng(2024))
    d = curve.data
    se = d["exact_sd"] / np.sqrt(d["n_boot_results"])
    z = (abs(d["mean"] - d["expected"]) / se).values
    z = z[np.isfinite(z)]
    assert z.size > 200
    assert (z <= 3).mean() >= 0.99
    assert z.max() < 4.5


def test_exact_percentiles_sit_close_to_the_bootstrap_band() -> None:
    ds = synthetic_archive(n_trials=30, seed=8)
    d = budget_curve(ds, n_boot=20_000, rng=np.random.default_rng(0)).data
    for name in ("median", "lo", "hi"):
        gap = abs(d[name] - d[f"exact_{name}"])
        assert float(gap.max()) < 0.02


def test_expected_without_replacement_at_full_budget_is_the_selected_trial() -> None:
    ds = synthetic_archive(n_trials=10, seed=3)
    d = budget_curve(ds, n_boot=100, rng=np.random.default_rng(0)).data
    from optcmp_analysis import select_best

    best = select_best(ds).data["test_value"]
    np.testing.assert_allclose(
        d["expected_without_replacement"].sel(k=10, target="test").values, best.values
    )


def test_unusable_trials_never_give_a_result() -> None:
    ds = synthetic_archive(n_trials=8, seed=5).copy(deep=True)
    ds["status"][0, 0, :6] = Status.DIVERGED.value
    d = budget_curve(ds, n_boot=5000, rng=np.random.default_rng(1)).data
    cell = d.isel(workload=0, optimizer=0).sel(target="test")
    np.testing.assert_allclose(cell["no_result_exact"].values, (6 / 8) ** cell["k"].values)
    assert abs(float(cell["no_result"].sel(k=1)) - 0.75) < 0.03
    usable_tests = ds["test_metric"].isel(workload=0, optimizer=0, trial=[6, 7], eval=-1).values
    assert float(cell["lo"].min()) >= usable_tests.min() - 1e-12
    assert float(cell["hi"].max()) <= usable_tests.max() + 1e-12


@settings(max_examples=20)  # each example builds an archive and bootstraps it
@given(seed=st.integers(0, 10_000))
def test_equivariant_under_permutations(seed: int) -> None:
    ds = synthetic_archive(n_trials=9, diverged_fraction=0.2, seed=seed)
    permuted = shuffled(ds, seed)
    a = budget_curve(ds, n_boot=300, rng=np.random.default_rng(7)).data
    b = budget_curve(permuted, n_boot=300, rng=np.random.default_rng(7)).data
    b = b.sel(optimizer=a["optimizer"])
    for name in ("mean", "median", "lo", "hi", "expected", "exact_median", "no_result"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_settled_budget() -> None:
    ds = synthetic_archive(n_trials=32, seed=1)
    loose = budget_curve(ds, n_boot=10, rng=np.random.default_rng(0), tolerance=10.0)
    assert (loose.data["settled_k"] == 1).all()
    tight = budget_curve(ds, n_boot=10, rng=np.random.default_rng(0), tolerance=0.0)
    med = tight.data["exact_median"].sel(target="test")
    for o in range(ds.sizes["optimizer"]):
        row = med.isel(workload=0, optimizer=o).values
        k = int(tight.data["settled_k"].values[0, o])
        i = list(tight.data["k"].values).index(k)
        assert (row[i:] == row[-1]).all()
        assert i == 0 or row[i - 1] != row[-1]


def test_per_repeat_broadcasts_and_seed_reproducible() -> None:
    ds = synthetic_archive(n_trials=6, repeats={"seed": 2}, seed=3)
    per = budget_curve(ds, n_boot=200, rng=np.random.default_rng(5), repeats="per-repeat")
    assert "seed" in per.data["mean"].dims
    again = budget_curve(ds, n_boot=200, rng=np.random.default_rng(5), repeats="per-repeat")
    assert per.data.equals(again.data)
    other = budget_curve(ds, n_boot=200, rng=np.random.default_rng(6), repeats="per-repeat")
    assert not per.data["mean"].equals(other.data["mean"])


def test_errors_and_json() -> None:
    ds = synthetic_archive(n_trials=5, seed=3)
    with pytest.raises(AnalysisError, match="larger than the trial count 5"):
        budget_curve(ds, budgets=[2, 6], rng=np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="no usable trial"):
        budget_curve(
            synthetic_archive(n_trials=3, diverged_fraction=1.0), rng=np.random.default_rng(0)
        )
    curve = budget_curve(ds, budgets=[1, 5], n_boot=50, rng=np.random.default_rng(0))
    records = curve.to_json()
    assert len(records) == 2 * ds.sizes["optimizer"]
    keys = {"workload", "optimizer", "k", "mean", "median", "lo", "hi", "expected"}
    assert keys <= set(records[0])
    assert curve.to_dataset().attrs["n_boot"] == 50


def test_missing_trials_do_not_count_towards_the_budget() -> None:
    ds = synthetic_archive(n_trials=8, seed=6).copy(deep=True)
    ds["status"][0, 0, 5:] = Status.MISSING.value
    ds["step"][0, 0, 5:] = -1
    d = budget_curve(
        ds, budgets=[1, 2, 4, 8], n_boot=4000, rng=np.random.default_rng(2), with_replacement=True
    ).data
    cell = d.isel(workload=0, optimizer=0).sel(target="test")
    first_five = ds["test_metric"].isel(workload=0, optimizer=0, trial=slice(0, 5), eval=-1)
    # k = 1 draws one of the five present trials uniformly.
    assert float(cell["expected"].sel(k=1)) == pytest.approx(float(first_five.mean()))
    assert float(cell["no_result_exact"].max()) == 0.0
    # Without replacement, a budget above the five present trials is impossible.
    assert np.isnan(float(cell["expected_without_replacement"].sel(k=8)))


def _unequal() -> xr.Dataset:
    """Optimizer 0 of workload 0 holds 3 trials, every other cell 12."""
    ds = synthetic_archive(n_trials=12, seed=7, optimizers=["sgd", "adam"]).copy(deep=True)
    o = [str(x) for x in ds["optimizer"].values].index("sgd")
    ds["status"][0, o, 3:] = Status.MISSING.value
    ds["step"][0, o, 3:] = -1
    return ds


def test_unequal_counts_default_to_the_smallest_and_never_resample_past_a_cell() -> None:
    ds = _unequal()
    curve = budget_curve(ds, n_boot=200, rng=np.random.default_rng(0))
    assert list(curve.data["k"].values) == [1, 2, 3]
    assert (
        sum(
            "trial counts differ between cells (3 to 12; fewest: sgd on" in c for c in curve.caveats
        )
        == 1
    )
    # Asked for a budget above the small cell's count: no value there, values elsewhere.
    asked = budget_curve(ds, budgets=[3, 8], n_boot=200, rng=np.random.default_rng(0)).data
    small = asked.isel(workload=0).sel(optimizer="sgd").sel(target="test")
    assert np.isfinite(float(small["mean"].sel(k=3)))
    assert all(np.isnan(float(small[v].sel(k=8))) for v in ("mean", "expected", "exact_median"))
    assert not bool(small["enough_trials"].sel(k=8))
    big = asked.isel(workload=0).sel(optimizer="adam").sel(target="test")
    assert np.isfinite(float(big["mean"].sel(k=8)))
    # --with-replacement resamples past the count, as the closed form with replacement says.
    repl = budget_curve(
        ds, budgets=[8], n_boot=200, rng=np.random.default_rng(0), with_replacement=True
    ).data
    cell = repl.isel(workload=0).sel(optimizer="sgd", target="test", k=8)
    assert np.isfinite(float(cell["expected"]))
    records = budget_curve(ds, budgets=[8], n_boot=20, rng=np.random.default_rng(0)).to_json()
    small_rec = next(r for r in records if r["optimizer"] == "sgd" and r["workload"] == "w0")
    assert small_rec["n_trials"] == 3
    assert small_rec["enough_trials"] is False
    assert small_rec["mean"] is None


def test_equal_counts_carry_no_mixed_count_line() -> None:
    curve = budget_curve(synthetic_archive(n_trials=4), n_boot=20, rng=np.random.default_rng(0))
    assert not any("trial counts differ" in c for c in curve.caveats)


def test_diverged_worst_leaves_no_result_only_for_incomplete_trials() -> None:
    ds = synthetic_archive(n_trials=8, diverged_fraction=0.4, seed=14)
    exclude = budget_curve(ds, budgets=[1, 2], n_boot=200, rng=np.random.default_rng(0))
    worst = budget_curve(
        ds, budgets=[1, 2], n_boot=200, rng=np.random.default_rng(0), diverged="worst"
    )
    assert float(exclude.data["no_result_exact"].max()) > 0
    assert float(worst.data["no_result_exact"].max()) == 0.0
    # Counting failures as the worst value can only make the expected result worse.
    e = exclude.data["expected"].sel(target="test")
    w = worst.data["expected"].sel(target="test")
    assert bool((w >= e - 1e-12).all())


_DEEPOBS = SHARED_ARCHIVES / "deepobs-baselines"


@pytest.mark.skipif(not _DEEPOBS.is_dir(), reason=f"published archive not present at {_DEEPOBS}")
def test_deepobs_budget_curves_are_honest() -> None:
    """Selection on seed 42 and reported values from seed 42: the expected best-of-k of
    mnist_vae SGD no longer gets worse as k grows; fmnist_vae Adam at k = 1 shows that 23
    of its 36 one-trial studies diverge."""
    ds = import_deepobs(_DEEPOBS).dataset
    curve = budget_curve(
        ds.sel(workload=["mnist_vae", "fmnist_vae"]),
        budgets=[1, 2, 4, 8, 16, 32, 36],
        n_boot=100,
        rng=np.random.default_rng(0),
        rule="deepobs-final",
    )
    d = curve.data.sel(target="test")
    sgd = d["expected"].sel(workload="mnist_vae", optimizer="GradientDescentOptimizer").values
    assert np.all(np.diff(sgd) <= 1e-12), sgd
    adam = d["no_result_exact"].sel(workload="fmnist_vae", optimizer="AdamOptimizer", k=1)
    assert float(adam) == pytest.approx(23 / 36)
