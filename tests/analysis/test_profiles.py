"""Time-to-target performance profiles: ratios and profiles by hand, archives with and
without targets and times, and the published archives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

from optcmp_analysis import AnalysisError, performance_profiles
from optcmp_analysis._profiles import profile_curves
from optcmp_data import Status
from optcmp_data.importers import import_algoperf, import_deepobs
from optcmp_data.testing import synthetic_archive
from tests.data.archive_trees import SHARED_ARCHIVES


def test_profile_curves_by_hand() -> None:
    times = np.array(
        [
            [10.0, 20.0, np.inf],  # w0: best 10 -> ratios 1, 2, inf
            [30.0, 15.0, 45.0],  # w1: best 15 -> ratios 2, 1, 3
            [np.inf, np.inf, np.inf],  # w2: nobody reaches -> inf for all
        ]
    )
    tau = np.array([1.0, 1.5, 2.0, 3.0, 4.0])
    ratio, rho = profile_curves(times, tau)
    np.testing.assert_allclose(ratio[:2], np.array([[1, 2, np.inf], [2, 1, 3]], dtype=float))
    assert np.isinf(ratio[2]).all()
    np.testing.assert_allclose(rho[0], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho[1], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho[2], [0, 0, 0, 1 / 3, 1 / 3])


def _archive(**kw: object) -> xr.Dataset:
    base = dict(workloads=3, optimizers=("sgd", "adam"), n_trials=6, n_evals=10, seed=5)
    base.update(kw)
    return synthetic_archive(**base)  # type: ignore[arg-type]


def _first_reach_by_hand(ds: xr.Dataset, w: str, o: str, measure: str) -> float:
    """The fastest trial's first evaluation at or below the target, by a plain loop."""
    target = float(ds["valid_target"].sel(workload=w))
    best = np.inf
    for t in ds["trial"].values:
        cell = ds.sel(workload=w, optimizer=o, trial=t)
        if str(cell["status"].item()) == Status.MISSING.value:
            continue
        steps = cell["step"].values
        for e in np.argsort(np.where(steps >= 0, steps, np.iinfo(np.int64).max), kind="stable"):
            if steps[e] < 0:
                break
            if cell["valid_metric"].values[e] <= target:
                best = min(best, float(cell["time" if measure == "time" else "step"].values[e]))
                break
    return best


def test_times_match_a_plain_loop() -> None:
    ds = _archive(planted={"adam": -0.03})
    for measure in ("time", "steps"):
        result = performance_profiles(ds, measure=measure)
        for w in ds["workload"].values:
            for o in ds["optimizer"].values:
                got = float(result.data["time"].sel(workload=w, optimizer=o))
                assert got == pytest.approx(_first_reach_by_hand(ds, str(w), str(o), measure))
    area = result.data["area"]
    assert ((area >= 0) & (area <= 1)).all()


def test_faster_optimizer_has_the_larger_area() -> None:
    ds = _archive(planted={"adam": -0.05}, workloads=5)
    result = performance_profiles(ds)
    assert float(result.data["area"].sel(optimizer="adam")) > float(
        result.data["area"].sel(optimizer="sgd")
    )
    records = result.to_json()
    areas = {r["optimizer"]: r["value"] for r in records if r["record"] == "area"}
    assert set(areas) == {"sgd", "adam"}
    for o in areas:
        rho = [r["value"] for r in records if r["record"] == "profile" and r["optimizer"] == o]
        assert len(rho) == 100
        assert np.all(np.diff(rho) >= 0)


def test_workload_without_target_is_left_out_and_others_stay() -> None:
    ds = _archive()
    ds["valid_target"].loc[{"workload": "w1"}] = np.nan
    result = performance_profiles(ds)
    assert result.workloads == ["w0", "w2"]
    assert any("w1 has no target" in c for c in result.caveats)
    assert all(r["workload"] != "w1" for r in result.to_json() if r["record"] == "time")
    ds["valid_target"][:] = np.nan
    with pytest.raises(AnalysisError, match="no workload has a target"):
        performance_profiles(ds)


def test_an_optimizer_without_runs_never_reaches() -> None:
    ds = _archive()
    ds["status"].loc[{"workload": "w0", "optimizer": "sgd"}] = Status.MISSING.value
    result = performance_profiles(ds)
    assert np.isinf(float(result.data["time"].sel(workload="w0", optimizer="sgd")))


def test_unequal_counts_time_the_median_fastest_of_k_trials() -> None:
    ds = _archive(n_trials=6)
    keep = 2
    ds["status"].loc[{"workload": "w0", "optimizer": "sgd"}] = np.where(
        np.arange(6) < keep, Status.COMPLETED.value, Status.MISSING.value
    )
    ds["step"].loc[{"workload": "w0", "optimizer": "sgd", "trial": list(range(keep, 6))}] = -1
    result = performance_profiles(ds, measure="steps")
    assert result.budget == keep
    assert int(result.data["budget"].sel(workload="w1")) == 6
    assert (
        sum("trial counts differ between the studies of w0 (2 to 6)" in c for c in result.caveats)
        == 1
    )
    # adam on w0 holds 6 trials: its time is the median over the 15 pairs of trials of the
    # faster one, by enumeration.
    single = _archive(n_trials=6)
    times = []
    for t in range(6):
        one = single.isel(trial=[t])
        times.append(_first_reach_by_hand(one, "w0", "adam", "steps"))
    pairs = sorted(min(a, b) for a, b in itertools.combinations(times, 2))
    lower_median = pairs[(len(pairs) + 1) // 2 - 1]
    assert float(result.data["time"].sel(workload="w0", optimizer="adam")) == lower_median
    with pytest.raises(AnalysisError, match="--with-replacement"):
        performance_profiles(ds, budget=6)
    full = performance_profiles(ds, measure="steps", budget=6, with_replacement=True)
    assert float(full.data["time"].sel(workload="w0", optimizer="adam")) == min(times)


def test_bad_arguments() -> None:
    ds = _archive()
    with pytest.raises(AnalysisError, match="max_tau"):
        performance_profiles(ds, max_tau=1.0)
    ds["time"][:] = np.nan
    with pytest.raises(AnalysisError, match="no times"):
        performance_profiles(ds, measure="time")
    assert performance_profiles(ds).measure == "steps"


_DEEPOBS = SHARED_ARCHIVES / "deepobs-baselines"
_ALGOPERF = SHARED_ARCHIVES / "algoperf-v05"


@pytest.mark.skipif(not _DEEPOBS.is_dir(), reason=f"published archive not present at {_DEEPOBS}")
def test_deepobs_profiles_use_test_targets_and_steps() -> None:
    result = performance_profiles(import_deepobs(_DEEPOBS).dataset)
    assert str(result.measure) == "steps"
    assert len(result.workloads) == 8
    assert set(result.data["target_split"].values) == {"test"}


@pytest.mark.skipif(not _ALGOPERF.is_dir(), reason=f"published archive not present at {_ALGOPERF}")
def test_algoperf_profiles_use_time() -> None:
    ds = import_algoperf(_ALGOPERF).dataset
    result = performance_profiles(ds)
    assert str(result.measure) == "time"
    # lawa_ema's studies on librispeech_deepspeech hold 1-2 trials: there every study is
    # timed as one trial, and the profile says so.
    assert int(result.data["budget"].sel(workload="librispeech_deepspeech")) == 1
    assert int(result.data["budget"].sel(workload="wmt")) == 5
    assert any("librispeech_deepspeech (1 to 5)" in c for c in result.caveats)
    # Every trial of every study, as AlgoPerf times a study: the v0.5 leaderboard's top
    # submission is also the fastest here, its last the slowest.
    every = performance_profiles(ds, budget=5, with_replacement=True)
    area = every.data["area"].to_series()
    assert area.idxmax() == "shampoo_submission"
    assert area.idxmin() == "schedule_free_prodigy"
