"""Aggregates across workloads (rliable-style): IQM, optimality gap, probability of
improvement, the stratified bootstrap and its coverage, normalisation, and the published
archives."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_analysis import (
    AGGREGATE_STATISTICS,
    AnalysisError,
    Normalisation,
    ReferenceScores,
    Unit,
    aggregate_scores,
    restrict,
    select_best,
)
from optcmp_analysis._aggregate import (
    MIN_INTERVAL_WORKLOADS,
    interquartile_mean,
    mixture_statistics,
    optimality_gap,
    probability_of_improvement,
    resolve_unit,
    stratified_bootstrap,
)
from optcmp_data import ConfigError, Status
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
    bootstrap = functools.partial(
        stratified_bootstrap,
        np.zeros((1, 1, 2, 1)),
        np.array([[2]]),
        lambda d: d.sum(axis=(1, 2, 3, 4)),
        rng=np.random.default_rng(0),
    )
    with pytest.raises(AnalysisError, match="n_boot"):
        bootstrap(n_boot=0)
    with pytest.raises(AnalysisError, match="confidence"):
        bootstrap(n_boot=5, confidence=1.0)


# --- aggregate_scores on archives --------------------------------------------------------


def _archive(**kw: object) -> xr.Dataset:
    base = dict(workloads=4, optimizers=("sgd", "momentum", "adam"), n_trials=12, seed=3)
    base.update(kw)
    return synthetic_archive(**base)  # type: ignore[arg-type]


def test_point_estimate_is_iqm_of_hand_normalised_selected_values() -> None:
    ds = _archive(planted={"adam": -0.03})
    result = aggregate_scores(
        ds, rng=np.random.default_rng(0), n_boot=50, normalisation="minmax-compared"
    )
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
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=300, budget=6)
    assert result.interval_note is None
    d = result.data
    adam_iqm = d["lo"].sel(optimizer="adam", statistic="iqm")
    assert float(adam_iqm) > float(d["hi"].sel(optimizer="sgd", statistic="iqm"))
    assert float(d["improvement_lo"].sel(optimizer="adam", other="sgd")) > 0.5
    assert bool(d["improvement_clear"].sel(optimizer="adam", other="sgd"))
    assert not bool(d["improvement_clear"].sel(optimizer="sgd", other="adam"))
    for r in result.to_json():
        if r["record"] in ("aggregate", "improvement"):
            assert r["lo"] <= r["hi"]
        if r["record"] == "improvement":
            assert r["p_holm"] >= r["p"]
            assert r["holm_family"] == 3


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
    minmax = "minmax-compared"
    result = aggregate_scores(
        ds, rng=np.random.default_rng(0), n_boot=20, reference="sgd", normalisation=minmax
    )
    np.testing.assert_allclose(result.data["score"].sel(optimizer="sgd"), 0.0, atol=1e-12)
    assert any("change when an optimizer is added" in c for c in result.caveats)
    with pytest.raises(AnalysisError, match="unknown reference"):
        aggregate_scores(ds, rng=np.random.default_rng(0), reference="nope", normalisation=minmax)
    with pytest.raises(AnalysisError, match="minmax-compared only"):
        aggregate_scores(ds, rng=np.random.default_rng(0), reference="sgd")


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
    result = aggregate_scores(
        ds, rng=np.random.default_rng(0), n_boot=20, normalisation="minmax-compared"
    )
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
    # Selection on the test split: no interval at any budget, and the reason.
    assert result.interval_note is not None
    assert "select trials on the test values themselves" in result.interval_note
    assert np.isnan(result.data["lo"]).all()
    with pytest.raises(AnalysisError, match="selection_repeats"):
        aggregate_scores(ds, rng=np.random.default_rng(0), unit="repeat")


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


# --- fixed anchors, intervals, multiplicity -----------------------------------------------


def test_targets_anchor_the_untrained_value_at_0_and_the_target_at_1() -> None:
    ds = _archive(direction="max", workloads=2)
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20)
    assert result.normalisation is Normalisation.TARGETS
    first = ds["test_metric"].isel(eval=0).where(ds["step"].isel(eval=0) == 0)
    zero = first.median(("optimizer", "trial")).values
    one = ds["valid_target"].values
    np.testing.assert_allclose(result.data["zero_value"], zero)
    np.testing.assert_allclose(result.data["one_value"], one)
    tuned = result.data["tuned_value"].transpose("workload", "optimizer").values
    np.testing.assert_allclose(
        result.data["score"].transpose("workload", "optimizer"),
        (tuned - zero[:, None]) / (one - zero)[:, None],
    )
    # Fixed anchors: adding or removing an optimizer leaves the others' scores unchanged.
    fewer = aggregate_scores(
        restrict(ds, optimizers=["sgd", "adam"]), rng=np.random.default_rng(0), n_boot=20
    )
    np.testing.assert_allclose(
        fewer.data["score"].sel(optimizer="adam"), result.data["score"].sel(optimizer="adam")
    )


def test_a_workload_without_a_target_is_left_out() -> None:
    ds = _archive()
    ds["valid_target"].loc[{"workload": "w1"}] = np.nan
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20)
    assert result.workloads == ["w0", "w2", "w3"]
    assert any("no target for w1" in c for c in result.caveats)
    ds["valid_target"][:] = np.nan
    with pytest.raises(AnalysisError, match="no workload can be normalised"):
        aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20)


def test_reference_scores_from_a_file(tmp_path: Path) -> None:
    ds = _archive(workloads=2)
    path = tmp_path / "ref.toml"
    path.write_text('[w0]\nzero = 0.5\none = 0.1\n\n["w1"]\nzero = 1.0\none = 0.0\n')
    scores = ReferenceScores.from_toml(path)
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20, reference_scores=scores)
    assert result.normalisation is Normalisation.REFERENCE
    tuned = result.data["tuned_value"].sel(workload="w0").values
    np.testing.assert_allclose(result.data["score"].sel(workload="w0"), (tuned - 0.5) / (0.1 - 0.5))
    for text, match in [
        ("[w0]\nzero = 1\n", "one must be a number"),
        ("[w0]\nzero = 1\none = 1\n", "zero and one are equal"),
        ("[w0]\nzero = 1\none = 2\nmid = 3\n", "unknown field 'mid'"),
        ("w0 = 3\n", "must be a table"),
        ("[w0\n", "not a TOML file"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=match):
            ReferenceScores.from_toml(path)


def test_identity_needs_metrics_to_maximise() -> None:
    with pytest.raises(AnalysisError, match="larger must be better"):
        aggregate_scores(_archive(), rng=np.random.default_rng(0), normalisation="identity")
    ds = _archive(direction="max", workloads=2)
    result = aggregate_scores(ds, rng=np.random.default_rng(0), normalisation="identity")
    np.testing.assert_allclose(result.data["score"], result.data["tuned_value"])


def test_the_median_is_the_standard_median() -> None:
    even = np.array([[[0.0, 1.0, 2.0, 10.0]]])
    w = np.full(even.shape, 0.25)
    assert mixture_statistics(even, w)[0, AGGREGATE_STATISTICS.index("median")] == 1.5
    odd = np.array([[[0.0, 1.0, 7.0]]])
    assert mixture_statistics(odd, np.full(odd.shape, 1 / 3))[0, 2] == 1.0
    # Eight workloads of one atom each: the average of the 4th and 5th values.
    eight = np.arange(8.0)[:, None]
    assert mixture_statistics(eight, np.ones_like(eight))[2] == pytest.approx(np.median(eight))


def test_no_interval_over_fewer_workloads_than_stated() -> None:
    ds = _archive(workloads=MIN_INTERVAL_WORKLOADS - 1, planted={"adam": -0.05})
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=50, budget=4)
    assert result.interval_note is not None
    assert f"fewer than {MIN_INTERVAL_WORKLOADS}" in result.interval_note
    assert np.isnan(result.data["lo"]).all()
    assert not result.data["improvement_clear"].any()
    records = [r for r in result.to_json() if r["record"] in ("aggregate", "improvement")]
    assert all(r["lo"] is None and r["hi"] is None for r in records)
    assert all(r["value"] is not None for r in records)


def test_no_interval_at_the_full_budget_and_one_at_half() -> None:
    ds = _archive()
    full = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=50)
    assert full.budget == 12
    assert full.interval_note is not None
    assert "k = 12 of 12" in full.interval_note
    assert "--budget 6" in full.interval_note
    half = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=50, budget=6)
    assert half.interval_note is None
    assert np.isfinite(half.data["lo"]).all()


def test_unequal_counts_default_to_the_smallest() -> None:
    ds = _archive()
    ds["status"].loc[{"workload": "w0", "optimizer": "sgd"}] = np.where(
        np.arange(12) < 4, Status.COMPLETED.value, Status.MISSING.value
    )
    ds["step"].loc[{"workload": "w0", "optimizer": "sgd", "trial": list(range(4, 12))}] = -1
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20)
    assert result.budget == 4
    assert sum("trial counts differ between cells (4 to 12)" in c for c in result.caveats) == 1
    with pytest.raises(AnalysisError, match="larger than the 4 trials of sgd on w0"):
        aggregate_scores(ds, rng=np.random.default_rng(0), budget=8)
    repl = aggregate_scores(
        ds, rng=np.random.default_rng(0), n_boot=20, budget=8, with_replacement=True
    )
    assert repl.interval_note is not None
    assert "with replacement" in repl.interval_note


def test_unit_auto_picks_repeats_where_each_is_a_study() -> None:
    assert resolve_unit(_archive(), "auto") is Unit.TRIAL
    assert resolve_unit(_archive(repeats={"study": 3}, n_trials=4), "auto") is Unit.REPEAT
    ds = _archive(repeats={"seed": 3}, n_trials=4)
    ds.attrs["selection_repeats"] = "seed=0"
    assert resolve_unit(ds, "auto") is Unit.TRIAL
    with pytest.raises(AnalysisError, match="whole tuning study"):
        aggregate_scores(ds, rng=np.random.default_rng(0), unit="repeat")


def test_no_interval_where_trials_are_selected_on_the_test_values() -> None:
    ds = _archive(selection_split="test")
    result = aggregate_scores(ds, rng=np.random.default_rng(0), n_boot=20, budget=6)
    assert result.interval_note is not None
    assert "w0, w1, w2 ..." in result.interval_note
    # Selection on the training loss is apart from the test values: intervals again.
    train = aggregate_scores(
        ds, rng=np.random.default_rng(0), n_boot=20, budget=6, rule="final-train-loss"
    )
    assert train.interval_note is None
