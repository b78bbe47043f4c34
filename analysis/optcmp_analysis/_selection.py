"""Best-trial selection: per-trial scores under a selection rule, and the best trial per cell.

Dependency rule: numpy, xarray, attrs, optcmp_data. Everything here works on named dims;
the per-cell kernels (`argbest`, in _kernels) take an axis.

Conventions fixed here and used by every other analysis of this package:

- A trial's `score` is oriented so that smaller is better (the metric times -1 for
  direction "max"); NaN marks a trial that may not be selected.
- A trial is *present* if at least one of its runs exists (status not "missing"); present
  trials count towards the budget (diverged and incomplete ones included). A trial is
  *usable* if every present run that selection may use completed and has a finite score.
  Diverged, incomplete and missing trials are never selected.
- Ties in the selection score (several usable trials sharing the best score, common with
  error rates on a small selection split) are resolved without looking at labels or
  positions: the reported test and validation values of the cell are the *mean* over the
  tied trials (the expected result of picking one of them at random), and `n_tied` says
  how many trials tied. The reported `trial` and hyperparameters are the first tied
  trial's, for reference only.
- Repeats (seed, study axes) are averaged (`RepeatMode.MEAN`: a trial's score is the mean
  of its runs' scores) or kept as broadcast dims (`RepeatMode.PER_REPEAT`: every repeat is
  its own selection problem).
- The archive attribute `selection_repeats` (e.g. "seed=42") limits the runs the score
  may use, and the reported test and validation values come from the same runs: a
  value resampled or compared across trials must not mix a ten-seed mean (DeepOBS re-ran
  only its chosen settings with more seeds) with single-seed values (every other
  setting). The spread of a trial over *all* its completed repeats is kept apart, as
  `test_min`, `test_median`, `test_max` and `n_repeats`. Per-repeat selection is refused
  for such archives (selection cannot be per repeat when it may only look at some
  repeats).
- `DivergedMode.WORST` scores a diverged trial (a run that diverged, or completed with a
  non-finite selection value) as the worst usable value of its workload (and repeat)
  instead of leaving it unusable: its score, selection, test and validation values become
  the worst ones any usable trial of any optimizer has there. Incomplete and missing
  trials stay unusable.
- The reported value of a "best over the run" rule is read at the evaluation where the
  selection curve is best (the run is treated as stopped there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis._enums import DivergedMode, RepeatMode, SelectionRule
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import argbest
from optcmp_analysis._records import (
    ByLabel,
    Cell,
    Computed,
    Const,
    Field,
    Labels,
    Records,
    Result,
    Var,
    attr,
    finite,
    where,
)
from optcmp_data import (
    Direction,
    Split,
    Status,
    archive_caveats,
    parse_selection_repeats,
    repeat_dims,
)

__all__ = [
    "DivergedMode",
    "RepeatMode",
    "Selection",
    "SelectionRule",
    "TrialScores",
    "argbest",
    "orientation",
    "select_best",
    "selection_repeat_mask",
    "trial_scores",
    "usable_scores",
]


_DEEPOBS = frozenset({SelectionRule.DEEPOBS_FINAL, SelectionRule.DEEPOBS_BEST})


def orientation(direction: xr.DataArray) -> xr.DataArray:
    """-1 where the metric direction is "max", else 1: metric x orientation is smaller-better."""
    return where(direction.astype(str) == Direction.MAX.value, -1.0, 1.0)


def selection_repeat_mask(
    archive: xr.Dataset, chosen: Mapping[str, Sequence[int]] | None = None
) -> xr.DataArray:
    """True on the runs (the dims of `status`) whose repeats selection may use: those in
    `chosen` (default: the archive's `selection_repeats` attribute; every run if empty)."""
    if chosen is None:
        chosen = parse_selection_repeats(archive, source="archive")
    mask = xr.ones_like(archive["status"], dtype=bool)
    for dim, values in chosen.items():
        mask = mask & archive[dim].isin(values)
    return mask


@attrs.frozen
class TrialScores(Result):
    """Per-trial selection scores of an archive under one rule.

    `data` has dims (workload, optimizer, trial) plus the repeat dims under
    `RepeatMode.PER_REPEAT`, and variables `score` (smaller is better, NaN if unusable),
    `selection_value` (the score in the metric's own units), `test_value`, `valid_value`,
    `usable`, `present`, `diverged` (scored as the worst value under
    `DivergedMode.WORST`), `test_mean`, `test_min`, `test_median`, `test_max` and
    `n_repeats` (the test value's mean and spread over all completed repeats of the
    trial), the per-workload `direction`, `metric_name`, `selection_split`, and the
    `hparams` coordinate. `selection_repeats` is the archive's attribute of that name
    ("" if none): the repeats `selection_value` and `test_value` come from.
    """

    data: xr.Dataset
    rule: SelectionRule = attrs.field(metadata=attr())
    repeats: RepeatMode = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    selection_repeats: str = ""

    @property
    def repeat_dims(self) -> tuple[str, ...]:
        """The repeat dims that broadcast through the analyses (empty in mean mode)."""
        return tuple(d for d in ("seed", "study") if d in self.data["score"].dims)

    @property
    def cell_dims(self) -> tuple[str, ...]:
        return ("workload", "optimizer", *self.repeat_dims)

    # One record per (workload, optimizer, [repeats], trial).
    JSON = (
        Records(
            dims_of="score",
            exclude=("trial",),
            dims=("trial",),
            keys=(
                Labels(),
                Var("score"),
                Var("selection_value"),
                Var("test_value"),
                Var("valid_value"),
                Var("usable"),
            ),
        ),
    )


def _final(var: xr.DataArray, last: xr.DataArray) -> xr.DataArray:
    """The value at each run's last evaluation (NaN for a run without evaluations)."""
    picked = var.isel(eval=last.clip(min=0))
    return picked.where(last >= 0)


def _at(var: xr.DataArray, index: xr.DataArray) -> xr.DataArray:
    return var.isel(eval=index.clip(min=0)).where(index >= 0)


def _best_index(oriented: xr.DataArray) -> xr.DataArray:
    """Eval position of the smallest finite value of each curve; -1 if none."""
    filled = oriented.where(finite(oriented), np.inf)
    pos = filled.argmin("eval")
    return where(finite(oriented).any("eval"), pos, -1)


def _mean_over(values: xr.DataArray, weight: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """Mean of `values` over `dims` where `weight` is true; NaN in a weighted run propagates."""
    if not dims:
        return values.where(weight)
    count = weight.sum(dims)
    total = values.where(weight, 0.0).sum(dims, skipna=False)
    return (total / count).where(count > 0)


def trial_scores(
    archive: xr.Dataset,
    /,
    *,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    repeats: RepeatMode | str = RepeatMode.MEAN,
    diverged: DivergedMode | str = DivergedMode.EXCLUDE,
) -> TrialScores:
    """Score every trial of `archive` under `rule` (see the module docstring for conventions).

    Raises AnalysisError for per-repeat selection with a DeepOBS rule or with an archive
    whose `selection_repeats` attribute restricts selection.
    """
    rule = SelectionRule(rule)
    repeats = RepeatMode(repeats)
    diverged = DivergedMode(diverged)
    reps = repeat_dims(archive)
    chosen = parse_selection_repeats(archive, source="archive")
    if repeats is RepeatMode.PER_REPEAT and reps:
        if rule in _DEEPOBS:
            raise AnalysisError(
                f"rule {rule}: the DeepOBS rules average over seeds; use repeats 'mean'"
            )
        if chosen:
            raise AnalysisError(
                "archive attribute selection_repeats "
                f"{archive.attrs['selection_repeats']!r} restricts selection to some repeats; "
                "per-repeat selection is not available, use repeats 'mean'"
            )
    runs = _run_scores(archive, rule, chosen, reps)
    values = _trial_values(runs, reps if repeats is RepeatMode.MEAN else ())
    if diverged is DivergedMode.WORST:
        values = _diverged_as_worst(values, runs["direction"], rule)
    order = ("workload", "optimizer", "trial", *(reps if repeats is RepeatMode.PER_REPEAT else ()))
    data = xr.Dataset(
        {name: values[name].transpose(*order) for name in _TRIAL_VARIABLES}
        | {
            "direction": runs["direction"],
            "metric_name": archive["metric_name"].astype(str),
            "selection_split": runs["split"],
        },
        coords={"hparams": archive["hparams"], "optimizer_family": archive["optimizer_family"]},
    )
    for var in ("score", "selection_value", "test_value", "valid_value"):
        data[var] = data[var].astype(np.float64)
    caveats = _caveats(archive, rule)
    if diverged is DivergedMode.WORST:
        caveats = (
            *caveats,
            "diverged trials are scored as the worst usable value of their workload "
            "(diverged = worst), so they can be selected and count as results",
        )
    return TrialScores(
        data=data,
        rule=rule,
        repeats=repeats,
        caveats=caveats,
        selection_repeats=str(archive.attrs.get("selection_repeats", "")) if chosen else "",
    )


# The per-trial variables of TrialScores.data, in its order.
_TRIAL_VARIABLES = (
    "score",
    "selection_value",
    "test_value",
    "valid_value",
    "usable",
    "present",
    "diverged",
    "test_mean",
    "test_min",
    "test_median",
    "test_max",
    "n_repeats",
)


def _run_scores(
    archive: xr.Dataset,
    rule: SelectionRule,
    chosen: Mapping[str, Sequence[int]],
    reps: tuple[str, ...],
) -> dict[str, xr.DataArray]:
    """Per run (every dim of `status`): `score` (oriented, smaller is better), `sel` (the
    score in the metric's units), `test`, `valid` at the evaluation `rule` selects;
    `status`, `present`, `completed`, `scored` (present and among the repeats selection may
    use); per workload `direction` and `split`."""
    direction = archive["metric_direction"].astype(str)
    split = archive["selection_split"].astype(str)
    sign = orientation(direction)
    has_eval = archive["step"] >= 0
    last = where(has_eval, archive["eval"], -1).max("eval")
    selection_metric = where(
        split == Split.TEST.value, archive["test_metric"], archive["valid_metric"]
    ).where(has_eval)
    test_curve = archive["test_metric"].where(has_eval)
    valid_curve = archive["valid_metric"].where(has_eval)
    status = archive["status"].astype(str)
    present_run = status != Status.MISSING.value
    scored_run = present_run & selection_repeat_mask(archive, chosen)

    if rule is SelectionRule.FINAL_TRAIN_LOSS:
        run_sel = _final(archive["train_loss"].where(has_eval), last)
        run_score = run_sel
        run_test, run_valid = _final(test_curve, last), _final(valid_curve, last)
    elif rule in (SelectionRule.FINAL_VALID, SelectionRule.DEEPOBS_FINAL):
        run_sel = _final(selection_metric, last)
        run_score = sign * run_sel
        run_test, run_valid = _final(test_curve, last), _final(valid_curve, last)
    elif rule is SelectionRule.BEST_VALID:
        oriented = sign * selection_metric
        best = _best_index(oriented)
        run_score = _at(oriented, best)
        run_sel = sign * run_score
        run_test, run_valid = _at(test_curve, best), _at(valid_curve, best)
    else:  # DEEPOBS_BEST: best over evaluations of the seed-mean curve
        mean_curve = _mean_over(sign * selection_metric, scored_run, reps)
        best = _best_index(mean_curve)
        trial_score = _at(mean_curve, best)
        run_score = trial_score.broadcast_like(status)
        run_sel = sign * run_score
        run_test, run_valid = _at(test_curve, best), _at(valid_curve, best)
    return {
        "score": run_score,
        "sel": run_sel,
        "test": run_test,
        "valid": run_valid,
        "status": status,
        "present": present_run,
        "completed": status == Status.COMPLETED.value,
        "scored": scored_run,
        "direction": direction,
        "split": split,
    }


def _trial_values(runs: dict[str, xr.DataArray], reps: tuple[str, ...]) -> dict[str, xr.DataArray]:
    """The trials' variables (`_TRIAL_VARIABLES`) from their runs: the runs themselves
    (`reps` empty: per repeat, or no repeat dims), else means over the repeat dims `reps`
    of the runs selection may use (a trial is usable when every such run is)."""
    completed, scored, status = runs["completed"], runs["scored"], runs["status"]
    run_score, run_test, run_valid = runs["score"], runs["test"], runs["valid"]
    run_ok = completed & finite(run_score)
    run_diverged = scored & ((status == Status.DIVERGED.value) | (completed & ~finite(run_score)))
    spread_ok = completed & finite(run_test)
    out: dict[str, xr.DataArray]
    if not reps:
        usable = run_ok
        spread = run_test.where(spread_ok)
        out = {
            "usable": usable,
            "present": runs["present"],
            "diverged": run_diverged,
            "score": run_score.where(usable),
            "selection_value": runs["sel"].where(usable),
            "test_value": run_test.where(runs["present"]),
            "valid_value": run_valid.where(runs["present"]),
            "test_mean": spread,
            "test_min": spread,
            "test_median": spread,
            "test_max": spread,
            "n_repeats": spread_ok.astype(np.int64),
        }
    else:
        usable = scored.any(reps) & (~scored | run_ok).all(reps)
        # Reported values from the runs selection may use: never a mix of repeat counts.
        report = scored & completed & finite(run_test)
        report_v = scored & completed & finite(run_valid)
        spread = run_test.where(spread_ok)
        out = {
            "usable": usable,
            "present": runs["present"].any(reps),
            "diverged": run_diverged.any(reps),
            "score": _mean_over(run_score, scored, reps).where(usable),
            "selection_value": _mean_over(runs["sel"], scored, reps).where(usable),
            "test_value": _mean_over(run_test, report, reps),
            "valid_value": _mean_over(run_valid, report_v, reps),
            "test_mean": spread.mean(reps),
            "test_min": spread.min(reps),
            "test_median": spread.median(reps),
            "test_max": spread.max(reps),
            "n_repeats": spread_ok.sum(reps).astype(np.int64),
        }
    out["diverged"] = out["diverged"] & out["present"] & ~out["usable"]
    return out


def _diverged_as_worst(
    values: dict[str, xr.DataArray], direction: xr.DataArray, rule: SelectionRule
) -> dict[str, xr.DataArray]:
    """`values` with every diverged trial scored as the worst usable value of its workload
    (and made usable), where its workload has one."""
    score, usable, is_diverged = values["score"], values["usable"], values["diverged"]
    cells = ("optimizer", "trial")
    worst_score = score.where(usable).max(cells)
    fill = is_diverged & finite(worst_score)
    sign_w = orientation(direction)
    worst_test = sign_w * (sign_w * values["test_value"]).where(usable).max(cells)
    worst_valid = sign_w * (sign_w * values["valid_value"]).where(usable).max(cells)
    worst_sel = worst_score if rule is SelectionRule.FINAL_TRAIN_LOSS else sign_w * worst_score
    return values | {
        "score": where(fill, worst_score, score),
        "selection_value": where(fill, worst_sel, values["selection_value"]),
        "test_value": where(fill, worst_test, values["test_value"]),
        "valid_value": where(fill, worst_valid, values["valid_value"]),
        "usable": usable | fill,
    }


def _caveats(archive: xr.Dataset, rule: SelectionRule) -> tuple[str, ...]:
    notes = archive_caveats(archive)
    if rule is not SelectionRule.FINAL_TRAIN_LOSS:
        on_test = [
            str(w)
            for w, s in zip(
                archive["workload"].values,
                archive["selection_split"].values.astype(str),
                strict=True,
            )
            if s == Split.TEST.value
        ]
        # One caveat for all such workloads, not one line each.
        biased = "so the reported test values are optimistically biased"
        said = [i for i, n in enumerate(notes) if n.startswith("selection uses the test split")]
        if on_test and len(on_test) == archive.sizes["workload"] and said:
            # The archive already says so (its importer's reason): add the consequence
            # there instead of a second caveat on the same fact.
            notes[said[0]] = f"{notes[said[0]]}; {biased}"
        elif on_test:
            which = (
                f"every workload ({len(on_test)})"
                if len(on_test) == archive.sizes["workload"]
                else f"workload(s) {', '.join(on_test)}"
            )
            notes.append(f"{which}: selection uses the test split (no validation split), {biased}")
    if archive.attrs.get("selection_repeats"):
        consequence = (
            "reported values come from the same repeats, and the selected trial's spread "
            "over all its repeats is reported apart"
        )
        said = [i for i, n in enumerate(notes) if n.startswith("selection uses only seed")]
        if said:
            # The importer already named the repeats and why: one caveat, not two.
            notes[said[0]] = f"{notes[said[0]]}; {consequence}"
        else:
            notes.append(
                f"selection uses only repeats {archive.attrs['selection_repeats']} (archive "
                f"attribute selection_repeats); {consequence}"
            )
    return tuple(dict.fromkeys(notes))


@attrs.frozen
class Selection(Result):
    """The best trial of every (workload, optimizer) cell (and repeat, per-repeat mode).

    `data` has dims (workload, optimizer) plus broadcast repeat dims, and variables
    `trial` (the chosen trial's label, -1 if the cell has no usable trial), `position`
    (along the archive's trial dim, -1 if none), `selection_value`, `test_value`,
    `valid_value`, `test_mean`, `test_min`, `test_median`, `test_max`, `n_repeats` (the
    chosen trial's test value over all its completed repeats), `n_trials` (present
    trials), `n_usable`,
    `n_tied` (usable trials sharing the best score; test and validation values are their
    mean when above 1), `hparams` (dim `hparam`), plus per-workload `metric_name`,
    `direction`, `selection_split`.
    """

    data: xr.Dataset
    rule: SelectionRule = attrs.field(metadata=attr())
    repeats: RepeatMode = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    selection_repeats: str = ""

    @property
    def cell_dims(self) -> tuple[str, ...]:
        return tuple(str(d) for d in self.data["trial"].dims)

    # Records: workload, optimizer, [repeat labels], trial, hyperparameters,
    # selection_value, selection_split, test_value, valid_value, metric, split ("test"),
    # value (= test_value), rule, n_trials, n_usable, n_tied (trials sharing the best
    # score; the values are their mean), and the chosen trial's spread over all its
    # completed repeats: test_mean, test_min, test_median, test_max, n_repeats; and
    # test_repeats, the repeats selection_value and test_value come from (the archive's
    # `selection_repeats`, e.g. "seed=42", or "all").
    JSON = (
        Records(
            dims_of="trial",
            keys=(
                Labels(),
                Var("trial", cast=int, missing=-1),
                ByLabel("hyperparameters", "hparams", "hparam", finite_only=True),
                Var("selection_value", cast=float),
                Computed("selection_split", "_selection_split"),
                Var("test_value", cast=float),
                Var("valid_value", cast=float),
                Var("metric", "metric_name", cast=str),
                Const("split", "test"),
                Var("value", "test_value", cast=float),
                Field("rule"),
                Var("n_trials", cast=int),
                Var("n_usable", cast=int),
                Field("test_repeats", "selection_repeats", empty="all"),
                Var("test_mean", cast=float),
                Var("test_min", cast=float),
                Var("test_median", cast=float),
                Var("test_max", cast=float),
                Var("n_repeats", cast=int),
                Var("n_tied", cast=int),
            ),
        ),
    )

    def _selection_split(self, cell: Cell) -> str:
        if self.rule is SelectionRule.FINAL_TRAIN_LOSS:
            return "train"
        return str(cell["selection_split"])


def require_usable(scores: TrialScores) -> None:
    """Raise AnalysisError if no trial of the (restricted) archive is usable."""
    if not bool(scores.data["usable"].any()):
        raise AnalysisError(
            f"no usable trial under rule {scores.rule}: every trial diverged, is incomplete "
            "or missing, or lacks the value the rule selects on"
        )


def usable_scores(
    archive: xr.Dataset | TrialScores,
    /,
    *,
    rule: SelectionRule | str,
    repeats: RepeatMode | str,
    diverged: DivergedMode | str = DivergedMode.EXCLUDE,
) -> TrialScores:
    """`archive`'s trial scores under `rule`, `repeats` and `diverged` (precomputed
    `TrialScores` are taken as they are); AnalysisError if no trial at all is usable."""
    scores = (
        archive
        if isinstance(archive, TrialScores)
        else trial_scores(archive, rule=rule, repeats=repeats, diverged=diverged)
    )
    require_usable(scores)
    return scores


def select_best(
    archive: xr.Dataset | TrialScores,
    /,
    *,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    repeats: RepeatMode | str = RepeatMode.MEAN,
    diverged: DivergedMode | str = DivergedMode.EXCLUDE,
) -> Selection:
    """The best trial per (workload, optimizer) under `rule`.

    `archive` may be an archive dataset or precomputed `TrialScores` (then `rule` and
    `repeats` are taken from it). Diverged, incomplete and missing trials are never
    selected; on a tie of the best score the test and validation values are the mean over
    the tied trials (`n_tied`). Raises AnalysisError if no trial at all is usable.
    """
    scores = usable_scores(archive, rule=rule, repeats=repeats, diverged=diverged)
    data = scores.data
    position = xr.apply_ufunc(
        argbest, data["score"], input_core_dims=[["trial"]], kwargs={"axis": -1}
    )
    safe = position.clip(min=0)
    has = position >= 0

    def pick(var: xr.DataArray) -> xr.DataArray:
        return var.isel(trial=safe).where(has).reset_coords(drop=True)

    best = data["score"].isel(trial=safe).reset_coords(drop=True)
    tied = (data["score"] == best) & has

    def tied_mean(var: xr.DataArray) -> xr.DataArray:
        return var.where(tied).mean("trial").where(has).reset_coords(drop=True)

    labels = data["trial"].values
    trial = xr.DataArray(
        np.where(position.values >= 0, labels[safe.values], -1), dims=position.dims
    )
    out = xr.Dataset(
        {
            "trial": trial.astype(np.int64),
            "position": position.astype(np.int64),
            "selection_value": pick(data["selection_value"]),
            "test_value": tied_mean(data["test_value"]),
            "valid_value": tied_mean(data["valid_value"]),
            "test_mean": pick(data["test_mean"]),
            "test_min": pick(data["test_min"]),
            "test_median": pick(data["test_median"]),
            "test_max": pick(data["test_max"]),
            "n_repeats": pick(data["n_repeats"]).fillna(0).astype(np.int64),
            "n_trials": data["present"].sum("trial").astype(np.int64),
            "n_tied": tied.sum("trial").astype(np.int64),
            "n_usable": data["usable"].sum("trial").astype(np.int64),
            "hparams": data["hparams"].isel(trial=safe).where(has).reset_coords(drop=True),
            "metric_name": data["metric_name"],
            "direction": data["direction"],
            "selection_split": data["selection_split"],
        }
    )
    out = out.assign_coords(optimizer_family=data["optimizer_family"])
    return Selection(
        data=out,
        rule=scores.rule,
        repeats=scores.repeats,
        caveats=scores.caveats,
        selection_repeats=scores.selection_repeats,
    )
