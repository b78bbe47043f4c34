"""Best-trial selection: rules, directions, statuses, ties, repeats, selection_repeats."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_analysis import (
    AnalysisError,
    RepeatMode,
    SelectionRule,
    budget_curve,
    rank_optimizers,
    restrict,
    select_best,
    trial_scores,
)
from optcmp_analysis._estimator import expected_best_of_k
from optcmp_data import Status
from optcmp_data.testing import synthetic_archive
from tests.analysis.archives import shuffled


def _final(curve: np.ndarray, step: np.ndarray) -> float:
    idx = np.flatnonzero(step >= 0)
    return float(curve[idx[-1]]) if idx.size else float("nan")


def _brute_best(ds: xr.Dataset, w: int, o: int, var: str, sign: float) -> int:
    """The reference: a plain loop over trials (no repeats)."""
    best, best_value = -1, np.inf
    for t in range(ds.sizes["trial"]):
        if str(ds["status"].values[w, o, t]) != Status.COMPLETED:
            continue
        value = sign * _final(ds[var].values[w, o, t], ds["step"].values[w, o, t])
        if np.isfinite(value) and value < best_value:
            best, best_value = t, value
    return best


@settings(max_examples=20)  # each example builds an archive and bootstraps it
@given(
    seed=st.integers(0, 10_000),
    diverged=st.sampled_from([0.0, 0.3, 0.7]),
    incomplete=st.sampled_from([0.0, 0.2]),
    direction=st.sampled_from(["min", "max"]),
)
def test_final_valid_matches_a_plain_loop(
    seed: int, diverged: float, incomplete: float, direction: str
) -> None:
    ds = synthetic_archive(
        workloads=2,
        n_trials=6,
        n_evals=4,
        ragged=True,
        diverged_fraction=diverged,
        incomplete_fraction=incomplete,
        direction=direction,
        seed=seed,
    )
    scores = trial_scores(ds)
    if not bool(scores.data["usable"].any()):
        with pytest.raises(AnalysisError, match="no usable trial"):
            select_best(ds)
        return
    sel = select_best(ds)
    sign = 1.0 if direction == "min" else -1.0
    for w in range(ds.sizes["workload"]):
        for o in range(ds.sizes["optimizer"]):
            expected = _brute_best(ds, w, o, "valid_metric", sign)
            assert int(sel.data["position"].values[w, o]) == expected
            if expected >= 0:
                # Never a diverged or incomplete trial.
                assert str(ds["status"].values[w, o, expected]) == Status.COMPLETED
                test = _final(
                    ds["test_metric"].values[w, o, expected], ds["step"].values[w, o, expected]
                )
                assert sel.data["test_value"].values[w, o] == pytest.approx(test)


def test_train_loss_rule_selects_lowest_final_training_loss() -> None:
    ds = synthetic_archive(n_trials=8, diverged_fraction=0.2, seed=3)
    sel = select_best(ds, rule=SelectionRule.FINAL_TRAIN_LOSS)
    for o in range(ds.sizes["optimizer"]):
        assert int(sel.data["position"].values[0, o]) == _brute_best(ds, 0, o, "train_loss", 1.0)
    assert all(r["selection_split"] == "train" for r in sel.to_json())


def test_best_valid_rule_uses_the_best_point_of_the_curve() -> None:
    ds = synthetic_archive(n_trials=6, n_evals=5, direction="max", seed=5)
    # Make trial 2's curve peak early and then collapse: best-valid must still find the peak.
    ds = ds.copy(deep=True)
    ds["valid_metric"][0, 0, 2, :] = [0.5, 0.999, 0.1, 0.1, 0.1]
    scores = trial_scores(ds, rule="best-valid")
    assert float(scores.data["selection_value"].values[0, 0, 2]) == pytest.approx(0.999)
    sel = select_best(ds, rule="best-valid")
    assert int(sel.data["position"].values[0, 0]) == 2
    # The reported test value is read at the same evaluation.
    assert float(sel.data["test_value"].values[0, 0]) == pytest.approx(
        float(ds["test_metric"].values[0, 0, 2, 1])
    )
    assert int(select_best(ds).data["position"].values[0, 0]) != 2


def test_ties_go_to_the_lowest_trial_position() -> None:
    ds = synthetic_archive(n_trials=6, diverged_fraction=0.3, seed=11).copy(deep=True)
    ds["valid_metric"][:] = 0.25
    sel = select_best(ds)
    status = ds["status"].values
    for o in range(ds.sizes["optimizer"]):
        completed = np.flatnonzero(status[0, o] == Status.COMPLETED)
        assert int(sel.data["position"].values[0, o]) == (completed[0] if completed.size else -1)


def test_a_tie_reports_the_mean_of_the_tied_trials_test_values() -> None:
    ds = synthetic_archive(n_trials=6, seed=3).copy(deep=True)
    ds["valid_metric"][:] = 0.5
    ds["valid_metric"][0, 0, [1, 4]] = 0.1  # trials 1 and 4 tie for the best
    sel = select_best(ds)
    test_final = ds["test_metric"].values[0, 0, :, -1]
    rec = next(r for r in sel.to_json() if r["optimizer"] == str(ds["optimizer"].values[0]))
    assert rec["n_tied"] == 2
    assert rec["test_value"] == pytest.approx((test_final[1] + test_final[4]) / 2)
    # Relabelling the trials does not change the reported value (label-independent).
    swapped = select_best(ds.isel(trial=[4, 1, 2, 3, 0, 5]))
    assert float(swapped.data["test_value"].values[0, 0]) == pytest.approx(rec["test_value"])
    # Untied cells report their single best trial.
    others = [r for r in sel.to_json() if r["optimizer"] != rec["optimizer"]]
    assert all(r["n_tied"] == 6 for r in others)  # every other trial ties at 0.5


def test_one_tie_rule_everywhere() -> None:
    """Trials tied on the selection score are averaged by every analysis: the selection,
    the inclusion estimator, the budget curve and the exact rank kernel all use the mean of
    the tied trials' test values, whatever their positions."""
    ds = synthetic_archive(
        n_trials=6, optimizers=("sgd", "momentum"), diverged_fraction=0.0, seed=3
    ).copy(deep=True)
    names = [str(o) for o in ds["optimizer"].values]
    sgd, mom = names.index("sgd"), names.index("momentum")
    ds["valid_metric"][:] = 0.5
    ds["valid_metric"][0, sgd, [1, 4]] = 0.1  # sgd: trials 1 and 4 tie for the best
    ds["test_metric"][0, sgd, 1, -1] = 0.25
    ds["test_metric"][0, sgd, 4, -1] = 0.5
    ds["valid_metric"][0, mom, 2] = 0.1  # momentum: one best trial, test 0.375 (the mean)
    ds["test_metric"][0, mom, 2, -1] = 0.375  # exact in binary, as are 0.25 and 0.5
    # Every other trial diverged: a study selects a best trial or has no result.
    status = np.full((2, 6), "diverged", dtype=ds["status"].dtype)
    status[sgd, [1, 4]] = status[mom, 2] = "completed"
    ds["status"][0] = status
    for order in ([0, 1, 2, 3, 4, 5], [4, 3, 2, 5, 0, 1]):
        case = ds.isel(trial=order)
        sel = select_best(case).data
        assert float(sel["test_value"].sel(optimizer="sgd").values[0]) == pytest.approx(0.375)
        scores = trial_scores(case).data.isel(workload=0).transpose("optimizer", "trial", ...)
        score, value, usable, present = (
            scores[v].values for v in ("score", "test_value", "usable", "present")
        )
        # sgd at k = 5 of 6: subsets without trial 4 select trial 1 (0.25), without trial 1
        # trial 4 (0.5), the others both (0.375): 0.375 on average; k = 6 selects both.
        at = list(scores["optimizer"].values).index("sgd")
        for k in (5, 6):
            e_k = expected_best_of_k(score, value, usable, present, k)
            assert e_k[at] == pytest.approx(0.375)
        e_n = expected_best_of_k(score, value, usable, present, 6)
        np.testing.assert_allclose(e_n, 0.375)
        curve = budget_curve(case, budgets=[6], n_boot=200, rng=np.random.default_rng(0))
        mean = curve.data["expected"].sel(target="test").isel(workload=0, k=0).values
        np.testing.assert_allclose(mean, [0.375, 0.375])
        ranks = rank_optimizers(case, method="exact", budget=6, rng=np.random.default_rng(0))
        # Tied with momentum's 0.375: each is first whenever it has a result.
        d = ranks.data.isel(workload=0)
        first = d["rank_probability"].sel(place=1).values
        np.testing.assert_allclose(first, 1.0 - d["no_result"].values)


@settings(max_examples=20)  # each example builds an archive and bootstraps it
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 1000))
def test_equivariant_under_permuting_trials_and_optimizers(seed: int, perm_seed: int) -> None:
    ds = synthetic_archive(n_trials=7, diverged_fraction=0.2, workloads=2, seed=seed)
    permuted = shuffled(ds, perm_seed)
    a = {(r["workload"], r["optimizer"]): r for r in select_best(ds).to_json()}
    b = {(r["workload"], r["optimizer"]): r for r in select_best(permuted).to_json()}
    assert a.keys() == b.keys()
    for key, rec in a.items():
        assert rec["trial"] == b[key]["trial"]
        assert rec["test_value"] == b[key]["test_value"]


def test_selection_on_test_split_carries_a_caveat() -> None:
    ds = synthetic_archive(n_trials=4, selection_split="test", seed=2)
    sel = select_best(ds)
    assert any("test split" in c for c in sel.caveats)
    chosen = int(sel.data["position"].values[0, 0])
    assert chosen == _brute_best(ds, 0, 0, "test_metric", 1.0)
    assert not any("test split" in c for c in select_best(synthetic_archive(n_trials=4)).caveats)


def test_repeat_modes() -> None:
    ds = synthetic_archive(n_trials=5, repeats={"seed": 3}, seed=7)
    mean = trial_scores(ds, repeats=RepeatMode.MEAN)
    assert "seed" not in mean.data["score"].dims
    per_seed_final = ds["valid_metric"].isel(eval=-1)
    np.testing.assert_allclose(
        mean.data["score"].values, per_seed_final.mean("seed").values, rtol=1e-12
    )
    per = select_best(ds, repeats=RepeatMode.PER_REPEAT)
    assert per.data["trial"].dims == ("workload", "optimizer", "seed")
    for i in range(3):
        single = select_best(ds.isel(seed=i))
        np.testing.assert_array_equal(
            per.data["trial"].isel(seed=i).values, single.data["trial"].values
        )
    assert {"seed"} <= set(per.to_json()[0])


def test_mean_mode_refuses_runs_that_diverged_in_any_repeat() -> None:
    ds = synthetic_archive(n_trials=6, repeats={"seed": 2}, diverged_fraction=0.3, seed=9)
    scores = trial_scores(ds)
    bad = (ds["status"] != Status.COMPLETED).any("seed")
    assert not bool((scores.data["usable"] & bad).any())


def test_selection_repeats_attribute() -> None:
    ds = synthetic_archive(n_trials=6, repeats={"seed": 3}, seed=13)
    ds.attrs = {**ds.attrs, "selection_repeats": "seed=1"}
    scores = trial_scores(ds)
    np.testing.assert_allclose(
        scores.data["score"].values, ds["valid_metric"].isel(seed=1, eval=-1).values
    )
    # Reported values come from the selection repeat too: never a mix of seed counts.
    np.testing.assert_allclose(
        scores.data["test_value"].values, ds["test_metric"].isel(seed=1, eval=-1).values
    )
    # The spread over every completed repeat is reported apart.
    final = ds["test_metric"].isel(eval=-1)
    np.testing.assert_allclose(scores.data["test_min"].values, final.min("seed").values)
    np.testing.assert_allclose(scores.data["test_median"].values, final.median("seed").values)
    np.testing.assert_allclose(scores.data["test_max"].values, final.max("seed").values)
    assert (scores.data["n_repeats"] == 3).all()
    record = select_best(ds).to_json()[0]
    assert record["n_repeats"] == 3
    assert record["test_min"] <= record["test_median"] <= record["test_max"]
    assert any("seed=1" in c for c in scores.caveats)
    with pytest.raises(AnalysisError, match="selection_repeats"):
        trial_scores(ds, repeats=RepeatMode.PER_REPEAT)


def test_deepobs_rules() -> None:
    ds = synthetic_archive(n_trials=6, n_evals=5, repeats={"seed": 3}, direction="max", seed=17)
    final = select_best(ds, rule=SelectionRule.DEEPOBS_FINAL)
    np.testing.assert_array_equal(final.data["trial"].values, select_best(ds).data["trial"].values)
    best = trial_scores(ds, rule=SelectionRule.DEEPOBS_BEST)
    seed_mean = ds["valid_metric"].mean("seed")
    np.testing.assert_allclose(
        best.data["selection_value"].values, seed_mean.max("eval").values, rtol=1e-12
    )
    with pytest.raises(AnalysisError, match="DeepOBS"):
        trial_scores(ds, rule=SelectionRule.DEEPOBS_BEST, repeats=RepeatMode.PER_REPEAT)


def test_no_usable_trial_is_an_error() -> None:
    ds = synthetic_archive(n_trials=4, diverged_fraction=1.0, seed=1)
    with pytest.raises(AnalysisError, match="no usable trial"):
        select_best(ds)


def test_cells_without_usable_trials_report_none() -> None:
    ds = synthetic_archive(n_trials=4, seed=1).copy(deep=True)
    ds["status"][0, 0, :] = Status.DIVERGED.value
    records = select_best(ds).to_json()
    first = next(r for r in records if r["optimizer"] == str(ds["optimizer"].values[0]))
    assert first["trial"] is None
    assert first["test_value"] is None
    assert first["n_usable"] == 0


def test_json_record_keys_and_dataset() -> None:
    ds = synthetic_archive(workloads=2, n_trials=4, seed=4)
    sel = select_best(ds)
    records = sel.to_json()
    assert len(records) == 2 * ds.sizes["optimizer"]
    required = {"workload", "optimizer", "trial", "hyperparameters", "selection_value"}
    for rec in records:
        assert required | {"test_value", "metric", "split", "value"} <= set(rec)
        assert isinstance(rec["hyperparameters"], dict)
        assert "learning_rate" in rec["hyperparameters"]
    out = sel.to_dataset()
    assert out.attrs["rule"] == "final-valid"
    assert set(out["trial"].dims) == {"workload", "optimizer"}


def test_restrict_names_and_suggestions() -> None:
    ds = synthetic_archive(workloads=2, n_trials=3)
    assert list(restrict(ds, optimizers=["sgd", "adam"])["optimizer"].values) == ["adam", "sgd"]
    with pytest.raises(AnalysisError, match="did you mean 'nadam'"):
        restrict(ds, optimizers=["nadm"])
    with pytest.raises(AnalysisError, match="unknown workload 'w7'"):
        restrict(ds, workloads=["w7"])


def test_diverged_worst_scores_a_diverged_trial_as_the_workload_worst() -> None:
    ds = synthetic_archive(workloads=2, n_trials=6, diverged_fraction=0.4, seed=21)
    base = trial_scores(ds)
    worst = trial_scores(ds, diverged="worst")
    d, b = worst.data, base.data
    diverged = (ds["status"] == Status.DIVERGED).transpose(*d["usable"].dims)
    assert bool(diverged.any())
    assert bool(d["usable"].where(diverged, True).all())
    for w in ds["workload"].values:
        usable = b["usable"].sel(workload=w)
        top_score = float(b["score"].sel(workload=w).where(usable).max())
        top_test = float(b["test_value"].sel(workload=w).where(usable).max())
        div = diverged.sel(workload=w)
        np.testing.assert_allclose(
            d["score"].sel(workload=w).where(div).values[div.values], top_score
        )
        np.testing.assert_allclose(
            d["test_value"].sel(workload=w).where(div).values[div.values], top_test
        )
    # Usable trials keep their values; the caveat says what happened.
    np.testing.assert_array_equal(
        d["score"].where(b["usable"]).values, b["score"].where(b["usable"]).values
    )
    assert any("worst" in c for c in worst.caveats)
    # A cell whose trials all diverged now selects one of them, with the worst value.
    ds["status"].loc[{"workload": "w0", "optimizer": "adam"}] = Status.DIVERGED.value
    sel = select_best(ds, diverged="worst").data.sel(workload="w0", optimizer="adam")
    assert int(sel["trial"]) >= 0
    assert np.isfinite(float(sel["test_value"]))
    assert int(select_best(ds).data["trial"].sel(workload="w0", optimizer="adam")) == -1
