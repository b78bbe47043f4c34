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

import math
import tomllib
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._enums import DEFAULT_N_BOOT_AGGREGATE, Normalisation, Unit
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import exact_probabilities, sort_trials
from optcmp_analysis._records import (
    Const,
    Field,
    Labels,
    Records,
    Result,
    Var,
    attr,
    included_labels,
)
from optcmp_analysis._selection import (
    RepeatMode,
    SelectionRule,
    orientation,
    select_best,
    trial_scores,
)
from optcmp_data import ConfigError, Direction, Split, Status, check_bootstrap, repeat_dims

__all__ = [
    "AGGREGATE_STATISTICS",
    "INTERVAL_BUDGET_DIVISOR",
    "MIN_INTERVAL_WORKLOADS",
    "AggregateScores",
    "Normalisation",
    "ReferenceScores",
    "Unit",
    "aggregate_scores",
    "effective_units",
    "interquartile_mean",
    "interval_budget",
    "mixture_statistics",
    "optimality_gap",
    "probability_of_improvement",
    "resolve_unit",
    "stratified_bootstrap",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The statistics of one optimizer over the workload mixture, in this order.
AGGREGATE_STATISTICS = ("iqm", "mean", "median", "optimality_gap")
_CHUNK = 50  # bootstrap replicates evaluated at once
# Fewer workloads than this: no aggregate interval (see `_interval_note`).
MIN_INTERVAL_WORKLOADS = 3
# Unit trial: intervals only at budgets k <= n // INTERVAL_BUDGET_DIVISOR (simulation in
# tests/analysis/test_aggregate_coverage.py).
INTERVAL_BUDGET_DIVISOR = 2


def resolve_unit(archive: xr.Dataset, unit: Unit | str) -> Unit:
    """`unit`, with AUTO resolved: REPEAT where the archive has a repeat axis and selection
    may use every repeat (each repeat is then a whole tuning study, as AlgoPerf's studies),
    else TRIAL."""
    unit = Unit(unit)
    if unit is not Unit.AUTO:
        return unit
    has_repeats = bool(repeat_dims(archive))
    return Unit.REPEAT if has_repeats and not archive.attrs.get("selection_repeats") else Unit.TRIAL


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
    """The standard median along the last axis: the midpoint of the lower median (the
    smallest value whose cumulative weight reaches 1/2) and the upper median (the smallest
    value whose cumulative weight exceeds 1/2). With n equal weights it is the middle value
    (n odd) or the average of the two middle values (n even), as numpy's median."""
    order = np.argsort(values, axis=-1, kind="stable")
    vs = np.take_along_axis(values, order, axis=-1)
    ws = np.take_along_axis(np.broadcast_to(weights, values.shape), order, axis=-1)
    cum = np.cumsum(ws, axis=-1)
    tol = 1e-9
    lower = np.argmax(cum >= 0.5 - tol, axis=-1)
    upper = np.argmax(cum > 0.5 + tol, axis=-1)
    pick = np.take_along_axis
    return np.asarray(
        (pick(vs, lower[..., None], axis=-1)[..., 0] + pick(vs, upper[..., None], axis=-1)[..., 0])
        / 2.0
    )


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
    effective_n: float | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Stratified independent bootstrap of `statistic`.

    units: (S, G, N, F): S strata (workloads), G groups resampled independently within each
    stratum (optimizers), up to N units each (the first `counts[s, g]` are real, the rest
    padding), F fields per unit. `statistic` maps (B, S, G, N, F) to (B, *out). Every
    replicate draws, for every (s, g), counts[s, g] units with replacement from its own.
    Returns (point estimate, lower, upper percentile bounds at `confidence`, replicates).

    `effective_n` (the number of independent pieces of evidence behind the statistic, if
    small): the expanded percentile interval (Hesterberg 2015): the percentile levels are
    widened so that the normal quantile they stand for becomes sqrt(n / (n - 1)) times
    Student's t quantile with n - 1 degrees of freedom, the usual small-sample correction
    of a bootstrap that is too narrow by a factor of about sqrt((n - 1) / n) and uses z for t.
    """
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence {confidence} must lie strictly between 0 and 1")
    units = np.asarray(units, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    point = np.asarray(statistic(units[None]))[0]
    # Every replicate's statistic is kept, then concatenated and sorted for the quantiles
    # (three copies); the draws themselves are made a chunk at a time.
    check_bootstrap(point.size, n_boot, bytes_per_draw=3 * point.itemsize)
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
    if effective_n is not None and effective_n > 1:
        import scipy.stats  # a second to import: only where it is used (fast --help)

        n_eff = float(effective_n)
        z = math.sqrt(n_eff / (n_eff - 1.0)) * scipy.stats.t.ppf(1.0 - alpha, n_eff - 1.0)
        alpha = float(scipy.stats.norm.sf(z))
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return point, lo, hi, reps


# --- normalisation ----------------------------------------------------------------------


@attrs.frozen
class ReferenceScores:
    """Fixed per-workload anchors in the metric's units: a test value equal to `zero[w]`
    scores 0 and one equal to `one[w]` scores 1 (rliable's human-normalised scores use a
    random agent's score as 0 and a human's as 1; here e.g. an untrained model's value and a
    target)."""

    zero: Mapping[str, float]
    one: Mapping[str, float]
    source: str = ""

    @classmethod
    def from_toml(cls, path: str | Path) -> ReferenceScores:
        """Read a TOML file with one table per workload holding numbers `zero` and `one`:

            ["cifar10_3c3d"]
            zero = 0.1   # a random classifier's accuracy
            one = 0.85   # the target accuracy

        Raises ConfigError naming the file, the workload and the field."""
        path = Path(path)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{path}: cannot read reference scores ({e.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not a TOML file ({e})") from None
        zero: dict[str, float] = {}
        one: dict[str, float] = {}
        for name, entry in table.items():
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: {name!r} must be a table with zero and one")
            unknown = sorted(set(entry) - {"zero", "one"})
            if unknown:
                raise ConfigError(f"{path}: [{name}] has unknown field {unknown[0]!r}")
            for field, out in (("zero", zero), ("one", one)):
                value = entry.get(field)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{path}: [{name}] {field} must be a number, got {value!r}")
                if not math.isfinite(value):
                    raise ConfigError(f"{path}: [{name}] {field} must be finite, got {value!r}")
                out[name] = float(value)
            if zero[name] == one[name]:
                raise ConfigError(f"{path}: [{name}] zero and one are equal ({zero[name]!r})")
        if not zero:
            raise ConfigError(f"{path}: no workload table")
        return cls(zero=zero, one=one, source=str(path))


def _initial_values(archive: xr.Dataset) -> FloatArray:
    """Per workload: the median test value of the runs' first evaluation where it was taken
    before training (step 0) or after at most one update (step 1); NaN where none was."""
    test = archive["test_metric"].isel(eval=0)
    step = archive["step"].isel(eval=0)
    early = (step >= 0) & (step <= 1) & (archive["status"] != Status.MISSING.value)
    vals = test.where(early).transpose("workload", ...).values
    out = np.full(vals.shape[0], np.nan)
    for wi in range(vals.shape[0]):
        v = vals[wi][np.isfinite(vals[wi])]
        if len(v):
            out[wi] = float(np.median(v))
    return out


def _anchors(
    archive: xr.Dataset,
    normalisation: Normalisation,
    reference_scores: ReferenceScores | None,
    directions: list[str],
) -> tuple[FloatArray, FloatArray, list[str], list[str]]:
    """Raw-unit (zero, one) per workload for the fixed normalisations, a description of each
    workload's anchors, and caveats for workloads without them."""
    workloads = [str(w) for w in archive["workload"].values]
    n_w = len(workloads)
    caveats: list[str] = []
    if normalisation is Normalisation.IDENTITY:
        for w, d in zip(workloads, directions, strict=True):
            if d != Direction.MAX.value:
                raise AnalysisError(
                    f"normalisation identity keeps values as they are, so larger must be "
                    f"better; workload {w!r} minimises its metric (use targets or a "
                    "reference-scores file)"
                )
        return np.zeros(n_w), np.ones(n_w), ["identity"] * n_w, caveats
    if normalisation is Normalisation.REFERENCE:
        if reference_scores is None:
            raise AnalysisError("normalisation reference needs reference scores (a file)")
        zero = np.array([reference_scores.zero.get(w, np.nan) for w in workloads])
        one = np.array([reference_scores.one.get(w, np.nan) for w in workloads])
        missing = [w for w in workloads if w not in reference_scores.zero]
        if missing:
            caveats.append(
                f"no reference scores for {', '.join(missing)} in {reference_scores.source}: "
                "left out of the aggregate"
            )
        unknown = sorted(set(reference_scores.zero) - set(workloads))
        if unknown:
            caveats.append(
                f"reference scores for workloads not in the archive ignored: {', '.join(unknown)}"
            )
        src = reference_scores.source or "reference scores"
        return zero, one, [f"reference scores ({src})"] * n_w, caveats
    # Targets: 1 = the workload's target on the test split, else its validation target.
    test_t = archive["test_target"].values.astype(np.float64)
    valid_t = archive["valid_target"].values.astype(np.float64)
    one = np.where(np.isfinite(test_t), test_t, valid_t)
    zero = _initial_values(archive)
    what = [
        "test_target"
        if np.isfinite(t)
        else "valid_target (a validation target, applied to test values)"
        for t in test_t
    ]
    described = [f"0 = untrained test value (median at step <= 1), 1 = {x}" for x in what]
    no_target = [w for w, t in zip(workloads, one, strict=True) if not np.isfinite(t)]
    no_start = [w for w, z in zip(workloads, zero, strict=True) if not np.isfinite(z)]
    if no_target:
        caveats.append(
            f"no target for {', '.join(no_target)}: left out of the aggregate (give "
            "reference scores, or normalisation minmax-compared)"
        )
    no_start = [w for w in no_start if w not in no_target]
    if no_start:
        caveats.append(
            f"no evaluation before training (step 0 or 1) for {', '.join(no_start)}: no "
            "score-0 anchor, left out of the aggregate (give reference scores)"
        )
    return zero, one, described, caveats


def _holm(p: FloatArray) -> FloatArray:
    """Holm-adjusted p-values of a flat family (NaN entries are not in the family)."""
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * float(p[j])))
        out[j] = running
    return out


# --- the record -------------------------------------------------------------------------


@attrs.frozen
class AggregateScores(Result):
    """Aggregate scores of the optimizers across workloads.

    `data` variables: per (optimizer, statistic) `value`, `lo`, `hi` (statistic in
    `AGGREGATE_STATISTICS`; lo/hi NaN where no interval is given, see `interval_note`); per
    (optimizer, other) `improvement`, `improvement_lo`, `improvement_hi` (P(optimizer better
    than other)), `improvement_p` (two-sided p-value of "= 1/2" from the bootstrap standard
    error),
    `improvement_p_holm` (Holm-adjusted over the unordered pairs) and `improvement_clear`
    (adjusted p below 1 - confidence and the value above 1/2); per (workload, optimizer)
    `score` (expected normalised score), `tuned_value` (expected tuned test value, metric
    units), `no_result`, `units` (unit count); per workload `zero_value`, `one_value`
    (the anchors: test values scoring 0 and 1), `anchors` (where they come from),
    `included`, `metric_name`, `direction`.
    """

    data: xr.Dataset
    unit: Unit = attrs.field(metadata=attr())
    budget: int | None = attrs.field(metadata=attr(none=-1))
    normalisation: Normalisation = attrs.field(metadata=attr())
    reference: str | None = attrs.field(metadata=attr(none=""))
    n_boot: int = attrs.field(metadata=attr())
    confidence: float = attrs.field(metadata=attr())
    rule: SelectionRule = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    # Why no interval is given (None: intervals shown).
    interval_note: str | None = attrs.field(default=None, metadata=attr(none=""))
    with_replacement: bool = attrs.field(default=False, metadata=attr())

    @property
    def workloads(self) -> list[str]:
        """The workloads that entered the aggregate."""
        return included_labels(self.data)

    @property
    def scale_phrase(self) -> str:
        """Plain text naming what scores 0 and 1 (escape it for the medium it goes to)."""
        n = self.normalisation
        if n is Normalisation.TARGETS:
            return "0 = untrained, 1 = target"
        if n is Normalisation.REFERENCE:
            return "0 and 1 from reference scores"
        if n is Normalisation.IDENTITY:
            return "values as they are"
        ref = self.reference or "the worst tuned"
        return f"min-max over the compared optimizers: 1 = best seen, 0 = {ref}"

    @property
    def n_pairs(self) -> int:
        """The size of the Holm family of the probability of improvement."""
        n = self.data.sizes["optimizer"]
        return n * (n - 1) // 2

    @property
    def n_workloads(self) -> int:
        return len(self.workloads)

    # Records with a "record" key: "aggregate" -- optimizer, statistic (iqm, mean, median,
    # optimality_gap), value, lo, hi (null: no interval, `interval_note` says why),
    # confidence, n_workloads, unit, budget (k per tuning study; null for unit repeat),
    # normalisation, rule, interval_note; "improvement" -- optimizer, other, value
    # (P(optimizer better than other)), lo, hi, p, p_holm, holm_family, clear; "score" --
    # workload, optimizer, metric, split ("test"), value (expected normalised score),
    # tuned_value, no_result, units, zero_value, one_value, anchors, included.
    JSON = (
        Records(
            record="aggregate",
            dims=("optimizer", "statistic"),
            keys=(
                Labels(),
                Var("value", cast=float),
                Var("lo", cast=float),
                Var("hi", cast=float),
                Field("confidence"),
                Field("n_workloads"),
                Field("unit"),
                Field("budget"),
                Field("normalisation"),
                Field("rule"),
                Field("interval_note"),
            ),
        ),
        Records(
            record="improvement",
            dims=("optimizer", "other"),
            keep=lambda r, c: c.labels["optimizer"] != c.labels["other"],
            keys=(
                Labels(),
                Var("value", "improvement", cast=float),
                Var("lo", "improvement_lo", cast=float),
                Var("hi", "improvement_hi", cast=float),
                Var("p", "improvement_p", cast=float),
                Var("p_holm", "improvement_p_holm", cast=float),
                Field("holm_family", "n_pairs"),
                Var("clear", "improvement_clear", cast=bool),
                Field("confidence"),
            ),
        ),
        Records(
            record="score",
            dims=("workload", "optimizer"),
            keys=(
                Labels(),
                Var("metric", "metric_name", cast=str),
                Const("split", "test"),
                Var("value", "score", cast=float),
                Var("tuned_value", cast=float),
                Var("no_result", cast=float),
                Var("units", cast=int),
                Var("zero_value", cast=float),
                Var("one_value", cast=float),
                Var("anchors", cast=str),
                Var("included", cast=bool),
            ),
        ),
    )


# --- the analysis -----------------------------------------------------------------------


def interval_budget(n: int) -> int:
    """The largest budget k at which a cell of n trials gets a bootstrap interval (unit
    trial): at k near n the tuned result is the best of (nearly) all trials and a resample
    cannot move past it; the simulation of tests/analysis/test_aggregate_coverage.py shows
    the percentile interval covering at k <= n / INTERVAL_BUDGET_DIVISOR."""
    return n // INTERVAL_BUDGET_DIVISOR


def effective_units(counts: IntArray, k: IntArray) -> float:
    """The number of independent pieces of evidence behind one optimizer's aggregate: per
    workload, the number of disjoint k-unit studies its smallest cell holds (n // k; a
    repeat is one study), summed over the workloads. It sets the small-sample expansion of
    the intervals (`stratified_bootstrap`'s `effective_n`)."""
    per_workload = (np.asarray(counts) // np.maximum(np.asarray(k), 1)).min(axis=-1)
    return float(max(2, int(per_workload.sum())))


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
    chosen = archive.attrs.get("selection_repeats", "")
    if chosen:
        raise AnalysisError(
            f"unit 'repeat' needs every repeat to be a whole tuning study, but this archive "
            f"selects settings on {chosen} only (attribute selection_repeats: the other "
            "repeats re-ran chosen settings), so use unit 'trial'"
        )
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


@attrs.frozen
class _Setup:
    """What the statistics need: units, counts, budgets and the linear score map."""

    units: FloatArray  # (W, O, N, 2)
    counts: IntArray  # (W, O)
    k: IntArray  # (W, O)
    replace: npt.NDArray[np.bool_]  # (W, O): best-of-k with replacement (past the count)
    scale: FloatArray  # (W,): score = scale * oriented value + shift
    shift: FloatArray


def _distribution(
    units: FloatArray,
    counts: IntArray,
    budget: IntArray,
    replace: npt.NDArray[np.bool_] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Tuned-result distribution per cell from units (..., S, G, N, 2) = (selection score,
    filled oriented test value): the values sorted best first by score (unusable units and
    padding last) and the probabilities (S, G, N) of the best of a `budget`-unit draw without
    replacement (budget = count: the selected unit; `replace`: with replacement, for cells
    resampled past their count)."""
    score, value = units[..., 0], units[..., 1]
    n = units.shape[-2]
    present = np.broadcast_to(np.arange(n) < counts[..., None], score.shape)
    usable = present & np.isfinite(score)
    order, _, _ = sort_trials(score, usable, present)
    sorted_values = np.take_along_axis(value, order, axis=-1)
    probs = np.zeros((*counts.shape, n))
    repl = np.zeros(counts.shape, dtype=bool) if replace is None else replace
    for k in np.unique(budget):
        for r in (False, True):
            rows = (budget == k) & (repl == r)
            if rows.any():
                p = exact_probabilities(counts[rows], int(k), n, replace=r)
                probs[rows] = np.nan_to_num(p, nan=0.0)
    return sorted_values, probs


def aggregate_statistic(setup: _Setup) -> Callable[[FloatArray], FloatArray]:
    """The statistic of a (stratified) draw of units (B, W, O, N, 2): per optimizer the
    `AGGREGATE_STATISTICS` of its normalised tuned-result mixture, then the (O, O) matrix
    of probabilities of improvement, flattened to (B, O * S + O * O)."""

    def statistic(draws: FloatArray) -> FloatArray:
        vals, p = _distribution(draws, setup.counts, setup.k, setup.replace)
        x = setup.scale[:, None, None] * vals + setup.shift[:, None, None]
        x = np.where(p > 0, x, 0.0)  # (B, W, O, N)
        agg = mixture_statistics(np.moveaxis(x, -3, -2), np.moveaxis(p, -3, -2)[None])
        pi = probability_of_improvement(x, p[None])
        o = x.shape[-2]
        return np.concatenate([agg.reshape(x.shape[0], -1), pi.reshape(x.shape[0], o * o)], 1)

    return statistic


def _interval_note(
    unit: Unit,
    n_workloads: int,
    counts: IntArray,
    k: IntArray,
    replace: npt.NDArray[np.bool_],
    on_test: list[str],
) -> str | None:
    """Why the aggregate gets no interval, or None. `on_test`: the included workloads whose
    trials are selected on the test values themselves."""
    if n_workloads < MIN_INTERVAL_WORKLOADS:
        return (
            f"no intervals: {n_workloads} workload{'s' if n_workloads != 1 else ''} entered the "
            f"aggregate, fewer than {MIN_INTERVAL_WORKLOADS}; across so few workloads an "
            "aggregate is a per-workload result (a probability of improvement over one "
            "workload at the full budget is 0 or 1), so its bootstrap would describe the "
            "trials of these workloads only (see analyze budget and rank for them)"
        )
    if replace.any():
        return (
            "no intervals: some cells are resampled with replacement past their trial count, "
            "which no interval method here covers"
        )
    if unit is Unit.TRIAL and on_test:
        return (
            f"no intervals: {', '.join(on_test[:3])}{' ...' if len(on_test) > 3 else ''} "
            "select trials on the test values themselves, and a bootstrap of a best-of-k "
            "test value selected on itself covers too rarely at every budget simulated "
            "(0.68-0.89 at nominal 0.90 for k = n/4 and n/2, tests/analysis/"
            "test_aggregate_coverage.py); unit repeat where whole studies were repeated"
        )
    if unit is Unit.TRIAL:
        over = k > counts // INTERVAL_BUDGET_DIVISOR
        if over.any():
            k_max = int(k[over].max())
            n_min = int(counts[over].min())
            fit = int(counts.min()) // INTERVAL_BUDGET_DIVISOR
            how = (
                f"--budget {fit}"
                if fit >= 1
                else f"no budget here: a cell has fewer than {INTERVAL_BUDGET_DIVISOR} trials"
            )
            return (
                f"no intervals at budget k = {k_max} of {n_min} trial{'s' if n_min != 1 else ''}: "
                "a tuned result that is the best of (nearly) all of a cell's trials cannot be "
                "moved past that trial by a bootstrap, so its interval would show downside "
                f"only; intervals need k <= n/{INTERVAL_BUDGET_DIVISOR} in every cell of n "
                f"trials ({how}), or unit repeat where whole studies were repeated"
            )
    return None


def aggregate_scores(
    archive: xr.Dataset,
    /,
    *,
    rng: np.random.Generator,
    unit: Unit | str = Unit.AUTO,
    budget: int | None = None,
    normalisation: Normalisation | str = Normalisation.TARGETS,
    reference_scores: ReferenceScores | None = None,
    reference: str | None = None,
    n_boot: int = DEFAULT_N_BOOT_AGGREGATE,
    confidence: float = 0.95,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    with_replacement: bool = False,
) -> AggregateScores:
    """IQM, mean, median and optimality gap of normalised scores across workloads, and the
    probability of improvement of every optimizer over every other, with stratified-
    bootstrap intervals where they are valid (see the module docstring for definitions).

    `normalisation`: targets (default; 0 = the untrained model's test value, 1 = the
    workload's target), reference (`reference_scores` per workload), identity, or
    minmax-compared (1 = the best value seen, 0 = the tuned value of `reference`, default
    the worst compared optimizer: a rank-like transform that changes when an optimizer is
    added). `budget`: trials per tuning study (unit trial; default the smallest trial count
    of the compared cells); a budget above a cell's count raises AnalysisError unless
    `with_replacement`. Raises AnalysisError for an unknown reference, a budget below 1, or
    when no workload can be normalised.
    """
    unit = resolve_unit(archive, unit)
    rule = SelectionRule(rule)
    normalisation = _checked(
        archive, unit, normalisation, reference, reference_scores, budget, n_boot, confidence
    )
    cells = _Cells.of(archive, unit, rule)
    k, replace, k_all = _budgets(cells, unit, budget, with_replacement)
    sorted_v, probs = _distribution(cells.units, cells.counts, k, replace)
    expected = (probs * np.where(probs > 0, sorted_v, 0.0)).sum(axis=-1)  # (W, O)
    # no_result: weight on positions whose unit is unusable (sorted last, by sort_trials).
    n_usable = np.isfinite(cells.units[..., 0]).sum(axis=-1)
    no_result = np.where(np.arange(cells.units.shape[2]) >= n_usable[..., None], probs, 0.0).sum(
        axis=-1
    )
    norm = _Normalised.of(archive, cells, expected, normalisation, reference, reference_scores)
    wi_in = np.flatnonzero(norm.included)
    setup = _Setup(
        units=cells.units[wi_in],
        counts=cells.counts[wi_in],
        k=k[wi_in],
        replace=replace[wi_in],
        scale=norm.scale[wi_in],
        shift=norm.shift[wi_in],
    )
    splits = [str(x) for x in cells.sdata["selection_split"].values]
    on_test = [
        cells.workloads[wi]
        for wi in wi_in
        if splits[wi] == Split.TEST.value and rule is not SelectionRule.FINAL_TRAIN_LOSS
    ]
    held_counts = np.where(cells.held, cells.real_counts, cells.units.shape[2])
    note = _interval_note(unit, len(wi_in), held_counts[wi_in], setup.k, setup.replace, on_test)
    data = _aggregate_data(
        cells,
        norm,
        _intervals(setup, note, n_boot=n_boot, rng=rng, confidence=confidence),
        expected,
        no_result,
        confidence,
    )
    return AggregateScores(
        data=data,
        unit=unit,
        budget=None if unit is Unit.REPEAT else int(k_all),
        normalisation=norm.normalisation,
        reference=reference,
        n_boot=n_boot,
        confidence=confidence,
        rule=rule,
        caveats=tuple(
            dict.fromkeys(
                [*cells.caveats, *_budget_caveats(cells, replace, k_all, unit), *norm.caveats]
            )
        ),
        interval_note=note,
        with_replacement=with_replacement,
    )


def _checked(
    archive: xr.Dataset,
    unit: Unit,
    normalisation: Normalisation | str,
    reference: str | None,
    reference_scores: ReferenceScores | None,
    budget: int | None,
    n_boot: int,
    confidence: float,
) -> Normalisation:
    """The options checked (AnalysisError naming the first bad one); the normalisation,
    "reference" where reference scores are given."""
    normalisation = Normalisation(normalisation)
    optimizers = [str(o) for o in archive["optimizer"].values]
    if reference is not None and normalisation is not Normalisation.MINMAX_COMPARED:
        raise AnalysisError("a reference optimizer applies to normalisation minmax-compared only")
    if reference is not None and reference not in optimizers:
        raise AnalysisError(
            f"unknown reference optimizer {reference!r} (the archive has {optimizers})"
        )
    if reference_scores is not None and normalisation is not Normalisation.REFERENCE:
        normalisation = Normalisation.REFERENCE
    if budget is not None and budget < 1:
        raise AnalysisError(f"budget {budget} is not a positive number of trials")
    if unit is Unit.REPEAT and budget is not None:
        raise AnalysisError(
            "a budget applies to unit 'trial' only (a repeat is a whole study; use unit trial)"
        )
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence {confidence} must lie strictly between 0 and 1")
    return normalisation


@attrs.frozen
class _Cells:
    """The units of every (workload, optimizer) cell, packed (`_pack`): `units` (W, O, N, 2)
    of (score, test value; a unit without a usable result holds the worst usable test value
    seen on its workload), `counts` (units per cell; a cell without any holds one no-result
    unit), `real_counts` (units the archive holds), `held` (real_counts > 0), `best` (best
    usable test value per workload), `sign` (orientation per workload) and the caveats so
    far (the trial scores' and one per set of workloads where optimizers have no run)."""

    workloads: list[str]
    optimizers: list[str]
    sdata: xr.Dataset
    units: FloatArray
    counts: IntArray
    real_counts: IntArray
    held: npt.NDArray[np.bool_]
    best: FloatArray
    sign: FloatArray
    caveats: tuple[str, ...]

    @classmethod
    def of(cls, archive: xr.Dataset, unit: Unit, rule: SelectionRule) -> _Cells:
        score_da, value_da, present_da, sdata, caveats_in = _units(archive, unit, rule)
        dims = ("workload", "optimizer", str(score_da.dims[-1]))
        score = score_da.transpose(*dims).values.astype(np.float64)
        value = value_da.transpose(*dims).values.astype(np.float64)
        present = present_da.transpose(*dims).values.astype(bool)
        caveats = list(caveats_in)
        workloads = [str(w) for w in archive["workload"].values]
        optimizers = [str(o) for o in archive["optimizer"].values]
        # The no-result fill: the worst usable test value seen on the workload.
        finite_v = np.where(np.isfinite(value) & present, value, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            worst = np.nanmax(finite_v.reshape(len(workloads), -1), axis=-1)
            best = np.nanmin(finite_v.reshape(len(workloads), -1), axis=-1)
        usable = present & np.isfinite(score) & np.isfinite(value)
        filled = np.where(usable, value, worst[:, None, None])
        score = np.where(usable, score, np.nan)
        real_counts = present.sum(axis=-1)
        # An optimizer without any unit on a workload has one no-result unit.
        absent = np.asarray(~present.any(axis=-1), dtype=bool)
        present = present.copy()
        present[..., 0] |= absent
        # One caveat per set of missing workloads, naming every optimizer it concerns.
        by_missing: dict[tuple[str, ...], list[str]] = {}
        for oi in np.flatnonzero(absent.any(axis=0)):
            missing = tuple(workloads[wi] for wi in np.flatnonzero(absent[:, oi]))
            by_missing.setdefault(missing, []).append(str(optimizers[oi]))
        for missing, names in by_missing.items():
            who = names[0] if len(names) == 1 else f"{', '.join(names)} ({len(names)} optimizers)"
            caveats.append(
                f"{who} {'has' if len(names) == 1 else 'have'} no run on {', '.join(missing)}: "
                "scored as the worst value seen there"
            )
        units, counts = _pack(score, filled, present)
        return cls(
            workloads=workloads,
            optimizers=optimizers,
            sdata=sdata,
            units=units,
            counts=counts,
            real_counts=real_counts,
            held=real_counts > 0,
            best=best,
            sign=orientation(sdata["direction"]).values.astype(np.float64),
            caveats=tuple(caveats),
        )

    @property
    def count_range(self) -> tuple[int, int]:
        """The smallest and largest trial count of the cells that hold any (1, 1: none)."""
        held = self.real_counts[self.held]
        return (int(held.min()), int(held.max())) if held.size else (1, 1)


def _budgets(
    cells: _Cells, unit: Unit, budget: int | None, with_replacement: bool
) -> tuple[IntArray, npt.NDArray[np.bool_], int]:
    """Per cell the study size k and whether it is drawn with replacement (past the cell's
    count), and the budget asked for (0 for unit repeat)."""
    if unit is Unit.REPEAT:
        # Every repeat's tuned result weighs 1/n.
        return np.ones_like(cells.counts), np.zeros(cells.counts.shape, dtype=bool), 0
    smallest = cells.count_range[0]
    k_all = smallest if budget is None else budget
    short = cells.held & (cells.real_counts < k_all)
    if short.any() and not with_replacement:
        wi, oi = np.argwhere(short)[0]
        raise AnalysisError(
            f"budget {k_all} is larger than the {int(cells.real_counts[wi, oi])} trials of "
            f"{cells.optimizers[oi]} on {cells.workloads[wi]}: the aggregate needs a study of "
            f"{k_all} trials for every cell (use a budget <= {smallest}, or "
            "--with-replacement to resample past a cell's trials)"
        )
    k = np.where(cells.counts > 0, k_all, 1)
    replace = cells.counts < k
    # A cell without any run has one no-result unit: best of 1.
    return np.where(cells.held, k, 1), replace & cells.held, k_all


def _budget_caveats(
    cells: _Cells, replace: npt.NDArray[np.bool_], k_all: int, unit: Unit
) -> list[str]:
    smallest, largest = cells.count_range
    if unit is Unit.REPEAT or smallest == largest:
        return []
    tail = (
        "cells with fewer trials are resampled with replacement past their count "
        "(--with-replacement)"
        if replace.any()
        else "no cell is resampled past its trials"
    )
    return [
        f"trial counts differ between cells ({smallest} to {largest}): every cell "
        f"is scored as a study of k = {k_all} trials; {tail}"
    ]


@attrs.frozen
class _Normalised:
    """Per workload the anchors in raw metric units (`zero` scores 0, `one` scores 1), how
    they were found, the linear map score = scale * oriented + shift, and whether the
    workload enters the aggregate; the caveats of the normalisation."""

    normalisation: Normalisation
    zero: FloatArray
    one: FloatArray
    span: FloatArray
    scale: FloatArray
    shift: FloatArray
    described: list[str]
    included: npt.NDArray[np.bool_]
    caveats: tuple[str, ...]

    @classmethod
    def of(
        cls,
        archive: xr.Dataset,
        cells: _Cells,
        expected: FloatArray,
        normalisation: Normalisation,
        reference: str | None,
        reference_scores: ReferenceScores | None,
    ) -> _Normalised:
        sign, workloads = cells.sign, cells.workloads
        caveats: list[str] = []
        if normalisation is Normalisation.MINMAX_COMPARED:
            if reference is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", category=RuntimeWarning)
                    ref = np.nanmax(np.where(np.isfinite(expected), expected, np.nan), axis=-1)
            else:
                ref = expected[:, cells.optimizers.index(reference)]
            zero, one = sign * ref, sign * cells.best
            described = [
                "min-max over the compared optimizers: 0 = "
                + (f"{reference}'s tuned value" if reference else "the worst tuned optimizer")
                + ", 1 = the best value seen"
            ] * len(workloads)
            caveats.append(
                "normalisation minmax-compared: scores are relative to the compared optimizers "
                "(0 = " + (reference or "the worst") + ", 1 = the best value seen) and change "
                "when an optimizer is added or removed"
            )
        else:
            directions = [str(x) for x in cells.sdata["direction"].values]
            zero, one, described, more = _anchors(
                archive, normalisation, reference_scores, directions
            )
            caveats.extend(more)
        with np.errstate(invalid="ignore", divide="ignore"):
            span = one - zero
            scale = sign / span  # score = (sign * oriented - zero) / span
            shift = -zero / span
        included = np.isfinite(span) & (span != 0) & np.isfinite(cells.best)
        if normalisation is Normalisation.MINMAX_COMPARED:
            included &= sign * span < 0  # the best value seen is better than the reference
        for wi in np.flatnonzero(~included & np.isfinite(span)):
            caveats.append(
                f"workload {workloads[wi]} left out of the aggregate: its score-0 and score-1 "
                "values coincide, or it has no usable result, so its scores cannot be normalised"
            )
        if not included.any():
            raise AnalysisError(
                f"no workload can be normalised under normalisation {normalisation} (targets "
                "need a target and an evaluation before training; or give reference scores, "
                "identity for values already in [0, 1], or minmax-compared)"
            )
        return cls(
            normalisation, zero, one, span, scale, shift, described, included, tuple(caveats)
        )


def _intervals(
    setup: _Setup,
    note: str | None,
    *,
    n_boot: int,
    rng: np.random.Generator,
    confidence: float,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Point values, interval bounds (NaN without intervals: `note` says why) of the
    statistics then the probabilities of improvement, and the improvement p-values
    (optimizer, other), unadjusted and Holm-adjusted over the unordered pairs."""
    statistic = aggregate_statistic(setup)
    n_o = setup.units.shape[1]
    split = n_o * len(AGGREGATE_STATISTICS)
    if note is not None:
        point = np.asarray(statistic(setup.units[None]))[0]
        nan = np.full(point.shape, np.nan)
        return point, nan, nan.copy(), np.full((n_o, n_o), np.nan), np.full((n_o, n_o), np.nan)
    n_eff = effective_units(setup.counts, setup.k)
    point, lo, hi, reps = stratified_bootstrap(
        setup.units,
        setup.counts,
        statistic,
        n_boot=n_boot,
        rng=rng,
        confidence=confidence,
        effective_n=n_eff,
    )
    # Wald test of "P(improvement) = 1/2" with the bootstrap standard error: unlike a
    # count of replicates beyond 1/2 its p-value is not floored at 1/(n_boot + 1), which
    # a Holm family of many pairs would need n_boot in the tens of thousands to beat.
    pi_reps = reps[:, split:].reshape(-1, n_o, n_o)
    se = pi_reps.std(axis=0, ddof=1) if pi_reps.shape[0] > 1 else np.zeros((n_o, n_o))
    pi_hat = point[split:].reshape(n_o, n_o)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(pi_hat - 0.5) / se
    # Student's t with the same small-sample correction as the intervals.
    t_stat = z * math.sqrt((n_eff - 1.0) / n_eff)
    import scipy.stats  # a second to import: only where it is used (fast --help)

    p = np.where(se > 0, 2.0 * scipy.stats.t.sf(t_stat, n_eff - 1.0), np.nan)
    upper = np.triu(np.ones((n_o, n_o), dtype=bool), k=1)
    p = np.where(upper, p, p.T)  # one test per unordered pair
    p_holm_flat = _holm(np.where(upper, p, np.nan).reshape(-1)).reshape(n_o, n_o)
    p_holm = np.where(upper, p_holm_flat, p_holm_flat.T)
    np.fill_diagonal(p, np.nan)
    np.fill_diagonal(p_holm, np.nan)
    return point, lo, hi, p, p_holm


def _aggregate_data(
    cells: _Cells,
    norm: _Normalised,
    intervals: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
    expected: FloatArray,
    no_result: FloatArray,
    confidence: float,
) -> xr.Dataset:
    """The result's dataset (see `AggregateScores`)."""
    point, lo, hi, p, p_holm = intervals
    n_o, n_s = len(cells.optimizers), len(AGGREGATE_STATISTICS)
    split = n_o * n_s
    pi_point = point[split:].reshape(n_o, n_o)
    clear = np.isfinite(p_holm) & (p_holm < 1.0 - confidence) & (pi_point > 0.5)

    def agg_da(x: FloatArray) -> xr.DataArray:
        return xr.DataArray(x[:split].reshape(n_o, n_s), dims=("optimizer", "statistic"))

    def imp_da(x: FloatArray) -> xr.DataArray:
        return xr.DataArray(x[split:].reshape(n_o, n_o), dims=("optimizer", "other"))

    raw_expected = cells.sign[:, None] * expected
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised_expected = (raw_expected - norm.zero[:, None]) / norm.span[:, None]
    directions = [str(x) for x in cells.sdata["direction"].values]
    return xr.Dataset(
        {
            "value": agg_da(point),
            "lo": agg_da(lo),
            "hi": agg_da(hi),
            "improvement": imp_da(point),
            "improvement_lo": imp_da(lo),
            "improvement_hi": imp_da(hi),
            "improvement_p": (("optimizer", "other"), p),
            "improvement_p_holm": (("optimizer", "other"), p_holm),
            "improvement_clear": (("optimizer", "other"), clear),
            "score": (
                ("workload", "optimizer"),
                np.where(norm.included[:, None], normalised_expected, np.nan),
            ),
            "tuned_value": (("workload", "optimizer"), raw_expected),
            "no_result": (("workload", "optimizer"), no_result),
            "units": (("workload", "optimizer"), cells.real_counts.astype(np.int64)),
            "zero_value": ("workload", norm.zero),
            "one_value": ("workload", norm.one),
            "anchors": ("workload", np.array(norm.described, dtype=str)),
            "included": ("workload", norm.included),
            "metric_name": ("workload", cells.sdata["metric_name"].values.astype(str)),
            "direction": ("workload", np.array(directions, dtype=str)),
        },
        coords={
            "workload": cells.workloads,
            "optimizer": cells.optimizers,
            "other": cells.optimizers,
            "statistic": list(AGGREGATE_STATISTICS),
        },
    )
