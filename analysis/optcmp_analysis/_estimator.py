"""The inclusion test's machinery, shared by `inclusion_consistency` and `target_study`:
the unbiased expected best-of-k estimator, the permutation test of a difference between two
optimizers, its interval, Holm's correction and the verdict rules.

Dependency rule: numpy and this package's kernels only (no xarray): every function takes
plain arrays whose last axis is the trial axis and whose leading axes are independent cells.

Conventions (docs/method.md, "Inclusion consistency"):

- Values are oriented so that smaller is better (the metric times -1 for direction "max").
- A trial is *present* if it was run; present trials make up the study of N trials. A
  present trial that is not *usable* (diverged, incomplete, no selection value) sorts after
  every usable one and, if a k-trial study selects it (all k drawn trials unusable), the
  study's result is the cell's `worst` value: a failed study scores as badly as the worst
  result seen, so the estimator is always defined.
- The expected best-of-k result E_k is estimated by the without-replacement U-statistic of
  Dodge et al. (2021): with the N present trials sorted best first by selection score and
  j counted from 0, weight C(N - j - 1, k - 1) / C(N, k) on the reported value of position j
  (the same weight as C(i - 1, k - 1) / C(N, k) with i = N - j counted from the worst).
- The statistic is T = E_k(general) - E_k(special): positive means the general optimizer
  is worse.
- The p-value is a permutation p-value for "no difference" meaning the two optimizers'
  trials are exchangeable: the pooled trials are split at random into groups of the two
  sizes, `n_perm` times, and p = (1 + #{T_perm >= T}) / (1 + n_perm).
- The interval [lo, hi] inverts the same test under a location shift: delta is inside when
  the general optimizer's usable trials, shifted by -delta (test value and selection
  score), are not distinguishable from the special one's at
  level alpha in the direction tested. Each end is a one-sided (1 - alpha) bound. "Consistent"
  is the non-inferiority test at the margin (p_noninferior < alpha), and then hi <= margin;
  p_value < alpha exactly when lo >= 0. The calibration test
  (tests/analysis/test_calibration.py) measures size and power by simulation.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from optcmp_analysis._kernels import exact_probabilities

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_N_PERM",
    "PairTests",
    "Verdict",
    "dodge_weights",
    "expected_best_of_k",
    "holm",
    "pair_tests",
    "verdict_text",
    "verdicts",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Non-inferiority margin in the metric's own units: 0.01 is one percentage point of an
# error rate or accuracy. Losses and perplexities need their own (`margin=` / --margin).
DEFAULT_MARGIN = 0.01
# Random splits of the pooled trials per test: the smallest p-value is 1 / (n_perm + 1).
DEFAULT_N_PERM = 1999


class Verdict(enum.StrEnum):
    """What the data say about one inclusion pair on one workload (docs/method.md)."""

    VIOLATED = "violated"  # Holm-adjusted p-value below alpha: the general optimizer is worse
    CONSISTENT = "consistent"  # upper interval end below the non-inferiority margin
    INCONCLUSIVE = "inconclusive"  # neither (or nothing to test)
    NOT_INCLUDED = "not_included"  # the stored search spaces do not contain the inclusion


def verdict_text(verdict: str, margin: float, reason: str = "") -> str:
    """The careful wording of a verdict: "violated", "consistent (within margin m)",
    "inconclusive", "not included: <reason>"."""
    if verdict == Verdict.CONSISTENT:
        return f"consistent (within margin {margin:g})"
    if verdict == Verdict.NOT_INCLUDED:
        return f"not included: {reason}" if reason else "not included"
    return str(verdict)


def dodge_weights(n: int, k: int) -> FloatArray:
    """Weights of the without-replacement expected best-of-k over N trials sorted best first:
    C(n - j - 1, k - 1) / C(n, k) for j = 0..n-1 (they sum to 1)."""
    w = exact_probabilities(np.array(n, dtype=np.int64), k, n, replace=False)
    return np.asarray(w, dtype=np.float64)


def _prepare(
    score: FloatArray, value: FloatArray, usable: BoolArray, present: BoolArray, worst: float
) -> tuple[FloatArray, FloatArray]:
    """One cell's present trials: (scores, values) with unusable trials at +inf / `worst`."""
    keep = present
    s = np.where(usable, score, np.inf)[keep]
    v = np.where(usable, value, worst)[keep]
    return s.astype(np.float64), v.astype(np.float64)


def expected_best_of_k(
    score: FloatArray,
    value: FloatArray,
    usable: BoolArray,
    present: BoolArray,
    worst: FloatArray,
    k: int,
) -> FloatArray:
    """The unbiased expected best-of-k value of every cell (leading axes): NaN where the cell
    has fewer than k present trials or a selectable trial lacks a value."""
    cells = score.shape[:-1]
    flat = [x.reshape(-1, score.shape[-1]) for x in (score, value, usable, present)]
    w_flat = np.broadcast_to(worst, cells).reshape(-1)
    out = np.full(len(w_flat), np.nan)
    for c in range(len(w_flat)):
        s, v = _prepare(flat[0][c], flat[1][c], flat[2][c], flat[3][c], float(w_flat[c]))
        if len(s) < k or k < 1:
            continue
        order = np.argsort(s, kind="stable")
        out[c] = float(dodge_weights(len(s), k) @ v[order])
    return out.reshape(cells)


class PairTests:
    """Arrays over cells (C,): `difference` (T), `lo`, `hi`, `p_value`, `p_noninferior`
    (p-value for "general worse by at least the margin"), `special_expected`,
    `general_expected`, `p_general_not_worse` (exact P(a k-trial study of the general
    optimizer is not worse than an independent one of the special optimizer)), `no_result_*`
    (P(a k-trial study has no usable trial)), `n_special`, `n_general`, `k`, `exact` (the
    permutation distribution was enumerated exactly rather than sampled)."""

    def __init__(self, n_cells: int) -> None:
        nan = np.full(n_cells, np.nan)
        self.difference = nan.copy()
        self.lo = nan.copy()
        self.hi = nan.copy()
        self.p_value = nan.copy()
        self.p_noninferior = nan.copy()
        self.special_expected = nan.copy()
        self.general_expected = nan.copy()
        self.p_general_not_worse = nan.copy()
        self.no_result_special = nan.copy()
        self.no_result_general = nan.copy()
        self.n_special = np.zeros(n_cells, dtype=np.int64)
        self.n_general = np.zeros(n_cells, dtype=np.int64)
        self.k = np.zeros(n_cells, dtype=np.int64)
        self.exact = np.zeros(n_cells, dtype=bool)


def _no_result(n: int, n_unusable: int, k: int) -> float:
    """C(n_unusable, k) / C(n, k): the chance that k trials drawn without replacement are
    all unusable."""
    p = 1.0
    for i in range(k):
        p *= max(n_unusable - i, 0) / (n - i)
    return p


class _Pooled:
    """One cell's pooled trials (general first) and its permutation distribution of T under
    a shift delta of the general optimizer's usable trials (T_delta = T - delta under the
    shift; the null "the shifted general trials and the special ones are exchangeable")."""

    def __init__(
        self,
        sg: FloatArray,
        vg: FloatArray,
        ss: FloatArray,
        vs: FloatArray,
        k: int,
        *,
        shift_score: bool,
        masks: BoolArray | None,
    ) -> None:
        self.ng, self.ns = len(sg), len(ss)
        self.score = np.concatenate([sg, ss])
        self.value = np.concatenate([vg, vs])
        self.is_g = np.arange(self.ng + self.ns) < self.ng
        # Only usable trials move under a shift (an unusable one stays at `worst`).
        self.movable = self.is_g & np.isfinite(self.score)
        self.shift_score = shift_score
        self.wg, self.ws = dodge_weights(self.ng, k), dodge_weights(self.ns, k)
        self.masks = masks  # (P + 1, n) with row 0 the observed split; None: exact
        self.k = k

    def tails(self, deltas: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """For every shift in `deltas` (D,): (T_delta observed, P(T_perm >= it),
        P(T_perm <= it)); Monte Carlo tails follow the (1 + count) / (1 + P) convention."""
        deltas = np.atleast_1d(np.asarray(deltas, dtype=np.float64))
        shift = np.where(self.movable[None, :], deltas[:, None], 0.0)  # (D, n)
        score = self.score[None, :] - shift if self.shift_score else self.score[None, :]
        order = np.argsort(np.broadcast_to(score, shift.shape), axis=1, kind="stable")
        values = np.take_along_axis(self.value[None, :] - shift, order, axis=1)
        if self.masks is None:
            return self._exact_tails(values, order)
        out = np.empty((3, len(deltas)))
        for d in range(len(deltas)):
            stats = _group_means(self.masks[:, order[d]], values[d], self.wg, self.ws)
            t = float(stats[0])
            perm = stats[1:]
            out[:, d] = (
                t,
                (1.0 + float((perm >= t).sum())) / (len(perm) + 1.0),
                (1.0 + float((perm <= t).sum())) / (len(perm) + 1.0),
            )
        return out[0], out[1], out[2]

    def _exact_tails(
        self, values: FloatArray, order: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """k = ng = ns = m: each group's E_k is its best trial's value. The group holding
        sorted position 0 has value v0; the other group's first position j (1..m) has
        probability prod_{i<j} (m - i) / (n - i) * m / (n - j) over equal random splits."""
        m, n = self.ng, self.ng + self.ns
        member = self.is_g[order]  # (D, n)
        rows = np.arange(len(values))
        a = np.argmax(member, axis=1)  # first general position
        b = np.argmax(~member, axis=1)  # first special position
        t = values[rows, a] - values[rows, b]
        j = np.arange(1, m + 1)
        head = np.concatenate([[1.0], np.cumprod((m - j[:-1]) / (n - j[:-1]))])
        q = head * m / (n - j) / 2.0
        first = values[:, :1]
        up = first - values[:, j]  # general holds position 0
        down = values[:, j] - first  # special holds position 0
        tt = t[:, None]
        p_high = ((up >= tt) * q).sum(axis=1) + ((down >= tt) * q).sum(axis=1)
        p_low = ((up <= tt) * q).sum(axis=1) + ((down <= tt) * q).sum(axis=1)
        return t, p_high, p_low


def _group_means(masks: BoolArray, values: FloatArray, w_a: FloatArray, w_b: FloatArray) -> Any:
    """E_k of group A (masks True) minus group B, for every row of `masks` (P, n); values
    sorted best first."""
    rank_a = np.cumsum(masks, axis=1) - 1
    rank_b = np.cumsum(~masks, axis=1) - 1
    wa = w_a[np.clip(rank_a, 0, len(w_a) - 1)]
    wb = w_b[np.clip(rank_b, 0, len(w_b) - 1)]
    weight = np.where(masks, wa, -wb)
    return weight @ values


def _bound(
    pooled: _Pooled,
    t: float,
    span: float,
    alpha: float,
    *,
    upper: bool,
    anchor: float,
    anchor_rejected: bool,
    grid: int,
    rounds: int,
) -> float:
    """Invert the shifted tests. The upper bound is the smallest shift delta >= T whose test
    of "difference < delta" rejects at alpha (P(T_perm <= T_delta) < alpha); the lower bound
    the largest delta <= T whose test of "difference > delta" rejects. The permutation
    distribution is discrete, so rejection need not be monotone in delta: the search is
    anchored at `anchor` (the margin for the upper bound, 0 for the lower one) so that the
    bound is on the anchor's side of it exactly when the anchor's own test rejects. Searched
    on `grid` points, refined `rounds` times around the first rejection (+-inf if the far
    end, T +/- 2 span beyond the anchor, is not rejected); the returned end is a rejected
    shift."""
    side = 2 if upper else 1
    sign = 1.0 if upper else -1.0
    if anchor_rejected and sign * (anchor - t) >= 0:
        inner, outer = t, anchor
    else:
        inner = max(t, anchor) if upper else min(t, anchor)
        outer = inner + sign * 2 * span
    for r in range(rounds):
        deltas = np.linspace(inner, outer, grid)
        rejects = pooled.tails(deltas)[side] < alpha
        if r == 0 and not rejects[-1]:
            return sign * math.inf
        if rejects[0]:
            return float(deltas[0])
        first = int(np.argmax(rejects))
        inner, outer = float(deltas[first - 1]), float(deltas[first])
    return outer


def pair_tests(
    score_g: FloatArray,
    value_g: FloatArray,
    usable_g: BoolArray,
    present_g: BoolArray,
    score_s: FloatArray,
    value_s: FloatArray,
    usable_s: BoolArray,
    present_s: BoolArray,
    worst: FloatArray,
    *,
    budget: int | None,
    n_perm: int,
    alpha: float,
    margin: float,
    seeds: IntArray,
    shift_score: BoolArray | bool = True,
    interval: BoolArray | None = None,
) -> PairTests:
    """Permutation tests of E_k(general) - E_k(special) for every cell (first axis, C).

    Inputs are (C, N) trial arrays (score and value oriented, smaller is better), `worst`
    (C,), and `seeds` (C, key) seeding each cell's own stream (labels, not positions).
    `budget` None: k = the smaller of the two present-trial counts (the study as run). When
    k equals both counts the permutation distribution is enumerated exactly; otherwise
    `n_perm` random splits. `shift_score`: whether a shift of the general optimizer moves its
    selection scores too (they are in the reported metric's units; one flag or one per
    cell). `interval` (C,): where
    False, lo and hi are not computed (pairs that are not tested). A cell whose k exceeds a
    present count, whose selectable trials lack a value, or whose `worst` is not finite
    stays NaN.
    """
    n_cells = score_g.shape[0]
    out = PairTests(n_cells)
    shifts = np.broadcast_to(np.asarray(shift_score, dtype=bool), (n_cells,))
    for c in range(n_cells):
        shift_c = bool(shifts[c])
        worst_c = float(worst[c])
        sg, vg = _prepare(score_g[c], value_g[c], usable_g[c], present_g[c], worst_c)
        ss, vs = _prepare(score_s[c], value_s[c], usable_s[c], present_s[c], worst_c)
        ng, ns = len(sg), len(ss)
        out.n_general[c], out.n_special[c] = ng, ns
        k = min(ng, ns) if budget is None else budget
        out.k[c] = k
        if k < 1 or k > ng or k > ns or not np.isfinite(worst_c):
            continue
        if not (np.isfinite(vg).all() and np.isfinite(vs).all()):
            continue
        out.no_result_general[c] = _no_result(ng, int((~np.isfinite(sg)).sum()), k)
        out.no_result_special[c] = _no_result(ns, int((~np.isfinite(ss)).sum()), k)
        wg, ws = dodge_weights(ng, k), dodge_weights(ns, k)
        vg_sorted = vg[np.argsort(sg, kind="stable")]
        vs_sorted = vs[np.argsort(ss, kind="stable")]
        out.general_expected[c] = float(wg @ vg_sorted)
        out.special_expected[c] = float(ws @ vs_sorted)
        # Exact P(general's k-trial study not worse than special's): ties count as not worse.
        not_worse = vg_sorted[:, None] <= vs_sorted[None, :]
        out.p_general_not_worse[c] = float(wg @ not_worse @ ws)

        exact = k == ng == ns
        out.exact[c] = exact
        masks = None
        if not exact:
            n = ng + ns
            observed = np.arange(n) < ng
            gen = np.random.default_rng([int(x) for x in seeds[c]])
            masks = gen.permuted(np.broadcast_to(observed, (n_perm + 1, n)).copy(), axis=1)
            masks[0] = observed
        pooled = _Pooled(sg, vg, ss, vs, k, shift_score=shift_c, masks=masks)
        t_both, p_high, p_low = pooled.tails(np.array([0.0, margin]))
        t = float(t_both[0])
        out.difference[c] = t
        out.p_value[c] = float(p_high[0])
        out.p_noninferior[c] = float(p_low[1])
        if interval is not None and not interval[c]:
            continue
        finite = np.concatenate([vg, vs, sg[np.isfinite(sg)], ss[np.isfinite(ss)]])
        span = float(finite.max() - finite.min()) if shift_c else float(np.ptp([*vg, *vs]))
        span = max(span, abs(t), 1e-12)
        grid, rounds = (33, 3) if exact else (9, 4)
        out.lo[c] = _bound(
            pooled,
            t,
            span,
            alpha,
            upper=False,
            anchor=0.0,
            anchor_rejected=out.p_value[c] < alpha,
            grid=grid,
            rounds=rounds,
        )
        out.hi[c] = _bound(
            pooled,
            t,
            span,
            alpha,
            upper=True,
            anchor=margin,
            anchor_rejected=out.p_noninferior[c] < alpha,
            grid=grid,
            rounds=rounds,
        )
    return out


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


def verdicts(
    p_value: FloatArray, p_noninferior: FloatArray, included: BoolArray, *, alpha: float
) -> tuple[FloatArray, npt.NDArray[np.str_]]:
    """Holm over every included cell with a p-value (one family: the whole array), then the
    verdicts: not_included where not `included`; violated where the adjusted p-value is
    below alpha; consistent where the test of "general worse by at least the margin" rejects
    at alpha (the interval's upper end is then at most the margin); else inconclusive."""
    tested = np.where(included, p_value, np.nan)
    adjusted = holm(tested.reshape(-1)).reshape(tested.shape)
    violated = np.isfinite(adjusted) & (adjusted < alpha)
    with np.errstate(invalid="ignore"):
        consistent = included & np.isfinite(p_noninferior) & (p_noninferior < alpha)
    out = np.where(
        ~included,
        Verdict.NOT_INCLUDED.value,
        np.where(
            violated,
            Verdict.VIOLATED.value,
            np.where(consistent, Verdict.CONSISTENT.value, Verdict.INCONCLUSIVE.value),
        ),
    )
    return adjusted, out.astype(str)
