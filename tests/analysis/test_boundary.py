"""Boundary check: positions in the search scale, edge flags, warnings, projection data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from optcmp_analysis import AnalysisError, boundary_check
from optcmp_analysis._boundary import scaled_position
from optcmp_analysis._enums import Edge
from optcmp_data import (
    ArchiveBuilder,
    Curves,
    SpaceDim,
    SpaceRecord,
    TrialRecord,
    WorkloadInfo,
)
from optcmp_data.testing import synthetic_archive


def test_scaled_position_by_hand() -> None:
    assert scaled_position(1e-3, 1e-4, 1.0, "log") == pytest.approx(0.25)
    # one_minus_log: log10(1 - x); 0.99 sits two decades of three from 0 towards 0.999.
    assert scaled_position(0.99, 0.0, 0.999, "one_minus_log") == pytest.approx(2 / 3)
    assert scaled_position(0.5, 0.0, 2.0, "linear") == pytest.approx(0.25)
    assert np.isnan(scaled_position(0.5, 0.5, 0.5, "fixed"))
    assert np.isnan(scaled_position(0.5, np.nan, np.nan, "none"))
    assert scaled_position(10.0, 1e-4, 1.0, "log") > 1.0  # outside the space


@given(
    st.sampled_from(["linear", "log", "one_minus_log"]),
    st.floats(0.01, 0.4),
    st.floats(0.5, 0.98),
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6),
)
def test_scaled_position_monotone_with_edges_at_0_and_1(
    scale: str, low: float, high: float, us: list[float]
) -> None:
    assert scaled_position(low, low, high, scale) == pytest.approx(0.0, abs=1e-12)
    assert scaled_position(high, low, high, scale) == pytest.approx(1.0)
    xs = np.sort(low + (high - low) * np.array(us))
    pos = scaled_position(xs, low, high, scale)
    assert np.all(np.diff(pos) >= -1e-12)


def _edge_archive(lrs: list[float], errors: list[float], statuses: list[str]) -> xr.Dataset:
    """One workload, one optimizer "sgd" searched on learning_rate in [1e-4, 1] (log)."""
    b = ArchiveBuilder(source="test")
    b.add_workload(WorkloadInfo("w", "error", "min", step_budget=10))
    b.add_optimizer("sgd", "sgd")
    b.add_space("w", "sgd", SpaceRecord("s", (SpaceDim("learning_rate", 1e-4, 1.0, "log"),)))
    for t, (lr, err, status) in enumerate(zip(lrs, errors, statuses, strict=True)):
        metric = np.array([0.9, err]) if status == "completed" else np.array([0.9, np.nan])
        b.add_trial(
            TrialRecord(
                "w",
                "sgd",
                t,
                status,
                {"learning_rate": lr},
                Curves(step=[0, 10], valid_metric=metric, test_metric=metric),
            )
        )
    return b.build()


def test_best_at_the_high_edge_is_flagged() -> None:
    ds = _edge_archive(
        [0.9, 0.5, 1e-2, 1e-3, 1e-4 * 1.2],
        [0.10, 0.2, 0.3, 0.4, 0.5],
        ["completed"] * 5,
    )
    r = boundary_check(ds, top=1, fraction=0.05)
    cell = r.data.sel(workload="w", optimizer="sgd", hparam="learning_rate")
    assert str(cell["edge"].item()) == Edge.HIGH
    assert int(cell["n_near_high"]) == 1
    assert float(cell["best_value"]) == 0.9
    (warning,) = r.warnings()
    assert "sgd on w" in warning
    assert "high edge 1 of learning_rate" in warning
    # With the best three, the low-edge trial is not among them; with five, it is.
    assert str(boundary_check(ds, top=3).data["edge"].item()) == Edge.HIGH
    assert str(boundary_check(ds, top=5).data["edge"].item()) == Edge.BOTH


def test_diverged_trials_at_the_edge_are_ignored() -> None:
    ds = _edge_archive([0.95, 1e-2, 1e-3], [0.01, 0.2, 0.3], ["diverged", "completed", "completed"])
    r = boundary_check(ds, top=2)
    assert str(r.data["edge"].item()) == Edge.NONE
    assert r.warnings() == []
    assert r.data["top_rank"].sel(trial=0).item() == 0


def test_interior_best_is_clean_and_points_carry_the_projection() -> None:
    ds = _edge_archive([1e-2, 1e-3, 1e-1], [0.1, 0.2, 0.3], ["completed"] * 3)
    r = boundary_check(ds, top=3)
    assert r.warnings() == []
    points = r.points()
    assert len(points) == 3
    assert [p["value"] for p in points] == [0.1, 0.2, 0.3]
    assert points[0]["position"] == pytest.approx(0.5)
    assert points[0]["top_rank"] == 1


def test_points_match_label_lookups_on_every_cell() -> None:
    # points() reads plain arrays by position (label lookups per point were seconds on a
    # paper-sized archive); every point must still be the value at its labels.
    ds = synthetic_archive(workloads=2, n_trials=5, diverged_fraction=0.3, ragged=True, seed=2)
    r = boundary_check(ds.transpose(*reversed(list(ds.dims))), top=2)
    d = r.data
    points = r.points()
    assert len(points) == int((d["present"] * d["searched"]).sum())
    for p in points:
        at = d.sel(workload=p["workload"], optimizer=p["optimizer"], trial=p["trial"])
        cell = at.sel(hparam=p["hparam"])
        assert bool(at["present"])
        assert bool(cell["searched"])
        assert p["hparam_value"] == float(cell["value"])
        assert p["position"] == pytest.approx(float(cell["position"]))
        assert p["top_rank"] == int(at["top_rank"])
        for key, var in (("value", "selection_value"), ("test_value", "test_value")):
            expected = float(at[var])
            assert p[key] == (None if not np.isfinite(expected) else expected)
    edges = int((d["edge"] != "none").sum())
    assert len(r.warnings()) == edges


@given(st.permutations(range(12)), st.integers(1, 5))
def test_counts_do_not_depend_on_trial_order(perm: list[int], top: int) -> None:
    ds = synthetic_archive(workloads=1, n_trials=12, diverged_fraction=0.2, seed=4)
    a = boundary_check(ds, top=top, fraction=0.2)
    b = boundary_check(ds.isel(trial=perm), top=top, fraction=0.2)
    for var in ("n_near_low", "n_near_high", "n_top", "edge", "best_value"):
        xr.testing.assert_equal(a.data[var], b.data[var])


def test_json_records_and_errors() -> None:
    ds = synthetic_archive(workloads=2, ragged=True, diverged_fraction=0.2, seed=1)
    r = boundary_check(ds, top=3, fraction=0.1)
    records = r.to_json()
    json.dumps(records, allow_nan=False)
    searched = int(r.data["searched"].sum())
    assert len(records) == searched
    for rec in records:
        assert all(isinstance(v, str | int | float | type(None)) for v in rec.values())
        assert rec["edge"] in {e.value for e in Edge}
        assert (rec["warning"] is None) == (rec["edge"] == Edge.NONE)
    with pytest.raises(AnalysisError, match="unknown optimizer"):
        boundary_check(ds, optimizers=["adamw"])
    with pytest.raises(AnalysisError, match="no usable"):
        boundary_check(synthetic_archive(diverged_fraction=1.0))
    with pytest.raises(AnalysisError, match="fraction"):
        boundary_check(ds, fraction=0.7)
