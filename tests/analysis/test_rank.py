"""Rankings: competition ranks, rank distributions, equivariance, subsets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_analysis import (
    P_BEST_CAVEAT,
    AnalysisError,
    rank_optimizers,
    restrict,
    select_best,
    trial_scores,
)
from optcmp_analysis._budget import best_of_k_draws
from optcmp_analysis._kernels import competition_ranks, exact_rank_probabilities
from optcmp_analysis._rank import rank_values
from optcmp_data import Status
from optcmp_data.testing import synthetic_archive
from tests.analysis.archives import shuffled


def test_competition_ranks() -> None:
    values = np.array([[0.3, 0.1, np.nan, 0.3], [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(competition_ranks(values), [[2, 1, 4, 2], [1, 2, 3, 4]])
    np.testing.assert_array_equal(
        competition_ranks(values.T, axis=0), [[2, 1], [1, 2], [4, 3], [2, 4]]
    )


def test_rank_values_is_direction_aware() -> None:
    values = xr.DataArray([0.2, 0.5, 0.1], dims="optimizer")
    assert list(rank_values(values, "min").values) == [2, 3, 1]
    assert list(rank_values(values, "max").values) == [2, 1, 3]


def test_planted_best_optimizer_wins() -> None:
    ds = synthetic_archive(
        workloads=2, n_trials=20, planted={"adam": -0.05, "sgd": 0.05}, noise=0.002, seed=3
    )
    r = rank_optimizers(ds, n_boot=1000, rng=np.random.default_rng(0))
    d = r.data
    assert (d["rank"].sel(optimizer="adam") == 1).all()
    assert (d["rank"].sel(optimizer="sgd") == 6).all()
    assert float(d["p_best"].sel(optimizer="adam").min()) > 0.95
    np.testing.assert_allclose(d["rank_probability"].sum("place"), 1.0)
    assert float(d["mean_rank"].min()) >= 1.0
    assert float(d["mean_rank"].max()) <= 6.0
    # P(best) rises with the budget for the planted winner.
    by_k = d["p_best_by_k"].sel(optimizer="adam").values
    assert (by_k[:, -1] >= by_k[:, 0]).all()


def test_direction_max() -> None:
    ds = synthetic_archive(
        n_trials=12, planted={"adam": -0.05}, noise=0.002, direction="max", seed=4
    )
    r = rank_optimizers(ds, n_boot=200, rng=np.random.default_rng(0))
    assert int(r.data["rank"].sel(optimizer="adam").item()) == 1


@settings(max_examples=20)  # each example builds an archive and bootstraps it
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 100))
def test_equivariant_under_relabelling_and_trial_permutation(seed: int, perm_seed: int) -> None:
    ds = synthetic_archive(n_trials=8, diverged_fraction=0.2, workloads=2, seed=seed)
    permuted = shuffled(ds, perm_seed)
    a = rank_optimizers(ds, n_boot=200, rng=np.random.default_rng(1)).data
    b = rank_optimizers(permuted, n_boot=200, rng=np.random.default_rng(1)).data
    b = b.sel(optimizer=a["optimizer"])
    for name in ("rank", "mean_rank", "p_best", "rank_probability", "p_best_by_k"):
        # Exact probabilities are sums in another order: equal up to rounding.
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=0, atol=1e-12)


def test_renaming_optimizers_permutes_point_ranks() -> None:
    ds = synthetic_archive(n_trials=8, seed=21)
    names = [str(o) for o in ds["optimizer"].values]
    # New names sort in the reverse order of the old ones, so a rank tied to a position
    # (in the archive or in sorted order) rather than to its label would move.
    new = {n: f"{len(names) - i:02d}_{n}" for i, n in enumerate(sorted(names))}
    renamed = ds.assign_coords(optimizer=[new[n] for n in names])
    a = rank_optimizers(ds, n_boot=50, rng=np.random.default_rng(0)).data["rank"]
    b = rank_optimizers(renamed, n_boot=50, rng=np.random.default_rng(0)).data["rank"]
    assert sorted(new.values()) == [new[n] for n in reversed(sorted(names))]
    for n in names:
        np.testing.assert_array_equal(
            a.sel(optimizer=n).values, b.sel(optimizer=new[n]).values, err_msg=n
        )


@settings(max_examples=20)  # each example builds an archive and bootstraps it
@given(
    seed=st.integers(0, 10_000),
    subset=st.sets(
        st.sampled_from(["adam", "momentum", "nadam", "nesterov", "rmsprop", "sgd"]), min_size=2
    ),
)
def test_subset_ranking_is_the_restricted_full_ranking(seed: int, subset: set[str]) -> None:
    ds = synthetic_archive(n_trials=8, diverged_fraction=0.2, seed=seed)
    full = rank_optimizers(ds, n_boot=100, rng=np.random.default_rng(3))
    part = rank_optimizers(
        restrict(ds, optimizers=sorted(subset)), n_boot=100, rng=np.random.default_rng(3)
    )
    names = list(part.data["optimizer"].values)
    expected = rank_values(full.data["value"].sel(optimizer=names), "min")
    np.testing.assert_array_equal(part.data["rank"].values, expected.values)
    # The order of the full ranking, restricted to the subset, is the subset's order.
    full_rank = full.data["rank"].sel(optimizer=names).values[0]
    part_rank = part.data["rank"].values[0]
    for i in range(len(names)):
        for j in range(len(names)):
            assert (full_rank[i] < full_rank[j]) == (part_rank[i] < part_rank[j])
    # Every bootstrap replicate is the same study for an optimizer in both analyses.
    draws_full = best_of_k_draws(trial_scores(ds), 4, n_boot=50, root=9)
    draws_part = best_of_k_draws(trial_scores(restrict(ds, optimizers=names)), 4, n_boot=50, root=9)
    np.testing.assert_array_equal(draws_full.sel(optimizer=names).values, draws_part.values)


def test_two_optimizer_p_best_is_the_pairwise_win_rate() -> None:
    ds = synthetic_archive(optimizers=("adam", "sgd"), n_trials=10, seed=2)
    scores = trial_scores(ds)
    r = rank_optimizers(ds, n_boot=500, rng=np.random.default_rng(11), method="bootstrap")
    root = int(np.random.default_rng(11).integers(0, 2**63 - 1))
    draws = best_of_k_draws(scores, 10, n_boot=500, root=root)
    a, s = draws.sel(optimizer="adam").values[0], draws.sel(optimizer="sgd").values[0]
    assert float(r.data["p_best"].sel(optimizer="adam").item()) == pytest.approx(np.mean(a <= s))


def test_point_rank_uses_selected_test_values() -> None:
    ds = synthetic_archive(workloads=2, n_trials=6, seed=5)
    r = rank_optimizers(ds, n_boot=20, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(r.data["value"].values, select_best(ds).data["test_value"].values)


def test_errors_and_json() -> None:
    ds = synthetic_archive(n_trials=4, seed=1)
    with pytest.raises(AnalysisError, match="larger than the trial count"):
        rank_optimizers(ds, budget=5, rng=np.random.default_rng(0))
    r = rank_optimizers(ds, budget=2, n_boot=30, rng=np.random.default_rng(0))
    rec = r.to_json()[0]
    assert {"workload", "optimizer", "k", "rank", "mean_rank", "p_best", "p_rank_1"} <= set(rec)
    assert rec["k"] == 2
    assert set(rec["p_best_by_k"]) == {"1", "2", "4"}
    assert r.to_dataset().attrs["budget"] == 2


def test_unequal_counts_rank_at_the_smallest_count_unless_asked() -> None:
    ds = synthetic_archive(n_trials=12, seed=7, optimizers=["sgd", "adam"]).copy(deep=True)
    o = [str(x) for x in ds["optimizer"].values].index("sgd")
    ds["status"][0, o, 3:] = Status.MISSING.value
    ds["step"][0, o, 3:] = -1
    r = rank_optimizers(ds, rng=np.random.default_rng(0))
    assert r.budget == 3
    assert list(r.data["k"].values) == [1, 2, 3]
    assert sum("trial counts differ between cells (3 to 12" in c for c in r.caveats) == 1
    with pytest.raises(AnalysisError, match="larger than the 3 trials of sgd on w0"):
        rank_optimizers(ds, budget=8, rng=np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="--with-replacement"):
        rank_optimizers(ds, budgets=[1, 8], rng=np.random.default_rng(0))
    wide = rank_optimizers(ds, budget=8, rng=np.random.default_rng(0), with_replacement=True)
    assert wide.budget == 8
    assert wide.to_dataset().attrs["with_replacement"] == 1
    assert any("resampled with replacement past its count" in c for c in wide.caveats)


# --- exact rank probabilities --------------------------------------------------------------


def test_exact_rank_kernel_matches_enumeration() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        o, n = 3, 3
        v = rng.integers(0, 3, size=(o, n)).astype(float)  # ties on purpose
        v[rng.integers(0, o), rng.integers(0, n)] = np.nan  # a no-result atom
        p = rng.random((o, n))
        p /= p.sum(axis=1, keepdims=True)
        brute = np.zeros((o, o))
        for combo in itertools.product(range(n), repeat=o):
            weight = np.prod([p[i, combo[i]] for i in range(o)])
            x = np.array([v[i, combo[i]] for i in range(o)])
            for i in range(o):
                if np.isfinite(x[i]):
                    brute[i, int(np.sum(np.isfinite(x) & (x < x[i])))] += weight
        np.testing.assert_allclose(exact_rank_probabilities(v, p), brute, atol=1e-12)


def _brute_force_ranks(ds: xr.Dataset, k: int) -> np.ndarray:
    """Every optimizer draws k trials with replacement (all N^k ordered draws, equally
    likely) and keeps the usable one with the lowest validation error (ties: lowest trial);
    ranks among the optimizers with a result. Returns P(rank) (O, O) for workload 0."""
    w = ds.isel(workload=0)
    last = w["step"].argmax("eval")
    valid = w["valid_metric"].isel(eval=last).values  # (O, N)
    test = w["test_metric"].isel(eval=last).values
    ok = w["status"].astype(str).values == Status.COMPLETED.value
    n_opt, n = valid.shape
    outcomes = []  # per optimizer: list of test values (NaN: no result), each 1/N^k
    for o in range(n_opt):
        out = []
        for draw in itertools.product(range(n), repeat=k):
            usable = [t for t in draw if ok[o, t]]
            if not usable:
                out.append(np.nan)
                continue
            best = min(usable, key=lambda t: (valid[o, t], t))
            out.append(test[o, best])
        outcomes.append(out)
    probs = np.zeros((n_opt, n_opt))
    total = n**k
    for combo in itertools.product(*outcomes):
        x = np.array(combo)
        for i in range(n_opt):
            if np.isfinite(x[i]):
                probs[i, int(np.sum(np.isfinite(x) & (x < x[i])))] += 1.0 / total**n_opt
    return probs


def test_exact_rank_distribution_matches_brute_force_on_an_archive() -> None:
    ds = synthetic_archive(
        optimizers=("adam", "sgd", "momentum"), n_trials=3, diverged_fraction=0.3, seed=8
    )
    r = rank_optimizers(ds, budget=2, rng=np.random.default_rng(0))
    got = r.data["rank_probability"].isel(workload=0).transpose("optimizer", "place").values
    np.testing.assert_allclose(got, _brute_force_ranks(ds, 2), atol=1e-12)
    no_result = r.data["no_result"].isel(workload=0).values
    np.testing.assert_allclose(no_result, 1.0 - got.sum(axis=1), atol=1e-12)


def test_exact_agrees_with_the_bootstrap() -> None:
    ds = synthetic_archive(workloads=2, n_trials=10, diverged_fraction=0.2, seed=12)
    exact = rank_optimizers(ds, budget=3, rng=np.random.default_rng(0)).data
    boot = rank_optimizers(
        ds, budget=3, n_boot=20_000, rng=np.random.default_rng(0), method="bootstrap"
    ).data
    # 20000 draws: Monte Carlo sd at most 0.0036 per probability.
    np.testing.assert_allclose(exact["rank_probability"], boot["rank_probability"], atol=0.02)
    np.testing.assert_allclose(exact["no_result"], boot["no_result"], atol=0.02)


def test_no_usable_trial_means_no_rank_and_other_workloads_unaffected() -> None:
    ds = synthetic_archive(workloads=2, optimizers=("adam", "sgd"), n_trials=6, seed=4)
    ds["status"].loc[{"workload": "w0", "optimizer": "adam"}] = Status.DIVERGED.value
    r = rank_optimizers(ds, rng=np.random.default_rng(0))
    d = r.data
    adam = d.sel(workload="w0", optimizer="adam")
    assert np.isnan(float(adam["rank"]))
    assert float(adam["p_best"]) == 0.0
    assert float(adam["no_result"]) == 1.0
    assert np.isnan(float(adam["mean_rank"]))
    assert float(d["p_best"].sel(workload="w0", optimizer="sgd")) == pytest.approx(1.0)
    assert float(d["rank"].sel(workload="w0", optimizer="sgd")) == 1.0
    # w1 is ranked as if w0 did not exist.
    alone = rank_optimizers(ds.sel(workload=["w1"]), rng=np.random.default_rng(0)).data
    np.testing.assert_allclose(d["p_best"].sel(workload="w1"), alone["p_best"].isel(workload=0))
    rec = next(x for x in r.to_json() if x["workload"] == "w0" and x["optimizer"] == "adam")
    assert rec["rank"] is None
    assert rec["no_result"] == 1.0


def test_no_result_share_by_k_is_the_closed_form() -> None:
    ds = synthetic_archive(n_trials=8, diverged_fraction=0.4, seed=6)
    r = rank_optimizers(ds, rng=np.random.default_rng(0))
    usable = (ds["status"].astype(str) == Status.COMPLETED.value).sum("trial")
    for k in r.data["k"].values:
        expected = ((8 - usable) / 8) ** int(k)
        np.testing.assert_allclose(
            r.data["no_result_by_k"].sel(k=k).transpose(*expected.dims), expected, atol=1e-12
        )


@pytest.mark.slow
def test_identical_optimizers_often_give_one_p_best_near_one() -> None:
    """The caveat's number: pairs of identical optimizers, 16 trials, k = 16."""
    hits = 0
    for seed in range(100):
        ds = synthetic_archive(optimizers=("a", "b"), n_trials=16, noise=0.002, seed=seed)
        r = rank_optimizers(ds, rng=np.random.default_rng(0))
        hits += float(r.data["p_best"].max()) >= 0.95
        assert P_BEST_CAVEAT in r.caveats
    assert hits == 17
