"""Inclusion consistency: pairs from the taxonomy, the estimator, signs, Holm, verdicts,
rules, and the stored-space check."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from optcmp_analysis import (
    AnalysisError,
    InclusionResult,
    Verdict,
    inclusion_consistency,
    restrict,
)
from optcmp_analysis._estimator import BUDGET_RULE, dodge_weights, expected_best_of_k
from optcmp_data import Inclusion, Taxonomy
from optcmp_data.testing import synthetic_archive


def _verdict(result: InclusionResult, rule: str, special: str, general: str, workload: str) -> str:
    for rec in result.to_json():
        if (rec["rule"], rec["special"], rec["general"], rec["workload"]) == (
            rule,
            special,
            general,
            workload,
        ):
            return str(rec["verdict"])
    raise AssertionError("pair not found")


def _brute_expected_best(score: list[float], value: list[float], k: int) -> float:
    """Mean over every k-subset with a usable trial (finite score) of the value of its
    best-scored trial; trials tied at the best score are selected at random: the mean of
    their values (the one tie rule)."""
    subsets = [
        sub
        for sub in itertools.combinations(range(len(score)), k)
        if any(math.isfinite(score[i]) for i in sub)
    ]
    total = 0.0
    for sub in subsets:
        best = min(score[i] for i in sub)
        tied = [value[i] for i in sub if score[i] == best]
        total += sum(tied) / len(tied)
    return total / len(subsets)


@given(
    st.lists(st.floats(-5, 5), min_size=1, max_size=7),
    st.data(),
)
def test_dodge_weights_match_the_subset_average(score: list[float], data: st.DataObject) -> None:
    n = len(score)
    k = data.draw(st.integers(1, n))
    value = data.draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n))
    got = expected_best_of_k(
        np.array(score),
        np.array(value),
        np.ones(n, dtype=bool),
        np.ones(n, dtype=bool),
        k,
    )
    assert float(got) == pytest.approx(_brute_expected_best(score, value, k), abs=1e-9)
    w = dodge_weights(n, k)
    assert w.sum() == pytest.approx(1.0)
    # Counted from the worst trial (i = n - j), the weight is C(i - 1, k - 1) / C(n, k).
    i = n - np.arange(n)
    expected = [math.comb(int(x) - 1, k - 1) / math.comb(n, k) for x in i]
    np.testing.assert_allclose(w, expected, atol=1e-12)


def test_unusable_trials_count_in_k_but_never_give_the_result() -> None:
    score = np.array([0.1, np.nan, np.nan, 0.3])
    value = np.array([1.0, np.nan, 7.0, 3.0])
    usable = np.array([True, False, False, True])
    present = np.ones(4, dtype=bool)
    got = expected_best_of_k(score, value, usable, present, 1)
    assert float(got) == pytest.approx((1.0 + 3.0) / 2)
    # k = 2: of the 6 pairs, {1, 2} has no result; the others select 1, 1, 1, 3, 3.
    got = expected_best_of_k(score, value, usable, present, 2)
    assert float(got) == pytest.approx((1.0 + 1.0 + 1.0 + 3.0 + 3.0) / 5)


def test_default_pairs_follow_the_transitive_taxonomy() -> None:
    ds = synthetic_archive(n_trials=6, seed=1)
    result = inclusion_consistency(ds, n_boot=50, rng=np.random.default_rng(0))
    pairs = set(zip(result.data["special"].values, result.data["general"].values, strict=True))
    assert pairs == {
        ("sgd", "momentum"),
        ("sgd", "nesterov"),
        ("sgd", "rmsprop"),
        ("sgd", "adam"),
        ("sgd", "nadam"),
        ("momentum", "rmsprop"),
        ("momentum", "adam"),
        ("nesterov", "nadam"),
    }
    assert list(result.data["rule"].values) == ["final-valid", "final-train-loss"]
    assert result.budget is None
    assert (result.data["k"] == 1).all()  # default: max(1, floor(6 / 4))
    assert result.to_json()[0]["budget_rule"] == BUDGET_RULE


@pytest.mark.parametrize("direction", ["min", "max"])
def test_planted_violation_and_consistency(direction: str) -> None:
    ds = synthetic_archive(
        workloads=2,
        optimizers=("sgd", "momentum", "adam"),
        n_trials=20,
        planted={"adam": 0.08, "sgd": 0.04},
        noise=0.005,
        direction=direction,
        seed=7,
    )
    result = inclusion_consistency(ds, rng=np.random.default_rng(1), margin=0.02)
    for w in ("w0", "w1"):
        assert _verdict(result, "final-valid", "momentum", "adam", w) == Verdict.VIOLATED
        assert _verdict(result, "final-valid", "sgd", "adam", w) == Verdict.VIOLATED
        assert _verdict(result, "final-valid", "sgd", "momentum", w) == Verdict.CONSISTENT
    d = result.data.sel(rule="final-valid")
    pair = int(
        np.flatnonzero((d["special"].values == "momentum") & (d["general"].values == "adam"))[0]
    )
    # Positive means the general optimizer is worse, whatever the metric's direction.
    assert (d["difference"].isel(pair=pair) > 0.03).all()
    assert (d["lo"].isel(pair=pair) > 0).all()
    assert (d["p_general_not_worse"].isel(pair=pair) < 0.5).all()
    assert str(d["pair_verdict"].isel(pair=pair).values) == Verdict.VIOLATED
    # The default budget: a quarter of the trials, with a test.
    scores = result.data.sel(rule="final-valid")
    assert (scores["k"] == 5).all()
    assert bool(scores["tested"].all())


def test_at_k_equal_n_the_difference_is_descriptive() -> None:
    ds = synthetic_archive(
        workloads=1, optimizers=("sgd", "adam"), n_trials=8, planted={"adam": 0.08}, seed=7
    )
    result = inclusion_consistency(
        ds, budget=8, n_boot=99, rng=np.random.default_rng(1), rules=["final-valid"]
    )
    rec = result.to_json()[0]
    assert rec["k"] == 8
    assert not rec["tested"]
    assert rec["verdict"] == Verdict.NOT_TESTED
    assert rec["difference"] > 0
    assert rec["p_value"] is None
    assert rec["lo"] is None
    assert rec["hi"] is None
    assert "at k = 8 of 8 trials" in rec["verdict_text"]
    assert any("without a test" in c for c in result.caveats)


def test_holm_over_pairs_and_workloads() -> None:
    ds = synthetic_archive(workloads=3, n_trials=12, planted={"adam": 0.02}, seed=3)
    result = inclusion_consistency(ds, budget=5, n_boot=500, rng=np.random.default_rng(2))
    d = result.data
    # One family over both rules, all pairs and workloads.
    p = d["p_value"].values.ravel()
    _, expected, _, _ = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(d["p_adjusted"].values.ravel(), expected)
    assert result.n_tests == p.size == result.to_json()[0]["holm_family"]
    assert (d["p_adjusted"] >= d["p_value"]).all()
    violated = d["verdict"] == Verdict.VIOLATED
    assert bool(((d["p_adjusted"] < 0.05) == violated).all())
    # The interval agrees with the tests: lo >= 0 iff p < alpha; consistent iff the
    # non-inferiority test rejects, and then hi is at most the margin.
    assert bool(((d["lo"] > 0) == (d["p_value"] < 0.05)).all())
    assert bool(((d["hi"] < d["margin"]) == (d["p_noninferior"] < 0.05)).all())
    consistent = d["verdict"] == Verdict.CONSISTENT
    assert bool((~consistent | (d["hi"] <= d["margin"] + 1e-12)).all())
    assert bool((consistent == (d["p_noninferior_adjusted"] < 0.05) & ~violated).all())
    _, expected_ni, _, _ = multipletests(d["p_noninferior"].values.ravel(), method="holm")
    np.testing.assert_allclose(d["p_noninferior_adjusted"].values.ravel(), expected_ni)
    assert bool(d["tested"].all())  # k = 5 < 10 trials


def test_user_taxonomy_and_family_mapping() -> None:
    ds = synthetic_archive(
        optimizers=("adam-wide", "adam-lr", "plain"),
        families={"adam-wide": "adam", "adam-lr": "adam", "plain": "sgd"},
        n_trials=6,
        seed=2,
    )
    result = inclusion_consistency(ds, n_boot=50, rng=np.random.default_rng(0))
    pairs = set(zip(result.data["special"].values, result.data["general"].values, strict=True))
    assert pairs == {("plain", "adam-wide"), ("plain", "adam-lr")}
    mine = Taxonomy((Inclusion("adam", "sgd", "made up"),))
    result = inclusion_consistency(ds, n_boot=50, rng=np.random.default_rng(0), taxonomy=mine)
    pairs = set(zip(result.data["special"].values, result.data["general"].values, strict=True))
    assert pairs == {("adam-wide", "plain"), ("adam-lr", "plain")}
    with pytest.raises(AnalysisError, match="no inclusion pair"):
        inclusion_consistency(
            restrict(ds, optimizers=["plain"]), n_boot=50, rng=np.random.default_rng(0)
        )


def test_rule_without_usable_trials_is_left_out_with_a_caveat() -> None:
    ds = synthetic_archive(optimizers=("sgd", "momentum"), n_trials=6, seed=2).copy(deep=True)
    ds["train_loss"][:] = np.nan
    result = inclusion_consistency(ds, n_boot=50, rng=np.random.default_rng(0))
    assert list(result.data["rule"].values) == ["final-valid"]
    assert any("final-train-loss" in c for c in result.caveats)
    with pytest.raises(AnalysisError, match="no usable trial"):
        inclusion_consistency(
            ds, n_boot=50, rng=np.random.default_rng(0), rules=["final-train-loss"]
        )


def test_budget_errors_and_json() -> None:
    ds = synthetic_archive(optimizers=("sgd", "momentum"), n_trials=4, seed=2)
    with pytest.raises(AnalysisError, match="larger than the trial count"):
        inclusion_consistency(ds, budget=5, rng=np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="alpha"):
        inclusion_consistency(ds, alpha=1.5, rng=np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="margin"):
        inclusion_consistency(ds, margin=-1.0, rng=np.random.default_rng(0))
    result = inclusion_consistency(ds, budget=3, n_boot=100, rng=np.random.default_rng(0))
    records = result.to_json()
    assert len(records) == 2  # one pair x one workload x two rules
    keys = {
        "rule",
        "workload",
        "special",
        "general",
        "k",
        "difference",
        "lo",
        "hi",
        "p_value",
        "p_adjusted",
        "verdict",
        "reason",
        "margin",
        "p_general_not_worse",
    }
    assert keys <= set(records[0])
    assert records[0]["verdict"] in {v.value for v in Verdict}
    assert records[0]["k"] == 3
    again = inclusion_consistency(ds, budget=3, n_boot=100, rng=np.random.default_rng(0))
    assert again.to_json() == records


def test_estimate_is_the_unbiased_expected_best_of_k() -> None:
    ds = synthetic_archive(
        optimizers=("sgd", "momentum"), n_trials=6, diverged_fraction=0.3, seed=11
    )
    result = inclusion_consistency(
        ds, budget=2, n_boot=50, rng=np.random.default_rng(0), rules=["final-valid"]
    )
    rec = result.to_json()[0]
    per_opt = {}
    for o in ("sgd", "momentum"):
        cell = ds.sel(workload="w0", optimizer=o)
        ok = (cell["status"].values == "completed") & np.isfinite(
            cell["valid_metric"].values[:, -1]
        )
        score = np.where(ok, cell["valid_metric"].values[:, -1], np.inf)
        test = cell["test_metric"].values[:, -1]
        per_opt[o] = (score, test, ok)
    for o, key in (("sgd", "special_expected"), ("momentum", "general_expected")):
        score, test, ok = per_opt[o]
        assert rec[key] == pytest.approx(_brute_expected_best(list(score), list(test), 2))
        n_bad = int((~ok).sum())
        no_result = math.comb(n_bad, 2) / math.comb(6, 2)
        side = "special" if o == "sgd" else "general"
        assert rec[f"no_result_{side}"] == pytest.approx(no_result)
    assert rec["difference"] == pytest.approx(rec["general_expected"] - rec["special_expected"])


def test_stored_spaces_decide_what_is_included() -> None:
    ds = synthetic_archive(optimizers=("sgd", "momentum", "adam"), n_trials=6, seed=4)
    ds = ds.copy(deep=True)
    hp = [str(h) for h in ds["hparam"].values]
    m, o = hp.index("momentum"), list(ds["optimizer"].values).index("momentum")
    ds["space_scale"][:, o, m] = "fixed"
    ds["space_low"][:, o, m] = 0.9
    ds["space_high"][:, o, m] = 0.9
    result = inclusion_consistency(ds, n_boot=50, rng=np.random.default_rng(0))
    by_pair = {(r["special"], r["general"]): r for r in result.to_json()}
    rec = by_pair[("sgd", "momentum")]
    assert rec["verdict"] == Verdict.NOT_INCLUDED
    assert rec["reason"] == "momentum fixed at 0.9 in momentum's space; sgd needs momentum = 0"
    assert rec["p_adjusted"] is None
    assert rec["lo"] is None
    assert by_pair[("sgd", "adam")]["reason"] == ""
    # Adam's epsilon must reach the stated threshold for its Momentum limit.
    e, a = hp.index("epsilon"), list(ds["optimizer"].values).index("adam")
    ds["space_high"][:, a, e] = 1.0
    result = inclusion_consistency(ds, n_boot=50, rng=np.random.default_rng(0))
    by_pair = {(r["special"], r["general"]): r for r in result.to_json()}
    assert "epsilon in [1e-10, 1] in adam's space" in by_pair[("momentum", "adam")]["reason"]
    assert "at least 100" in by_pair[("sgd", "adam")]["reason"]
    # Not-included cells are not tests: the Holm family leaves them out.
    assert result.n_tests == int((result.data["verdict"] != Verdict.NOT_INCLUDED).sum())


# The published archives sit next to the worktrees (tests/data/archive_trees.py).
_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "archives"
DEEPOBS = next(
    (
        p / "deepobs-baselines"
        for p in (_SHARED, Path("/work/shared/archives"))
        if (p / "deepobs-baselines").is_dir()
    ),
    None,
)


@pytest.mark.slow
@pytest.mark.skipif(DEEPOBS is None, reason="DeepOBS baselines archive not present")
def test_deepobs_sgd_is_not_included_in_its_momentum() -> None:
    from optcmp_data.importers import import_deepobs

    assert DEEPOBS is not None
    result = inclusion_consistency(
        import_deepobs(DEEPOBS).dataset,
        n_boot=99,
        rng=np.random.default_rng(0),
        rules=["final-valid"],
    )
    recs = [
        r
        for r in result.to_json()
        if (r["special"], r["general"]) == ("GradientDescentOptimizer", "MomentumOptimizer")
    ]
    assert recs
    assert all(r["verdict"] == Verdict.NOT_INCLUDED for r in recs)
    assert recs[0]["reason"] == (
        "momentum fixed at 0.99 in MomentumOptimizer's space; "
        "GradientDescentOptimizer needs momentum = 0"
    )


def _with_rho(high: float) -> xr.Dataset:
    """A momentum/rmsprop archive whose rmsprop space searches 1 - rho down to 1 - high."""
    ds = synthetic_archive(optimizers=("momentum", "rmsprop"), n_trials=6, seed=8)
    hp = sorted([*(str(h) for h in ds["hparam"].values), "rho"])
    ds = ds.reindex(hparam=hp, fill_value={"space_scale": "none"})
    o = list(ds["optimizer"].values).index("rmsprop")
    h = hp.index("rho")
    ds["space_scale"][:, o, h] = "one_minus_log"
    ds["space_low"][:, o, h] = 0.0
    ds["space_high"][:, o, h] = high
    return ds


def test_rmsprop_needs_rho_one_within_the_tolerance() -> None:
    def reason(high: float) -> str:
        result = inclusion_consistency(
            _with_rho(high), n_boot=20, rng=np.random.default_rng(0), rules=["final-valid"]
        )
        (rec,) = result.to_json()
        return str(rec["reason"])

    assert reason(0.9999) == ""  # 1 - rho searched down to 1e-4: within 1e-3 of rho = 1
    assert reason(0.99) == ("rho in [0, 0.99] in rmsprop's space; momentum needs rho = 1")


def test_margins_per_workload_follow_the_rule_or_what_is_given() -> None:
    """The default margin is half the IQR of the best quarter of a workload's usable test
    values (better first, whatever the direction); a number or a table replaces it."""
    from optcmp_analysis import MARGIN_RULE, trial_scores
    from optcmp_analysis._margins import resolve_margins
    from optcmp_analysis._selection import orientation

    for direction in ("min", "max"):
        ds = synthetic_archive(workloads=2, n_trials=12, direction=direction, seed=5)
        d = trial_scores(ds).data
        sign = orientation(d["direction"])
        margins, rules = resolve_margins(d["test_value"], d["usable"], None, sign=sign)
        for w in ("w0", "w1"):
            v = (d["test_value"] * sign).where(d["usable"]).sel(workload=w).values.ravel()
            v = np.sort(v[np.isfinite(v)])
            best = v[: len(v) // 4]
            q1, q3 = np.percentile(best, [25, 75])
            assert margins[w] == pytest.approx(0.5 * (q3 - q1))
            assert rules[w] == MARGIN_RULE
        given, rules = resolve_margins(d["test_value"], d["usable"], {"w1": 0.5, "*": 0.25})
        assert given == {"w0": 0.25, "w1": 0.5}
        assert set(rules.values()) == {"given"}
        with pytest.raises(AnalysisError, match="'w7'"):
            resolve_margins(d["test_value"], d["usable"], {"w7": 0.1})
        with pytest.raises(AnalysisError, match="non-negative"):
            resolve_margins(d["test_value"], d["usable"], -0.1)


def test_inclusion_tests_take_their_inputs_in_any_dim_order() -> None:
    """Named dims, not positions: the trial arrays transposed give the same tests."""
    from optcmp_analysis._inclusion import inclusion_tests

    rng = np.random.default_rng(7)
    dims = ("rule", "workload", "optimizer", "seed", "trial")
    shape = (2, 3, 4, 2, 12)
    coords = {
        "rule": ["a", "b"],
        "workload": ["w0", "w1", "w2"],
        "optimizer": ["sgd", "momentum", "adam", "nadam"],
        "seed": [0, 1],
    }
    value = xr.DataArray(rng.normal(size=shape), dims=dims, coords=coords)
    usable = xr.DataArray(rng.random(shape) > 0.1, dims=dims, coords=coords)
    present = xr.DataArray(np.ones(shape, dtype=bool), dims=dims, coords=coords)
    pairs = [
        ("sgd", "momentum", "sgd", "momentum"),
        ("momentum", "adam", "momentum", "adam"),
        ("adam", "nadam", "adam", "nadam"),
    ]
    options = {
        "pairs": pairs,
        "reasons": [["", "", ""], ["", "not contained", ""], ["", "", ""]],
        "lead": "rule",
        "budget": 3,
        "n_boot": 99,
        "alpha": 0.05,
        "margins": [0.1, 0.2, 0.3],
        "root": 11,
    }
    plain = inclusion_tests(value, value, usable, present, **options)  # type: ignore[arg-type]
    order = ("trial", "seed", "optimizer", "workload", "rule")
    turned = inclusion_tests(
        *(x.transpose(*order) for x in (value, value, usable, present)),
        **options,  # type: ignore[arg-type]
    )
    xr.testing.assert_identical(plain, turned)
    assert set(plain["verdict"].values.ravel()) >= {"not_included"}
