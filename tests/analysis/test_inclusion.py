"""Inclusion consistency: pairs from the taxonomy, signs, Holm, verdicts, rules."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from optcmp_analysis import (
    AnalysisError,
    InclusionResult,
    Verdict,
    inclusion_consistency,
    restrict,
)
from optcmp_analysis._inclusion import default_inclusion_budget, one_sided_p_values
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


def test_one_sided_p_values() -> None:
    diff = np.array([[1.0, 2.0, -1.0, np.nan], [np.nan, np.nan, np.nan, np.nan]])
    p, n = one_sided_p_values(diff)
    assert p[0] == pytest.approx((1 + 1) / (1 + 3))
    assert np.isnan(p[1])
    assert list(n) == [3, 0]


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
    assert result.budget == default_inclusion_budget(6) == 3


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
    result = inclusion_consistency(ds, n_boot=2000, rng=np.random.default_rng(1))
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
    assert (d["observed"].isel(pair=pair) > 0.03).all()
    assert str(d["pair_verdict"].isel(pair=pair).values) == Verdict.VIOLATED


def test_holm_over_pairs_and_workloads() -> None:
    ds = synthetic_archive(workloads=3, n_trials=10, planted={"adam": 0.02}, seed=3)
    result = inclusion_consistency(
        ds, n_boot=500, rng=np.random.default_rng(2), rules=["final-valid"]
    )
    d = result.data.sel(rule="final-valid")
    p = d["p_value"].values.ravel()
    _, expected, _, _ = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(d["p_adjusted"].values.ravel(), expected)
    assert (d["p_adjusted"] >= d["p_value"]).all()
    violated = d["verdict"] == Verdict.VIOLATED
    assert bool(((d["p_adjusted"] < 0.05) == violated).all())


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
    result = inclusion_consistency(ds, budget=4, n_boot=100, rng=np.random.default_rng(0))
    records = result.to_json()
    assert len(records) == 2  # one pair x one workload x two rules
    keys = {"rule", "workload", "special", "general", "k", "value", "p_value", "p_adjusted"}
    assert keys <= set(records[0])
    assert records[0]["verdict"] in {v.value for v in Verdict}
    assert records[0]["k"] == 4
    again = inclusion_consistency(ds, budget=4, n_boot=100, rng=np.random.default_rng(0))
    assert again.to_json() == records
