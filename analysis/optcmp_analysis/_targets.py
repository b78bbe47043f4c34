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

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._inclusion import Verdict, default_inclusion_budget
from optcmp_analysis._kernels import argbest, competition_ranks, kendall_tau, mean_where
from optcmp_analysis._records import cell_keys, json_value, restrict, root_seed, stream
from optcmp_analysis._selection import selection_repeat_mask
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

DEFAULT_FRACTIONS = (0.25, 0.5, 1.0)


class ConditionKind(enum.StrEnum):
    """The two kinds of condition (see the module docstring)."""

    STEPS = "steps"
    FINAL = "final"


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
class TargetStudy:
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
    - `p_worse`, `p_adjusted`, `verdict` (workload, relation, condition) for every
      inclusion pair (special ⊆ general) of the archive's taxonomy.
    """

    workloads: tuple[str, ...]
    optimizers: tuple[str, ...]
    splits: Mapping[str, str]
    metric_names: Mapping[str, str]
    fractions: tuple[float, ...]
    n_targets: int
    reference: int
    condition_kind: tuple[str, ...]
    condition_target: tuple[int, ...]
    condition_fraction: tuple[float, ...]
    target_value: xr.DataArray
    step_limit: xr.DataArray
    trial_steps: xr.DataArray
    trial_time: xr.DataArray
    tuned: xr.DataArray
    tuned_time: xr.DataArray
    rank: xr.DataArray
    kendall_tau: xr.DataArray
    relation_special: tuple[str, ...]
    relation_general: tuple[str, ...]
    p_worse: xr.DataArray
    p_adjusted: xr.DataArray
    verdict: xr.DataArray
    alpha: float
    n_boot: int

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
        for w in self.workloads:
            verdicts = self.verdict.sel(workload=w).values.astype(str)  # (relation, condition)
            for r in range(len(self.relation_special)):
                if len(set(verdicts[r])) > 1:
                    out.append((w, self.relation_special[r], self.relation_general[r]))
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

    def to_dataset(self) -> xr.Dataset:
        ds = xr.Dataset(
            {
                "target_value": self.target_value,
                "step_limit": self.step_limit,
                "trial_steps": self.trial_steps,
                "trial_time": self.trial_time,
                "tuned": self.tuned,
                "tuned_time": self.tuned_time,
                "rank": self.rank,
                "kendall_tau": self.kendall_tau,
                "p_worse": self.p_worse,
                "p_adjusted": self.p_adjusted,
                "verdict": self.verdict,
            }
        )
        ds = ds.assign_coords(
            condition_kind=("condition", np.array(self.condition_kind, dtype=str)),
            condition_target=("condition", np.array(self.condition_target, dtype=np.int64)),
            condition_fraction=("condition", np.array(self.condition_fraction)),
            relation_special=("relation", np.array(self.relation_special, dtype=str)),
            relation_general=("relation", np.array(self.relation_general, dtype=str)),
            split=("workload", np.array([self.splits[w] for w in self.workloads], dtype=str)),
        )
        ds.attrs = {
            "reference_condition": self.reference,
            "alpha": self.alpha,
            "n_boot": self.n_boot,
        }
        return ds

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
        rel_dims = ("workload", "relation", "condition")
        p_worse = self.p_worse.transpose(*rel_dims).values
        p_adj = self.p_adjusted.transpose(*rel_dims).values
        verdict = self.verdict.transpose(*rel_dims).values.astype(str)
        for wi, w in enumerate(self.workloads):
            for r, (sp, ge) in enumerate(
                zip(self.relation_special, self.relation_general, strict=True)
            ):
                for c in range(len(self.condition_kind)):
                    out.append(
                        {
                            "record": "inclusion",
                            "workload": w,
                            "special": sp,
                            "general": ge,
                            **self._condition(wi, c),
                            "p_worse": float(p_worse[wi, r, c]),
                            "p_adjusted": float(p_adj[wi, r, c]),
                            "verdict": str(verdict[wi, r, c]),
                            "verdict_changes": (w, sp, ge) in changed,
                        }
                    )
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
    n_boot: int = 1000,
    alpha: float = 0.05,
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
    archive's own) use a paired bootstrap over present trials (`n_boot` draws of half an
    optimizer's present trials, as `inclusion_consistency`; the same trial positions for
    every optimizer of a workload; diverged trials count towards the budget and are never
    selected) and Holm's correction over workloads and relations
    within each condition: "violated" when the adjusted p-value for "general is worse" is
    below `alpha`, "consistent" when the tuned general is not worse, else "inconclusive".
    """
    if n_targets < 1:
        raise AnalysisError(f"n_targets: {n_targets} must be at least 1")
    fracs = tuple(float(f) for f in fractions)
    if not fracs or any(not (0.0 < f <= 1.0) for f in fracs) or len(set(fracs)) != len(fracs):
        raise AnalysisError(f"fractions: {list(fracs)} must be distinct values in (0, 1]")
    if n_boot < 1:
        raise AnalysisError(f"n_boot: {n_boot} must be at least 1")
    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"alpha: {alpha} must lie in (0, 1)")
    ds = restrict(archive, workloads=workloads, optimizers=optimizers)
    # The paired inclusion bootstrap holds (n_boot, trials) uniforms per workload.
    check_bootstrap(ds.sizes["trial"], n_boot)
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
        budget = max(int(cell["step_budget"].item()), largest)
        limits = np.array(fracs) * budget
        step_limit[wi] = limits
        # Truncated finals, (o, trial, run, fraction); the last fraction may not be 1.
        lim = np.broadcast_to(limits, (*steps.shape[:3], n_f))
        sel_tr = _truncated_final(sel_vals[..., None, :], steps[..., None, :], lim)
        test_tr = _truncated_final(test_vals[..., None, :], steps[..., None, :], lim)
        full = _truncated_final(sel_vals, steps, np.full(steps.shape[:3], float(budget)))
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

    rel_s, rel_g = _relations(ds, o_names, taxonomy or Taxonomy.from_archive(ds))
    p_worse, p_adj, verdict = _inclusion(
        trial_steps,
        final_sel,
        final_test,
        signs,
        score,
        rel_s,
        rel_g,
        o_names,
        fracs,
        kinds,
        ctarget,
        cfrac,
        n_boot=n_boot,
        alpha=alpha,
        present=present_all,
        usable=usable_all,
        keys=cell_keys(ds["workload"], ["workload"]).values,
        rng=rng,
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
        relation_special=rel_s,
        relation_general=rel_g,
        p_worse=xr.DataArray(p_worse, dims=("workload", "relation", "condition"), coords=wc),
        p_adjusted=xr.DataArray(p_adj, dims=("workload", "relation", "condition"), coords=wc),
        verdict=xr.DataArray(verdict, dims=("workload", "relation", "condition"), coords=wc),
        alpha=alpha,
        n_boot=n_boot,
    )


def _best_over_trials(values: FloatArray, usable: npt.NDArray[np.bool_]) -> FloatArray:
    """Smallest value over the trial axis (2) among usable trials; NaN where none is usable,
    and NaN where a usable trial's value is unknown (an archive without times)."""
    best = np.where(usable, values, np.inf).min(axis=2)
    return np.where(usable.any(axis=2), best, np.nan)


def _relations(
    ds: xr.Dataset, o_names: tuple[str, ...], taxonomy: Taxonomy
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Optimizer pairs (special, general) whose families are an inclusion pair."""
    order = {name: i for i, name in enumerate(o_names)}
    relation = {pair: i for i, pair in enumerate(taxonomy.pairs(transitive=True))}
    pairs = sorted(
        (p for p in taxonomy.optimizer_pairs(ds) if p[0] in order and p[1] in order),
        key=lambda p: (relation[(p[2], p[3])], order[p[0]], order[p[1]]),
    )
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def _inclusion(
    trial_steps: FloatArray,
    final_sel: FloatArray,
    final_test: FloatArray,
    signs: FloatArray,
    score: FloatArray,
    rel_s: tuple[str, ...],
    rel_g: tuple[str, ...],
    o_names: tuple[str, ...],
    fracs: tuple[float, ...],
    kinds: list[str],
    ctarget: list[int],
    cfrac: list[float],
    *,
    n_boot: int,
    alpha: float,
    present: npt.NDArray[np.bool_],
    usable: npt.NDArray[np.bool_],
    keys: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.str_]]:
    n_w = trial_steps.shape[0]
    n_r, n_c = len(rel_s), len(kinds)
    o_ix = {o: i for i, o in enumerate(o_names)}
    p = np.full((n_w, n_r, n_c), np.nan)
    root = root_seed(rng)
    for wi in range(n_w):
        if n_r == 0:
            continue
        # One uniform matrix per workload (its stream keyed by the workload's label), shared
        # by every optimizer: the draws depend only on each optimizer's number of present
        # trials, so relabelling, reordering or subsetting optimizers changes nothing.
        n_max = trial_steps.shape[2]
        u = stream(root, keys[wi]).random((n_boot, n_max))
        boot: dict[int, FloatArray] = {}
        for o in {o_ix[x] for x in (*rel_s, *rel_g)}:
            # Present trials count towards the budget (diverged ones too) but only usable
            # ones can be selected: a draw of unusable trials only has no result (NaN).
            idx_p = np.flatnonzero(present[wi, o])
            n = len(idx_p)
            if n == 0 or not usable[wi, o].any():
                continue
            # Budget n // 2, as inclusion_consistency: at k = n the best trial and its test
            # noise recur in most draws and about 7% of null cases came out "violated".
            k = default_inclusion_budget(n)
            draw = idx_p[np.minimum((u[:, :k] * n).astype(np.int64), n - 1)]  # (B, k)
            steps_all = trial_steps[wi, o][draw]  # (B, n, target, fraction)
            any_usable = usable[wi, o][draw].any(axis=1)  # (B,)
            steps_d = np.where(np.isnan(steps_all), np.inf, steps_all).min(axis=1)
            steps_d = np.where(any_usable[:, None, None], steps_d, np.nan)
            sel_d = final_sel[wi, o][draw]  # (B, n, fraction)
            # A draw without a finite selection value picks position 0; it is NaN below.
            pick = np.maximum(argbest(sel_d, axis=1), 0)
            test_d = np.take_along_axis(final_test[wi, o][draw], pick[:, None, :], axis=1)[:, 0]
            test_d = np.where(np.isfinite(sel_d).any(axis=1), test_d, np.nan)
            out = np.empty((n_boot, n_c))
            for c in range(n_c):
                fi = fracs.index(cfrac[c])
                if kinds[c] == ConditionKind.STEPS:
                    out[:, c] = steps_d[:, ctarget[c], fi]
                else:
                    out[:, c] = signs[wi] * test_d[:, fi]
            boot[o] = out
        for r in range(n_r):
            s, g = o_ix[rel_s[r]], o_ix[rel_g[r]]
            if s not in boot or g not in boot:
                continue
            # Draws where either tuned value is undefined (a missing test metric) say
            # nothing either way and are left out; inf <= inf counts as "not worse".
            valid = ~np.isnan(boot[g]) & ~np.isnan(boot[s])
            not_worse = valid & (boot[g] <= boot[s])
            n_valid = valid.sum(axis=0)
            p[wi, r] = np.where(
                n_valid > 0, (1.0 + not_worse.sum(axis=0)) / (n_valid + 1.0), np.nan
            )
    p_adj = holm(p.reshape(n_w * n_r, n_c), axis=0).reshape(p.shape)
    verdict = np.full(p.shape, Verdict.INCONCLUSIVE.value, dtype=object)
    for wi in range(n_w):
        for r in range(n_r):
            s, g = o_ix[rel_s[r]], o_ix[rel_g[r]]
            for c in range(n_c):
                if not np.isfinite(p_adj[wi, r, c]):
                    continue
                if p_adj[wi, r, c] < alpha:
                    verdict[wi, r, c] = Verdict.VIOLATED.value
                elif not score[wi, g, c] > score[wi, s, c]:
                    verdict[wi, r, c] = Verdict.CONSISTENT.value
    return p, p_adj, verdict.astype(str)


def holm(p: FloatArray, *, axis: int = -1) -> FloatArray:
    """Holm-adjusted p-values along `axis` (one family per position of the other axes);
    NaN entries are not tests and stay NaN.

    The same numbers as statsmodels' `multipletests(method="holm")`, vectorised over
    families; that function also runs a full garbage collection on every call, which costs
    a fifth of a second per family in a large process.
    """
    moved = np.moveaxis(np.asarray(p, dtype=np.float64), axis, -1)
    tested = np.isfinite(moved)
    m = tested.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(tested, moved, np.inf), axis=-1, kind="stable")
    sorted_p = np.take_along_axis(moved, order, axis=-1)
    factor = m - np.arange(moved.shape[-1])
    scaled = np.where(np.isfinite(sorted_p), np.minimum(1.0, factor * sorted_p), -np.inf)
    adjusted_sorted = np.maximum.accumulate(scaled, axis=-1)
    out = np.empty_like(moved)
    np.put_along_axis(out, order, adjusted_sorted, axis=-1)
    return np.moveaxis(np.where(tested, out, np.nan), -1, axis)
