"""Protocol sensitivity: the same optimizers under two tuning protocols, and where their
rankings flip (the paper's Section 4.3: learning-rate-only tuning versus the full spaces).

Dependency rule: numpy, scipy, xarray, attrs and optcmp_data (through this package's
selection).

The two protocols are either two archives, or two groups of (workload, optimizer) cells
of one archive told apart by their search-space name (`space_name`, e.g. "lr-only" and
"choi2019"). Within one archive the same optimizer appears under two names (one per
protocol), so cells are matched by optimizer family; between archives by optimizer name
(or by family, on request). Each protocol's optimizers are ranked per workload by the test
metric of their selected trial, on the optimizers present (with a usable trial) in both.

Uncertainty and tests: the tuned result shown is the test value of the best of a cell's N
trials (ties: the mean of the tied trials), a description. What is tested is the expected
best-of-k test value E_k at a stated budget k (default `BUDGET_RULE`, k = N/4; `budget`),
with the machinery of the inclusion test (_estimator: the unbiased U-statistic, its
jackknife standard error, a studentized bootstrap that keeps its level whatever the two
cells' trial distributions look like, which two search spaces make different by design).
Per optimizer, the protocol effect E_k(second) - E_k(first) gets a two-sided p-value (twice
the smaller one-sided bootstrap-t p-value) and an interval at `level` (`effect_lo/hi`);
per pair of optimizers within a protocol likewise (`pair_lo/hi`, oriented so that positive
means the optimizer is better). p-values are Holm-adjusted over the protocol effects of the
comparison, and separately over the optimizer pairs of each protocol. Clear = adjusted p
below 1 - `level` (the interval then excludes 0) and the difference exceeds `step`, the
smallest gap between distinct test values observed on the workload. A ranking flip of the
tuned values is `supported` only when both orders are clear. At k = N no variance
estimate exists and nothing is tested. tests/analysis/test_protocol_intervals.py checks
the false-clear rate by simulation, with protocols that differ in spread.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._enums import Match
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._estimator import BUDGET_RULE, DEFAULT_TEST_N_BOOT, pair_tests
from optcmp_analysis._kernels import competition_ranks, kendall_tau
from optcmp_analysis._records import (
    Cell,
    Columns,
    Computed,
    Const,
    Field,
    Labels,
    Records,
    Result,
    Var,
    attr,
    restrict,
    root_seed,
)
from optcmp_analysis._selection import RepeatMode, SelectionRule, select_best, trial_scores
from optcmp_data import Direction, Scale

__all__ = [
    "Match",
    "ProtocolComparison",
    "narrower_first",
    "protocol_sensitivity",
    "run_protocol",
]

FloatArray = npt.NDArray[np.float64]


# The two sides of a comparison, in the order of the `protocol` dim (JSON key suffixes),
# and their positions along it; a pair's other optimizer is read at the `other` dim.
_SIDES = ("first", "second")
_FIRST, _SECOND = {"protocol": 0}, {"protocol": 1}
_OTHER = {"optimizer": "other"}


# Every pair of optimizers under each protocol (`ProtocolComparison.pairs`).
_PAIRS = Records(
    record="pair",
    dims=("protocol", "workload", "optimizer", "other"),
    keep="_is_pair",
    keys=(
        Labels(),
        Var("metric", "metric_name", cast=str),
        Const("split", "test"),
        Var("value", "test_value", cast=float),
        Var("other_value", "test_value", cast=float, rename={"optimizer": "other"}),
        Var("k", cast=int),
        Field("budget_rule", "budget_text"),
        Var("gap", "pair_gap", cast=float),
        Var("lo", "pair_lo", cast=float),
        Var("hi", "pair_hi", cast=float),
        Var("p_value", "pair_p", cast=float),
        Var("p_adjusted", "pair_p_adjusted", cast=float),
        Computed("clear", "_pair_clear"),
    ),
)


# Pairs ranked one way under the first protocol and the other way under the second
# (`ProtocolComparison.flips`).
_FLIPS = Records(
    record="flip",
    dims=("workload", "optimizer", "other"),
    keep="_is_flip",
    keys=(
        Labels(),
        Computed("first", lambda r, c: r.protocols[0]),
        Computed("second", lambda r, c: r.protocols[1]),
        Var("metric", "metric_name", cast=str),
        Const("split", "test"),
        Var("value_first", "test_value", cast=float, at=_FIRST),
        Var("other_value_first", "test_value", cast=float, at=_FIRST, rename=_OTHER),
        Var("value_second", "test_value", cast=float, at=_SECOND),
        Var("other_value_second", "test_value", cast=float, at=_SECOND, rename=_OTHER),
        Computed("gap_first", lambda r, c: r._gap(c, _FIRST)),
        Computed("gap_second", lambda r, c: r._gap(c, _SECOND)),
        Var("gap_first_lo", "pair_lo", cast=float, at=_FIRST),
        Var("gap_first_hi", "pair_hi", cast=float, at=_FIRST),
        Var("gap_second_lo", "pair_hi", cast=lambda x: -float(x), at=_SECOND),
        Var("gap_second_hi", "pair_lo", cast=lambda x: -float(x), at=_SECOND),
        Computed(
            "rank_change",
            lambda r, c: float(c.value("rank", at=_SECOND) - c.value("rank", at=_FIRST)),
        ),
        Var("p_first", "pair_p_adjusted", cast=float, at=_FIRST),
        Var("p_second", "pair_p_adjusted", cast=float, at=_SECOND),
        Computed("supported", "_supported"),
    ),
)


@attrs.frozen
class ProtocolComparison(Result):
    """Tuned test metrics and ranks of matched optimizers under two protocols.

    `data` dims (protocol, workload, optimizer): `optimizer` holds the matched key (a name
    or a family); variables `label` (the optimizer's label in that protocol's archive),
    `trial`, `test_value`, `selection_value`, `rank` (1 = best, ties share the best rank,
    NaN where the key is not in both protocols); per workload `kendall_tau` between the
    two rankings, `metric_name`, `direction`, `step` (the smallest gap between distinct
    test values); `k` (workload, optimizer): the budget tested; `expected` (protocol,
    workload, optimizer): E_k of the cell; `effect`, `effect_lo`, `effect_hi`, `effect_p`,
    `effect_p_adjusted` (workload, optimizer): E_k(second) - E_k(first), its interval at
    `level` and two-sided bootstrap-t p-value; `pair_gap`, `pair_lo`, `pair_hi`, `pair_p`,
    `pair_p_adjusted` (protocol, workload, optimizer, other): E_k(other) - E_k(optimizer),
    oriented (times -1 for direction "max") so that positive means optimizer is better.
    Coordinate `protocol` holds the two labels; attribute-like fields `n_boot`, `level`,
    `budget`.
    """

    data: xr.Dataset
    match: Match = attrs.field(metadata=attr())
    rule: SelectionRule = attrs.field(metadata=attr())
    n_boot: int = attrs.field(default=0, metadata=attr())
    level: float = attrs.field(default=0.95, metadata=attr())
    budget: int | None = None

    @property
    def budget_text(self) -> str:
        """The budget tested, in words ("k = 4" or the default rule)."""
        return BUDGET_RULE if self.budget is None else f"k = {self.budget}"

    @property
    def protocols(self) -> tuple[str, str]:
        a, b = (str(p) for p in self.data["protocol"].values)
        return a, b

    def flips(self) -> list[dict[str, Any]]:
        """Pairs ranked one way under the first protocol and strictly the other way under
        the second, with the test-metric gap under each (positive: by how much the better
        one of that protocol was better), the intervals of both gaps, and `supported`: both
        orders clear (interval excludes 0 and the gap exceeds the workload's `step`).
        JSON-ready (NaN as None)."""
        return self.json_records(_FLIPS)

    def _is_flip(self, cell: Cell) -> bool:
        rank = [cell.value("rank", at=side) for side in (_FIRST, _SECOND)]
        other = [cell.value("rank", at=side, rename=_OTHER) for side in (_FIRST, _SECOND)]
        return bool(rank[0] < other[0] and rank[1] > other[1])

    def _gap(self, cell: Cell, side: Mapping[str, int]) -> float:
        """The test-value gap under one protocol, oriented: positive when the optimizer
        that protocol ranks better is better (`optimizer` under the first, `other` under
        the second)."""
        sign = 1.0 if str(cell["direction"]) == Direction.MIN else -1.0
        mine = float(cell.value("test_value", at=side))
        theirs = float(cell.value("test_value", at=side, rename=_OTHER))
        return sign * (theirs - mine) if side == _FIRST else sign * (mine - theirs)

    def _supported(self, cell: Cell) -> bool:
        step, alpha = float(cell["step"]), 1 - self.level
        lo = float(cell.value("pair_lo", at=_FIRST))
        hi = float(cell.value("pair_hi", at=_SECOND))
        p = [float(cell.value("pair_p_adjusted", at=side)) for side in (_FIRST, _SECOND)]
        clear_first = _clear(lo, np.inf, self._gap(cell, _FIRST), step, p[0], alpha)
        clear_second = _clear(-np.inf, hi, self._gap(cell, _SECOND), step, p[1], alpha)
        return clear_first and bool(lo > 0) and clear_second and bool(hi < 0)

    def pairs(self) -> list[dict[str, Any]]:
        """Every pair of optimizers under each protocol, oriented so that `optimizer` is
        the better one at budget k: gap = E_k(other) - E_k(optimizer) oriented (> 0), its
        interval `lo`, `hi`, the bootstrap-t p-value and its Holm adjustment over the
        protocol's pairs, and `clear` (see the module docstring); value, other_value: the
        tuned (best of N) test values. JSON-ready (NaN as None)."""
        return self.json_records(_PAIRS)

    def _is_pair(self, cell: Cell) -> bool:
        """Each unordered pair once, its better optimizer first (ties: in label order)."""
        gap = float(cell["pair_gap"])
        i, j = cell.at["optimizer"], cell.at["other"]
        return not (j == i or not np.isfinite(gap) or gap < 0 or (gap == 0 and j < i))

    def _pair_clear(self, cell: Cell) -> bool:
        lo, hi = float(cell["pair_lo"]), float(cell["pair_hi"])
        gap, p = float(cell["pair_gap"]), float(cell["pair_p_adjusted"])
        return _clear(lo, hi, gap, float(cell["step"]), p, 1 - self.level)

    def _cell_clear(self, cell: Cell) -> bool:
        lo, hi = float(cell["effect_lo"]), float(cell["effect_hi"])
        effect, p = float(cell["effect"]), float(cell["effect_p_adjusted"])
        return _clear(lo, hi, effect, float(cell["step"]), p, 1 - self.level)

    # Records "cell" (one per workload and matched optimizer in both protocols), "flip"
    # (see `flips`) and "pair" (see `pairs`). Cell keys: workload, optimizer, first,
    # second, label_first, label_second, trial_first, trial_second, metric, split ("test"),
    # value_first, value_second (tuned: the best of N trials), k, budget_rule,
    # expected_first, expected_second (E_k), value (E_k(second) - E_k(first)), lo, hi (its
    # interval at `level`), p_value (two-sided bootstrap-t), p_adjusted (Holm over the
    # comparison's cells), tested (k < N: a variance estimate exists), clear (p_adjusted
    # below 1 - level, the interval excludes 0 and |value| exceeds step), step, level,
    # rank_first, rank_second, rank_change (second minus first), kendall_tau.
    JSON = (
        Records(
            record="cell",
            dims=("workload", "optimizer"),
            keep=lambda r, c: bool(np.isfinite(c["rank"]).all()),
            keys=(
                Labels(),
                Computed("first", lambda r, c: r.protocols[0]),
                Computed("second", lambda r, c: r.protocols[1]),
                Columns("protocol", "label_{label}", ("label",), _SIDES, cast=str),
                Columns("protocol", "trial_{label}", ("trial",), _SIDES, cast=int),
                Var("metric", "metric_name", cast=str),
                Const("split", "test"),
                Columns("protocol", "value_{label}", ("test_value",), _SIDES, cast=float),
                Var("k", cast=int),
                Field("budget_rule", "budget_text"),
                Columns("protocol", "expected_{label}", ("expected",), _SIDES, cast=float),
                Var("value", "effect", cast=float),
                Computed("tested", lambda r, c: bool(np.isfinite(c["effect_p"]))),
                Var("lo", "effect_lo", cast=float),
                Var("hi", "effect_hi", cast=float),
                Var("p_value", "effect_p", cast=float),
                Var("p_adjusted", "effect_p_adjusted", cast=float),
                Computed("clear", "_cell_clear"),
                Var("step", cast=float),
                Field("level"),
                Columns("protocol", "rank_{label}", ("rank",), _SIDES, cast=float),
                Computed("rank_change", lambda r, c: float(c["rank"][1] - c["rank"][0])),
                Var("kendall_tau", cast=float),
            ),
        ),
        _FLIPS,
        _PAIRS,
    )


def _clear(lo: float, hi: float, value: float, step: float, p: float, alpha: float) -> bool:
    """A difference larger than the metric's step, its interval excluding 0, and its
    (adjusted) bootstrap-t p-value below alpha."""
    return bool((lo > 0 or hi < 0) and abs(value) > step and p < alpha)


def _smallest_step(values: FloatArray) -> float:
    """The smallest positive gap between distinct finite values (0 if none)."""
    u = np.unique(values[np.isfinite(values)])
    gaps = np.diff(u)
    gaps = gaps[gaps > 0]
    return float(gaps.min()) if gaps.size else 0.0


def _tuned_value(score: FloatArray, test: FloatArray) -> FloatArray:
    """Tuned test value of each row of trials (last axis): the mean test value of the
    trials tied at the best finite score; NaN for a row without one."""
    s = np.where(np.isfinite(score), score, np.inf)
    best = s.min(axis=-1, keepdims=True)
    tied = (s == best) & np.isfinite(best)
    count = tied.sum(axis=-1)
    out = np.full(count.shape, np.nan)
    np.divide(np.where(tied, test, 0.0).sum(axis=-1), count, out=out, where=count > 0)
    return out


_Trials = tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]  # score, test, usable


def _crc(label: str) -> int:
    return zlib.crc32(label.encode("utf-8"))


def _cell_tests(
    tasks: Sequence[tuple[_Trials, _Trials, float, tuple[str, ...]]],
    *,
    budget: int | None,
    n_boot: int,
    level: float,
    root: int,
) -> list[tuple[float, float, float, float, int, float, float]]:
    """For every task (trials a, trials b, sign, labels): the bootstrap-t test of
    E_k(b) - E_k(a) in the metric's units (sign: -1 for direction "max"), as (difference,
    lo, hi, two-sided p (NaN: not tested), k, E_k(a), E_k(b)); the interval at `level`."""
    if not tasks:
        return []
    n = max(max(len(t[0][0]), len(t[1][0])) for t in tasks)
    c = len(tasks)
    arrays = {
        side: (np.full((c, n), np.nan), np.full((c, n), np.nan), np.zeros((c, n), dtype=bool))
        for side in ("a", "b")
    }
    present = {side: np.zeros((c, n), dtype=bool) for side in ("a", "b")}
    seeds = np.zeros((c, 1 + max(len(t[3]) for t in tasks)), dtype=np.int64)
    for i, (ta, tb, sign, labels) in enumerate(tasks):
        for side, (score, test, usable) in (("a", ta), ("b", tb)):
            m = len(score)
            arrays[side][0][i, :m] = score
            arrays[side][1][i, :m] = sign * test
            arrays[side][2][i, :m] = usable
            present[side][i, :m] = True
        seeds[i, : 1 + len(labels)] = [root, *(_crc(x) for x in labels)]
    tests = pair_tests(
        *arrays["b"][:2],
        arrays["b"][2],
        present["b"],
        *arrays["a"][:2],
        arrays["a"][2],
        present["a"],
        budget=budget,
        n_boot=n_boot,
        alpha=(1 - level) / 2,
        margin=0.0,
        seeds=seeds,
    )
    out = []
    for i, (_, _, sign, _) in enumerate(tasks):
        p = min(1.0, 2 * min(float(tests.p_value[i]), float(tests.p_noninferior[i])))
        lo, hi = float(tests.lo[i]), float(tests.hi[i])
        if sign < 0:
            lo, hi = -hi, -lo
        out.append(
            (
                sign * float(tests.difference[i]),
                lo,
                hi,
                p if tests.tested[i] else math.nan,
                int(tests.k[i]),
                sign * float(tests.special_expected[i]),
                sign * float(tests.general_expected[i]),
            )
        )
    return out


def _pair_holm(p: FloatArray) -> FloatArray:
    """Holm over the unordered pairs of each protocol (p is symmetric in its last axes)."""
    out = np.full(p.shape, np.nan)
    n = p.shape[-1]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    for pi in range(p.shape[0]):
        adjusted = _holm(np.where(upper[None], p[pi], np.nan))
        out[pi] = np.where(upper[None], adjusted, np.swapaxes(adjusted, -1, -2))
    return out


def _holm(p: FloatArray) -> FloatArray:
    """Holm-adjusted p-values over the finite entries of `p` (one family); NaN stays."""
    flat = np.asarray(p, dtype=np.float64).ravel()
    out = np.full(flat.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(flat))
    order = tested[np.argsort(flat[tested], kind="stable")]
    m = order.size
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * flat[j]))
        out[j] = running
    return out.reshape(np.shape(p))


def _keyed(
    sel: xr.Dataset,
    archive: xr.Dataset,
    cells: npt.NDArray[np.bool_],
    match: Match,
    protocol: str,
) -> dict[tuple[str, str], tuple[str, int, float, float]]:
    """(workload, key) -> (optimizer label, trial, test value, selection value) over `cells`."""
    families = dict(
        zip(
            archive["optimizer"].values.astype(str),
            archive["optimizer_family"].values.astype(str),
            strict=True,
        )
    )
    out: dict[tuple[str, str], tuple[str, int, float, float]] = {}
    for wi, w in enumerate(archive["workload"].values.astype(str)):
        for oi, o in enumerate(archive["optimizer"].values.astype(str)):
            if not cells[wi, oi]:
                continue
            key = (families[o] or o) if match is Match.FAMILY else o
            if (w, key) in out:
                raise AnalysisError(
                    f"protocol {protocol!r}: optimizers {out[(w, key)][0]!r} and {o!r} on "
                    f"workload {w!r} share the family {key!r}; match by name or restrict "
                    "the optimizers"
                )
            c = sel.sel(workload=w, optimizer=o)
            out[(w, key)] = (
                o,
                int(c["trial"]),
                float(c["test_value"]),
                float(c["selection_value"]),
            )
    return out


def protocol_sensitivity(
    first: xr.Dataset,
    second: xr.Dataset | None = None,
    /,
    *,
    protocols: Sequence[str] | None = None,
    match: Match | str | None = None,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    repeats: RepeatMode | str = RepeatMode.MEAN,
    workloads: Sequence[str] | None = None,
    budget: int | None = None,
    n_boot: int = DEFAULT_TEST_N_BOOT,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> ProtocolComparison:
    """Compare rankings under two protocols: two archives (`second` given; `protocols`
    are then just their labels, default ("first", "second")), or the two search-space
    names `protocols` of one archive. `match` defaults to "name" for two archives and
    "family" within one. Rankings use the test metric of the trial selected by `rule`;
    tests and intervals are bootstrap-t tests of E_k at `budget` (default `BUDGET_RULE`)
    with `n_boot` resamples (module docstring).
    """
    if n_boot < 2:
        raise AnalysisError(f"n_boot: {n_boot} is too small; use at least 2")
    if budget is not None and budget < 1:
        raise AnalysisError(f"budget: {budget} must be at least 1")
    if not 0 < level < 1:
        raise AnalysisError(f"level: {level} must be between 0 and 1")
    rng = np.random.default_rng(0) if rng is None else rng
    archives, labels, match = _sides(first, second, protocols, match)
    restricted = [restrict(a, workloads=workloads) for a in archives]
    root = root_seed(rng)
    sides = [
        _side(ds, label, rule=rule, repeats=repeats, match=match, one_archive=second is None)
        for ds, label in zip(restricted, labels, strict=True)
    ]
    facts = _facts(restricted, labels)
    cells = _Cells.of(sides, facts, labels)
    tests = _tests(cells, sides, labels, budget=budget, n_boot=n_boot, level=level, root=root)
    steps: dict[str, float] = {}
    for side in sides:
        for w, step in side.steps.items():
            steps[w] = min(steps.get(w, math.inf), step)
    data = _comparison_data(cells, tests, steps, facts, labels)
    return ProtocolComparison(
        data=data,
        match=match,
        rule=SelectionRule(rule),
        n_boot=n_boot,
        level=level,
        budget=budget,
    )


def _sides(
    first: xr.Dataset,
    second: xr.Dataset | None,
    protocols: Sequence[str] | None,
    match: Match | str | None,
) -> tuple[tuple[xr.Dataset, xr.Dataset], tuple[str, str], Match]:
    """The archive of each protocol, their labels and how optimizers are matched."""
    if second is None:
        if protocols is None or len(protocols) != 2 or protocols[0] == protocols[1]:
            raise AnalysisError(
                "protocols: name two different search spaces (space_name) of the archive, "
                "e.g. lr-only and choi2019"
            )
        spaces = set(np.unique(first["space_name"].values.astype(str)))
        for p in protocols:
            if p not in spaces:
                raise AnalysisError(
                    f"protocol {p!r} is not a search-space name of the archive; it has "
                    f"{sorted(n for n in spaces if n)}"
                )
        match = Match(match or Match.FAMILY)
        if match is Match.NAME:
            raise AnalysisError(
                "match 'name' needs two archives: within one archive the same optimizer has "
                "a different name under each protocol; match by family"
            )
        return (first, first), (str(protocols[0]), str(protocols[1])), match
    labels = (
        (str(protocols[0]), str(protocols[1])) if protocols is not None else ("first", "second")
    )
    if len(set(labels)) != 2:
        raise AnalysisError(f"protocols: labels {list(labels)} must be two different names")
    return (first, second), labels, Match(match or Match.NAME)


@attrs.frozen
class _Side:
    """One protocol's selection: per (workload, matched key) the selected trial
    (optimizer label, trial, test value, selection value) and the cell's trials; per
    workload the smallest gap between its distinct test values."""

    keyed: dict[tuple[str, str], tuple[str, int, float, float]]
    trials: dict[tuple[str, str], _Trials]
    steps: dict[str, float]


def _side(
    ds: xr.Dataset,
    label: str,
    *,
    rule: SelectionRule | str,
    repeats: RepeatMode | str,
    match: Match,
    one_archive: bool,
) -> _Side:
    scores = trial_scores(ds, rule=rule, repeats=repeats)
    sel = select_best(scores)
    if set(sel.data["trial"].dims) != {"workload", "optimizer"}:
        raise AnalysisError("protocol comparison needs one selection per cell (repeats 'mean')")
    if one_archive:
        cells = ds["space_name"].transpose("workload", "optimizer").values.astype(str) == label
    else:
        cells = np.ones((ds.sizes["workload"], ds.sizes["optimizer"]), dtype=bool)
    keyed = _keyed(sel.data, ds, cells, match, label)
    sd = scores.data
    trials: dict[tuple[str, str], _Trials] = {}
    steps: dict[str, float] = {}
    for (w, key), found in keyed.items():
        cell = sd.sel(workload=w, optimizer=found[0])
        test_v = cell["test_value"].values
        here = cell["present"].values.astype(bool)
        use = cell["usable"].values.astype(bool) & np.isfinite(test_v)
        trials[(w, key)] = (cell["score"].values[here], test_v[here], use[here])
        steps[w] = min(steps.get(w, math.inf), _smallest_step(test_v))
    return _Side(keyed, trials, steps)


def _facts(archives: Sequence[xr.Dataset], labels: tuple[str, str]) -> dict[str, tuple[str, str]]:
    """Per workload its (metric name, direction); AnalysisError where the protocols differ."""
    facts: dict[str, tuple[str, str]] = {}
    for ds, label in zip(archives, labels, strict=True):
        for w, m, d in zip(
            ds["workload"].values.astype(str),
            ds["metric_name"].values.astype(str),
            ds["metric_direction"].values.astype(str),
            strict=True,
        ):
            if w in facts and facts[w] != (m, d):
                raise AnalysisError(
                    f"workload {w!r}: protocol {label!r} measures {m} ({d}) but the other "
                    f"measures {facts[w][0]} ({facts[w][1]}); they cannot be compared"
                )
            facts[w] = (m, d)
    return facts


@attrs.frozen
class _Cells:
    """The matched cells (protocol, workload, key) of the workloads both protocols share:
    selected labels, trials, test and selection values, the metric's sign per workload,
    where both protocols have a result, and the ranks (NaN elsewhere) and Kendall tau."""

    workloads: list[str]
    keys: list[str]
    names: npt.NDArray[np.object_]
    trial: npt.NDArray[np.int64]
    test: FloatArray
    selv: FloatArray
    sign: FloatArray
    both: npt.NDArray[np.bool_]
    rank: FloatArray
    tau: FloatArray

    @classmethod
    def of(
        cls, sides: Sequence[_Side], facts: dict[str, tuple[str, str]], labels: tuple[str, str]
    ) -> _Cells:
        per = [side.keyed for side in sides]
        common_w = sorted({w for w, _ in per[0]} & {w for w, _ in per[1]})
        if not common_w:
            raise AnalysisError(f"protocols {labels[0]!r} and {labels[1]!r} share no workload")
        keys = sorted(
            {k for w, k in per[0] if w in common_w} | {k for w, k in per[1] if w in common_w}
        )
        n_w, n_k = len(common_w), len(keys)
        test = np.full((2, n_w, n_k), np.nan)
        selv = np.full((2, n_w, n_k), np.nan)
        trial = np.full((2, n_w, n_k), -1, dtype=np.int64)
        names = np.full((2, n_w, n_k), "", dtype=object)
        for pi in range(2):
            for wi, w in enumerate(common_w):
                for ki, k in enumerate(keys):
                    entry = per[pi].get((w, k))
                    if entry is not None:
                        names[pi, wi, ki], trial[pi, wi, ki] = entry[0], entry[1]
                        test[pi, wi, ki], selv[pi, wi, ki] = entry[2], entry[3]
        sign = np.array([1.0 if facts[w][1] == Direction.MIN else -1.0 for w in common_w])
        both = np.isfinite(test).all(axis=0) & (trial >= 0).all(axis=0)  # (workload, key)
        if not both.any():
            raise AnalysisError(
                f"protocols {labels[0]!r} and {labels[1]!r} have no optimizer with a usable "
                "trial in both"
            )
        scored = np.where(both[None], sign[None, :, None] * test, np.nan)
        rank = np.where(both[None], competition_ranks(scored, axis=-1), np.nan)
        tau = np.array([kendall_tau(rank[0, wi], rank[1, wi]) for wi in range(n_w)])
        return cls(common_w, keys, names, trial, test, selv, sign, both, rank, tau)


@attrs.frozen
class _Tests:
    """The protocol effects (workload, key) and the pair gaps within each protocol
    (protocol, workload, key, other), with intervals, p-values, budgets and E_k."""

    effect: FloatArray  # estimate, lo, hi
    effect_p: FloatArray
    effect_k: npt.NDArray[np.int64]
    expected: FloatArray  # (protocol, workload, key): E_k of each cell, metric units
    pair: FloatArray  # estimate/lo/hi, protocol, workload, key, other
    pair_p: FloatArray


def _tests(
    cells: _Cells,
    sides: Sequence[_Side],
    labels: tuple[str, str],
    *,
    budget: int | None,
    n_boot: int,
    level: float,
    root: int,
) -> _Tests:
    n_w, n_k = len(cells.workloads), len(cells.keys)
    effect = np.full((3, n_w, n_k), np.nan)
    pair = np.full((3, 2, n_w, n_k, n_k), np.nan)
    effect_p = np.full((n_w, n_k), np.nan)
    effect_k = np.zeros((n_w, n_k), dtype=np.int64)
    pair_p = np.full((2, n_w, n_k, n_k), np.nan)
    expected = np.full((2, n_w, n_k), np.nan)
    trials = [side.trials for side in sides]
    sign, both = cells.sign, cells.both
    tasks: list[tuple[_Trials, _Trials, float, tuple[str, ...]]] = []
    where: list[tuple[Any, ...]] = []
    for wi, w in enumerate(cells.workloads):
        for ki, k in enumerate(cells.keys):
            if not both[wi, ki]:
                continue
            tasks.append((trials[0][(w, k)], trials[1][(w, k)], sign[wi], ("effect", w, k)))
            where.append(("effect", wi, ki))
            for pi in range(2):
                for kj, k2 in enumerate(cells.keys):
                    if kj > ki and both[wi, kj]:
                        tasks.append(
                            (
                                trials[pi][(w, k)],
                                trials[pi][(w, k2)],
                                sign[wi],
                                ("pair", labels[pi], w, k, k2),
                            )
                        )
                        where.append(("pair", pi, wi, ki, kj))
    results = _cell_tests(tasks, budget=budget, n_boot=n_boot, level=level, root=root)
    for at, (diff, lo, hi, p_two, kk, e_a, e_b) in zip(where, results, strict=True):
        if at[0] == "effect":
            wi, ki = at[1], at[2]
            effect[:, wi, ki] = (diff, lo, hi)
            expected[:, wi, ki] = (e_a, e_b)
            effect_p[wi, ki] = p_two
            effect_k[wi, ki] = kk
        else:
            _, pi, wi, ki, kj = at
            # Oriented: positive means optimizer ki is better than kj (E_k(kj) - E_k(ki)).
            s_ = sign[wi]
            pair[:, pi, wi, ki, kj] = (s_ * diff, *sorted((s_ * lo, s_ * hi)))
            pair[:, pi, wi, kj, ki] = (-s_ * diff, *sorted((-s_ * lo, -s_ * hi)))
            pair_p[pi, wi, ki, kj] = pair_p[pi, wi, kj, ki] = p_two
    return _Tests(effect, effect_p, effect_k, expected, pair, pair_p)


def _comparison_data(
    cells: _Cells,
    tests: _Tests,
    steps: dict[str, float],
    facts: dict[str, tuple[str, str]],
    labels: tuple[str, str],
) -> xr.Dataset:
    """The comparison's dataset (see `ProtocolComparison`)."""
    common_w = cells.workloads
    cell3 = ("protocol", "workload", "optimizer")
    cell2 = ("workload", "optimizer")
    pair4 = (*cell3, "other")
    return xr.Dataset(
        {
            "label": (cell3, cells.names.astype(str)),
            "trial": (cell3, cells.trial),
            "test_value": (cell3, cells.test),
            "selection_value": (cell3, cells.selv),
            "rank": (cell3, cells.rank),
            "kendall_tau": ("workload", cells.tau),
            "expected": (cell3, tests.expected),
            "k": (cell2, tests.effect_k),
            "effect": (cell2, tests.effect[0]),
            "effect_p": (cell2, tests.effect_p),
            "effect_p_adjusted": (cell2, _holm(tests.effect_p)),
            "pair_p": (pair4, tests.pair_p),
            "pair_p_adjusted": (pair4, _pair_holm(tests.pair_p)),
            "effect_lo": (cell2, tests.effect[1]),
            "effect_hi": (cell2, tests.effect[2]),
            "pair_gap": (pair4, tests.pair[0]),
            "pair_lo": (pair4, tests.pair[1]),
            "pair_hi": (pair4, tests.pair[2]),
            "step": ("workload", np.array([steps.get(w, 0.0) for w in common_w])),
            "metric_name": ("workload", np.array([facts[w][0] for w in common_w], dtype=str)),
            "direction": ("workload", np.array([facts[w][1] for w in common_w], dtype=str)),
        },
        coords={
            "protocol": np.array(labels, dtype=str),
            "workload": np.array(common_w, dtype=str),
            "optimizer": np.array(cells.keys, dtype=str),
            "other": np.array(cells.keys, dtype=str),
        },
    )


def narrower_first(archive: xr.Dataset) -> tuple[str, str]:
    """The two search-space names (space_name) of `archive`, the one searching fewer
    hyperparameters (on average over its cells) first; AnalysisError unless it has two."""
    names = archive["space_name"].values.astype(str)
    spaces = sorted(set(names.ravel()) - {""})
    if len(spaces) != 2:
        raise AnalysisError(
            f"protocol: the archive has {len(spaces)} search spaces "
            f"({', '.join(spaces) or 'none'}); it needs exactly two, or a second archive"
        )
    scale = archive["space_scale"].values.astype(str)
    searched = np.isin(scale, [Scale.LINEAR.value, Scale.LOG.value, Scale.ONE_MINUS_LOG.value])
    width = {sp: float(searched.sum(axis=-1)[names == sp].mean()) for sp in spaces}
    first, second = sorted(spaces, key=lambda sp: (width[sp], sp))
    return first, second


def run_protocol(
    first: xr.Dataset,
    second: xr.Dataset | None = None,
    /,
    *,
    protocols: Sequence[str] | None = None,
    match: Match | str | None = None,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    budget: int | None = None,
    n_boot: int = DEFAULT_TEST_N_BOOT,
    alpha: float = 0.05,
    rng: np.random.Generator,
) -> ProtocolComparison:
    """`protocol_sensitivity` at level 1 - `alpha`, repeats averaged (one selected trial per
    cell): the registry's protocol analysis. One archive without `protocols`: its two
    search spaces, the narrower first (`narrower_first`)."""
    if second is None and protocols is None:
        protocols = narrower_first(first)
    return protocol_sensitivity(
        first,
        second,
        protocols=protocols,
        match=match,
        rule=rule,
        repeats=RepeatMode.MEAN,
        budget=budget,
        n_boot=n_boot,
        level=1 - alpha,
        rng=rng,
    )
