"""Aggregates across workloads (rliable-style): IQM, optimality gap, probability of
improvement, the stratified bootstrap and its coverage, normalisation, and the published
archives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_analysis import (
    AnalysisError,
    aggregate_scores,
    interquartile_mean,
    probability_of_improvement,
    select_best,
    stratified_bootstrap,
)
from optcmp_analysis._aggregate import mixture_statistics, optimality_gap
from optcmp_data import Status
from optcmp_data.importers import import_algoperf, import_deepobs
from optcmp_data.testing import synthetic_archive
from tests.data.archive_trees import SHARED_ARCHIVES

# --- kernels against hand computations ---------------------------------------------------


def test_iqm_by_hand() -> None:
    # Sorted 1..8: the middle half is 3, 4, 5, 6.
    assert interquartile_mean(np.array([8.0, 1, 7, 2, 6, 3, 5, 4])) == pytest.approx(4.5)
    # Six values: the middle half is 1.5 atoms: half of the 2nd, the 3rd, the 4th, half the 5th.
    x = np.array([10.0, 20, 30, 40, 50, 60])
    by_hand = (0.5 * 20 + 30 + 40 + 0.5 * 50) / 3
    assert interquartile_mean(x) == pytest.approx(by_hand)


@given(st.lists(st.floats(-100, 100), min_size=4, max_size=40).filter(lambda v: len(v) % 4 == 0))
@settings(max_examples=60, deadline=None)
def test_iqm_equals_scipy_trim_mean(values: list[float]) -> None:
    x = np.array(values)
    assert interquartile_mean(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25), abs=1e-9)


def test_weighted_iqm_equals_iqm_of_repeated_values() -> None:
    values = np.array([0.3, -1.0, 2.0, 0.7])
    counts = np.array([3, 1, 2, 2])
    weights = counts / counts.sum()
    repeated = np.repeat(values, counts)
    assert interquartile_mean(values, weights) == pytest.approx(interquartile_mean(repeated))
    assert optimality_gap(values, weights) == pytest.approx(np.mean(np.maximum(0, 1 - repeated)))


def test_mixture_statistics_weigh_every_workload_equally() -> None:
    # Workload 0 has two equally likely atoms, workload 1 one atom (with weight 1).
    values = np.array([[0.0, 1.0], [0.5, 9.0]])
    weights = np.array([[0.5, 0.5], [1.0, 0.0]])
    iqm, mean, median, gap = mixture_statistics(values, weights)
    # Mixture: 0 (1/4), 1 (1/4), 0.5 (1/2); sorted 0, 0.5, 1; the middle half is all 0.5.
    assert iqm == pytest.approx(0.5)
    assert mean == pytest.approx(0.25 * 0 + 0.25 * 1 + 0.5 * 0.5)
    assert median == pytest.approx(0.5)
    assert gap == pytest.approx(0.25 * 1 + 0.5 * 0.5)


def test_probability_of_improvement_against_all_pairs() -> None:
    rng = np.random.default_rng(1)
    w, o, n = 3, 3, 5
    values = rng.integers(0, 4, size=(w, o, n)).astype(float)  # ties on purpose
    weights = np.full((w, o, n), 1.0 / n)
    got = probability_of_improvement(values, weights)
    for a, b in itertools.product(range(o), repeat=2):
        per = []
        for wi in range(w):
            wins = [
                1.0 if x > y else 0.5 if x == y else 0.0
                for x in values[wi, a]
                for y in values[wi, b]
            ]
            per.append(np.mean(wins))
        assert got[a, b] == pytest.approx(np.mean(per))
    np.testing.assert_allclose(got + got.T, 1.0)


# --- the stratified bootstrap ------------------------------------------------------------


def test_bootstrap_resamples_within_each_stratum_and_group() -> None:
    s, g, n = 3, 2, 4
    codes = np.arange(s * g * n, dtype=float).reshape(s, g, n, 1)
    counts = np.array([[4, 2], [3, 1], [4, 4]])
    seen: list[np.ndarray] = []

    def statistic(draws: np.ndarray) -> np.ndarray:
        seen.append(draws[..., 0].copy())
        return np.asarray(draws[..., 0].mean(axis=(1, 2, 3)))

    stratified_bootstrap(codes, counts, statistic, n_boot=200, rng=np.random.default_rng(0))
    draws = np.concatenate(seen[1:], axis=0)  # the first call is the point estimate
    for si, gi in itertools.product(range(s), range(g)):
        c = counts[si, gi]
        cell = draws[:, si, gi]
        real = codes[si, gi, :c, 0]
        assert np.isin(cell[:, :c], real).all()  # drawn only from its own units
        np.testing.assert_array_equal(cell[:, c:], codes[si, gi, c:, 0][None].repeat(len(cell), 0))
        if c > 1:
            assert len(np.unique(cell[:, :c])) == c  # every unit can be drawn


@pytest.mark.slow
def test_percentile_interval_coverage_of_a_stratified_mean() -> None:
    """95% intervals of the mean over 4 strata of per-stratum means (true value known):
    coverage within 0.90-0.985 over 300 simulated data sets (MC sd about 1.3%)."""
    rng = np.random.default_rng(7)
    means = np.array([0.0, 1.0, 3.0, -2.0])
    sds = np.array([1.0, 0.5, 2.0, 1.0])
    n = 25
    truth = means.mean()
    hits = 0
    sims = 300

    def statistic(draws: np.ndarray) -> np.ndarray:
        return np.asarray(draws[..., 0, :, 0].mean(axis=-1).mean(axis=-1))

    for _ in range(sims):
        data = rng.normal(means[:, None], sds[:, None], size=(4, n))[:, None, :, None]
        counts = np.full((4, 1), n)
        _, lo, hi, _ = stratified_bootstrap(data, counts, statistic, n_boot=400, rng=rng)
        hits += int(lo <= truth <= hi)
    assert 0.90 <= hits / sims <= 0.985


@pytest.mark.slow
def test_iqm_interval_coverage() -> None:
    """95% intervals of the IQM of a mixture of four uniform workloads: the true IQM comes
    from the mixture's quantile function on a fine grid, not from the estimator."""
    rng = np.random.default_rng(11)
    lows, highs = np.array([0.0, 0.2, 0.5, 0.1]), np.array([1.0, 0.6, 0.9, 1.5])
    # True IQM: mean of the mixture's quantile function over [0.25, 0.75].
    grid = np.linspace(-0.1, 1.6, 200_001)
    cdf = np.mean(
        [np.clip((grid - lo) / (hi - lo), 0, 1) for lo, hi in zip(lows, highs, strict=True)], axis=0
    )
    u = np.linspace(0.25, 0.75, 20_001)
    truth = float(np.mean(np.interp(u, cdf, grid)))
    n, sims, hits = 20, 200, 0

    def statistic(draws: np.ndarray) -> np.ndarray:
        x = draws[..., 0, :, 0]  # (B, W, N)
        return mixture_statistics(x, np.full(x.shape[1:], 1.0 / n))[..., 0]

    for _ in range(sims):
        data = rng.uniform(lows[:, None], highs[:, None], size=(4, n))[:, None, :, None]
        _, lo, hi, _ = stratified_bootstrap(
            data, np.full((4, 1), n), statistic, n_boot=300, rng=rng
        )
        hits += int(lo <= truth <= hi)
    assert 0.88 <= hits / sims <= 0.99


def test_bootstrap_rejects_bad_arguments() -> None:
    units, counts = np.zeros((1, 1, 2, 1)), np.array([[2]])
    with pytest.raises(AnalysisError, match="n_boot"):
        stratified_bootstrap(
            units,
            counts,
            lambda d: d.sum(axis=(1, 2, 3, 4)),
            n_boot=0,
            rng=np.random.default_rng(0),
        )
    with pytest.raises(AnalysisError, match="confidence"):
        stratified_bootstrap(
            units,
            counts,
            lambda d: d.sum(axis=(1, 2, 3, 4)),
            n_boot=5,
            rng=np.random.default_rng(0),
            confidence=1.0,
        )


# --- aggregate_scores on archives --------------------------------------------------------


def _archive(**kw: object) -> xr.Dataset:
    base = dict(workloads=4, optimizers=("sgd", "momentum", "adam"), n_trials=12, seed=3)
    base.update(kw)
    return synthetic_archive(**base)  # type: ignore[arg-type]


def test_point_estimate_is_iqm_of_hand_normalised_selected_values() -> None:
    ds = _archive(planted={"adam": -0.03})
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=50)
    sel = select_best(ds).data["test_value"].transpose("workload", "optimizer").values
    # Errors are minimised: 1 = the best usable test value, 0 = the worst tuned optimizer.
    tv = ds["test_metric"].where(ds["step"] >= 0)
    last = ds["step"].argmax("eval")
    final_test = tv.isel(eval=last)
    usable = ds["status"].astype(str) == Status.COMPLETED.value
    best = final_test.where(usable).min(("optimizer", "trial")).values
    worst_tuned = sel.max(axis=1)
    norm = (worst_tuned[:, None] - sel) / (worst_tuned - best)[:, None]
    for oi, o in enumerate(result.data["optimizer"].values):
        x = norm[:, oi]
        assert float(result.data["value"].sel(optimizer=o, statistic="iqm")) == pytest.approx(
            interquartile_mean(x)
        )
        assert float(result.data["value"].sel(optimizer=o, statistic="mean")) == pytest.approx(
            x.mean()
        )
    np.testing.assert_allclose(result.data["score"].transpose("workload", "optimizer"), norm)


def test_planted_better_optimizer_wins_with_confidence() -> None:
    ds = _archive(planted={"adam": -0.05}, workloads=6)
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=300)
    d = result.data
    adam_iqm = d["lo"].sel(optimizer="adam", statistic="iqm")
    assert float(adam_iqm) > float(d["hi"].sel(optimizer="sgd", statistic="iqm"))
    assert float(d["improvement_lo"].sel(optimizer="adam", other="sgd")) > 0.5
    for r in result.to_json():
        if r["record"] in ("aggregate", "improvement"):
            assert r["lo"] <= r["hi"]


def test_budget_gives_the_best_of_k_distribution() -> None:
    ds = _archive()
    full = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20)
    one = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20, budget=1)
    # One trial per study has a worse (larger) error on average than the selected trial.
    assert float(one.data["tuned_value"].mean()) > float(full.data["tuned_value"].mean())
    # k = 1 without replacement: the expected tuned value is the mean of the trials.
    w, o = "w0", "adam"
    final = ds["test_metric"].sel(workload=w, optimizer=o).isel(eval=-1).values
    assert float(one.data["tuned_value"].sel(workload=w, optimizer=o)) == pytest.approx(
        final.mean()
    )


def test_reference_optimizer_scores_zero() -> None:
    ds = _archive()
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20, reference="sgd")
    np.testing.assert_allclose(result.data["score"].sel(optimizer="sgd"), 0.0, atol=1e-12)
    with pytest.raises(AnalysisError, match="unknown reference"):
        aggregate_scores(ds, rng=np.random.default_rng(0), reference="nope")


def test_diverged_units_count_as_worst_and_a_missing_optimizer_is_reported() -> None:
    ds = _archive(diverged_fraction=0.3)
    ds["status"].loc[{"workload": "w1", "optimizer": "sgd"}] = Status.MISSING.value
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20, budget=2)
    d = result.data
    assert float(d["no_result"].sel(workload="w0", optimizer="sgd")) > 0
    assert float(d["no_result"].sel(workload="w1", optimizer="sgd")) == 1.0
    assert any("sgd has no run on w1" in c for c in result.caveats)
    assert np.isfinite(d["value"]).all()


def test_a_workload_that_cannot_be_normalised_is_left_out_not_fatal() -> None:
    ds = _archive()
    # w2: every optimizer's trials identical -> best equals the worst tuned value.
    for var in ("test_metric", "valid_metric"):
        ds[var].loc[{"workload": "w2"}] = 0.2
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20)
    assert result.workloads == ["w0", "w1", "w3"]
    assert any("w2 left out" in c for c in result.caveats)
    assert all(r["n_workloads"] == 3 for r in result.to_json() if r["record"] == "aggregate")


def test_repeat_units() -> None:
    ds = _archive(repeats={"study": 4}, n_trials=4)
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=50, unit="repeat")
    assert (result.data["units"] == 4).all()
    with pytest.raises(AnalysisError, match="repeat axis"):
        aggregate_scores(_archive(), rng=np.random.default_rng(0), unit="repeat")


# --- published archives -------------------------------------------------------------------

_DEEPOBS = SHARED_ARCHIVES / "deepobs-baselines"
_ALGOPERF = SHARED_ARCHIVES / "algoperf-v05"


@pytest.mark.slow
@pytest.mark.skipif(not _DEEPOBS.is_dir(), reason=f"published archive not present at {_DEEPOBS}")
def test_deepobs_aggregate_runs_on_all_workloads() -> None:
    ds = import_deepobs(_DEEPOBS).dataset
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=200, rule="deepobs-final")
    assert len(result.workloads) == 8
    assert np.isfinite(result.data["value"]).all()


@pytest.mark.slow
@pytest.mark.skipif(not _ALGOPERF.is_dir(), reason=f"published archive not present at {_ALGOPERF}")
def test_algoperf_aggregate_per_study() -> None:
    ds = import_algoperf(_ALGOPERF).dataset
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=100, unit="repeat")
    assert result.workloads
    imp = result.data["improvement"].values
    np.testing.assert_allclose(imp + imp.T, 1.0, atol=1e-9)


def test_repeat_units_weigh_every_repeat_equally() -> None:
    ds = _archive(repeats={"study": 3}, n_trials=4, workloads=2)
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20, unit="repeat")
    per = select_best(ds, repeats="per-repeat").data["test_value"]
    expected = per.mean("study").transpose("workload", "optimizer")
    np.testing.assert_allclose(result.data["tuned_value"].transpose(*expected.dims), expected)
