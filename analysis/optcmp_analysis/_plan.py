"""Trial planning: how many trials per optimizer a verdict needs, from a pilot study.

Dependency rule: numpy, scipy, xarray, attrs, optcmp_data and this package.

For every comparison the tests of this package make (each inclusion pair as stored, and
each optimizer's protocol effect when a second protocol is given), the planner treats the
pilot's trials of the two optimizers as their trial distributions, draws studies of n
trials per optimizer from them (with replacement), moves the second optimizer's values so
that the difference of the expected best-of-k results of the two distributions is the
effect asked about, and runs the test the analyses run (`pair_tests`, the kernel behind
`inclusion_consistency`) on the drawn studies at budget k. The share of drawn studies that
reach the verdict asked about is the power at n.

Two stages keep this affordable: the standard deviation of the estimated difference at
each n of a grid is measured on drawn studies (cheap: no test), which gives a normal
approximation of the power curve; then the real test runs on `n_sim` drawn studies at the
smallest n whose approximate power reaches the goal, and at its grid neighbours until the
measured power brackets the goal. The trials needed are the smallest tested n whose
measured power reaches the goal. docs/method.md ("Planning trials") states the assumptions.
"""

from __future__ import annotations

import enum
import math
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._enums import DEFAULT_PLAN_BUDGET, DEFAULT_POWER
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._estimator import dodge_weights, pair_tests
from optcmp_analysis._inclusion import archive_pairs
from optcmp_analysis._margins import resolve_margins
from optcmp_analysis._records import (
    Cell,
    Computed,
    Field,
    Interleaved,
    Label,
    Records,
    Result,
    Var,
    attr,
    root_seed,
)
from optcmp_analysis._selection import SelectionRule, orientation, trial_scores
from optcmp_data import Taxonomy

__all__ = [
    "DEFAULT_POWER",
    "Goal",
    "TrialPlan",
    "default_trial_grid",
    "plan_trials",
    "replacement_weights",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_N_SIM = 100
DEFAULT_MAX_TRIALS = 512


class Goal(enum.StrEnum):
    """The verdict whose probability is planned for."""

    VIOLATED = "violated"  # inclusion: the general optimizer is worse (true Δ = +effect)
    CONSISTENT = "consistent"  # inclusion: not worse by the margin (true Δ = margin - effect)
    DECIDED = "decided"  # inclusion at the pilot's effect: violated or consistent
    CLEAR = "clear"  # protocol effect: a two-sided test rejects "no difference"


@attrs.frozen
class _Cell:
    """One comparison's pilot trials: group a (special / first protocol) and b (general /
    second protocol), oriented so that smaller is better; usable trials have finite scores."""

    kind: str
    workload: str
    a: str
    b: str
    metric: str
    sign: float
    score_a: FloatArray
    value_a: FloatArray
    score_b: FloatArray
    value_b: FloatArray
    protocol: str = ""  # kind "pair": the protocol (archive) whose optimizers are compared


def replacement_weights(n: int, k: int) -> FloatArray:
    """Weights of n trials sorted best first in the expected best of k draws *with*
    replacement from them: ((n - j)/n)^k - ((n - j - 1)/n)^k for j = 0..n-1."""
    j = np.arange(n, dtype=np.float64)
    return np.asarray(((n - j) / n) ** k - ((n - j - 1) / n) ** k, dtype=np.float64)


def _population(score: FloatArray, value: FloatArray, k: int) -> tuple[float, float]:
    """(E_k given a result, P(no usable trial)) of best-of-k draws with replacement from the
    trials: unusable trials (score inf) are drawn but never selected; tied scores share
    their mean value."""
    order = np.argsort(score, kind="stable")
    s, v = score[order], np.where(np.isfinite(score), value, 0.0)[order]
    # Tied scores: each holds the mean of its tie group (the tie rule of the estimator).
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    group_mean = np.add.reduceat(v, start) / counts
    v = np.repeat(group_mean, counts)
    w = replacement_weights(len(s), k) * np.isfinite(s)
    n_unusable = int((~np.isfinite(score)).sum())
    return float(w @ v / w.sum()), (n_unusable / len(s)) ** k


def _estimates(score: FloatArray, value: FloatArray, k: int) -> FloatArray:
    """The E_k estimate (given a result) of every row of drawn trials (R, n)."""
    order = np.argsort(score, axis=1, kind="stable")
    u = np.isfinite(np.take_along_axis(score, order, axis=1))
    v = np.take_along_axis(np.where(np.isfinite(score), value, 0.0), order, axis=1)
    w = dodge_weights(score.shape[1], k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(v @ w / (u @ w), dtype=np.float64)


def default_trial_grid(budget: int, max_trials: int = DEFAULT_MAX_TRIALS) -> tuple[int, ...]:
    """Trials per optimizer the planner considers: 1.5k, 2k, 3k, 4k, 6k, ... up to
    `max_trials` (budget k itself is left out: at k = n no valid variance exists)."""
    out: list[int] = []
    base = budget
    while True:
        for factor in (1.5, 2.0):
            n = math.ceil(base * factor)
            if n > max_trials:
                return tuple(out)
            if n > budget and (not out or n > out[-1]):
                out.append(n)
        base *= 2


# The keys naming a row of a TrialPlan (the comparison and the goal), first in its records.
_ROW_KEYS = tuple(Var(k, cast=str) for k in ("kind", "protocol", "workload", "a", "b", "goal"))


@attrs.frozen
class TrialPlan(Result):
    """Planned trials per optimizer, one row per (comparison, goal).

    `data` dims (row, trials): `approx_power` (normal approximation from the measured
    standard deviation `sd` of the estimated difference), `test_power` (the real test on
    `n_sim` drawn studies; NaN where not run). Per row: kind ("inclusion" or "protocol"),
    workload, a, b (special/general, or the optimizer under the first/second protocol,
    label in `a`), metric, goal, margin, pilot_a, pilot_b (pilot trials), pilot_difference
    (E_k(b) - E_k(a) of the pilot distributions, oriented: positive means b is worse),
    true_difference (after the shift that sets the effect asked about), level (the
    per-test level alpha / family), needed (the smallest tested n whose measured power
    reaches `power`; -1 when none up to the grid's end).
    """

    data: xr.Dataset
    budget: int = attrs.field(metadata=attr())
    power: float = attrs.field(metadata=attr())
    alpha: float = attrs.field(metadata=attr())
    effect: float | None = attrs.field(metadata=attr(none="margin"))
    pilot_effect: bool = attrs.field(metadata=attr())
    n_sim: int = attrs.field(metadata=attr())
    n_boot: int = attrs.field(metadata=attr())
    rule: SelectionRule = attrs.field(metadata=attr())
    protocols: tuple[str, str] | None
    caveats: tuple[str, ...] = attrs.field(metadata=attr())

    def _power_at_needed(self, cell: Cell) -> float:
        """The tested power at the needed trial count (NaN where none is enough)."""
        needed = int(cell["needed"])
        if needed <= 0:
            return math.nan
        grid = [int(n) for n in self.data["trials"].values]
        return float(cell["test_power"][grid.index(needed)])

    # Records "plan" (one per comparison and goal: kind, protocol, workload, a, b, goal,
    # metric, k, margin, margin_rule, effect, pilot_a, pilot_b, pilot_difference,
    # true_difference, level, power (the goal), needed (None: more than the largest trial
    # count considered), power_at_needed, n_sim) and "curve" (one per row and trial count:
    # kind ... goal, trials, approx_power, test_power).
    JSON = (
        Interleaved(
            "row",
            (
                Records(
                    record="plan",
                    dims=("row",),
                    keys=(
                        *_ROW_KEYS,
                        Var("metric", cast=str),
                        Field("k", "budget"),
                        Var("margin", cast=float),
                        Var("margin_rule", cast=str),
                        Var("effect", cast=float),
                        Var("pilot_a", cast=int),
                        Var("pilot_b", cast=int),
                        Var("pilot_difference", cast=float),
                        Var("true_difference", cast=float),
                        Var("level", cast=float),
                        Field("power"),
                        Var("needed", cast=int, missing=-1),
                        Computed("power_at_needed", "_power_at_needed"),
                        Field("n_sim"),
                    ),
                ),
                Records(
                    record="curve",
                    dims=("row", "trials"),
                    keys=(
                        *_ROW_KEYS,
                        Label("trials"),
                        Var("approx_power", cast=float),
                        Var("test_power", cast=float),
                    ),
                ),
            ),
        ),
    )


def _cells_of(scores: xr.Dataset, workload: str, optimizer: str) -> tuple[FloatArray, FloatArray]:
    cell = scores.sel(workload=workload, optimizer=optimizer)
    present = cell["present"].values.astype(bool)
    usable = cell["usable"].values.astype(bool) & np.isfinite(cell["score"].values)
    orient = -1.0 if str(scores["direction"].sel(workload=workload).item()) == "max" else 1.0
    score = np.where(usable, cell["score"].values, np.inf)[present]
    value = (orient * cell["test_value"].values)[present]
    return score.astype(np.float64), value.astype(np.float64)


def _cell(
    kind: str,
    scores: xr.Dataset,
    orient: xr.DataArray,
    workload: str,
    a: tuple[str, tuple[FloatArray, FloatArray]],
    b: tuple[str, tuple[FloatArray, FloatArray]],
    protocol: str = "",
) -> _Cell | None:
    """One comparison's cell from the (name, (scores, values)) of its two groups; None when
    either group has no usable trial. `scores` gives the workload's metric name and
    `orient` its direction."""
    (name_a, (sa, va)), (name_b, (sb, vb)) = a, b
    if not (np.isfinite(sa).any() and np.isfinite(sb).any()):
        return None
    return _Cell(
        kind=kind,
        workload=workload,
        a=name_a,
        b=name_b,
        metric=str(scores["metric_name"].sel(workload=workload).item()),
        sign=float(orient.sel(workload=workload)),
        score_a=sa,
        value_a=va,
        score_b=sb,
        value_b=vb,
        protocol=protocol,
    )


def _inclusion_cells(
    archive: xr.Dataset, rule: SelectionRule, taxonomy: Taxonomy | None
) -> tuple[list[_Cell], list[str]]:
    _, pairs, reasons, caveats = archive_pairs(archive, taxonomy)
    scores = trial_scores(archive, rule=rule).data
    orient = orientation(scores["direction"])
    cells: list[_Cell] = []
    for pi, (special, general, _, _) in enumerate(pairs):
        for wi, w in enumerate(str(x) for x in scores["workload"].values):
            if reasons[pi][wi]:
                continue
            cell = _cell(
                "inclusion",
                scores,
                orient,
                w,
                (special, _cells_of(scores, w, special)),
                (general, _cells_of(scores, w, general)),
            )
            if cell is not None:
                cells.append(cell)
    return cells, list(caveats)


def _pair_cells(archive: xr.Dataset, rule: SelectionRule, protocol: str) -> list[_Cell]:
    """Every unordered pair of optimizers (names sorted) on every workload of one archive."""
    scores = trial_scores(archive, rule=rule).data
    orient = orientation(scores["direction"])
    names = sorted(str(o) for o in scores["optimizer"].values)
    cells = []
    for w in (str(x) for x in scores["workload"].values):
        trials = {o: _cells_of(scores, w, o) for o in names}
        usable = [o for o in names if np.isfinite(trials[o][0]).any()]
        for i, a in enumerate(usable):
            for b in usable[i + 1 :]:
                cell = _cell("pair", scores, orient, w, (a, trials[a]), (b, trials[b]), protocol)
                if cell is not None:
                    cells.append(cell)
    return cells


def _protocol_cells(first: xr.Dataset, second: xr.Dataset, rule: SelectionRule) -> list[_Cell]:
    """Optimizers of the same name in both archives, on workloads of both."""
    s1 = trial_scores(first, rule=rule).data
    s2 = trial_scores(second, rule=rule).data
    orient = orientation(s1["direction"])
    workloads = [str(w) for w in s1["workload"].values if w in set(s2["workload"].values)]
    optimizers = [str(o) for o in s1["optimizer"].values if o in set(s2["optimizer"].values)]
    cells = []
    for w in workloads:
        for o in optimizers:
            cell = _cell(
                "protocol", s1, orient, w, (o, _cells_of(s1, w, o)), (o, _cells_of(s2, w, o))
            )
            if cell is not None:
                cells.append(cell)
    return cells


class _Row:
    """One comparison and goal with its shifted distributions."""

    def __init__(
        self,
        cell: _Cell,
        goal: Goal,
        k: int,
        margin: float,
        effect: float | None,
        kernel_alpha: float,
    ) -> None:
        self.cell, self.goal, self.k, self.margin = cell, goal, k, margin
        # The alpha the analyses give the kernel (inclusion: alpha; protocol effects and
        # pairs: half of it per side): it sets which studies are tested (min_test_trials)
        # and when resampling stops early; the goal is reached at the row's own level.
        self.kernel_alpha = kernel_alpha
        ea, _ = _population(cell.score_a, cell.value_a, k)
        eb, _ = _population(cell.score_b, cell.value_b, k)
        self.pilot_difference = eb - ea
        if effect is None:  # the pilot's own effect
            self.true_difference = self.pilot_difference
        elif goal is Goal.VIOLATED:
            self.true_difference = effect
        elif goal is Goal.CONSISTENT:
            self.true_difference = margin - effect
        else:  # CLEAR: an effect of that size in the pilot's direction
            self.true_difference = effect if self.pilot_difference >= 0 else -effect
        self.effect = abs(self.pilot_difference) if effect is None else effect
        # Usable trials of b move, and E_k (given a result) with them.
        self.shift = self.true_difference - self.pilot_difference

    def draw(
        self, n: int, r: int, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """`r` studies of n trials per optimizer: (score_a, value_a, score_b, value_b)."""
        c = self.cell
        ia = rng.integers(0, len(c.score_a), size=(r, n))
        ib = rng.integers(0, len(c.score_b), size=(r, n))
        vb = c.value_b[ib] + np.where(np.isfinite(c.score_b[ib]), self.shift, 0.0)
        return c.score_a[ia], c.value_a[ia], c.score_b[ib], vb


def _approx_power(goal: Goal, diff: float, margin: float, sd: float, level: float) -> float:
    if not (np.isfinite(sd) and sd > 0):
        return math.nan
    from scipy.stats import norm  # 1 s to import: only this function needs it

    z1, z2 = norm.ppf(1 - level), norm.ppf(1 - level / 2)
    violated = float(norm.cdf(diff / sd - z1))
    consistent = float(norm.cdf((margin - diff) / sd - z1))
    if goal is Goal.VIOLATED:
        return violated
    if goal is Goal.CONSISTENT:
        return consistent
    if goal is Goal.DECIDED:
        return min(1.0, violated + consistent)
    return float(norm.cdf(abs(diff) / sd - z2) + norm.cdf(-abs(diff) / sd - z2))


def _test_power(
    row: _Row, n: int, n_sim: int, level: float, n_boot: int, rng: np.random.Generator
) -> float:
    """The share of `n_sim` drawn studies of n trials per optimizer in which the test of
    the analyses reaches the row's goal at `level`."""
    sa, va, sb, vb = row.draw(n, n_sim, rng)
    usable_a, usable_b = np.isfinite(sa), np.isfinite(sb)
    present = np.ones_like(usable_a)
    protocol = row.goal is Goal.CLEAR
    seeds = rng.integers(0, 2**31, size=(n_sim, 1))
    tests = pair_tests(
        sb,
        vb,
        usable_b,
        present,
        sa,
        va,
        usable_a,
        present,
        budget=row.k,
        n_boot=n_boot,
        alpha=row.kernel_alpha,
        # The protocol effect is two-sided: the lower tail at 0 is the other side.
        margin=0.0 if protocol else row.margin,
        seeds=seeds,
        interval=np.zeros(n_sim, dtype=bool),
    )
    high, low = tests.p_value, tests.p_noninferior
    if row.goal is Goal.VIOLATED:
        hit = high < level
    elif row.goal is Goal.CONSISTENT:
        hit = low < level
    elif row.goal is Goal.DECIDED:
        hit = (high < level) | (low < level)
    else:
        hit = np.minimum(1.0, 2 * np.minimum(high, low)) < level
    return float(np.mean(hit))


def _search(
    row: _Row,
    grid: Sequence[int],
    approx: FloatArray,
    tested: FloatArray,
    *,
    power: float,
    level: float,
    n_sim: int,
    n_boot: int,
    stream: Callable[[int], np.random.Generator],
) -> int:
    """The smallest trial count of `grid` whose tested power reaches `power` (-1: none).

    Starts at the first point whose approximate power reaches the goal and walks down
    while the point below also reaches it, or up until one does (at most `_WALK` steps
    each way, then the grid's end and bisection below it); fills `tested` in place.
    Where even the grid's end is clearly short of the goal by the approximation (by more
    than 0.1), no test is run."""
    reach = np.flatnonzero(np.nan_to_num(approx) >= power)
    if not reach.size and not np.nan_to_num(approx[-1]) >= power - 0.1:
        return -1
    i = int(reach[0]) if reach.size else len(grid) - 1

    def measured(j: int) -> float:
        tested[j] = _test_power(row, grid[j], n_sim, level, n_boot, stream(grid[j]))
        return float(tested[j])

    if measured(i) >= power:
        for _ in range(_WALK):
            if i == 0 or measured(i - 1) < power:
                break
            i -= 1
        return int(grid[i])
    for _ in range(_WALK):
        if i + 1 >= len(grid):
            break
        i += 1
        if measured(i) >= power:
            return int(grid[i])
    # The approximation can be far too hopeful (a heavy-tailed estimate, e.g. one good
    # trial among many poor ones): the test at the grid's end says whether any count
    # reaches the goal, and bisection finds the first that does.
    lo, hi = i, len(grid) - 1
    if hi <= lo or measured(hi) < power:
        return -1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if measured(mid) >= power else (mid, hi)
    return int(grid[hi])


# Grid steps the search for the needed trial count walks from the approximation's guess.
_WALK = 3


def _stream(root: int, *labels: Any) -> np.random.Generator:
    return np.random.default_rng(
        [root, *(zlib.crc32(str(label).encode("utf-8")) for label in labels)]
    )


def plan_trials(
    archive: xr.Dataset,
    /,
    *,
    compare: xr.Dataset | None = None,
    protocols: tuple[str, str] = ("first", "second"),
    budget: int = DEFAULT_PLAN_BUDGET,
    power: float = DEFAULT_POWER,
    effect: float | None = None,
    pilot_effect: bool = False,
    alpha: float = 0.05,
    margin: float | Mapping[str, float] | None = None,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    taxonomy: Taxonomy | None = None,
    trials: Sequence[int] | None = None,
    n_sim: int = DEFAULT_N_SIM,
    n_boot: int | None = None,
    n_sd: int = 400,
    kinds: Sequence[str] = ("inclusion", "protocol", "pair"),
    test_all: bool = False,
    only: Collection[tuple[str, str, str, str, str]] | None = None,
    rng: np.random.Generator,
) -> TrialPlan:
    """Trials per optimizer that each comparison needs for `power` at budget k = `budget`.

    Comparisons: every inclusion pair of `taxonomy` (default the archive's own) that the
    stored spaces contain, per workload; with `compare` (a second archive, the protocol
    `protocols[1]`), every optimizer of the same name in both, per workload; every pair of
    optimizers per workload of each archive (kind "pair": is one clearly better at budget
    k, two-sided, as the protocol section's pairs; `kinds` chooses among the three).

    Goals: with `pilot_effect`, the pilot's own difference (inclusion: "decided", violated
    or consistent; protocol effects and pairs: "clear"); otherwise an effect of size
    `effect` (default each workload's margin: `margin` as `inclusion_consistency` takes
    it, None the per-workload default rule): inclusion "violated" at true Δ = +effect and
    "consistent" at Δ = margin - effect; protocol effects and pairs "clear" at |Δ| =
    effect. Each test runs at level alpha / m, m the number of comparisons of its family
    (inclusion tests; protocol effects; the pairs of each protocol): Bonferroni, at most
    the power under Holm's correction over the same family.

    `trials`: the grid of trial counts (default `default_trial_grid`); `n_sim` drawn
    studies per tested point, `n_sd` per grid point for the standard deviation; `n_boot`
    bootstrap-t resamples per test (default enough to resolve the level: max(200,
    5 m / alpha)). `test_all`: run the test at every trial count of the grid, not only
    around the goal. `only`: plan just these comparisons, each (kind, protocol, workload,
    a, b) as in the records (the others still count towards m).
    """
    _check_options(power, alpha, budget, effect, n_sim, n_sd)
    rule = SelectionRule(rule)
    grid = _trial_grid(trials, budget)
    scores = trial_scores(archive, rule=rule).data
    # The margins the analyses use: given, or the per-workload default rule.
    margins, margin_rules = resolve_margins(
        scores["test_value"], scores["usable"], margin, sign=orientation(scores["direction"])
    )
    cells, caveats = _plan_cells(archive, compare, rule, taxonomy, kinds, protocols)
    family = _family_sizes(cells)
    if n_boot is None:
        n_boot = max(200, math.ceil(5 / (alpha / max(family.values()))))
    caveats += _small_pilot_caveats(cells, budget)
    root = root_seed(rng)
    if only is not None:
        wanted = set(only)
        cells = [c for c in cells if (c.kind, c.protocol, c.workload, c.a, c.b) in wanted]
    rows = _plan_rows(
        cells, margins, budget=budget, effect=effect, pilot_effect=pilot_effect, alpha=alpha
    )
    levels = np.array([alpha / family[(r.cell.kind, r.cell.protocol)] for r in rows])
    search = _Search(budget, power, n_sim, n_sd, n_boot, test_all)
    powers = _powers(rows, grid, levels, root=root, search=search)
    return TrialPlan(
        data=_plan_data(rows, grid, levels, powers, margin_rules),
        budget=budget,
        power=power,
        alpha=alpha,
        effect=effect,
        pilot_effect=pilot_effect,
        n_sim=n_sim,
        n_boot=n_boot,
        rule=rule,
        protocols=protocols if compare is not None else None,
        caveats=tuple(dict.fromkeys(caveats)),
    )


def _trial_grid(trials: Sequence[int] | None, budget: int) -> tuple[int, ...]:
    """The trial counts considered: `trials` sorted and deduplicated, else the default
    grid; AnalysisError unless each exceeds the budget."""
    grid = tuple(sorted(set(int(n) for n in trials))) if trials else default_trial_grid(budget)
    if not grid or grid[0] <= budget:
        raise AnalysisError(
            f"trials: every trial count must exceed the budget {budget} (got {list(grid)})"
        )
    return grid


def _family_sizes(cells: Sequence[_Cell]) -> dict[tuple[str, str], int]:
    """The number of comparisons in each family of the analyses, by (kind, protocol):
    inclusion tests, protocol effects, and the optimizer pairs of each protocol (Holm runs
    within each)."""
    family: dict[tuple[str, str], int] = {}
    for c in cells:
        family[(c.kind, c.protocol)] = family.get((c.kind, c.protocol), 0) + 1
    return family


def _small_pilot_caveats(cells: Sequence[_Cell], budget: int) -> list[str]:
    """A caveat when some comparison's pilot has fewer than `budget` trials per optimizer."""
    small = [c for c in cells if min(len(c.score_a), len(c.score_b)) < budget]
    if not small:
        return []
    return [
        f"{len(small)} comparison(s) have a pilot of fewer than k = {budget} trials per "
        "optimizer: their trial distributions are poorly known, so treat their plans as "
        "rough"
    ]


def _check_options(
    power: float, alpha: float, budget: int, effect: float | None, n_sim: int, n_sd: int
) -> None:
    """AnalysisError naming the first bad option."""
    if not 0 < power < 1:
        raise AnalysisError(f"power {power} must lie strictly between 0 and 1")
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha {alpha} must lie strictly between 0 and 1")
    if budget < 1:
        raise AnalysisError(f"budget {budget} must be at least 1")
    if effect is not None and not (np.isfinite(effect) and effect > 0):
        raise AnalysisError(f"effect {effect} must be a positive number")
    if n_sim < 10 or n_sd < 10:
        raise AnalysisError(f"n_sim {n_sim} and n_sd {n_sd} must be at least 10")


def _plan_cells(
    archive: xr.Dataset,
    compare: xr.Dataset | None,
    rule: SelectionRule,
    taxonomy: Taxonomy | None,
    kinds: Sequence[str],
    protocols: tuple[str, str],
) -> tuple[list[_Cell], list[str]]:
    """The comparisons of the kinds asked for, and the caveats of finding them."""
    cells: list[_Cell] = []
    caveats: list[str] = []
    if "inclusion" in kinds:
        found, notes = _inclusion_cells(archive, rule, taxonomy)
        cells += found
        caveats += notes
    if "protocol" in kinds and compare is not None:
        cells += _protocol_cells(archive, compare, rule)
    if "pair" in kinds:
        cells += _pair_cells(archive, rule, protocols[0] if compare is not None else "")
        if compare is not None:
            cells += _pair_cells(compare, rule, protocols[1])
    if not cells:
        raise AnalysisError(
            "nothing to plan: no inclusion pair contained in the stored spaces, no second "
            "protocol (--compare) and no two optimizers with usable trials on one workload"
        )
    return cells, caveats


def _plan_rows(
    cells: Sequence[_Cell],
    margins: Mapping[str, float],
    *,
    budget: int,
    effect: float | None,
    pilot_effect: bool,
    alpha: float,
) -> list[_Row]:
    """One row per (comparison, goal)."""
    rows: list[_Row] = []
    for cell in cells:
        if cell.kind in ("protocol", "pair"):
            goals = [Goal.CLEAR]
        elif pilot_effect:
            goals = [Goal.DECIDED]
        else:
            goals = [Goal.VIOLATED, Goal.CONSISTENT]
        for goal in goals:
            m = margins[cell.workload]
            size = None if pilot_effect else (m if effect is None else effect)
            kernel_alpha = alpha / 2 if goal is Goal.CLEAR else alpha
            rows.append(_Row(cell, goal, budget, m, size, kernel_alpha))
    return rows


@attrs.frozen
class _Search:
    """How each row's power is measured: at budget k = `budget`, the goal `power`, `n_sd`
    drawn studies per grid point for the approximation's standard deviation, `n_sim` per
    tested point and `n_boot` resamples per test; `test_all`: test every grid point."""

    budget: int
    power: float
    n_sim: int
    n_sd: int
    n_boot: int
    test_all: bool


def _powers(
    rows: Sequence[_Row], grid: tuple[int, ...], levels: np.ndarray, *, root: int, search: _Search
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (row, trial count): the normal-approximation power, the standard deviation of
    the estimated difference and the simulated test's power (NaN where not run); per row
    the smallest trial count reaching `power` (-1: none)."""
    n_rows, n_grid = len(rows), len(grid)
    approx = np.full((n_rows, n_grid), np.nan)
    sd = np.full((n_rows, n_grid), np.nan)
    tested = np.full((n_rows, n_grid), np.nan)
    needed = np.full(n_rows, -1, dtype=np.int64)
    for ri, row in enumerate(rows):
        labels = (
            row.cell.kind,
            row.cell.protocol,
            row.cell.workload,
            row.cell.a,
            row.cell.b,
            row.goal,
        )
        _approximate(row, grid, levels[ri], root, labels, search, sd=sd[ri], approx=approx[ri])
        needed[ri] = _tested(
            row, grid, float(levels[ri]), root, labels, search, approx=approx[ri], tested=tested[ri]
        )
    return approx, sd, tested, needed


def _approximate(
    row: _Row,
    grid: tuple[int, ...],
    level: float,
    root: int,
    labels: tuple[Any, ...],
    search: _Search,
    *,
    sd: np.ndarray,
    approx: np.ndarray,
) -> None:
    """Fill `sd` and `approx` (one row's, per trial count): the standard deviation of the
    estimated difference over drawn studies, and the normal approximation's power."""
    for gi, n in enumerate(grid):
        g = _stream(root, *labels, "sd", n)
        sa, va, sb, vb = row.draw(n, search.n_sd, g)
        diffs = _estimates(sb, vb, search.budget) - _estimates(sa, va, search.budget)
        diffs = diffs[np.isfinite(diffs)]  # drawn studies with a result in both groups
        sd[gi] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
        approx[gi] = _approx_power(row.goal, row.true_difference, row.margin, sd[gi], level)


def _tested(
    row: _Row,
    grid: tuple[int, ...],
    level: float,
    root: int,
    labels: tuple[Any, ...],
    search: _Search,
    *,
    approx: np.ndarray,
    tested: np.ndarray,
) -> int:
    """Run the test on drawn studies (at every trial count with `test_all`, else where
    `_search` needs it), filling one row's `tested`; the smallest trial count whose
    tested power reaches the goal (-1: none)."""
    if search.test_all:
        for gi, n in enumerate(grid):
            tested[gi] = _test_power(
                row, n, search.n_sim, level, search.n_boot, _stream(root, *labels, "test", n)
            )
        reached = np.flatnonzero(tested >= search.power)
        return int(grid[reached[0]]) if reached.size else -1
    return _search(
        row,
        grid,
        approx,
        tested,
        power=search.power,
        level=level,
        n_sim=search.n_sim,
        n_boot=search.n_boot,
        stream=lambda n: _stream(root, *labels, "test", n),
    )


def _plan_data(
    rows: Sequence[_Row],
    grid: tuple[int, ...],
    levels: np.ndarray,
    powers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    margin_rules: Mapping[str, str],
) -> xr.Dataset:
    """The plan's dataset (see `TrialPlan`)."""
    approx, sd, tested, needed = powers
    return xr.Dataset(
        {
            "approx_power": (("row", "trials"), approx),
            "test_power": (("row", "trials"), tested),
            "sd": (("row", "trials"), sd),
            "needed": ("row", needed),
            "kind": ("row", np.array([r.cell.kind for r in rows], dtype=str)),
            "protocol": ("row", np.array([r.cell.protocol for r in rows], dtype=str)),
            "workload": ("row", np.array([r.cell.workload for r in rows], dtype=str)),
            "a": ("row", np.array([r.cell.a for r in rows], dtype=str)),
            "b": ("row", np.array([r.cell.b for r in rows], dtype=str)),
            "metric": ("row", np.array([r.cell.metric for r in rows], dtype=str)),
            "goal": ("row", np.array([str(r.goal) for r in rows], dtype=str)),
            "margin": ("row", np.array([r.margin for r in rows])),
            "margin_rule": (
                "row",
                np.array([margin_rules[r.cell.workload] for r in rows], dtype=str),
            ),
            "effect": ("row", np.array([r.effect for r in rows])),
            "pilot_a": ("row", np.array([len(r.cell.score_a) for r in rows], dtype=np.int64)),
            "pilot_b": ("row", np.array([len(r.cell.score_b) for r in rows], dtype=np.int64)),
            "pilot_difference": ("row", np.array([r.pilot_difference for r in rows])),
            "true_difference": ("row", np.array([r.true_difference for r in rows])),
            "level": ("row", levels),
        },
        coords={"trials": np.array(grid, dtype=np.int64)},
    )
