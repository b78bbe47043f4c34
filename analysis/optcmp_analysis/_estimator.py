"""The inclusion test's machinery, shared by `inclusion_consistency`, `target_study` and
`protocol_sensitivity`: the expected best-of-k estimator (given a result; unbiased when
every trial has one), its jackknife standard error, the studentized bootstrap
(bootstrap-t) test of a difference between two optimizers, its interval, Holm's
correction and the verdict rules.

Dependency rule: numpy and this package's kernels only (no xarray): every function takes
plain arrays whose last axis is the trial axis and whose leading axes are independent cells.

Conventions (docs/method.md, "Inclusion consistency"):

- Values are oriented so that smaller is better (the metric times -1 for direction "max").
- A trial is *present* if it was run; present trials make up the study of N trials. A
  present trial that is not *usable* (diverged, incomplete, no selection value) counts in
  N and in the k trials of a study, sorts after every usable one and is never selected. A
  k-trial study whose trials are all unusable has no result: its chance is reported
  (`no_result_*`), and E_k is the expected result *given* a result.
- Ties (the one rule of the package): trials tied on the selection score are selected at
  random among themselves, so the selected value is the mean of the tied trials' values
  (`tie_averaged`).
- The expected best-of-k result E_k is estimated by the without-replacement U-statistic of
  Dodge et al. (2021): with the N present trials sorted best first by selection score and
  j counted from 0, weight C(N - j - 1, k - 1) / C(N, k) on the reported value of position
  j; with unusable trials, the weights of the usable positions renormalised to sum to 1
  (a ratio of two U-statistics: the average over the k-subsets that have a result).
- The statistic is delta_k = E_k(general) - E_k(special): positive means the general
  optimizer is worse. Its standard error is the leave-one-out jackknife of each group's
  estimate (`jackknife_variance`, O(N) per group from the sorted values), which exists
  for k <= N - 1 only: at k = N (each group's best trial) nothing estimates the variance of
  a sample maximum from one sample, so the difference is reported without a test. Nor is
  anything tested with fewer than `min_test_trials(alpha)` trials per optimizer (11 at
  alpha 0.05): a sample that small misses a good region of the search space too often.
- The test is a studentized bootstrap (bootstrap-t): each group's trials are resampled with
  replacement (`n_boot` times, independently per group), and T* = (delta* - theta) / se*,
  with theta the with-replacement best-of-k difference of the observed trials (the
  functional the estimator of a resample estimates), approximates the law of
  T = (delta - delta_k) / se whatever the two trial distributions look like. p-values:
  p_value = (1 + #{T* >= delta / se}) / (1 + n_boot) for "delta_k <= 0" (general not
  worse); p_noninferior = (1 + #{T* <= (delta - margin) / se}) / (1 + n_boot) for
  "delta_k >= margin". The interval inverts the same tests exactly: [lo, hi] are one-sided
  (1 - alpha) bounds, lo > 0 exactly when p_value < alpha and hi < margin exactly when
  p_noninferior < alpha. Values only are resampled (never shifted), so the interval is in
  the metric's units and finite whatever the selection score.
- The default budget is `default_budget` (a quarter of the smaller study): the calibration
  suite (tests/analysis/test_calibration.py) shows the test within its level over spread,
  shape, mixture, skew and divergence scenarios at that budget for N = 12, 16 and 32, not
  at k = N/2 or above.
"""

from __future__ import annotations

import enum
import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from optcmp_analysis._enums import BUDGET_RULE, DEFAULT_TEST_N_BOOT
from optcmp_analysis._kernels import exact_probabilities

__all__ = [
    "BUDGET_RULE",
    "DEFAULT_TEST_N_BOOT",
    "PairTests",
    "Verdict",
    "default_budget",
    "dodge_weights",
    "expected_best_of_k",
    "holm",
    "jackknife_variance",
    "min_test_trials",
    "pair_tests",
    "tie_averaged",
    "untested_reason",
    "verdict_text",
    "verdicts",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# Sequential Monte Carlo: a test first draws this many resamples and stops there when both
# of its p-values are at least STOP_FACTOR x alpha (it cannot reject; the p-value of the
# first batch is a valid bootstrap p-value of its own); otherwise it draws all n_boot.
FIRST_BATCH = 399
STOP_FACTOR = 4.0


def min_test_trials(alpha: float) -> int:
    """The fewest trials per optimizer a test needs: the smallest N with (3/4)^N < alpha,
    so that a sample misses a region holding a quarter of the search space less often than
    alpha (11 at alpha 0.05). With fewer trials a good region the sample has not seen can
    make a general optimizer look worse than it is, and no test can tell (docs/method.md)."""
    return max(2, math.floor(math.log(alpha) / math.log(0.75)) + 1)


def untested_reason(k: int, n: int, alpha: float) -> str:
    """Why a cell at budget k with N trials (the smaller study) is not tested ("" if it
    is testable as far as k and N go)."""
    if k >= n:
        return "no variance estimate at k = N"
    if n < min_test_trials(alpha):
        return f"fewer than {min_test_trials(alpha)} trials per optimizer"
    return ""


def default_budget(n_special: int, n_general: int) -> int:
    """The budget tested by default: max(1, floor(min(N_special, N_general) / 4)); the
    largest budget at which the calibration suite finds the test valid at N = 8, 16, 32."""
    return max(1, min(int(n_special), int(n_general)) // 4)


class Verdict(enum.StrEnum):
    """What the data say about one inclusion pair on one workload (docs/method.md)."""

    VIOLATED = "violated"  # Holm-adjusted p-value below alpha: the general optimizer is worse
    CONSISTENT = "consistent"  # Holm-adjusted non-inferiority p-value below alpha
    INCONCLUSIVE = "inconclusive"  # neither
    NOT_TESTED = "not_tested"  # k = N, or too few trials (`untested_reason`): estimate only
    NOT_INCLUDED = "not_included"  # the stored search spaces do not contain the inclusion


def verdict_text(
    verdict: str, margin: float, reason: str = "", k: int = 0, n: int = 0, alpha: float = 0.05
) -> str:
    """The careful wording of a verdict, naming the budget ("at k = 4 of 16 trials") when
    `k` is given: "violated", "consistent (within margin m)", "inconclusive", "not tested
    (<why>)", "not included: <reason>"."""
    at = f" at k = {k} of {n} trials" if k > 0 else ""
    if verdict == Verdict.CONSISTENT:
        return f"consistent within margin {margin:.3g}{at}"
    if verdict == Verdict.NOT_INCLUDED:
        return f"not included: {reason}" if reason else "not included"
    if verdict == Verdict.NOT_TESTED:
        why = untested_reason(k, n, alpha) if k > 0 else ""
        return f"not tested{at} ({why})" if why else f"not tested{at}"
    return f"{verdict}{at}"


def dodge_weights(n: int, k: int) -> FloatArray:
    """Weights of the without-replacement expected best-of-k over N trials sorted best first:
    C(n - j - 1, k - 1) / C(n, k) for j = 0..n-1 (they sum to 1)."""
    return _weights(n, k, replace=False).copy()


@functools.lru_cache(maxsize=256)
def _weights(n: int, k: int, *, replace: bool) -> FloatArray:
    w = exact_probabilities(np.array(n, dtype=np.int64), k, n, replace=replace)
    out = np.asarray(w, dtype=np.float64)
    out.setflags(write=False)
    return out


def _replace_weights(n: int, k: int) -> FloatArray:
    """With-replacement weights ((n - j) / n)^k - ((n - j - 1) / n)^k, j = 0..n-1."""
    return _weights(n, k, replace=True)


def tie_averaged(score: FloatArray, value: FloatArray) -> FloatArray:
    """`value` with each run of equal `score` (last axis, already sorted) replaced by its
    mean: the expected value selected when ties are broken at random. Scores +inf (unusable
    trials) tie with each other."""
    s = np.asarray(score, dtype=np.float64)
    v = np.asarray(value, dtype=np.float64)
    if s.shape[-1] < 2:
        return v.copy()
    new = np.concatenate(
        [np.ones((*s.shape[:-1], 1), dtype=bool), s[..., 1:] != s[..., :-1]], axis=-1
    )
    if new.all():
        return v.copy()
    flat_new = new.reshape(-1, s.shape[-1])
    flat_v = v.reshape(-1, s.shape[-1])
    out = np.empty_like(flat_v)
    for r in range(flat_v.shape[0]):
        gid = np.cumsum(flat_new[r]) - 1
        sums = np.bincount(gid, weights=flat_v[r])
        counts = np.bincount(gid)
        out[r] = (sums / counts)[gid]
    return out.reshape(v.shape)


def jackknife_variance(
    values: npt.NDArray[np.floating[Any]],
    k: int,
    usable: npt.NDArray[np.floating[Any]] | None = None,
) -> FloatArray:
    """Leave-one-out jackknife variance of the best-of-k estimate of every row (last axis:
    N values sorted best first, ties already averaged, trials without a result last), O(N)
    per row.

    Without `usable` (every trial has a result) the estimate is the U-statistic T = w . v.
    Deleting position i leaves the weights w'_j = C(N - 2 - j, k - 1) / C(N - 1, k) on the
    others in order, so the estimate without i is T_0 + D_i with T_0 the same for every i
    and D_i = sum_{j < i} w'_j (v_j - v_{j+1}): the variance of the N leave-one-out
    estimates is that of D, one cumulative sum of weighted gaps.

    With `usable` (1 for a trial with a result, 0 for one without; the usable ones first)
    the estimate is the ratio A / B of two such U-statistics, A of the values times
    `usable` and B of `usable` (the expected result of a k-trial study given that it has
    one). With the values of the unusable trials set to 0, A's leave-one-out values are
    A_0 + D_i as above; B's are B_u = sum_{j < n_u - 1} w'_j when a usable trial is left
    out and B_d = sum_{j < n_u} w'_j when an unusable one is, and every unusable trial
    leaves the same ratio out (D_i is constant past the last usable trial): the variance
    of the ratios follows from the sums of D and D^2 in O(1) more per row. NaN where
    k > N - 1, and where leaving a trial out leaves no usable trial."""
    v = np.asarray(values)
    if usable is None:
        return _jackknife(v, k, None)
    u = np.asarray(usable)
    return _jackknife(v * u, k, (u > 0).sum(axis=-1))


def _jackknife(
    v: npt.NDArray[np.floating[Any]], k: int, n_usable: npt.NDArray[np.integer[Any]] | None
) -> FloatArray:
    """`jackknife_variance` of rows whose unusable trials (positions n_usable and after)
    hold the value 0; `n_usable` None: every trial is usable."""
    n = v.shape[-1]
    if k < 1 or k > n - 1:
        return np.full(v.shape[:-1], np.nan)
    w = dodge_weights(n - 1, k).astype(v.dtype)
    d = np.cumsum((v[..., :-1] - v[..., 1:]) * w, axis=-1)  # D_1 .. D_{N-1}; D_0 = 0
    s1 = d.sum(axis=-1, dtype=np.float64)
    s2 = np.einsum("...i,...i->...", d, d).astype(np.float64)
    if n_usable is not None:
        # Leave-one-out ratios r_i minus the constant A_0 / B_u: D_i / B_u for the n_u usable
        # trials, c_d = (A_0 + D_last) / B_d - A_0 / B_u for each of the m unusable ones.
        cw = np.concatenate([[0.0], np.cumsum(dodge_weights(n - 1, k))])
        n_u = np.asarray(n_usable)
        m = n - n_u
        last = d[..., -1].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            b_u = cw[np.maximum(n_u - 1, 0)]
            b_d = cw[np.minimum(n_u, n - 1)]
            a0 = (v[..., 1:] @ w).astype(np.float64)
            c_d = np.where(m > 0, (a0 + last) / b_d - a0 / b_u, 0.0)
            s1, s2 = (
                (s1 - m * last) / b_u + m * c_d,
                (s2 - m * last * last) / (b_u * b_u) + m * c_d * c_d,
            )
        s1 = np.where(n_u >= 2, s1, np.nan)
    return np.asarray(np.maximum((n - 1) / n * (s2 - s1 * s1 / n), 0.0), dtype=np.float64)


def _prepare(
    score: FloatArray, value: FloatArray, usable: BoolArray, present: BoolArray
) -> tuple[FloatArray, FloatArray, int]:
    """One cell's present trials sorted best first: (scores, tie-averaged values, number of
    usable trials); unusable trials last, at score +inf and value 0."""
    keep = present
    s = np.where(usable, score, np.inf)[keep].astype(np.float64)
    v = np.where(usable, value, 0.0)[keep].astype(np.float64)
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    return s, tie_averaged(s, v), int(np.isfinite(s).sum())


def _estimate(v: FloatArray, n_usable: int, k: int) -> float:
    """E_k given a result: the U-statistic of the values over that of the usable flags."""
    w = dodge_weights(len(v), k)[:n_usable]
    return float(w @ v[:n_usable] / w.sum())


def expected_best_of_k(
    score: FloatArray,
    value: FloatArray,
    usable: BoolArray,
    present: BoolArray,
    k: int,
) -> FloatArray:
    """The expected best-of-k value of every cell (leading axes), given that the k-trial
    study has a usable trial: NaN where the cell has fewer than k present trials, no usable
    trial, or a usable trial without a value."""
    cells = score.shape[:-1]
    flat = [x.reshape(-1, score.shape[-1]) for x in (score, value, usable, present)]
    out = np.full(flat[0].shape[0], np.nan)
    for c in range(len(out)):
        s, v, n_u = _prepare(flat[0][c], flat[1][c], flat[2][c], flat[3][c])
        if len(s) < k or k < 1 or n_u < 1 or not np.isfinite(v[:n_u]).all():
            continue
        out[c] = _estimate(v, n_u, k)
    return out.reshape(cells)


class PairTests:
    """Arrays over cells (C,): `difference` (delta), `se` (its jackknife standard error),
    `lo`, `hi`, `p_value`, `p_noninferior` (p-value for "general worse by at least the
    margin"), `margin`, `special_expected`, `general_expected`, `p_general_not_worse` (exact
    P(a k-trial study of the general optimizer is not worse than an independent one of the
    special optimizer), given that both have a result), `no_result_*` (P(a k-trial study
    has no usable trial)), `n_special`, `n_general`, `k`, `tested` (tested: 1 <= k <= N - 1
    and N >= `min_test_trials(alpha)` in both groups, and two usable trials in each),
    `n_resamples` (bootstrap resamples drawn: n_boot, or FIRST_BATCH where
    both p-values of that batch were at least STOP_FACTOR x alpha)."""

    def __init__(self, n_cells: int) -> None:
        nan = np.full(n_cells, np.nan)
        self.difference = nan.copy()
        self.se = nan.copy()
        self.lo = nan.copy()
        self.hi = nan.copy()
        self.p_value = nan.copy()
        self.p_noninferior = nan.copy()
        self.margin = nan.copy()
        self.special_expected = nan.copy()
        self.general_expected = nan.copy()
        self.p_general_not_worse = nan.copy()
        self.no_result_special = nan.copy()
        self.no_result_general = nan.copy()
        self.n_special = np.zeros(n_cells, dtype=np.int64)
        self.n_general = np.zeros(n_cells, dtype=np.int64)
        self.k = np.zeros(n_cells, dtype=np.int64)
        self.tested = np.zeros(n_cells, dtype=bool)
        self.n_resamples = np.zeros(n_cells, dtype=np.int64)


def _no_result(n: int, n_unusable: int, k: int) -> float:
    """C(n_unusable, k) / C(n, k): the chance that k trials drawn without replacement are
    all unusable."""
    p = 1.0
    for i in range(k):
        p *= max(n_unusable - i, 0) / (n - i)
    return p


def _studentize(diff: FloatArray, se: FloatArray) -> FloatArray:
    """diff / se, with 0 / 0 = 0 and x / 0 = sign(x) inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.sign(diff) * np.inf)
    return np.where((se == 0) & (diff == 0), 0.0, t)


def bootstrap_t(
    vg: FloatArray,
    n_ug: int,
    vs: FloatArray,
    n_us: int,
    k: int,
    n_boot: int,
    rng: np.random.Generator,
) -> FloatArray:
    """`n_boot` draws of the studentized statistic T* = (delta* - theta) / se* for two groups
    of tie-averaged values sorted best first, the first `n_ug` / `n_us` usable (each group
    resampled with replacement on its own); sorted ascending, resamples whose statistic is
    undefined left out: a group with fewer than two usable trials, or no variance estimate
    (se* = 0: every usable trial drawn is one and the same)."""
    ng, ns = len(vg), len(vs)
    # Centred and in float32 for speed: T* needs about 4 digits; the centring keeps them
    # whatever the metric's offset (losses of 25-87 differ in the third digit).
    pooled = np.concatenate([vg[:n_ug], vs[:n_us]])
    centre = float(np.median(pooled))
    scale = float(np.max(np.abs(pooled - centre))) or 1.0
    # Unusable trials hold 0 (they are never selected; `_jackknife` needs the 0).
    g32 = np.where(np.arange(ng) < n_ug, (vg - centre) / scale, 0.0).astype(np.float32)
    s32 = np.where(np.arange(ns) < n_us, (vs - centre) / scale, 0.0).astype(np.float32)
    rg, rs = _replace_weights(ng, k)[:n_ug], _replace_weights(ns, k)[:n_us]
    theta = float(rg @ g32[:n_ug] / rg.sum() - rs @ s32[:n_us] / rs.sum())
    wg = dodge_weights(ng, k).astype(np.float32)
    ws = dodge_weights(ns, k).astype(np.float32)
    # Sum of the weights of the first j positions: the chance of a result with j usable.
    cg = np.concatenate([[0.0], np.cumsum(dodge_weights(ng, k))])
    cs = np.concatenate([[0.0], np.cumsum(dodge_weights(ns, k))])
    out = np.empty(n_boot)
    rows = max(1, 2_000_000 // max(ng + ns, 1))
    index_type = np.int16 if max(ng, ns) < 2**15 else np.int32
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        ig = np.sort(rng.integers(0, ng, size=(stop - start, ng), dtype=index_type), axis=1)
        is_ = np.sort(rng.integers(0, ns, size=(stop - start, ns), dtype=index_type), axis=1)
        a, b = g32[ig], s32[is_]  # resampled positions stay sorted best first
        ua = None if n_ug == ng else (ig < n_ug).sum(axis=1)
        ub = None if n_us == ns else (is_ < n_us).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ea = (a @ wg).astype(np.float64) / (1.0 if ua is None else cg[ua])
            eb = (b @ ws).astype(np.float64) / (1.0 if ub is None else cs[ub])
        diff = ea - eb
        se = np.sqrt(_jackknife(a, k, ua) + _jackknife(b, k, ub))
        # A resample without a variance estimate (se* = 0 or undefined) has no statistic.
        out[start:stop] = np.where(se > 0, _studentize(diff - theta, se), np.nan)
    return np.sort(out[~np.isnan(out)])


def _rejections(n_boot: int, alpha: float) -> int:
    """The largest count c of resamples as extreme as observed with (1 + c) / (1 + n_boot)
    < alpha (-1: no count is small enough)."""
    return math.ceil(alpha * (1 + n_boot) - 1) - 1


def pair_tests(
    score_g: FloatArray,
    value_g: FloatArray,
    usable_g: BoolArray,
    present_g: BoolArray,
    score_s: FloatArray,
    value_s: FloatArray,
    usable_s: BoolArray,
    present_s: BoolArray,
    *,
    budget: int | None,
    n_boot: int,
    alpha: float,
    margin: FloatArray | float,
    seeds: IntArray,
    interval: BoolArray | None = None,
    test: BoolArray | None = None,
) -> PairTests:
    """Bootstrap-t tests of E_k(general) - E_k(special) for every cell (first axis, C).

    Inputs are (C, N) trial arrays (score and value oriented, smaller is better), `margin`
    (one, or (C,)) and `seeds` (C, key) seeding each cell's own stream (labels, not
    positions). `budget` None: `default_budget` of the two present-trial counts. A cell
    whose k exceeds a present count, that has no usable trial, or whose usable trials lack
    a value stays NaN; one whose k equals a present count, with fewer than
    `min_test_trials(alpha)` present trials or fewer than two usable ones gets the estimates
    but no test (`tested` False). `test` (C,): where False, nothing is tested (pairs that are not
    inclusions as stored); `interval` (C,): where False, lo and hi are left NaN.
    """
    n_cells = score_g.shape[0]
    out = PairTests(n_cells)
    margins = np.broadcast_to(np.asarray(margin, dtype=np.float64), (n_cells,))
    out.margin = margins.copy()
    for c in range(n_cells):
        sg, vg, n_ug = _prepare(score_g[c], value_g[c], usable_g[c], present_g[c])
        ss, vs, n_us = _prepare(score_s[c], value_s[c], usable_s[c], present_s[c])
        ng, ns = len(sg), len(ss)
        out.n_general[c], out.n_special[c] = ng, ns
        k = default_budget(ns, ng) if budget is None else budget
        out.k[c] = k
        if k < 1 or k > ng or k > ns or n_ug < 1 or n_us < 1:
            continue
        if not (np.isfinite(vg[:n_ug]).all() and np.isfinite(vs[:n_us]).all()):
            continue
        out.no_result_general[c] = _no_result(ng, ng - n_ug, k)
        out.no_result_special[c] = _no_result(ns, ns - n_us, k)
        out.general_expected[c] = _estimate(vg, n_ug, k)
        out.special_expected[c] = _estimate(vs, n_us, k)
        diff = out.general_expected[c] - out.special_expected[c]
        out.difference[c] = diff
        # Exact P(general's k-trial study not worse than special's), given that both have a
        # result: ties count as not worse.
        wg, ws = dodge_weights(ng, k)[:n_ug], dodge_weights(ns, k)[:n_us]
        not_worse = vg[:n_ug, None] <= vs[None, :n_us]
        out.p_general_not_worse[c] = float(wg @ not_worse @ ws / (wg.sum() * ws.sum()))
        if untested_reason(k, min(ng, ns), alpha) or n_ug < 2 or n_us < 2:
            continue
        if test is not None and not test[c]:
            continue
        out.tested[c] = True
        ug = None if n_ug == ng else (np.arange(ng) < n_ug).astype(np.float64)
        us = None if n_us == ns else (np.arange(ns) < n_us).astype(np.float64)
        se = float(np.sqrt(jackknife_variance(vg, k, ug) + jackknife_variance(vs, k, us)))
        out.se[c] = se
        gen = np.random.default_rng([int(x) for x in seeds[c]])
        t0 = float(_studentize(np.array(diff), np.array(se)))
        tm = float(_studentize(np.array(diff - margins[c]), np.array(se)))

        def p_values(t: FloatArray, t0: float = t0, tm: float = tm) -> tuple[float, float]:
            return (
                (1.0 + float((t >= t0).sum())) / (1.0 + len(t)),
                (1.0 + float((t <= tm).sum())) / (1.0 + len(t)),
            )

        t_star = bootstrap_t(vg, n_ug, vs, n_us, k, min(n_boot, FIRST_BATCH), gen)
        if n_boot > FIRST_BATCH and min(p_values(t_star)) < STOP_FACTOR * alpha:
            rest = bootstrap_t(vg, n_ug, vs, n_us, k, n_boot - FIRST_BATCH, gen)
            t_star = np.sort(np.concatenate([t_star, rest]))
        out.n_resamples[c] = len(t_star)
        out.p_value[c], out.p_noninferior[c] = p_values(t_star)
        if not np.isfinite(margins[c]):  # no margin: no non-inferiority test
            out.p_noninferior[c] = np.nan
        r = _rejections(len(t_star), alpha)
        if (
            (interval is None or interval[c])
            and r >= 0
            and np.isfinite(t_star[-1 - r])
            and np.isfinite(t_star[r])
        ):
            # lo: the largest delta whose test of "delta_k <= delta" rejects (open bound).
            out.lo[c] = diff - se * float(t_star[-1 - r])
            out.hi[c] = diff - se * float(t_star[r])
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
    p_value: FloatArray,
    p_noninferior: FloatArray,
    included: BoolArray,
    tested: BoolArray,
    *,
    alpha: float,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.str_]]:
    """Holm over every tested cell (one family: the whole array) for "violated", and Holm
    over the same cells for "consistent" (the non-inferiority p-values, their own family of
    the same size), then the verdicts: not_included where not `included`; not_tested where
    included but not `tested`; violated where the adjusted p-value is below alpha;
    consistent where the adjusted non-inferiority p-value is; else inconclusive. Returns
    (p_adjusted, p_noninferior_adjusted, verdict)."""
    use = included & tested
    adjusted = holm(np.where(use, p_value, np.nan).reshape(-1)).reshape(use.shape)
    adjusted_ni = holm(np.where(use, p_noninferior, np.nan).reshape(-1)).reshape(use.shape)
    violated = np.isfinite(adjusted) & (adjusted < alpha)
    consistent = np.isfinite(adjusted_ni) & (adjusted_ni < alpha)
    out = np.where(
        ~included,
        Verdict.NOT_INCLUDED.value,
        np.where(
            ~tested,
            Verdict.NOT_TESTED.value,
            np.where(
                violated,
                Verdict.VIOLATED.value,
                np.where(consistent, Verdict.CONSISTENT.value, Verdict.INCONCLUSIVE.value),
            ),
        ),
    )
    return adjusted, adjusted_ni, out.astype(str)
