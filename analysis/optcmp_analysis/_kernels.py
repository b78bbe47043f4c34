"""numpy kernels for best-of-k statistics and the per-cell reductions every analysis shares;
every kernel takes the trial axis as its last axis (leading axes are independent cells) or
an explicit `axis`.

Dependency rule: numpy and scipy (special, stats) only; no xarray here (the public functions
in _budget, _rank and _inclusion reach these through `xr.apply_ufunc` with named core dims).

The key fact used throughout: sort a cell's present trials best first (usable trials by
score, ties by position, their values then averaged by `sorted_values`; then unusable
ones). Drawing k trials uniformly with replacement
and selecting the best of them is the same as drawing k uniform *sorted positions* and
taking the smallest. So one bootstrap replicate is the row minimum of a (B, k) matrix of
uniform integers in [0, n), with no per-draw Python loop, and the exact distribution of the
selected position j is P(j) = ((n - j) / n)^k - ((n - j - 1) / n)^k (Dodge et al. 2019 in
this orientation); without replacement P(j) = C(n - j - 1, k - 1) / C(n, k). A draw whose
smallest position is >= n_usable contains no usable trial and has no result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from optcmp_data import check_bootstrap

__all__ = [
    "LEVELS",
    "argbest",
    "bootstrap_positions",
    "competition_ranks",
    "exact_probabilities",
    "exact_rank_probabilities",
    "kendall_tau",
    "mean_where",
    "position_probabilities",
    "sort_trials",
    "sorted_values",
    "weighted_summary",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Quantile levels of the reported band: 5%, median, 95%.
LEVELS = (0.05, 0.5, 0.95)
# Rows of (B, k) uniforms drawn at once; bounds memory at a few MB per chunk.
_CHUNK_ELEMENTS = 4_000_000


def sort_trials(
    score: FloatArray, usable: BoolArray, present: BoolArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Positions sorted best first (usable by score, ties by position; then the other present
    trials; then missing ones), the number of present and of usable trials; last axis.
    Gather values with `sorted_values`, which averages tied trials (the tie rule)."""
    category = np.where(usable, 0, np.where(present, 1, 2))
    key = np.where(usable, score, 0.0)
    # lexsort sorts by its last key first and is stable, so ties keep the lower position.
    order = np.lexsort((key, category), axis=-1).astype(np.int64)
    return order, present.sum(axis=-1).astype(np.int64), usable.sum(axis=-1).astype(np.int64)


def sorted_values(
    values: FloatArray, score: FloatArray, usable: BoolArray, order: IntArray
) -> FloatArray:
    """`values` in the order of `sort_trials`, with every run of usable trials tied on the
    score replaced by the run's mean: the package's one tie rule (a selection among tied
    trials is made at random, so its expected value is their mean; the first position of a
    run, the one every best-of-k kernel selects, carries it). Last axis."""
    v = np.take_along_axis(np.asarray(values, dtype=np.float64), order, axis=-1)
    if v.shape[-1] < 2:
        return v
    s = np.take_along_axis(np.asarray(score, dtype=np.float64), order, axis=-1)
    u = np.take_along_axis(np.asarray(usable, dtype=bool), order, axis=-1)
    same = (s[..., 1:] == s[..., :-1]) & u[..., 1:] & u[..., :-1]
    if not same.any():
        return v
    n = v.shape[-1]
    start = np.concatenate([np.ones((*v.shape[:-1], 1), dtype=bool), ~same], axis=-1)
    gid = np.cumsum(start, axis=-1) - 1
    rows = np.arange(int(np.prod(v.shape[:-1]))).reshape(*v.shape[:-1], 1)
    flat = (gid + rows * n).reshape(-1)
    sums = np.bincount(flat, weights=v.reshape(-1), minlength=rows.size * n)
    counts = np.bincount(flat, minlength=rows.size * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / np.maximum(counts, 1)
    return np.asarray(means[flat].reshape(v.shape))


def exact_probabilities(
    n_present: IntArray, k: int, n_trials: int, *, replace: bool = True
) -> FloatArray:
    """P(the best of k draws is sorted position j), shape (*cells, n_trials).

    Positions beyond a cell's n_present have probability 0. Without replacement, a budget
    larger than n_present is impossible and gives NaN.
    """
    n = np.asarray(n_present, dtype=np.float64)[..., None]
    j = np.arange(n_trials, dtype=np.float64)
    inside = j < n
    with np.errstate(divide="ignore", invalid="ignore"):
        if replace:
            upper = np.clip((n - j) / n, 0.0, 1.0)
            lower = np.clip((n - j - 1) / n, 0.0, 1.0)
            probs = upper**k - lower**k
        else:
            a = n - j - 1
            log_num = gammaln(a + 1) - gammaln(k) - gammaln(np.maximum(a - k + 2, 1))
            log_den = gammaln(n + 1) - gammaln(k + 1) - gammaln(np.maximum(n - k + 1, 1))
            probs = np.where(a >= k - 1, np.exp(log_num - log_den), 0.0)
            probs = np.where(n >= k, probs, np.nan)
    return np.where(inside, probs, 0.0).astype(np.float64)


def bootstrap_positions(
    n_present: IntArray,
    keys: IntArray,
    k: int,
    n_boot: int,
    root: int,
) -> IntArray:
    """Selected sorted position of each of `n_boot` best-of-k draws per cell: (*cells, B).

    Cells are the leading axes of `n_present`; `keys` (same leading axes + one key axis)
    seed each cell's own stream, together with `root` and `k`. -1 where a cell has no
    present trial.
    """
    cells = n_present.shape
    flat_n = n_present.reshape(-1)
    check_bootstrap(len(flat_n), n_boot)
    flat_keys = keys.reshape(len(flat_n), -1)
    out = np.full((len(flat_n), n_boot), -1, dtype=np.int64)
    rows = max(1, _CHUNK_ELEMENTS // max(k, 1))
    for c, n in enumerate(flat_n):
        if n <= 0:
            continue
        gen = np.random.default_rng([root, *(int(v) for v in flat_keys[c]), k])
        dtype = np.int16 if n < 2**15 else np.int32
        for start in range(0, n_boot, rows):
            stop = min(n_boot, start + rows)
            draws = gen.integers(0, n, size=(stop - start, k), dtype=dtype)
            out[c, start:stop] = draws.min(axis=1)
    return out.reshape(*cells, n_boot)


def position_probabilities(positions: IntArray, n_trials: int) -> FloatArray:
    """Empirical distribution of selected positions: (*cells, B) -> (*cells, n_trials)."""
    cells = positions.shape[:-1]
    flat = positions.reshape(-1, positions.shape[-1])
    c = flat.shape[0]
    valid = flat >= 0
    index = (np.arange(c)[:, None] * n_trials + flat)[valid]
    counts = np.bincount(index, minlength=c * n_trials).reshape(c, n_trials)
    probs = counts / float(positions.shape[-1])
    return probs.reshape(*cells, n_trials)


def weighted_summary(
    probs: FloatArray,
    values: FloatArray,
    n_usable: IntArray,
    levels: Sequence[float] = LEVELS,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Summaries of the selected value given a distribution over sorted positions.

    probs: (*cells, K, N) over sorted positions; values: (*cells, N) in sorted order;
    n_usable: (*cells,). Returns (mean, sd, quantiles (*cells, K, len(levels)),
    no_result (*cells, K)). Mean, sd and quantiles are conditional on a result; quantiles
    use the inverted-CDF definition (the smallest value whose cumulative probability
    reaches the level), so bootstrap and exact figures are defined alike. NaN where the
    distribution puts weight on a missing value or there is no result at all.
    """
    n = values.shape[-1]
    usable_pos = np.arange(n) < n_usable[..., None]  # (*cells, N)
    w = np.where(usable_pos[..., None, :], probs, 0.0)  # (*cells, K, N)
    total = w.sum(axis=-1)
    no_result = np.clip(1.0 - total, 0.0, 1.0)
    # An exact zero no-result share must stay zero despite rounding.
    no_result = np.where(np.isclose(total, 1.0, rtol=0, atol=1e-12), 0.0, no_result)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = w / total[..., None]
    vals = np.broadcast_to(values[..., None, :], p.shape)
    weight_on_nan = ((p > 0) & ~np.isfinite(vals)).any(axis=-1)
    contrib = np.where(p > 0, p * np.where(np.isfinite(vals), vals, 0.0), 0.0)
    mean = contrib.sum(axis=-1)
    dev = np.where(p > 0, p * (np.where(np.isfinite(vals), vals, 0.0) - mean[..., None]) ** 2, 0.0)
    sd = np.sqrt(dev.sum(axis=-1))
    bad = weight_on_nan | ~(total > 0)
    mean = np.where(bad, np.nan, mean)
    sd = np.where(bad, np.nan, sd)

    perm = np.argsort(np.where(np.isfinite(values), values, np.inf), axis=-1, kind="stable")
    v_sorted = np.take_along_axis(values, perm, axis=-1)
    p_sorted = np.take_along_axis(p, np.broadcast_to(perm[..., None, :], p.shape), axis=-1)
    cum = np.cumsum(np.where(np.isfinite(p_sorted), p_sorted, 0.0), axis=-1)
    quantiles = []
    for level in levels:
        idx = np.argmax(cum >= level - 1e-12, axis=-1)
        q = np.take_along_axis(
            np.broadcast_to(v_sorted[..., None, :], p.shape), idx[..., None], axis=-1
        )[..., 0]
        quantiles.append(np.where(bad, np.nan, q))
    return mean, sd, np.stack(quantiles, axis=-1), no_result


def exact_rank_probabilities(values: FloatArray, probs: FloatArray) -> FloatArray:
    """Exact rank distribution of independent discrete outcomes (smaller is better).

    values, probs: (*cells, O, N): optimizer o's outcome is values[o, j] with probability
    probs[o, j]; NaN values (or missing mass, 1 - sum_j probs[o, j]) are "no result". Ranks
    are competition ranks among the optimizers with a result (1 + the number strictly
    better; ties share the best rank); an optimizer without a result has no rank and every
    optimizer with one beats it. Returns (*cells, O, O): [o, r - 1] = P(o has a result and
    rank r), so a row sums to o's probability of a result. Per atom, the number of strictly
    better competitors is Poisson-binomial (one independent Bernoulli per competitor),
    computed by the usual recursion over competitors: no Monte Carlo.
    """
    v = np.asarray(values, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    ok = np.isfinite(v) & (p > 0)
    p = np.where(ok, p, 0.0)
    filled = np.where(ok, v, np.inf)
    n_opt = v.shape[-2]
    # better[..., o, j, q] = P(competitor q's outcome is strictly better than v[o, j]).
    less = filled[..., None, None, :, :] < filled[..., :, :, None, None]  # (.., O, N, O, N)
    better = (less * p[..., None, None, :, :]).sum(axis=-1)
    # Poisson-binomial over the competitors q != o.
    count = np.zeros((*v.shape, n_opt + 1))
    count[..., 0] = 1.0
    eye = np.eye(n_opt, dtype=bool)
    for q in range(n_opt):
        b = np.where(eye[:, q][:, None], 0.0, better[..., q])  # o itself never counts
        shifted = np.concatenate([np.zeros((*v.shape, 1)), count[..., :-1]], axis=-1)
        count = count * (1.0 - b)[..., None] + shifted * b[..., None]
    out = (p[..., None] * count[..., :n_opt]).sum(axis=-2)  # (*cells, O, O)
    return np.asarray(out)


def competition_ranks(values: FloatArray, *, axis: int = -1) -> FloatArray:
    """1 + the number of strictly smaller values along `axis` (ties share the best rank);
    NaN counts as worse than every number and ties with other NaNs."""
    moved = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    filled = np.where(np.isnan(moved), np.inf, moved)
    smaller = (filled[..., None, :] < filled[..., :, None]).sum(axis=-1)
    return np.moveaxis((1 + smaller).astype(np.float64), -1, axis)


def argbest(score: FloatArray, *, axis: int = -1) -> IntArray:
    """Position of the smallest finite score along `axis` (first one on ties); -1 if none."""
    moved = np.moveaxis(np.asarray(score, dtype=np.float64), axis, -1)
    ok = np.isfinite(moved)
    filled = np.where(ok, moved, np.inf)
    pos = np.argmin(filled, axis=-1) if moved.shape[-1] else np.zeros(moved.shape[:-1], int)
    return np.where(ok.any(axis=-1), pos, -1).astype(np.int64)


def mean_where(values: FloatArray, mask: BoolArray, *, axis: int) -> FloatArray:
    """Mean over `axis` of the entries where `mask` (broadcast against `values`) holds; NaN
    and inf among them propagate; NaN where no entry is masked in."""
    mask = np.broadcast_to(mask, np.broadcast_shapes(mask.shape, values.shape))
    count = mask.sum(axis=axis)
    total = np.where(mask, values, 0.0).sum(axis=axis)
    out = np.full(count.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def kendall_tau(a: FloatArray, b: FloatArray) -> float:
    """Kendall's tau-b between two rankings over the entries finite in both; NaN with fewer
    than two such entries or a constant ranking."""
    ok = np.isfinite(a) & np.isfinite(b)
    x, y = a[ok], b[ok]
    # kendalltau warns (and returns NaN) on constant input; NaN is the honest answer.
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    import scipy.stats  # 1 s to import: only this function needs it

    return float(scipy.stats.kendalltau(x, y).statistic)
