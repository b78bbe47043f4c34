"""Across workloads, as rliable does for reinforcement learning (Agarwal et al. 2021):
normalised scores, the interquartile mean (IQM), the optimality gap and the probability of
improvement, each with a stratified-bootstrap confidence interval.

Dependency rule: numpy, xarray, attrs, optcmp_data and this package. The kernels here take
plain arrays (a leading replicate axis broadcasts); `aggregate_scores` is the xarray-facing
wrapper.

What is aggregated. A *unit* is one independent piece of evidence about an optimizer on a
workload: a trial (`unit="trial"`: the archive is one tuning study, repeats averaged as in
`trial_scores`), or a repeat (`unit="repeat"`: every study/seed is its own tuning study and
its selected trial is one unit). Each (workload, optimizer) cell gives a distribution of the
test value of its *tuned* result: for trials, the selected trial of a k-trial study drawn
without replacement from the cell's n trials (Dodge et al. 2021's unbiased estimator: weight
C(n - j - 1, k - 1) / C(n, k) on the j-th best trial; k = n, the default, puts all weight on
the selected trial); for repeats, each repeat's selected trial with weight 1/n. A unit with
no usable result (diverged, incomplete, or a selected trial without a test value) and an
optimizer that has no unit on a workload count as the worst usable test value seen on that
workload (the "no result is the worst result" convention; the record counts them).

Normalisation, per workload and fixed from the data (not re-estimated per replicate):
score = (ref - v) / (ref - best) on the oriented value v (smaller is better): 1 is the best
usable test value any unit of any optimizer reached on the workload, 0 is the reference
optimizer's expected tuned value (default: the worst optimizer's). A workload where the two
coincide (or either is missing) cannot be normalised and is left out, with a caveat.

Statistics, over the mixture in which every workload weighs 1/W: the IQM (the mean of the
middle 50% of probability mass, fractional atoms split), the mean, the median, the
optimality gap E[max(0, 1 - score)], and per pair of optimizers the probability of
improvement P(X > Y) + P(X = Y) / 2 averaged over workloads, X and Y independent draws of
the two optimizers' tuned results on the same workload (the Mann-Whitney form rliable uses).

Uncertainty: the stratified independent bootstrap (strata = workloads): every replicate
resamples, with replacement, the units of every (workload, optimizer) cell separately,
keeping each cell's unit count, and recomputes the statistic; the interval is the
percentile interval of the replicates. `stratified_bootstrap` takes the statistic as a
function, so every statistic here goes through the same resampling.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import exact_probabilities, sort_trials
from optcmp_analysis._records import included_labels, json_value
from optcmp_analysis._selection import (
    RepeatMode,
    SelectionRule,
    orientation,
    select_best,
    trial_scores,
)

__all__ = [
    "AGGREGATE_STATISTICS",
    "AggregateScores",
    "Unit",
    "aggregate_scores",
    "interquartile_mean",
    "mixture_statistics",
    "optimality_gap",
    "probability_of_improvement",
    "stratified_bootstrap",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_N_BOOT_AGGREGATE = 2000
# The statistics of one optimizer over the workload mixture, in this order.
AGGREGATE_STATISTICS = ("iqm", "mean", "median", "optimality_gap")
_CHUNK = 50  # bootstrap replicates evaluated at once


class Unit(enum.StrEnum):
    """What one independent unit of evidence per (workload, optimizer) is."""

    TRIAL = "trial"  # a trial of the (single) tuning study; repeats averaged
    REPEAT = "repeat"  # a whole tuning study (seed/study repeat) and its selected trial


# --- kernels ----------------------------------------------------------------------------


def interquartile_mean(values: FloatArray, weights: FloatArray | None = None) -> FloatArray:
    """Mean of the middle 50% of the probability mass along the last axis.

    `weights` (broadcast against `values`, summing to 1 along the last axis; default
    uniform) give each value's probability; an atom straddling the 25% or 75% quantile
    contributes only its share inside. With n equal weights and n divisible by 4 this is
    the mean of the sorted values n/4 .. 3n/4 - 1 (scipy's trim_mean(x, 0.25)).
    """
    v = np.asarray(values, dtype=np.float64)
    w = (
        np.full(v.shape, 1.0 / v.shape[-1])
        if weights is None
        else np.broadcast_to(np.asarray(weights, dtype=np.float64), v.shape)
    )
    order = np.argsort(v, axis=-1, kind="stable")
    vs = np.take_along_axis(v, order, axis=-1)
    ws = np.take_along_axis(w, order, axis=-1)
    upper = np.cumsum(ws, axis=-1)
    lower = upper - ws
    inside = np.clip(np.minimum(upper, 0.75) - np.maximum(lower, 0.25), 0.0, None)
    contrib = np.where(inside > 0, inside * vs, 0.0)
    return np.asarray(contrib.sum(axis=-1) / 0.5)


def _weighted_median(values: FloatArray, weights: FloatArray) -> FloatArray:
    """The smallest value whose cumulative weight reaches 1/2 (inverted CDF), last axis."""
    order = np.argsort(values, axis=-1, kind="stable")
    vs = np.take_along_axis(values, order, axis=-1)
    ws = np.take_along_axis(np.broadcast_to(weights, values.shape), order, axis=-1)
    cum = np.cumsum(ws, axis=-1)
    idx = np.argmax(cum >= 0.5 - 1e-12, axis=-1)
    return np.take_along_axis(vs, idx[..., None], axis=-1)[..., 0]


def optimality_gap(values: FloatArray, weights: FloatArray | None = None) -> FloatArray:
    """E[max(0, 1 - score)] along the last axis (weights as in `interquartile_mean`)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.full(v.shape, 1.0 / v.shape[-1]) if weights is None else weights
    return np.asarray((w * np.maximum(0.0, 1.0 - v)).sum(axis=-1))


def mixture_statistics(values: FloatArray, weights: FloatArray) -> FloatArray:
    """The `AGGREGATE_STATISTICS` of the mixture over the last two axes (workload, atom):
    values (..., W, N) and weights (..., W, N) whose rows each sum to 1; every workload
    weighs 1/W. Returns (..., len(AGGREGATE_STATISTICS))."""
    v = np.asarray(values, dtype=np.float64)
    n_w = v.shape[-2]
    w = np.broadcast_to(weights, v.shape) / n_w
    flat_v = v.reshape(*v.shape[:-2], -1)
    flat_w = w.reshape(*w.shape[:-2], -1)
    return np.stack(
        [
            interquartile_mean(flat_v, flat_w),
            (flat_w * flat_v).sum(axis=-1),
            _weighted_median(flat_v, flat_w),
            optimality_gap(flat_v, flat_w),
        ],
        axis=-1,
    )


def probability_of_improvement(values: FloatArray, weights: FloatArray) -> FloatArray:
    """P(X_a > X_b) + P(X_a = X_b) / 2, averaged over workloads, for every ordered pair.

    values (..., W, O, N) with larger better; weights (..., W, O, N), each (W, O) row a
    distribution over its N atoms. X_a and X_b are independent. Returns (..., O, O); the
    diagonal is 1/2 and entry (a, b) + entry (b, a) = 1.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64), v.shape)
    a, b = v[..., :, None, :, None], v[..., None, :, None, :]
    wins = (a > b).astype(np.float64) + 0.5 * (a == b)
    joint = w[..., :, None, :, None] * w[..., None, :, None, :]
    per_workload = (joint * wins).sum(axis=(-1, -2))  # (..., W, O, O)
    return np.asarray(per_workload.mean(axis=-3))


def stratified_bootstrap(
    units: FloatArray,
    counts: IntArray,
    statistic: Callable[[FloatArray], FloatArray],
    *,
    n_boot: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Stratified independent bootstrap of `statistic`.

    units: (S, G, N, F): S strata (workloads), G groups resampled independently within each
    stratum (optimizers), up to N units each (the first `counts[s, g]` are real, the rest
    padding), F fields per unit. `statistic` maps (B, S, G, N, F) to (B, *out). Every
    replicate draws, for every (s, g), counts[s, g] units with replacement from its own.
    Returns (point estimate, lower, upper percentile bounds at `confidence`, replicates).
    """
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence {confidence} must lie strictly between 0 and 1")
    units = np.asarray(units, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    point = np.asarray(statistic(units[None]))[0]
    n_units = units.shape[2]
    positions = np.arange(n_units)
    replicates = []
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        u = rng.random((b, *counts.shape, n_units))
        idx = np.floor(u * np.maximum(counts, 1)[None, :, :, None]).astype(np.int64)
        # Padding positions keep pointing at themselves, so they stay padding.
        idx = np.where(positions < counts[None, :, :, None], idx, positions)
        draws = np.take_along_axis(units[None], idx[..., None], axis=3)
        replicates.append(np.asarray(statistic(draws)))
    reps = np.concatenate(replicates, axis=0)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return point, lo, hi, reps


def _distribution(
    units: FloatArray, counts: IntArray, budget: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Tuned-result distribution per cell from units (..., S, G, N, 2) = (selection score,
    filled oriented test value): the values sorted best first by score (unusable units and
    padding last) and the probabilities (S, G, N) of the best of a `budget`-unit draw without
    replacement (budget = count: the selected unit)."""
    score, value = units[..., 0], units[..., 1]
    n = units.shape[-2]
    present = np.broadcast_to(np.arange(n) < counts[..., None], score.shape)
    usable = present & np.isfinite(score)
    order, _, _ = sort_trials(score, usable, present)
    sorted_values = np.take_along_axis(value, order, axis=-1)
    probs = np.zeros((*counts.shape, n))
    for k in np.unique(budget):
        rows = budget == k
        p = exact_probabilities(counts[rows], int(k), n, replace=False)
        probs[rows] = np.nan_to_num(p, nan=0.0)
    return sorted_values, probs


# --- the record -------------------------------------------------------------------------


@attrs.frozen
class AggregateScores:
    """Aggregate scores of the optimizers across workloads.

    `data` variables: per (optimizer, statistic) `value`, `lo`, `hi` (statistic in
    `AGGREGATE_STATISTICS`); per (optimizer, other) `improvement`, `improvement_lo`,
    `improvement_hi` (P(optimizer better than other)); per (workload, optimizer) `score`
    (expected normalised score), `tuned_value` (expected tuned test value, metric units),
    `no_result` (share of the tuned-result distribution without a usable result), `units`
    (unit count); per workload `reference_value`, `best_value`, `included`, `metric_name`,
    `direction`.
    """

    data: xr.Dataset
    unit: Unit
    budget: int | None
    reference: str | None
    n_boot: int
    confidence: float
    rule: SelectionRule
    caveats: tuple[str, ...]

    @property
    def workloads(self) -> list[str]:
        """The workloads that entered the aggregate."""
        return included_labels(self.data)

    def to_dataset(self) -> xr.Dataset:
        out = self.data.copy()
        out.attrs = {
            "unit": str(self.unit),
            "budget": -1 if self.budget is None else self.budget,
            "reference": self.reference or "",
            "n_boot": self.n_boot,
            "confidence": self.confidence,
            "rule": str(self.rule),
            "caveats": "\n".join(self.caveats),
        }
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """Records with a "record" key: "aggregate" — optimizer, statistic (iqm, mean,
        median, optimality_gap), value, lo, hi, confidence, n_workloads, unit, rule;
        "improvement" — optimizer, other, value (P(optimizer better than other)), lo, hi;
        "score" — workload, optimizer, metric, split ("test"), value (expected normalised
        score), tuned_value, no_result, units, reference_value, best_value, included."""
        d = self.data
        out: list[dict[str, Any]] = []
        n_w = len(self.workloads)
        for o in d["optimizer"].values:
            for s in AGGREGATE_STATISTICS:
                cell = d.sel(optimizer=o, statistic=s)
                out.append(
                    {
                        "record": "aggregate",
                        "optimizer": str(o),
                        "statistic": s,
                        "value": json_value(float(cell["value"])),
                        "lo": json_value(float(cell["lo"])),
                        "hi": json_value(float(cell["hi"])),
                        "confidence": self.confidence,
                        "n_workloads": n_w,
                        "unit": str(self.unit),
                        "rule": str(self.rule),
                    }
                )
        for o in d["optimizer"].values:
            for other in d["other"].values:
                if o == other:
                    continue
                cell = d.sel(optimizer=o, other=other)
                out.append(
                    {
                        "record": "improvement",
                        "optimizer": str(o),
                        "other": str(other),
                        "value": json_value(float(cell["improvement"])),
                        "lo": json_value(float(cell["improvement_lo"])),
                        "hi": json_value(float(cell["improvement_hi"])),
                        "confidence": self.confidence,
                    }
                )
        for w in d["workload"].values:
            for o in d["optimizer"].values:
                cell = d.sel(workload=w, optimizer=o)
                out.append(
                    {
                        "record": "score",
                        "workload": str(w),
                        "optimizer": str(o),
                        "metric": str(cell["metric_name"].item()),
                        "split": "test",
                        "value": json_value(float(cell["score"])),
                        "tuned_value": json_value(float(cell["tuned_value"])),
                        "no_result": json_value(float(cell["no_result"])),
                        "units": int(cell["units"]),
                        "reference_value": json_value(float(cell["reference_value"])),
                        "best_value": json_value(float(cell["best_value"])),
                        "included": bool(cell["included"]),
                    }
                )
        return out


# --- the analysis -----------------------------------------------------------------------


def _units(
    archive: xr.Dataset, unit: Unit, rule: SelectionRule
) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray, xr.Dataset, tuple[str, ...]]:
    """Per (workload, optimizer, unit): oriented selection score (NaN: unusable), oriented
    test value (NaN: none), present; plus the scores' data and caveats."""
    if unit is Unit.TRIAL:
        scores = trial_scores(archive, rule=rule, repeats=RepeatMode.MEAN)
        d = scores.data
        sign = orientation(d["direction"])
        score = d["score"]
        value = (sign * d["test_value"]).where(d["usable"])
        present = d["present"]
        return score, value, present, d, scores.caveats
    scores = trial_scores(archive, rule=rule, repeats=RepeatMode.PER_REPEAT)
    reps = scores.repeat_dims
    if not reps:
        raise AnalysisError("unit 'repeat' needs an archive with a repeat axis (seed or study)")
    selection = select_best(scores).data
    sign = orientation(scores.data["direction"])
    value = (sign * selection["test_value"]).where(selection["position"] >= 0)
    present = selection["n_trials"] > 0
    stacked = [x.stack(unit=list(reps)) for x in (value, present)]
    value_u = stacked[0].drop_vars(["unit", *reps], errors="ignore")
    present_u = stacked[1].drop_vars(["unit", *reps], errors="ignore")
    # A repeat's "selection score" is its tuned test value: every repeat weighs 1/n.
    return value_u, value_u, present_u, scores.data, scores.caveats


def _pack(
    score: FloatArray, value: FloatArray, present: npt.NDArray[np.bool_]
) -> tuple[FloatArray, IntArray]:
    """(W, O, N) arrays -> units (W, O, N, 2) with the present units first, and counts."""
    order = np.argsort(~present, axis=-1, kind="stable")
    s = np.take_along_axis(score, order, axis=-1)
    v = np.take_along_axis(value, order, axis=-1)
    counts = present.sum(axis=-1).astype(np.int64)
    return np.stack([s, v], axis=-1), counts


def aggregate_scores(
    archive: xr.Dataset,
    /,
    *,
    rng: np.random.Generator,
    unit: Unit | str = Unit.TRIAL,
    budget: int | None = None,
    reference: str | None = None,
    n_boot: int = DEFAULT_N_BOOT_AGGREGATE,
    confidence: float = 0.95,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
) -> AggregateScores:
    """IQM, mean, median and optimality gap of normalised scores across workloads, and the
    probability of improvement of every optimizer over every other, with stratified-
    bootstrap intervals (see the module docstring for every definition).

    `budget`: trials per tuning study (unit "trial"; default each cell's own trial count,
    i.e. the selected trial); a cell with fewer trials uses all of them. `reference`: the
    optimizer whose expected tuned value is score 0 (default the worst one per workload).
    Raises AnalysisError for an unknown reference, a budget below 1, or when no workload can
    be normalised.
    """
    unit = Unit(unit)
    rule = SelectionRule(rule)
    optimizers = [str(o) for o in archive["optimizer"].values]
    if reference is not None and reference not in optimizers:
        raise AnalysisError(
            f"unknown reference optimizer {reference!r} (the archive has {optimizers})"
        )
    if budget is not None and budget < 1:
        raise AnalysisError(f"budget {budget} is not a positive number of trials")
    if unit is Unit.REPEAT and budget is not None:
        raise AnalysisError("--budget applies to unit 'trial' only (a repeat is a whole study)")
    score_da, value_da, present_da, sdata, caveats_in = _units(archive, unit, rule)
    dims = ("workload", "optimizer", str(score_da.dims[-1]))
    score = score_da.transpose(*dims).values.astype(np.float64)
    value = value_da.transpose(*dims).values.astype(np.float64)
    present = present_da.transpose(*dims).values.astype(bool)
    caveats = list(caveats_in)
    workloads = [str(w) for w in archive["workload"].values]

    # The no-result fill: the worst usable test value seen on the workload.
    finite_v = np.where(np.isfinite(value) & present, value, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        worst = np.nanmax(finite_v.reshape(len(workloads), -1), axis=-1)
        best = np.nanmin(finite_v.reshape(len(workloads), -1), axis=-1)
    usable = present & np.isfinite(score) & np.isfinite(value)
    filled = np.where(usable, value, worst[:, None, None])
    score = np.where(usable, score, np.nan)
    # An optimizer without any unit on a workload has one no-result unit.
    absent = np.asarray(~present.any(axis=-1), dtype=bool)
    present = present.copy()
    present[..., 0] |= absent
    for oi in np.flatnonzero(absent.any(axis=0)):
        missing = [workloads[wi] for wi in np.flatnonzero(absent[:, oi])]
        caveats.append(
            f"{optimizers[oi]} has no run on {', '.join(missing)}: scored as the worst "
            "value seen there"
        )
    if unit is Unit.TRIAL and budget is None:
        caveats.append(
            "unit trial with the full budget: each tuned result is a maximum over trials, "
            "and a resample can never beat the archive's best trial, so the upper end of "
            "every interval is (nearly) the point estimate; the intervals show downside "
            "uncertainty only (use unit repeat where studies were repeated, or a budget)"
        )
    units, counts = _pack(score, filled, present)
    n = units.shape[2]
    if unit is Unit.REPEAT:
        k = np.ones_like(counts)  # every repeat's tuned result weighs 1/n
    else:
        k = np.where(counts > 0, counts if budget is None else np.minimum(counts, budget), 1)
    sorted_v, probs = _distribution(units, counts, k)
    expected = (probs * np.where(probs > 0, sorted_v, 0.0)).sum(axis=-1)  # (W, O)
    # no_result: weight on positions whose unit is unusable (sorted last, by sort_trials).
    n_usable = np.isfinite(units[..., 0]).sum(axis=-1)
    no_result = np.where(np.arange(n) >= n_usable[..., None], probs, 0.0).sum(axis=-1)

    if reference is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            ref = np.nanmax(np.where(np.isfinite(expected), expected, np.nan), axis=-1)
    else:
        ref = expected[:, optimizers.index(reference)]
    span = ref - best
    included = np.isfinite(span) & (span > 0)
    for wi in np.flatnonzero(~included):
        caveats.append(
            f"workload {workloads[wi]} left out of the aggregate: its reference and best "
            "values coincide or are missing, so its scores cannot be normalised"
        )
    if not included.any():
        raise AnalysisError(
            "no workload can be normalised (each needs a best usable value better than the "
            "reference optimizer's tuned value)"
        )
    wi_in = np.flatnonzero(included)
    sub_units = units[wi_in]
    sub_counts = counts[wi_in]
    sub_k = k[wi_in]
    ref_in, span_in = ref[wi_in], span[wi_in]

    def normalised(draws: FloatArray) -> tuple[FloatArray, FloatArray]:
        vals, p = _distribution(draws, sub_counts, sub_k)
        x = (ref_in[:, None, None] - vals) / span_in[:, None, None]
        return np.where(p > 0, x, 0.0), p

    def statistic(draws: FloatArray) -> FloatArray:
        x, p = normalised(draws)  # (B, W, O, N)
        agg = mixture_statistics(np.moveaxis(x, -3, -2), np.moveaxis(p, -3, -2)[None])
        pi = probability_of_improvement(x, p[None])
        o = x.shape[-2]
        return np.concatenate([agg.reshape(x.shape[0], -1), pi.reshape(x.shape[0], o * o)], 1)

    point, lo, hi, _ = stratified_bootstrap(
        sub_units, sub_counts, statistic, n_boot=n_boot, rng=rng, confidence=confidence
    )
    n_o, n_s = len(optimizers), len(AGGREGATE_STATISTICS)
    split = n_o * n_s

    def agg_da(x: FloatArray) -> xr.DataArray:
        return xr.DataArray(x[:split].reshape(n_o, n_s), dims=("optimizer", "statistic"))

    def imp_da(x: FloatArray) -> xr.DataArray:
        return xr.DataArray(x[split:].reshape(n_o, n_o), dims=("optimizer", "other"))

    sign = orientation(sdata["direction"]).values
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised_expected = (ref[:, None] - expected) / span[:, None]
    data = xr.Dataset(
        {
            "value": agg_da(point),
            "lo": agg_da(lo),
            "hi": agg_da(hi),
            "improvement": imp_da(point),
            "improvement_lo": imp_da(lo),
            "improvement_hi": imp_da(hi),
            "score": (
                ("workload", "optimizer"),
                np.where(included[:, None], normalised_expected, np.nan),
            ),
            "tuned_value": (("workload", "optimizer"), sign[:, None] * expected),
            "no_result": (("workload", "optimizer"), no_result),
            "units": (("workload", "optimizer"), counts),
            "reference_value": ("workload", sign * ref),
            "best_value": ("workload", sign * best),
            "included": ("workload", included),
            "metric_name": ("workload", sdata["metric_name"].values.astype(str)),
            "direction": ("workload", sdata["direction"].values.astype(str)),
        },
        coords={
            "workload": workloads,
            "optimizer": optimizers,
            "other": optimizers,
            "statistic": list(AGGREGATE_STATISTICS),
        },
    )
    return AggregateScores(
        data=data,
        unit=unit,
        budget=budget,
        reference=reference,
        n_boot=n_boot,
        confidence=confidence,
        rule=rule,
        caveats=tuple(dict.fromkeys(caveats)),
    )
