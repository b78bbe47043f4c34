"""Target independence: steps-to-target kernels and the Figure 10 study."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_analysis import AnalysisError, ConditionKind, target_study
from optcmp_analysis._targets import first_reach, holm, steps_to_target
from optcmp_data.testing import synthetic_archive


def test_first_reach_by_hand() -> None:
    values = np.array([0.9, 0.5, 0.3, 0.2, np.nan, np.nan])
    steps = np.array([0, 10, 20, 30, -1, -1])  # ragged: two padding slots
    times = steps * 0.5
    s, t = first_reach(values, steps, times, [0.5, 0.25, 0.1], 100)
    np.testing.assert_array_equal(s, [10.0, 30.0, np.inf])
    np.testing.assert_array_equal(t, [5.0, 15.0, np.inf])
    s, _ = first_reach(values, steps, times, [0.5, 0.25, 0.1], 20)
    np.testing.assert_array_equal(s, [10.0, np.inf, np.inf])


def test_first_reach_is_by_step_not_storage_order() -> None:
    values = np.array([0.2, 0.9, 0.3])
    steps = np.array([30, 0, 20])
    s, t = first_reach(values, steps, steps * 2.0, [0.35], 100)
    assert s.tolist() == [20.0]
    assert t.tolist() == [40.0]


curves = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.integers(0, 1000), min_size=n, max_size=n, unique=True),
    )
)


@given(
    curves,
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=5),
    st.integers(0, 1000),
    st.integers(0, 1000),
)
def test_first_reach_monotone_in_target_and_limit(
    curve: tuple[list[float], list[int]], targets: list[float], lim_a: int, lim_b: int
) -> None:
    values, steps = (np.array(x) for x in curve)
    order = np.sort(np.array(targets))[::-1]  # easiest (largest, for "min") first
    small, big = sorted((lim_a, lim_b))
    s_big, _ = first_reach(values, steps, steps * 1.0, order, big)
    s_small, _ = first_reach(values, steps, steps * 1.0, order, small)
    # A harder target never needs fewer steps.
    assert np.all(s_big[1:] >= s_big[:-1])
    # Truncating the budget only removes evaluations.
    np.testing.assert_array_equal(s_small, np.where(s_big <= small, s_big, np.inf))
    # The reached step really reaches the target, and no earlier evaluation did.
    for target, s in zip(order, s_big, strict=True):
        early = (steps < s) & (steps <= big)
        assert not np.any(values[early] <= target)
        if np.isfinite(s):
            assert values[steps == s][0] <= target


def test_first_reach_broadcasts_extra_axes() -> None:
    rng = np.random.default_rng(1)
    values = rng.random((3, 4, 6))
    steps = np.broadcast_to(np.arange(6) * 10, (3, 4, 6))
    s, _ = first_reach(values, steps, steps * 1.0, np.array([0.5, 0.2]), 1000)
    assert s.shape == (3, 4, 2)
    for i in range(3):
        for j in range(4):
            one, _ = first_reach(values[i, j], steps[i, j], steps[i, j] * 1.0, [0.5, 0.2], 1000)
            np.testing.assert_array_equal(s[i, j], one)


def test_steps_to_target_broadcasts_named_dims() -> None:
    ds = synthetic_archive(workloads=2, n_trials=5, ragged=True, repeats={"seed": 2}, seed=9)
    targets = xr.DataArray([[0.5, 0.2], [0.4, 0.15]], dims=("workload", "target"))
    limit = xr.DataArray([600, 1000], dims="workload")
    out = steps_to_target(
        ds["valid_metric"], ds["step"], ds["time"], targets, limit=limit, direction="min"
    )
    assert set(out["steps"].dims) == {"workload", "optimizer", "trial", "seed", "target"}
    cell = ds.isel(workload=1, optimizer=2, trial=3, seed=1)
    one, one_t = first_reach(
        cell["valid_metric"].values, cell["step"].values, cell["time"].values, [0.4, 0.15], 1000
    )
    got = out.isel(workload=1, optimizer=2, trial=3, seed=1)
    np.testing.assert_array_equal(got["steps"].transpose("target").values, one)
    np.testing.assert_array_equal(got["time"].transpose("target").values, one_t)
    flipped = steps_to_target(
        1 - ds["valid_metric"], ds["step"], ds["time"], 1 - targets, limit=limit, direction="max"
    )
    xr.testing.assert_allclose(flipped["steps"], out["steps"])


def _archive(**kw: object) -> xr.Dataset:
    base: dict[str, object] = {
        "workloads": 2,
        "n_trials": 10,
        "n_evals": 8,
        "ragged": True,
        "diverged_fraction": 0.2,
        "seed": 3,
    }
    base.update(kw)
    return synthetic_archive(**base)  # type: ignore[arg-type]


def test_study_invariants() -> None:
    ds = _archive()
    r = target_study(
        ds, n_targets=4, fractions=(0.5, 1.0), n_boot=200, rng=np.random.default_rng(0)
    )
    steps = r.trial_steps
    status = ds["status"]
    # Diverged trials are never counted.
    assert bool(np.isnan(steps.where(status == "diverged")).all())
    tuned_steps = steps.where(~np.isnan(steps), np.inf).min("trial")
    for c, (kind, tgt, frac) in enumerate(
        zip(r.condition_kind, r.condition_target, r.condition_fraction, strict=True)
    ):
        if kind != ConditionKind.STEPS:
            continue
        np.testing.assert_array_equal(
            r.tuned.isel(condition=c).values,
            tuned_steps.isel(target=tgt).sel(fraction=frac).values,
        )
    # Steps needed, indexed [workload, optimizer, target, fraction] by each condition's labels.
    by = np.full((*r.tuned.isel(condition=0).shape, r.n_targets, len(r.fractions)), np.nan)
    for c, (kind, tgt, frac) in enumerate(
        zip(r.condition_kind, r.condition_target, r.condition_fraction, strict=True)
    ):
        if kind == ConditionKind.STEPS:
            by[:, :, tgt, r.fractions.index(frac)] = r.tuned.isel(condition=c).values
    assert not np.isnan(by).all()
    assert np.all(by[:, :, 1:] >= by[:, :, :-1])  # harder targets need at least as many steps
    assert np.all(by[..., 0] >= by[..., 1])  # a smaller budget never reaches sooner
    # The reference condition is final at the full budget, and agrees with itself.
    assert r.condition_kind[r.reference] == ConditionKind.FINAL
    assert r.condition_fraction[r.reference] == 1.0
    np.testing.assert_allclose(r.kendall_tau.isel(condition=r.reference).values, 1.0)
    # Default targets run from the median (easiest) to the best final value.
    assert np.all(np.diff(r.target_value.values, axis=1) <= 0)


def test_archive_without_times_reports_unknown_time_not_never() -> None:
    ds = _archive()
    ds["time"] = ds["time"] * np.nan
    r = target_study(ds, n_boot=20, rng=np.random.default_rng(0))
    steps = r.tuned.values[..., : r.n_targets * len(r.fractions)]
    times = r.tuned_time.values[..., : r.n_targets * len(r.fractions)]
    assert np.isfinite(steps).any()
    assert not np.isinf(times[np.isfinite(steps)]).any()


def test_final_condition_matches_selection() -> None:
    from optcmp_analysis import select_best

    ds = _archive(ragged=False)
    r = target_study(ds, fractions=(1.0,), n_boot=50, rng=np.random.default_rng(0))
    best = select_best(ds)
    np.testing.assert_allclose(
        r.tuned.isel(condition=r.reference).values,
        best.data["test_value"].transpose("workload", "optimizer").values,
    )


def test_full_fraction_keeps_evaluations_past_a_step_hint() -> None:
    # AlgoPerf's step_budget is a step hint its runs may exceed; fraction 1 must still be
    # the whole run, or the reference condition disagrees with select_best.
    from optcmp_analysis import select_best

    ds = _archive(ragged=True)
    ds["step_budget"] = ds["step_budget"] // 2
    r = target_study(ds, fractions=(0.5, 1.0), n_boot=50, rng=np.random.default_rng(0))
    best = select_best(ds)
    np.testing.assert_allclose(
        r.tuned.isel(condition=r.reference).values,
        best.data["test_value"].transpose("workload", "optimizer").values,
    )
    assert (r.step_limit.sel(fraction=1.0) >= ds["step"].max(...)).all()


def test_max_direction_gives_the_same_steps() -> None:
    lo = target_study(_archive(), n_boot=100, rng=np.random.default_rng(5))
    hi = target_study(_archive(direction="max"), n_boot=100, rng=np.random.default_rng(5))
    np.testing.assert_allclose(lo.trial_steps.values, hi.trial_steps.values)
    np.testing.assert_array_equal(lo.rank.values, hi.rank.values)
    for var in ("p_value", "difference", "lo", "hi"):
        np.testing.assert_allclose(lo.inclusion.data[var].values, hi.inclusion.data[var].values)
    np.testing.assert_allclose(lo.target_value.values, 1 - hi.target_value.values)


@settings(max_examples=10)
@given(st.permutations(range(6)), st.permutations(range(10)))
def test_equivariant_under_relabelling_optimizers_and_permuting_trials(
    perm_o: list[int], perm_t: list[int]
) -> None:
    ds = _archive(workloads=1, diverged_fraction=0.1)
    names = [str(o) for o in ds["optimizer"].values]
    new = {names[i]: f"opt{perm_o[i]}" for i in range(6)}
    renamed = ds.assign_coords(optimizer=[new[o] for o in names]).sortby("optimizer")
    shuffled = renamed.isel(trial=perm_t)
    a = target_study(ds, n_boot=100, rng=np.random.default_rng(7))
    b = target_study(renamed, n_boot=100, rng=np.random.default_rng(7))
    c = target_study(shuffled, n_boot=100, rng=np.random.default_rng(7))
    for o in names:
        for var in ("tuned", "rank"):
            x = getattr(a, var).sel(optimizer=o).values
            np.testing.assert_array_equal(x, getattr(b, var).sel(optimizer=new[o]).values)
            np.testing.assert_array_equal(x, getattr(c, var).sel(optimizer=new[o]).values)
    # Relabelling keeps the estimates; permuting trials keeps the p-values too (each cell's
    # bootstrap stream is keyed by its labels and resamples the sorted trials).
    da, db = a.inclusion.data, b.inclusion.data
    key_a = {
        (str(s), str(g)): i
        for i, (s, g) in enumerate(zip(da["special"].values, da["general"].values, strict=True))
    }
    inv = {v: k for k, v in new.items()}
    for i, (s, g) in enumerate(zip(db["special"].values, db["general"].values, strict=True)):
        j = key_a[(inv[str(s)], inv[str(g)])]
        np.testing.assert_allclose(
            db["difference"].isel(pair=i).values, da["difference"].isel(pair=j).values
        )
    dd = target_study(ds.isel(trial=perm_t), n_boot=100, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(dd.inclusion.data["p_value"].values, da["p_value"].values)


def test_subset_ranking_is_the_full_ranking_restricted() -> None:
    ds = _archive()
    full = target_study(ds, n_boot=20, rng=np.random.default_rng(0))
    # Default targets pool all optimizers, so the subset gets the full study's targets.
    same_targets = {w: full.target_value.sel(workload=w).values.tolist() for w in ("w0", "w1")}
    keep = ["sgd", "adam", "nesterov"]
    sub = target_study(
        ds, optimizers=keep, targets=same_targets, n_boot=20, rng=np.random.default_rng(0)
    )
    f = full.rank.sel(optimizer=list(sub.optimizers)).values
    s = sub.rank.values
    for i in range(len(keep)):
        for j in range(len(keep)):
            np.testing.assert_array_equal(np.sign(f[:, i] - f[:, j]), np.sign(s[:, i] - s[:, j]))


def test_inclusion_is_the_same_machinery_as_inclusion_consistency() -> None:
    """At the full budget the "final" condition is inclusion_consistency's final-valid test:
    the same estimate, interval, p-values and record keys (only the Holm family differs)."""
    from optcmp_analysis import inclusion_consistency

    ds = _archive(ragged=False)
    r = target_study(ds, fractions=(0.5, 1.0), n_targets=2, rng=np.random.default_rng(0))
    inc = inclusion_consistency(ds, rng=np.random.default_rng(0), rules=["final-valid"])
    ref = r.inclusion.data.isel(condition=r.reference)
    same = inc.data.sel(rule="final-valid")
    for var in ("difference", "se", "lo", "hi", "p_value", "p_noninferior", "k", "reason"):
        np.testing.assert_array_equal(ref[var].values, same[var].values)
    target_keys = next(rec for rec in r.to_json() if rec["record"] == "inclusion").keys()
    assert set(inc.to_json()[0]) - {"rule"} <= set(target_keys)
    # One Holm family over every tested (condition, pair, workload) of the call.
    d = r.inclusion.data
    assert r.inclusion.n_tests == int(np.isfinite(d["p_value"]).sum())
    p = d["p_value"].values.ravel()
    np.testing.assert_allclose(d["p_adjusted"].values.ravel(), holm(p))


def test_planted_violation_is_found_and_stable() -> None:
    ds = synthetic_archive(workloads=1, n_trials=30, planted={"adam": 0.15}, noise=0.002, seed=11)
    # Holm over 96 tests needs p below 0.05 / 96: at least 1920 resamples.
    r = target_study(ds, fractions=(0.5, 1.0), n_boot=4000, rng=np.random.default_rng(2))
    d = r.inclusion.data
    special, general = d["special"].values.astype(str), d["general"].values.astype(str)
    rel = next(i for i in range(len(special)) if (special[i], general[i]) == ("momentum", "adam"))
    verdicts = d["verdict"].isel(workload=0, pair=rel).values
    assert verdicts[r.reference] == "violated"
    # Relations not involving adam stay free of violations under every condition.
    for i, g in enumerate(general):
        if g != "adam":
            assert "violated" not in set(d["verdict"].isel(workload=0, pair=i).values)


def test_selection_repeats_and_repeat_means() -> None:
    ds = _archive(workloads=1, repeats={"seed": 3}, diverged_fraction=0.0, ragged=False)
    only = ds.copy()
    only.attrs["selection_repeats"] = "seed=1"
    r_all = target_study(ds, n_boot=50, rng=np.random.default_rng(0))
    r_one = target_study(only, n_boot=50, rng=np.random.default_rng(0))
    one_seed = ds.sel(seed=[1])
    r_sub = target_study(one_seed, n_boot=50, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(r_one.trial_steps.values, r_sub.trial_steps.values)
    assert not np.array_equal(r_all.target_value.values, r_one.target_value.values)


def test_explicit_targets_and_errors() -> None:
    ds = _archive()
    r = target_study(ds, targets=[0.3, 0.2], n_boot=20, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(r.target_value.values, [[0.3, 0.2], [0.3, 0.2]])
    per = target_study(
        ds, targets={"w0": [0.3], "w1": [0.25]}, n_boot=20, rng=np.random.default_rng(0)
    )
    assert per.target_value.values.tolist() == [[0.3], [0.25]]
    with pytest.raises(AnalysisError, match="unknown workload 'nope'"):
        target_study(ds, workloads=["nope"], rng=np.random.default_rng(0))
    with pytest.raises(AnalysisError, match="unknown optimizer"):
        target_study(ds, optimizers=["adamw"], rng=np.random.default_rng(0))
    dead = _archive(diverged_fraction=1.0)
    with pytest.raises(AnalysisError, match="no usable"):
        target_study(dead, rng=np.random.default_rng(0))


def test_json_records_are_flat() -> None:
    r = target_study(_archive(), n_boot=50, rng=np.random.default_rng(0))
    records = r.to_json()
    json.dumps(records, allow_nan=False)
    kinds = {rec["record"] for rec in records}
    assert {"tuned", "inclusion"} <= kinds
    for rec in records:
        assert all(isinstance(v, str | int | float | bool | type(None)) for v in rec.values())
    tuned = [rec for rec in records if rec["record"] == "tuned"]
    assert {"workload", "optimizer", "metric", "split", "value"} <= set(tuned[0])
    assert all(
        rec["reached"] is not None
        for rec in tuned
        if rec["kind"] == "steps" and rec["rank"] is not None
    )
    ds = r.to_dataset()
    assert set(ds["tuned"].dims) == {"workload", "optimizer", "condition"}


def _holm_by_definition(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(float("nan"))), min_size=1, max_size=12))
def test_holm_matches_its_definition(values: list[float]) -> None:
    p = np.array(values)
    ok = np.isfinite(p)
    adjusted = holm(p)
    assert np.isnan(adjusted[~ok]).all()
    if ok.any():
        np.testing.assert_allclose(adjusted[ok], _holm_by_definition(p[ok].tolist()))


def test_holm_matches_statsmodels_per_column() -> None:
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(0).random((7, 3)) ** 3
    p[2, 1] = np.nan
    adjusted = holm(p, axis=0)
    for c in range(3):
        ok = np.isfinite(p[:, c])
        np.testing.assert_allclose(adjusted[ok, c], multipletests(p[ok, c], method="holm")[1])


def test_the_order_of_the_archive_dims_does_not_matter() -> None:
    """Named dims, not positions: an archive whose variables hold their dims in reverse
    order gives the same study (seeded alike), repeats included."""
    ds = synthetic_archive(
        workloads=2,
        optimizers=["sgd", "momentum", "adam"],
        n_trials=12,
        repeats={"seed": 2},
        ragged=True,
        diverged_fraction=0.1,
        seed=4,
    )
    flipped = ds.transpose(*reversed(list(ds.dims)))
    assert flipped["status"].dims != ds["status"].dims
    a = target_study(ds, n_boot=99, rng=np.random.default_rng(3))
    b = target_study(flipped, n_boot=99, rng=np.random.default_rng(3))
    xr.testing.assert_identical(a.to_dataset(), b.to_dataset())
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())
