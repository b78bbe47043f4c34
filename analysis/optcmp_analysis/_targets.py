"""Target independence (the paper's Figure 10): steps and time to reach target validation
values, under truncated step budgets, and whether rankings and inclusion verdicts change.

Dependency rule: numpy, scipy, statsmodels, xarray, attrs and optcmp_data only.

Conditions. Every comparison is made under a *condition*: either
- kind "steps": the tuned steps-to-target (the fewest steps any usable trial needs to first
  reach target value i, counting only evaluations at or before the truncated step limit),
  or
- kind "final": the test metric of the trial selected by its validation metric at the last
  evaluation at or before the truncated step limit (selection on the truncated data).
The reference condition is kind "final" at the largest step fraction: the paper's usual
comparison. Every other condition's ranking is compared with it (Kendall tau, flips).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._enums import DEFAULT_FRACTIONS, ConditionKind
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._estimator import DEFAULT_TEST_N_BOOT, holm
from optcmp_analysis._inclusion import (
    InclusionResult,
    archive_pairs,
    check_options,
    inclusion_tests,
    resolution_caveats,
)
from optcmp_analysis._kernels import argbest, competition_ranks, kendall_tau, mean_where
from optcmp_analysis._margins import MARGIN_RULE, rule_margin
from optcmp_analysis._records import (
    Cell,
    Computed,
    Extra,
    Label,
    Records,
    Result,
    Spread,
    Var,
    attr,
    finite,
    restrict,
    root_seed,
    variable,
    where,
)
from optcmp_analysis._selection import RepeatMode, selection_repeat_mask
from optcmp_data import Direction, Status, Taxonomy, check_bootstrap, repeat_dims

__all__ = [
    "ConditionKind",
    "TargetStudy",
    "first_reach",
    "holm",
    "steps_to_target",
    "target_study",
]

FloatArray = npt.NDArray[np.float64]


def first_reach(
    values: npt.ArrayLike,
    steps: npt.ArrayLike,
    times: npt.ArrayLike,
    targets: npt.ArrayLike,
    limit: npt.ArrayLike,
    *,
    axis: int = -1,
) -> tuple[FloatArray, FloatArray]:
    """Step and time of the first evaluation whose value is <= each target (smaller is better).

    `values`, `steps`, `times` share the evaluation `axis`; `targets` has one trailing axis
    of target values and broadcasts with the other axes; `limit` (the truncated step
    budget) broadcasts with them too. Evaluations with step < 0 (ragged padding), step >
    limit, or a NaN value never count; "first" is by step, not by storage position. Returns
    arrays of shape (..., n_targets): inf where a target is never reached. For metrics where
    larger is better, pass negated values and targets.
    """
    v = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    s = np.moveaxis(np.asarray(steps), axis, -1)
    t = np.moveaxis(np.asarray(times, dtype=np.float64), axis, -1)
    tg = np.asarray(targets, dtype=np.float64)
    lim = np.asarray(limit)
    ok = (s >= 0) & (s <= lim[..., None])
    with np.errstate(invalid="ignore"):
        hit = ok[..., None, :] & (v[..., None, :] <= tg[..., :, None])
    s_hit = np.where(hit, s[..., None, :].astype(np.float64), np.inf)
    first = s_hit.argmin(axis=-1)
    reached = hit.any(axis=-1)
    step_at = np.take_along_axis(s_hit, first[..., None], axis=-1)[..., 0]
    t_full = np.broadcast_to(t[..., None, :], s_hit.shape)
    time_at = np.take_along_axis(t_full, first[..., None], axis=-1)[..., 0]
    return (
        np.where(reached, step_at, np.inf),
        np.where(reached, time_at, np.inf),
    )


def steps_to_target(
    values: xr.DataArray,
    step: xr.DataArray,
    time: xr.DataArray,
    targets: xr.DataArray,
    /,
    *,
    limit: xr.DataArray | float = np.inf,
    direction: Direction | str = Direction.MIN,
    dim: str = "eval",
    target_dim: str = "target",
) -> xr.Dataset:
    """`first_reach` on named dims: every dim other than `dim` (of the curves) and
    `target_dim` (of `targets`) broadcasts, so workloads, optimizers, trials and repeat
    axes need no loops. For direction "max" a target is reached when the value is >= it.
    Returns variables `steps` and `time` (inf: never reached within `limit`).
    """
    sign = -1.0 if Direction(direction) is Direction.MAX else 1.0
    steps, times = xr.apply_ufunc(
        first_reach,
        sign * values,
        step,
        time,
        sign * targets,
        limit,
        input_core_dims=[[dim], [dim], [dim], [target_dim], []],
        output_core_dims=[[target_dim], [target_dim]],
    )
    return xr.Dataset({"steps": steps, "time": times})


def _truncated_final(
    values: FloatArray, steps: npt.NDArray[np.int64], limit: FloatArray
) -> FloatArray:
    """Value at the last evaluation (by step) at or before `limit`; NaN where none."""
    ok = (steps >= 0) & (steps <= limit[..., None])
    key = np.where(ok, steps, -1)
    last = key.argmax(axis=-1)
    out = np.take_along_axis(values, last[..., None], axis=-1)[..., 0]
    return np.where(ok.any(axis=-1), out, np.nan)


# The keys describing a condition (`TargetStudy._condition`), in order.
_CONDITION_KEYS = ("kind", "target", "target_value", "fraction", "step_limit", "metric", "split")
# The keys of a "flip" record (`TargetStudy.flips`).
_FLIP_KEYS = (
    "record",
    "workload",
    *_CONDITION_KEYS,
    "optimizer",
    "other",
    "reference_value",
    "other_reference_value",
    "value",
    "other_value",
    "rank_change",
)


@attrs.frozen
class TargetStudy(Result):
    """Steps-to-target and truncated-budget comparisons (see the module docstring).

    Arrays (xarray, named dims):
    - `target_value` (workload, target): the target validation values.
    - `step_limit` (workload, fraction): the truncated step budgets.
    - `trial_steps`, `trial_time` (workload, optimizer, trial, target, fraction): first
      step / time each trial reaches each target (inf: never; NaN: trial not usable).
    - `tuned` (workload, optimizer, condition): the tuned value under each condition
      (steps for kind "steps", test metric for kind "final"; NaN: no usable trial).
    - `tuned_time` (workload, optimizer, condition): time to target of the fastest trial
      (NaN for kind "final").
    - `rank` (workload, optimizer, condition): 1 + the number of strictly better
      optimizers (ties share the best rank; "never reached" ties; NaN: no usable trial).
    - `kendall_tau` (workload, condition): tau-b against the reference condition.
    - `inclusion`: the inclusion tests of every pair (special ⊆ general) of the taxonomy
      under every condition, the same record as `inclusion_consistency` with lead dim
      "condition" (dims condition, pair, workload).
    """

    workloads: tuple[str, ...]
    optimizers: tuple[str, ...]
    splits: Mapping[str, str]
    metric_names: Mapping[str, str]
    fractions: tuple[float, ...]
    n_targets: int
    reference: int = attrs.field(metadata=attr(name="reference_condition"))
    condition_kind: tuple[str, ...]
    condition_target: tuple[int, ...]
    condition_fraction: tuple[float, ...]
    target_value: xr.DataArray = attrs.field(metadata=variable())
    step_limit: xr.DataArray = attrs.field(metadata=variable())
    trial_steps: xr.DataArray = attrs.field(metadata=variable())
    trial_time: xr.DataArray = attrs.field(metadata=variable())
    tuned: xr.DataArray = attrs.field(metadata=variable())
    tuned_time: xr.DataArray = attrs.field(metadata=variable())
    rank: xr.DataArray = attrs.field(metadata=variable())
    kendall_tau: xr.DataArray = attrs.field(metadata=variable())
    inclusion: InclusionResult

    def flips(self) -> list[dict[str, Any]]:
        """Optimizer pairs ordered one way under the reference and strictly the other way
        under another condition (ties and NaN never count as flips)."""
        out: list[dict[str, Any]] = []
        for wi, w in enumerate(self.workloads):
            tuned = self.tuned.sel(workload=w).transpose("optimizer", "condition").values
            rank = self.rank.sel(workload=w).transpose("optimizer", "condition").values
            ref = self.reference
            for c in range(len(self.condition_kind)):
                if c == ref:
                    continue
                for i, a in enumerate(self.optimizers):
                    for j, b in enumerate(self.optimizers):
                        if rank[i, ref] < rank[j, ref] and rank[i, c] > rank[j, c]:
                            out.append(
                                {
                                    "record": "flip",
                                    "workload": w,
                                    **self._condition(wi, c),
                                    "optimizer": a,
                                    "other": b,
                                    "reference_value": float(tuned[i, ref]),
                                    "other_reference_value": float(tuned[j, ref]),
                                    "value": float(tuned[i, c]),
                                    "other_value": float(tuned[j, c]),
                                    "rank_change": float(rank[i, c] - rank[i, ref]),
                                }
                            )
        return out

    def verdict_changes(self) -> list[tuple[str, str, str]]:
        """(workload, special, general) whose verdict is not the same under every condition."""
        out: list[tuple[str, str, str]] = []
        d = self.inclusion.data
        verdict = d["verdict"].transpose("workload", "pair", "condition").values.astype(str)
        special, general = d["special"].values.astype(str), d["general"].values.astype(str)
        for wi, w in enumerate(self.workloads):
            for r in range(len(special)):
                if len(set(verdict[wi, r])) > 1:
                    out.append((w, str(special[r]), str(general[r])))
        return out

    def _condition(self, wi: int, c: int) -> dict[str, Any]:
        w = self.workloads[wi]
        kind = self.condition_kind[c]
        tgt = self.condition_target[c]
        frac = self.condition_fraction[c]
        return {
            "kind": kind,
            "target": tgt,
            "target_value": (
                float(self.target_value.isel(workload=wi, target=tgt)) if tgt >= 0 else math.nan
            ),
            "fraction": frac,
            "step_limit": float(
                self.step_limit.isel(workload=wi, fraction=self.fractions.index(frac))
            ),
            "metric": "steps_to_target" if kind == ConditionKind.STEPS else self.metric_names[w],
            "split": self.splits[w] if kind == ConditionKind.STEPS else "test",
        }

    def _dataset(self) -> xr.Dataset:
        """The `variable()` fields, the inclusion tests' variables (prefixed
        "inclusion_") and the conditions' and workloads' coordinates."""
        ds = super()._dataset()
        inc = self.inclusion.data.drop_vars("metric_name", errors="ignore")
        ds = ds.assign(
            {f"inclusion_{v}": inc[v].reset_coords(drop=True) for v in inc.data_vars}
        ).assign_coords({c: inc[c] for c in ("special", "general")})
        ds = ds.assign_coords(
            condition_kind=("condition", np.array(self.condition_kind, dtype=str)),
            condition_target=("condition", np.array(self.condition_target, dtype=np.int64)),
            condition_fraction=("condition", np.array(self.condition_fraction)),
            split=("workload", np.array([self.splits[w] for w in self.workloads], dtype=str)),
        )
        return ds

    def _extra_attrs(self) -> dict[str, Any]:
        return {f"inclusion_{k}": v for k, v in self.inclusion.to_dataset().attrs.items()}

    def _condition_of(self, cell: Cell) -> dict[str, Any]:
        return self._condition(cell.at["workload"], cell.at["condition"])

    def _reached(self, cell: Cell) -> bool | None:
        # JSON writes inf as null: say "never reached" explicitly.
        value = float(cell["tuned"])
        steps = self.condition_kind[cell.at["condition"]] == ConditionKind.STEPS
        return bool(np.isfinite(value)) if steps and not np.isnan(value) else None

    def _inclusion_records(self) -> list[dict[str, Any]]:
        """The inclusion tests' records, each with its condition's description (in place of
        the condition's label) and whether the pair's verdict changes across conditions."""
        changed = set(self.verdict_changes())
        out = []
        for rec in self.inclusion.to_json():
            c = int(rec.pop("condition"))
            rec.update(self._condition(self.workloads.index(rec["workload"]), c))
            rec["verdict_changes"] = (rec["workload"], rec["special"], rec["general"]) in changed
            out.append({"record": "inclusion", **rec})
        return out

    def _inclusion_keys(self) -> tuple[str, ...]:
        keys = [k for k in self.inclusion.json_keys()[None] if k != "condition"]
        more = [k for k in _CONDITION_KEYS if k not in keys]
        return ("record", *keys, *more, "verdict_changes")

    # Flat records: `record` is "tuned" (one per workload, optimizer and condition),
    # "inclusion" (one per workload, relation and condition) or "flip".
    JSON = (
        Records(
            record="tuned",
            dims=("workload", "condition", "optimizer"),
            keys=(
                Label("workload"),
                Label("optimizer"),
                Spread(_CONDITION_KEYS, "_condition_of"),
                Var("value", "tuned", cast=float),
                Computed("reached", "_reached"),
                Var("time", "tuned_time", cast=float),
                Var("rank", cast=float),
                Var("kendall_tau", cast=float),
                Computed("reference", lambda r, c: c.at["condition"] == r.reference),
            ),
        ),
        Extra("_inclusion_records", "inclusion", "_inclusion_keys"),
        Extra("flips", "flip", _FLIP_KEYS),
    )


# --- archive access --------------------------------------------------------------------


def _run_masks(
    status: npt.NDArray[np.str_], allowed: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(present runs among `allowed`, trial usable) over the last axis (the runs).

    A trial is usable when at least one allowed run exists and every allowed run that
    exists completed: a diverged or incomplete repeat disqualifies the whole setting.
    """
    present = (status != Status.MISSING.value) & allowed
    completed = status == Status.COMPLETED.value
    usable = present.any(axis=-1) & (completed | ~present).all(axis=-1)
    return present, usable


# --- the phases on named dims (numpy kernels above, xarray wrappers here) ---------------


def _runs(da: xr.DataArray, rep: tuple[str, ...]) -> xr.DataArray:
    """`da` with its repeat dims stacked into one dim `run` (length 1 without repeats)."""
    if not rep:
        return da.expand_dims("run", axis=-1)
    return da.stack(run=list(rep), create_index=False)


def _run_mean(values: xr.DataArray, mask: xr.DataArray) -> xr.DataArray:
    """`mean_where` over the runs."""
    out = xr.apply_ufunc(
        mean_where, values, mask, input_core_dims=[["run"], ["run"]], kwargs={"axis": -1}
    )
    assert isinstance(out, xr.DataArray)
    return out


def _truncated(values: xr.DataArray, steps: xr.DataArray, limit: xr.DataArray) -> xr.DataArray:
    """`_truncated_final` over the evaluations; `limit` broadcasts (e.g. over fractions)."""
    out = xr.apply_ufunc(
        _truncated_final, values, steps, limit, input_core_dims=[["eval"], ["eval"], []]
    )
    assert isinstance(out, xr.DataArray)
    return out


def _checked_fractions(
    fractions: Sequence[float], n_targets: int, alpha: float, n_boot: int
) -> tuple[float, ...]:
    if n_targets < 1:
        raise AnalysisError(f"n_targets: {n_targets} must be at least 1")
    fracs = tuple(float(f) for f in fractions)
    if not fracs or any(not (0.0 < f <= 1.0) for f in fracs) or len(set(fracs)) != len(fracs):
        raise AnalysisError(f"fractions: {list(fracs)} must be distinct values in (0, 1]")
    check_options(alpha, n_boot)
    return fracs


def _target_count(
    targets: Sequence[float] | Mapping[str, Sequence[float]] | None,
    n_targets: int,
    workloads: Sequence[str],
) -> int:
    """How many targets each workload gets (the same for all)."""
    if isinstance(targets, Mapping):
        missing = [w for w in workloads if w not in targets]
        if missing:
            raise AnalysisError(f"targets: no target values for workload {missing[0]!r}")
        lengths = {len(targets[w]) for w in workloads}
        if len(lengths) != 1:
            raise AnalysisError("targets: every workload needs the same number of target values")
        n_targets = lengths.pop()
    elif targets is not None:
        n_targets = len(targets)
    if n_targets < 1:
        raise AnalysisError("targets: at least one target value is needed")
    return n_targets


def _trials(ds: xr.Dataset, fracs: tuple[float, ...]) -> xr.Dataset:
    """Per trial (workload, optimizer, trial; `run` the stacked repeats, `eval` the
    evaluations): the signed selection curves `curve` (smaller is better), `step`, `time`;
    `present_sel` (runs selection may use), `usable`, `present`; `step_limit` (workload,
    fraction); `full` (final selection value at the full budget, mean over the runs);
    `final_sel` (signed) and `final_test` (natural units) at each truncated budget
    (workload, optimizer, trial, fraction)."""
    rep = tuple(repeat_dims(ds))
    sign = where(ds["metric_direction"] == Direction.MIN.value, 1.0, -1.0)
    split = ds["selection_split"].astype(str)
    selection = ds["test_metric"]
    for s in sorted(set(split.values.tolist()) - {"test"}):
        selection = where(split == s, ds[f"{s}_metric"], selection)
    status = _runs(ds["status"], rep).astype(str)
    allowed = _runs(selection_repeat_mask(ds), rep)
    present_sel, usable = xr.apply_ufunc(
        _run_masks,
        status,
        allowed,
        input_core_dims=[["run"], ["run"]],
        output_core_dims=[["run"], []],
    )
    completed = status == Status.COMPLETED.value
    step = _runs(ds["step"], rep)
    time = _runs(ds["time"], rep)
    curve = sign * _runs(selection, rep)
    test = _runs(ds["test_metric"], rep)

    # A recorded budget may be a hint that runs go past (AlgoPerf's step_hint: its runs
    # stop on time); fraction 1 must keep every evaluation, as selection does.
    largest = (
        step.max([d for d in step.dims if d != "workload"]).astype(np.int64)
        if step.size
        else xr.zeros_like(ds["step_budget"], dtype=np.int64)
    )
    recorded = ds["step_budget"].astype(np.int64)
    budget = where(largest > recorded, largest, recorded)
    fraction = xr.DataArray(np.array(fracs), dims="fraction", coords={"fraction": list(fracs)})
    step_limit = fraction * budget
    sel_tr = _truncated(curve, step, step_limit)
    test_tr = _truncated(test, step, step_limit)
    full = _run_mean(_truncated(curve, step, budget.astype(np.float64)), present_sel)
    # As in selection: usable needs a finite final selection value at the full budget.
    usable = usable & finite(full)
    reported = completed & finite(test_tr)
    return xr.Dataset(
        {
            "curve": curve,
            "step": step,
            "time": time,
            "present_sel": present_sel,
            "usable": usable,
            "present": (status != Status.MISSING.value).any("run"),
            "step_limit": step_limit,
            "full": full,
            "final_sel": where(usable, _run_mean(sel_tr, present_sel), np.nan),
            "final_test": where(usable, _run_mean(test_tr, reported), np.nan),
            "sign": sign,
            "split": split,
        }
    )


def _target_values(
    trials: xr.Dataset,
    targets: Sequence[float] | Mapping[str, Sequence[float]] | None,
    n_targets: int,
) -> xr.DataArray:
    """The target validation values (workload, target), natural units: given, or
    `n_targets` evenly spaced from the median to the best full-budget selection value of
    the workload's usable trials."""
    out = []
    for w in trials["workload"].values:
        if isinstance(targets, Mapping):
            out.append(np.asarray(targets[str(w)], dtype=np.float64))
        elif targets is not None:
            out.append(np.asarray(targets, dtype=np.float64))
        else:
            cell = trials.sel(workload=w)
            pool = cell["full"].values[cell["usable"].values]
            if pool.size == 0:
                raise AnalysisError(
                    f"workload {str(w)!r}: no usable trial (completed, with a final "
                    f"{cell['split'].item()} metric); no default targets"
                )
            easy, hard = float(np.median(pool)), float(pool.min())
            out.append(float(cell["sign"]) * np.linspace(easy, hard, n_targets))
    return xr.DataArray(
        np.stack(out), dims=("workload", "target"), coords={"workload": trials["workload"].values}
    )


def _reach(trials: xr.Dataset, target_value: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Steps and time at which each usable trial first reaches each target within each
    truncated budget, mean over the runs selection may use (workload, optimizer, trial,
    target, fraction); NaN where the trial is not usable, inf where never reached. One
    workload at a time, to hold one workload's (trial, run, target, fraction, eval) draws."""
    steps: list[xr.DataArray] = []
    times: list[xr.DataArray] = []
    for w in trials["workload"].values:
        cell = trials.sel(workload=w)
        reach = steps_to_target(
            cell["curve"],
            cell["step"],
            cell["time"],
            cell["sign"] * target_value.sel(workload=w),
            limit=cell["step_limit"],
        )
        for var, out in (("steps", steps), ("time", times)):
            mean = _run_mean(reach[var], cell["present_sel"])
            out.append(where(cell["usable"], mean, np.nan))
    dims = ("workload", "optimizer", "trial", "target", "fraction")
    # Coordinates that differ between workloads (an imported archive's settings, e.g.
    # DeepOBS's batch_size) are joined along `workload`, as xarray has done by default;
    # saying so keeps that when its default changes (and silences its warning).
    return (
        xr.concat(steps, dim="workload", coords="different", compat="equals").transpose(*dims),
        xr.concat(times, dim="workload", coords="different", compat="equals").transpose(*dims),
    )


@attrs.frozen
class _Conditions:
    """The conditions: steps for every (target, fraction), then final for every fraction;
    `reference` (final at the largest fraction) is the one the others are compared with."""

    kind: tuple[str, ...]
    target: tuple[int, ...]
    fraction: tuple[float, ...]
    reference: int

    @classmethod
    def of(cls, n_targets: int, fracs: tuple[float, ...]) -> _Conditions:
        steps = [(ConditionKind.STEPS.value, t, f) for t in range(n_targets) for f in fracs]
        final = [(ConditionKind.FINAL.value, -1, f) for f in fracs]
        kind, target, fraction = zip(*steps, *final, strict=True)
        reference = n_targets * len(fracs) + int(np.argmax(fracs))
        return cls(tuple(kind), tuple(target), tuple(fraction), reference)

    def __iter__(self) -> Iterator[tuple[str, int, float]]:
        return iter(zip(self.kind, self.target, self.fraction, strict=True))


def _best_over_trials(values: xr.DataArray, usable: xr.DataArray) -> xr.DataArray:
    """Smallest value over the trials among usable ones; NaN where none is usable, and NaN
    where a usable trial's value is unknown (an archive without times)."""
    best = where(usable, values, np.inf).min("trial", skipna=False)
    return where(usable.any("trial"), best, np.nan)


def _tuned(
    trials: xr.Dataset,
    trial_steps: xr.DataArray,
    trial_time: xr.DataArray,
    conditions: _Conditions,
) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray, xr.DataArray]:
    """Tuned value and time under each condition (workload, optimizer, condition), ranks
    (1 = best) and Kendall tau of each condition's ranking against the reference's
    (workload, condition)."""
    steps_min = _best_over_trials(trial_steps, trials["usable"])
    time_min = _best_over_trials(trial_time, trials["usable"])
    pick = xr.apply_ufunc(
        argbest, trials["final_sel"], input_core_dims=[["trial"]], kwargs={"axis": -1}
    )
    test_pick = trials["final_test"].isel(trial=pick.clip(min=0))
    test_pick = where(pick >= 0, test_pick, np.nan)
    tuned, tuned_time, score = [], [], []
    for kind, target, fraction in conditions:
        at = {"fraction": fraction}
        if kind == ConditionKind.STEPS:
            value = steps_min.isel(target=target).sel(at)
            tuned_time.append(time_min.isel(target=target).sel(at))
            score.append(value)
        else:
            value = test_pick.sel(at)
            tuned_time.append(xr.full_like(value, np.nan))
            score.append(trials["sign"] * value)
        tuned.append(value)

    def stacked(parts: list[xr.DataArray]) -> xr.DataArray:
        cond = xr.concat([p.reset_coords(drop=True) for p in parts], dim="condition")
        return cond.transpose("workload", "optimizer", "condition")

    scores = stacked(score)
    ranks = xr.apply_ufunc(
        competition_ranks,
        scores,
        input_core_dims=[["optimizer"]],
        output_core_dims=[["optimizer"]],
        kwargs={"axis": -1},
    ).transpose(*scores.dims)
    ranks = where(np.isnan(scores), np.nan, ranks)
    tau = xr.apply_ufunc(
        kendall_tau,
        ranks.isel(condition=conditions.reference),
        ranks,
        input_core_dims=[["optimizer"], ["optimizer"]],
        vectorize=True,
    ).transpose("workload", "condition")
    return stacked(tuned), stacked(tuned_time), ranks, tau


def _margins(
    value: xr.DataArray,
    use: xr.DataArray,
    conditions: _Conditions,
    margin: float | Mapping[str, float] | None,
) -> tuple[xr.DataArray, dict[str, str]]:
    """The non-inferiority margin of every (condition, workload): the one given (final
    conditions only), else `MARGIN_RULE` on the condition's values; and each workload's
    margin rule."""
    w_names = [str(w) for w in value["workload"].values]
    if isinstance(margin, Mapping):
        unknown = sorted(set(margin) - set(w_names) - {"*"})
        if unknown:
            raise AnalysisError(f"margins: workload {unknown[0]!r} is not in the archive")
    margins = xr.DataArray(
        np.full((len(conditions.kind), len(w_names)), np.nan),
        dims=("condition", "workload"),
        coords={"workload": value["workload"].values},
    )
    rules: dict[str, str] = {}
    for c, (kind, _, _) in enumerate(conditions):
        for name in w_names:
            given = margin.get(name, margin.get("*")) if isinstance(margin, Mapping) else margin
            if kind != ConditionKind.STEPS and given is not None:
                if not (np.isfinite(given) and given >= 0):
                    raise AnalysisError(f"margin for workload {name!r}: {given} is not >= 0")
                margins[c, w_names.index(name)] = float(given)
                rules.setdefault(name, "given")
            else:
                at = {"condition": c, "workload": w_names.index(name)}
                cell = value.isel(at).transpose("optimizer", "trial").values
                used = use.isel(at).transpose("optimizer", "trial").values
                margins[c, w_names.index(name)] = rule_margin(cell[used])
                rules.setdefault(name, MARGIN_RULE)
    return margins, rules


def _inclusion(
    ds: xr.Dataset,
    trials: xr.Dataset,
    trial_steps: xr.DataArray,
    conditions: _Conditions,
    *,
    taxonomy: Taxonomy | None,
    budget: int | None,
    n_boot: int,
    alpha: float,
    margin: float | Mapping[str, float] | None,
    root: int,
) -> InclusionResult:
    """The inclusion tests under every condition (lead dim "condition"): under "steps" a
    trial's value is its steps to the target censored at the step limit (every present
    trial counts); under "final" its test value at the truncated budget."""
    _, pairs, reasons, caveats = archive_pairs(ds, taxonomy)
    usable, present = trials["usable"], trials["present"]
    scores, values, uses = [], [], []
    for kind, target, fraction in conditions:
        at = {"fraction": fraction}
        if kind == ConditionKind.STEPS:
            limit = trials["step_limit"].sel(at)
            steps = trial_steps.isel(target=target).sel(at)
            reached = usable & finite(steps)
            value = where(reached, np.minimum(steps, limit), limit)
            scores.append(value)
            values.append(value)
            uses.append(present)
        else:
            score = trials["final_sel"].sel(at)
            scores.append(score)
            values.append(trials["sign"] * trials["final_test"].sel(at))
            uses.append(usable & finite(score))
    dims = ("condition", "workload", "optimizer", "trial")

    def stacked(parts: list[xr.DataArray]) -> xr.DataArray:
        parts = [p.reset_coords(drop=True) for p in parts]
        out = xr.concat(xr.broadcast(*parts), dim="condition").transpose(*dims)
        return out.assign_coords(condition=np.arange(len(parts)))

    score, value, use = stacked(scores), stacked(values), stacked(uses)
    margins, margin_rules = _margins(value, use, conditions, margin)
    data = inclusion_tests(
        score,
        value,
        use,
        present.broadcast_like(score).transpose(*dims),
        pairs=pairs,
        reasons=reasons,
        lead="condition",
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margins=margins.values,
        root=root,
    )
    data["metric_name"] = ds["metric_name"].astype(str)
    return InclusionResult(
        data=data,
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margins={
            str(w): float(m)
            for w, m in zip(margins["workload"].values, margins[-1].values, strict=True)
        },
        margin_rules=margin_rules,
        repeats=RepeatMode.MEAN,
        caveats=(*caveats, *resolution_caveats(data, n_boot, alpha)),
        lead="condition",
    )


# --- the analysis ----------------------------------------------------------------------


def target_study(
    archive: xr.Dataset,
    /,
    *,
    targets: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    n_targets: int = 5,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    workloads: Sequence[str] | None = None,
    optimizers: Sequence[str] | None = None,
    budget: int | None = None,
    n_boot: int = DEFAULT_TEST_N_BOOT,
    alpha: float = 0.05,
    margin: float | Mapping[str, float] | None = None,
    taxonomy: Taxonomy | None = None,
    rng: np.random.Generator,
) -> TargetStudy:
    """Steps and time to target, truncated budgets, rankings and inclusion verdicts.

    `targets`: validation values in the metric's own units, for every workload or per
    workload name; default `n_targets` values evenly spaced from the median to the best
    final validation value of the workload's usable trials (all optimizers pooled,
    direction-aware), easiest first. `fractions`: truncated step budgets as fractions of
    each workload's step budget (of its largest evaluated step when the archive has none or
    its runs evaluate beyond it).
    Only usable trials (completed, with a final selection value) count; with repeat axes a
    trial's steps (and final values) are the mean over its repeats (DeepOBS "speed"), and
    only the repeats named by the archive's `selection_repeats` attribute are used for
    selection and steps. Inclusion verdicts (relations from `taxonomy`, default the
    archive's own) are `inclusion_consistency`'s tests with the condition as the lead dim:
    the same estimator (expected best-of-k at `budget`, default `BUDGET_RULE`),
    bootstrap-t p-values and intervals (`n_boot`), stored-space check (not_included),
    verdict rules (`alpha`, `margin`: in the metric's units for "final" conditions, given
    or by `MARGIN_RULE`; `MARGIN_RULE` on the steps for "steps" conditions) and one Holm
    family per verdict over every tested (condition, pair, workload) of the call. Under a
    "steps" condition a trial's value is its steps to the target, censored at the
    condition's step limit (a trial that never reaches the target or is not usable scores
    the limit); under a "final" condition E_k is the expected best-of-k value given a
    usable trial, as in inclusion_consistency.
    """
    fracs = _checked_fractions(fractions, n_targets, alpha, n_boot)
    ds = restrict(archive, workloads=workloads, optimizers=optimizers)
    # Bootstrap tests hold (n_boot, trials) draws per workload.
    check_bootstrap(ds.sizes["trial"], n_boot, option="--n-test-boot")
    w_names = tuple(str(w) for w in ds["workload"].values)
    n_targets = _target_count(targets, n_targets, w_names)
    # Steps and times per (cell, trial, target, fraction).
    check_bootstrap(
        ds.sizes["workload"] * ds.sizes["optimizer"] * ds.sizes["trial"] * len(fracs),
        n_targets,
        option="--n-targets",
        bytes_per_draw=64,
        what=f"steps to {n_targets} targets",
    )
    trials = _trials(ds, fracs)
    target_value = _target_values(trials, targets, n_targets)
    trial_steps, trial_time = _reach(trials, target_value)
    if not bool(trials["usable"].any()):
        raise AnalysisError("archive: no usable (completed) trials in the selected cells")
    conditions = _Conditions.of(n_targets, fracs)
    tuned, tuned_time, rank, tau = _tuned(trials, trial_steps, trial_time, conditions)
    inclusion = _inclusion(
        ds,
        trials,
        trial_steps,
        conditions,
        taxonomy=taxonomy,
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margin=margin,
        root=root_seed(rng),
    )
    return _study(
        ds,
        trials,
        target_value,
        trial_steps,
        trial_time,
        tuned,
        tuned_time,
        rank,
        tau,
        inclusion,
        conditions,
        fracs,
        n_targets,
    )


def _study(
    ds: xr.Dataset,
    trials: xr.Dataset,
    target_value: xr.DataArray,
    trial_steps: xr.DataArray,
    trial_time: xr.DataArray,
    tuned: xr.DataArray,
    tuned_time: xr.DataArray,
    rank: xr.DataArray,
    tau: xr.DataArray,
    inclusion: InclusionResult,
    conditions: _Conditions,
    fracs: tuple[float, ...],
    n_targets: int,
) -> TargetStudy:
    """The record, its arrays in their documented dim order with the archive's labels."""
    w_names = tuple(str(w) for w in ds["workload"].values)
    wc = {"workload": list(w_names)}
    woc = {**wc, "optimizer": [str(o) for o in ds["optimizer"].values]}
    fr = {"fraction": list(fracs)}
    trial = ("workload", "optimizer", "trial", "target", "fraction")
    cond = ("workload", "optimizer", "condition")

    def plain(da: xr.DataArray, dims: tuple[str, ...], coords: dict[str, Any]) -> xr.DataArray:
        return xr.DataArray(da.transpose(*dims).values, dims=dims, coords=coords)

    by_trial = {**woc, "trial": ds["trial"].values, **fr}
    return TargetStudy(
        workloads=w_names,
        optimizers=tuple(woc["optimizer"]),
        splits={w: str(s) for w, s in zip(w_names, trials["split"].values, strict=True)},
        metric_names={w: str(m) for w, m in zip(w_names, ds["metric_name"].values, strict=True)},
        fractions=fracs,
        n_targets=n_targets,
        reference=conditions.reference,
        condition_kind=conditions.kind,
        condition_target=conditions.target,
        condition_fraction=conditions.fraction,
        target_value=plain(target_value, ("workload", "target"), wc),
        step_limit=plain(trials["step_limit"], ("workload", "fraction"), {**wc, **fr}),
        trial_steps=plain(trial_steps, trial, by_trial),
        trial_time=plain(trial_time, trial, by_trial),
        tuned=plain(tuned, cond, woc),
        tuned_time=plain(tuned_time, cond, woc),
        rank=plain(rank, cond, woc),
        kendall_tau=plain(tau, ("workload", "condition"), wc),
        inclusion=inclusion,
    )
