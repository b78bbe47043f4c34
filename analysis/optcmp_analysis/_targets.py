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
from collections.abc import Mapping, Sequence
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
from optcmp_analysis._records import Result, attr, json_value, restrict, root_seed, variable
from optcmp_analysis._selection import RepeatMode, selection_repeat_mask
from optcmp_data import Direction, Status, Taxonomy, repeat_dims
from optcmp_data._limits import check_bootstrap

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
            "target_value": float(self.target_value.values[wi, tgt]) if tgt >= 0 else math.nan,
            "fraction": frac,
            "step_limit": float(self.step_limit.values[wi, self.fractions.index(frac)]),
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

    def to_json(self) -> list[dict[str, Any]]:
        """Flat records: `record` is "tuned" (one per workload, optimizer and condition),
        "inclusion" (one per workload, relation and condition) or "flip"."""
        out: list[dict[str, Any]] = []
        dims = ("workload", "optimizer", "condition")
        tuned = self.tuned.transpose(*dims).values
        tuned_time = self.tuned_time.transpose(*dims).values
        rank = self.rank.transpose(*dims).values
        tau = self.kendall_tau.transpose("workload", "condition").values
        for wi, w in enumerate(self.workloads):
            for c in range(len(self.condition_kind)):
                cond = self._condition(wi, c)
                for oi, o in enumerate(self.optimizers):
                    value = float(tuned[wi, oi, c])
                    out.append(
                        {
                            "record": "tuned",
                            "workload": w,
                            "optimizer": o,
                            **cond,
                            "value": value,
                            # JSON writes inf as null: say "never reached" explicitly.
                            "reached": (
                                bool(np.isfinite(value))
                                if cond["kind"] == ConditionKind.STEPS and not np.isnan(value)
                                else None
                            ),
                            "time": float(tuned_time[wi, oi, c]),
                            "rank": float(rank[wi, oi, c]),
                            "kendall_tau": float(tau[wi, c]),
                            "reference": c == self.reference,
                        }
                    )
        changed = set(self.verdict_changes())
        for rec in self.inclusion.to_json():
            c = int(rec.pop("condition"))
            wi = self.workloads.index(rec["workload"])
            rec.update(self._condition(wi, c))
            rec["verdict_changes"] = (rec["workload"], rec["special"], rec["general"]) in changed
            out.append({"record": "inclusion", **rec})
        out.extend(self.flips())
        return [json_value(r) for r in out]


# --- archive access --------------------------------------------------------------------


def _run_masks(
    status: npt.NDArray[np.str_], allowed: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(present runs among `allowed`, trial usable) with repeat axes flattened last.

    A trial is usable when at least one allowed run exists and every allowed run that
    exists completed: a diverged or incomplete repeat disqualifies the whole setting.
    """
    present = (status != Status.MISSING.value) & allowed
    completed = status == Status.COMPLETED.value
    usable = present.any(axis=-1) & (completed | ~present).all(axis=-1)
    return present, usable


def _flat_runs(da: xr.DataArray, rep: tuple[str, ...], core: tuple[str, ...]) -> Any:
    """Values with dims (optimizer, trial, run, *core): repeat axes stacked into one."""
    order = ("optimizer", "trial", *rep, *core)
    arr = da.transpose(*order).values
    n_o, n_t = arr.shape[:2]
    return arr.reshape(n_o, n_t, -1, *arr.shape[2 + len(rep) :])


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
    the limit); under a "final" condition a study without a
    usable trial scores the worst value of the pair's trials, as in inclusion_consistency.
    """
    if n_targets < 1:
        raise AnalysisError(f"n_targets: {n_targets} must be at least 1")
    fracs = tuple(float(f) for f in fractions)
    if not fracs or any(not (0.0 < f <= 1.0) for f in fracs) or len(set(fracs)) != len(fracs):
        raise AnalysisError(f"fractions: {list(fracs)} must be distinct values in (0, 1]")
    check_options(alpha, n_boot)
    ds = restrict(archive, workloads=workloads, optimizers=optimizers)
    # Bootstrap tests hold (n_boot, trials) draws per workload.
    check_bootstrap(ds.sizes["trial"], n_boot, option="--n-test-boot")
    rep = repeat_dims(ds)
    w_names = tuple(str(w) for w in ds["workload"].values)
    o_names = tuple(str(o) for o in ds["optimizer"].values)
    n_w, n_o, n_f = len(w_names), len(o_names), len(fracs)
    n_tr = ds.sizes["trial"]
    if isinstance(targets, Mapping):
        missing = [w for w in w_names if w not in targets]
        if missing:
            raise AnalysisError(f"targets: no target values for workload {missing[0]!r}")
        lengths = {len(targets[w]) for w in w_names}
        if len(lengths) != 1:
            raise AnalysisError("targets: every workload needs the same number of target values")
        n_targets = lengths.pop()
    elif targets is not None:
        n_targets = len(targets)
    if n_targets < 1:
        raise AnalysisError("targets: at least one target value is needed")

    # Steps and times per (cell, trial, target, fraction), and one inclusion test per
    # condition over the same trials.
    check_bootstrap(
        n_w * n_o * n_tr * n_f,
        n_targets,
        option="--n-targets",
        bytes_per_draw=64,
        what=f"steps to {n_targets} targets",
    )
    sel_mask = selection_repeat_mask(ds)
    target_value = np.full((n_w, n_targets), np.nan)
    step_limit = np.full((n_w, n_f), np.nan)
    trial_steps = np.full((n_w, n_o, n_tr, n_targets, n_f), np.nan)
    trial_time = np.full_like(trial_steps, np.nan)
    final_sel = np.full((n_w, n_o, n_tr, n_f), np.nan)  # signed: smaller is better
    final_test = np.full((n_w, n_o, n_tr, n_f), np.nan)  # natural units
    usable_all = np.zeros((n_w, n_o, n_tr), dtype=bool)
    present_all = np.zeros((n_w, n_o, n_tr), dtype=bool)
    splits: dict[str, str] = {}
    metric_names: dict[str, str] = {}

    for wi, w in enumerate(w_names):
        cell = ds.sel(workload=w)
        sign = 1.0 if str(cell["metric_direction"].item()) == Direction.MIN.value else -1.0
        split = str(cell["selection_split"].item())
        splits[w] = split
        metric_names[w] = str(cell["metric_name"].item())
        status = _flat_runs(cell["status"], rep, ()).astype(str)  # (o, trial, run)
        allowed = _flat_runs(sel_mask.sel(workload=w), rep, ())
        present_sel, usable = _run_masks(status, allowed)
        completed = status == Status.COMPLETED.value
        steps = _flat_runs(cell["step"], rep, ("eval",))  # (o, trial, run, eval)
        times = _flat_runs(cell["time"], rep, ("eval",))
        sel_vals = sign * _flat_runs(cell[f"{split}_metric"], rep, ("eval",))
        test_vals = _flat_runs(cell["test_metric"], rep, ("eval",))

        # A recorded budget may be a hint that runs go past (AlgoPerf's step_hint: its runs
        # stop on time); fraction 1 must keep every evaluation, as selection does.
        largest = int(steps.max()) if steps.size else 0
        step_budget = max(int(cell["step_budget"].item()), largest)
        limits = np.array(fracs) * step_budget
        step_limit[wi] = limits
        # Truncated finals, (o, trial, run, fraction); the last fraction may not be 1.
        lim = np.broadcast_to(limits, (*steps.shape[:3], n_f))
        sel_tr = _truncated_final(sel_vals[..., None, :], steps[..., None, :], lim)
        test_tr = _truncated_final(test_vals[..., None, :], steps[..., None, :], lim)
        full = _truncated_final(sel_vals, steps, np.full(steps.shape[:3], float(step_budget)))
        # As in selection: usable needs a finite final selection value at the full budget.
        usable = usable & np.isfinite(mean_where(full, present_sel, axis=2))
        usable_all[wi] = usable
        present_all[wi] = (status != Status.MISSING.value).any(axis=-1)
        final_sel[wi] = np.where(
            usable[..., None], mean_where(sel_tr, present_sel[..., None], axis=2), np.nan
        )
        reported = completed[..., None] & np.isfinite(test_tr)
        final_test[wi] = np.where(usable[..., None], mean_where(test_tr, reported, axis=2), np.nan)

        if isinstance(targets, Mapping):
            target_value[wi] = np.asarray(targets[w], dtype=np.float64)
        elif targets is not None:
            target_value[wi] = np.asarray(targets, dtype=np.float64)
        else:
            pool = mean_where(full, present_sel, axis=2)[usable]
            if pool.size == 0:
                raise AnalysisError(
                    f"workload {w!r}: no usable trial (completed, with a final {split} "
                    "metric); no default targets"
                )
            easy, hard = float(np.median(pool)), float(pool.min())
            target_value[wi] = sign * np.linspace(easy, hard, n_targets)

        reach_s, reach_t = first_reach(
            sel_vals[..., None, :],
            steps[..., None, :],
            times[..., None, :],
            sign * target_value[wi],
            limits,
        )  # (o, trial, run, fraction, target)
        for arr, out in ((reach_s, trial_steps), (reach_t, trial_time)):
            mean = mean_where(arr, present_sel[..., None, None], axis=2)
            mean = np.where(usable[..., None, None], mean, np.nan)
            out[wi] = np.swapaxes(mean, -1, -2)  # (o, trial, target, fraction)

    if not usable_all.any():
        raise AnalysisError("archive: no usable (completed) trials in the selected cells")

    # Conditions: steps for every (target, fraction), then final for every fraction.
    kinds: list[str] = []
    ctarget: list[int] = []
    cfrac: list[float] = []
    for ti in range(n_targets):
        for f in fracs:
            kinds.append(ConditionKind.STEPS.value)
            ctarget.append(ti)
            cfrac.append(f)
    for f in fracs:
        kinds.append(ConditionKind.FINAL.value)
        ctarget.append(-1)
        cfrac.append(f)
    n_c = len(kinds)
    reference = n_targets * n_f + int(np.argmax(fracs))

    signs = np.array(
        [
            1.0 if d == Direction.MIN.value else -1.0
            for d in ds["metric_direction"].values.astype(str)
        ]
    )
    tuned = np.full((n_w, n_o, n_c), np.nan)
    tuned_time = np.full((n_w, n_o, n_c), np.nan)
    score = np.full((n_w, n_o, n_c), np.nan)  # signed, smaller is better
    usable5 = usable_all[..., None, None]
    steps_min = _best_over_trials(trial_steps, usable5)  # (w, o, target, fraction)
    time_min = _best_over_trials(trial_time, usable5)
    pick = argbest(final_sel, axis=2)  # (w, o, fraction) trial index or -1
    test_pick = np.take_along_axis(final_test, np.maximum(pick, 0)[:, :, None, :], axis=2)[:, :, 0]
    test_pick = np.where(pick >= 0, test_pick, np.nan)
    for c in range(n_c):
        fi = fracs.index(cfrac[c])
        if kinds[c] == ConditionKind.STEPS:
            tuned[..., c] = steps_min[..., ctarget[c], fi]
            tuned_time[..., c] = time_min[..., ctarget[c], fi]
            score[..., c] = tuned[..., c]
        else:
            tuned[..., c] = test_pick[..., fi]
            score[..., c] = signs[:, None] * tuned[..., c]
    rank = np.where(np.isnan(score), np.nan, competition_ranks(score, axis=1))
    tau = np.array(
        [
            [kendall_tau(rank[wi, :, reference], rank[wi, :, c]) for c in range(n_c)]
            for wi in range(n_w)
        ]
    )

    inclusion = _inclusion(
        ds,
        trial_steps,
        final_sel,
        final_test,
        signs,
        step_limit,
        kinds,
        ctarget,
        [fracs.index(f) for f in cfrac],
        present=present_all,
        usable=usable_all,
        taxonomy=taxonomy,
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margin=margin,
        root=root_seed(rng),
    )

    wc = {"workload": list(w_names)}
    woc = {"workload": list(w_names), "optimizer": list(o_names)}
    fr = {"fraction": list(fracs)}
    cond = ("workload", "optimizer", "condition")
    return TargetStudy(
        workloads=w_names,
        optimizers=o_names,
        splits=splits,
        metric_names=metric_names,
        fractions=fracs,
        n_targets=n_targets,
        reference=reference,
        condition_kind=tuple(kinds),
        condition_target=tuple(ctarget),
        condition_fraction=tuple(cfrac),
        target_value=xr.DataArray(target_value, dims=("workload", "target"), coords=wc),
        step_limit=xr.DataArray(step_limit, dims=("workload", "fraction"), coords={**wc, **fr}),
        trial_steps=xr.DataArray(
            trial_steps,
            dims=("workload", "optimizer", "trial", "target", "fraction"),
            coords={**woc, "trial": ds["trial"].values, **fr},
        ),
        trial_time=xr.DataArray(
            trial_time,
            dims=("workload", "optimizer", "trial", "target", "fraction"),
            coords={**woc, "trial": ds["trial"].values, **fr},
        ),
        tuned=xr.DataArray(tuned, dims=cond, coords=woc),
        tuned_time=xr.DataArray(tuned_time, dims=cond, coords=woc),
        rank=xr.DataArray(rank, dims=cond, coords=woc),
        kendall_tau=xr.DataArray(tau, dims=("workload", "condition"), coords=wc),
        inclusion=inclusion,
    )


def _best_over_trials(values: FloatArray, usable: npt.NDArray[np.bool_]) -> FloatArray:
    """Smallest value over the trial axis (2) among usable trials; NaN where none is usable,
    and NaN where a usable trial's value is unknown (an archive without times)."""
    best = np.where(usable, values, np.inf).min(axis=2)
    return np.where(usable.any(axis=2), best, np.nan)


def _inclusion(
    ds: xr.Dataset,
    trial_steps: FloatArray,
    final_sel: FloatArray,
    final_test: FloatArray,
    signs: FloatArray,
    step_limit: FloatArray,
    kinds: list[str],
    ctarget: list[int],
    cfrac: list[int],
    *,
    present: npt.NDArray[np.bool_],
    usable: npt.NDArray[np.bool_],
    taxonomy: Taxonomy | None,
    budget: int | None,
    n_boot: int,
    alpha: float,
    margin: float | Mapping[str, float] | None,
    root: int,
) -> InclusionResult:
    """The inclusion tests under every condition (lead dim "condition")."""
    _, pairs, reasons, caveats = archive_pairs(ds, taxonomy)
    n_w, n_o, n_tr = usable.shape
    n_c = len(kinds)
    score = np.full((n_c, n_w, n_o, n_tr), np.nan)
    value = np.full_like(score, np.nan)
    use = np.zeros(score.shape, dtype=bool)
    for c in range(n_c):
        fi = cfrac[c]
        if kinds[c] == ConditionKind.STEPS:
            limit = step_limit[:, fi][:, None, None]
            steps = trial_steps[:, :, :, ctarget[c], fi]
            reached = usable & np.isfinite(steps)
            value[c] = np.where(reached, np.minimum(steps, limit), limit)
            score[c] = value[c]
            use[c] = present
        else:
            score[c] = final_sel[..., fi]
            value[c] = signs[:, None, None] * final_test[..., fi]
            use[c] = usable & np.isfinite(score[c])
    coords = {
        "condition": np.arange(n_c),
        "workload": ds["workload"].values,
        "optimizer": ds["optimizer"].values,
        "trial": ds["trial"].values,
    }
    dims = ("condition", "workload", "optimizer", "trial")

    def wrap(a: Any) -> xr.DataArray:
        return xr.DataArray(a, dims=dims, coords=coords)

    w_names = [str(w) for w in ds["workload"].values]
    if isinstance(margin, Mapping):
        unknown = sorted(set(margin) - set(w_names) - {"*"})
        if unknown:
            raise AnalysisError(f"margins: workload {unknown[0]!r} is not in the archive")
    margins = np.full((n_c, n_w), np.nan)
    margin_rules: dict[str, str] = {}
    for c in range(n_c):
        for w, name in enumerate(w_names):
            given = margin.get(name, margin.get("*")) if isinstance(margin, Mapping) else margin
            if kinds[c] != ConditionKind.STEPS and given is not None:
                if not (np.isfinite(given) and given >= 0):
                    raise AnalysisError(f"margin for workload {name!r}: {given} is not >= 0")
                margins[c, w] = float(given)
                margin_rules.setdefault(name, "given")
            else:
                margins[c, w] = rule_margin(value[c, w][use[c, w]])
                margin_rules.setdefault(name, MARGIN_RULE)
    pres = np.broadcast_to(present, score.shape)
    data = inclusion_tests(
        wrap(score),
        wrap(value),
        wrap(use),
        wrap(pres),
        pairs=pairs,
        reasons=reasons,
        lead="condition",
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margins=margins,
        root=root,
    )
    data["metric_name"] = ds["metric_name"].astype(str)
    return InclusionResult(
        data=data,
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margins={w: float(margins[-1, i]) for i, w in enumerate(w_names)},
        margin_rules=margin_rules,
        repeats=RepeatMode.MEAN,
        caveats=(*caveats, *resolution_caveats(data, n_boot, alpha)),
        lead="condition",
    )
