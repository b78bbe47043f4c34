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

Uncertainty: a tuned result is the test value of the best of a cell's N trials, and which
N hyperparameter settings were drawn is random. Each cell's trials are resampled with
replacement (`n_boot` times, independently per cell; unusable trials are resampled too and
count towards N), the best trial is selected again (ties: mean of the tied trials' test
values), and percentile intervals (`level`, default 95%) are read off the differences of
the resampled tuned values: per optimizer between the protocols (`effect_lo/hi`), and per
pair of optimizers within a protocol (`pair_lo/hi`). The intervals cover the tuning
randomness only, not a new test set.

A percentile bootstrap of a best-of-N value is anti-conservative on its own (in a
simulation with identical protocols and N = 16 its 95% interval excluded 0 in about 11%
of studies), so a difference is called *clear* only when also a permutation test rejects
"no difference": under that hypothesis the two cells' trials are exchangeable, so the
pooled trials are split at random into two groups of the original sizes (`n_boot` times),
each group's tuned value is recomputed, and the two-sided p-value is the share of splits
with a difference at least as large as the one observed. p-values are Holm-adjusted over
the protocol effects of the comparison, and separately over the optimizer pairs of each
protocol. Clear = adjusted p below 1 - `level`, the interval excludes 0, and the
difference exceeds `step`, the smallest gap between distinct test values observed on the
workload (one test example for an error rate). A ranking flip is `supported` only when
both orders are clear. tests/analysis/test_protocol_intervals.py checks the false-clear
rate by simulation.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import competition_ranks, kendall_tau
from optcmp_analysis._records import json_value, restrict
from optcmp_analysis._selection import RepeatMode, SelectionRule, select_best, trial_scores
from optcmp_data import Direction

__all__ = ["Match", "ProtocolComparison", "protocol_sensitivity"]

FloatArray = npt.NDArray[np.float64]


class Match(enum.StrEnum):
    """How optimizers of the two protocols are paired."""

    NAME = "name"  # the same optimizer label (two archives only)
    FAMILY = "family"  # the same optimizer family (each family once per protocol)


@attrs.frozen
class ProtocolComparison:
    """Tuned test metrics and ranks of matched optimizers under two protocols.

    `data` dims (protocol, workload, optimizer): `optimizer` holds the matched key (a name
    or a family); variables `label` (the optimizer's label in that protocol's archive),
    `trial`, `test_value`, `selection_value`, `rank` (1 = best, ties share the best rank,
    NaN where the key is not in both protocols); per workload `kendall_tau` between the
    two rankings, `metric_name`, `direction`, `value_lo`, `value_hi` (the interval of each
    tuned test value over resampled trials), `step` (the smallest gap between distinct
    test values); `effect_lo`, `effect_hi` (workload, optimizer): the interval of the
    second protocol's tuned value minus the first's; `pair_lo`, `pair_hi` (protocol,
    workload, optimizer, other): the interval of other's tuned value minus optimizer's,
    oriented (times -1 for direction "max") so that positive means optimizer is better.
    Coordinate `protocol` holds the two labels; attribute-like fields `n_boot`, `level`.
    """

    data: xr.Dataset
    match: Match
    rule: SelectionRule
    n_boot: int = 0
    level: float = 0.95

    @property
    def protocols(self) -> tuple[str, str]:
        a, b = (str(p) for p in self.data["protocol"].values)
        return a, b

    def flips(self) -> list[dict[str, Any]]:
        """Pairs ranked one way under the first protocol and strictly the other way under
        the second, with the test-metric gap under each (positive: by how much the better
        one of that protocol was better), the intervals of both gaps, and `supported`: both
        orders clear (interval excludes 0 and the gap exceeds the workload's `step`)."""
        d = self.data
        first, second = self.protocols
        out: list[dict[str, Any]] = []
        for w in d["workload"].values:
            r = d["rank"].sel(workload=w).values  # (protocol, optimizer)
            v = d["test_value"].sel(workload=w).values
            sign = 1.0 if str(d["direction"].sel(workload=w).item()) == Direction.MIN else -1.0
            keys = [str(k) for k in d["optimizer"].values]
            step = float(d["step"].sel(workload=w))
            lo = d["pair_lo"].sel(workload=w).values  # (protocol, optimizer, other)
            hi = d["pair_hi"].sel(workload=w).values
            pp = d["pair_p_adjusted"].sel(workload=w).values
            alpha = 1 - self.level
            for i, a in enumerate(keys):
                for j, b in enumerate(keys):
                    if r[0, i] < r[0, j] and r[1, i] > r[1, j]:
                        gap_first = float(sign * (v[0, j] - v[0, i]))
                        gap_second = float(sign * (v[1, i] - v[1, j]))
                        clear_first = _clear(
                            lo[0, i, j], np.inf, gap_first, step, pp[0, i, j], alpha
                        ) and bool(lo[0, i, j] > 0)
                        clear_second = _clear(
                            -np.inf, hi[1, i, j], gap_second, step, pp[1, i, j], alpha
                        ) and bool(hi[1, i, j] < 0)
                        out.append(
                            {
                                "record": "flip",
                                "workload": str(w),
                                "optimizer": a,
                                "other": b,
                                "first": first,
                                "second": second,
                                "metric": str(d["metric_name"].sel(workload=w).item()),
                                "split": "test",
                                "value_first": float(v[0, i]),
                                "other_value_first": float(v[0, j]),
                                "value_second": float(v[1, i]),
                                "other_value_second": float(v[1, j]),
                                "gap_first": gap_first,
                                "gap_second": gap_second,
                                "gap_first_lo": float(lo[0, i, j]),
                                "gap_first_hi": float(hi[0, i, j]),
                                "gap_second_lo": float(-hi[1, i, j]),
                                "gap_second_hi": float(-lo[1, i, j]),
                                "rank_change": float(r[1, i] - r[0, i]),
                                "p_first": float(pp[0, i, j]),
                                "p_second": float(pp[1, i, j]),
                                "supported": clear_first and clear_second,
                            }
                        )
        return out

    def pairs(self) -> list[dict[str, Any]]:
        """Every pair of optimizers under each protocol, oriented so that `optimizer` is
        the better one: gap (> 0), its interval `lo`, `hi`, the permutation p-value and its
        Holm adjustment over the protocol's pairs, and `clear` (see the module docstring)."""
        d = self.data
        out: list[dict[str, Any]] = []
        alpha = 1 - self.level
        keys = [str(k) for k in d["optimizer"].values]
        for pi, protocol in enumerate(self.protocols):
            for w in (str(x) for x in d["workload"].values):
                c = d.sel(workload=w)
                v = c["test_value"].values[pi]
                sign = -1.0 if str(c["direction"].item()) == Direction.MAX else 1.0
                step = float(c["step"])
                for i, a in enumerate(keys):
                    for j, b in enumerate(keys):
                        gap = float(sign * (v[j] - v[i]))
                        if j == i or not np.isfinite(gap) or gap < 0 or (gap == 0 and j < i):
                            continue
                        lo = float(c["pair_lo"].values[pi, i, j])
                        hi = float(c["pair_hi"].values[pi, i, j])
                        p_adj = float(c["pair_p_adjusted"].values[pi, i, j])
                        out.append(
                            {
                                "record": "pair",
                                "protocol": protocol,
                                "workload": w,
                                "optimizer": a,
                                "other": b,
                                "metric": str(c["metric_name"].item()),
                                "split": "test",
                                "value": float(v[i]),
                                "other_value": float(v[j]),
                                "gap": gap,
                                "lo": lo,
                                "hi": hi,
                                "p_value": float(c["pair_p"].values[pi, i, j]),
                                "p_adjusted": p_adj,
                                "clear": _clear(lo, hi, gap, step, p_adj, alpha),
                            }
                        )
        return out

    def to_dataset(self) -> xr.Dataset:
        out = self.data.copy()
        out.attrs = {
            "match": str(self.match),
            "rule": str(self.rule),
            "n_boot": self.n_boot,
            "level": self.level,
        }
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """Records "cell" (one per workload and matched optimizer in both protocols) and
        "flip" (see `flips`). Cell keys: workload, optimizer, first, second, label_first,
        label_second, trial_first, trial_second, metric, split ("test"), value_first,
        value_second, value (second minus first), lo, hi (its interval), p_value (the
        permutation test's), p_adjusted (Holm over the comparison's cells), clear (p_adjusted
        below 1 - level, the interval excludes 0 and |value| exceeds step), step, level,
        rank_first,
        rank_second, rank_change (second minus first), kendall_tau."""
        d = self.data
        first, second = self.protocols
        out: list[dict[str, Any]] = []
        for w in d["workload"].values:
            tau = float(d["kendall_tau"].sel(workload=w))
            for k in d["optimizer"].values:
                c = d.sel(workload=w, optimizer=k)
                rank = c["rank"].values
                if not np.isfinite(rank).all():
                    continue
                v = c["test_value"].values
                t = c["trial"].values
                out.append(
                    {
                        "record": "cell",
                        "workload": str(w),
                        "optimizer": str(k),
                        "first": first,
                        "second": second,
                        "label_first": str(c["label"].values[0]),
                        "label_second": str(c["label"].values[1]),
                        "trial_first": int(t[0]),
                        "trial_second": int(t[1]),
                        "metric": str(d["metric_name"].sel(workload=w).item()),
                        "split": "test",
                        "value_first": float(v[0]),
                        "value_second": float(v[1]),
                        "value": float(v[1] - v[0]),
                        "lo": float(c["effect_lo"].values),
                        "hi": float(c["effect_hi"].values),
                        "p_value": float(c["effect_p"].values),
                        "p_adjusted": float(c["effect_p_adjusted"].values),
                        "clear": _clear(
                            float(c["effect_lo"].values),
                            float(c["effect_hi"].values),
                            float(v[1] - v[0]),
                            float(d["step"].sel(workload=w)),
                            float(c["effect_p_adjusted"].values),
                            1 - self.level,
                        ),
                        "step": float(d["step"].sel(workload=w)),
                        "level": self.level,
                        "rank_first": float(rank[0]),
                        "rank_second": float(rank[1]),
                        "rank_change": float(rank[1] - rank[0]),
                        "kendall_tau": tau,
                    }
                )
        out.extend(self.flips())
        out.extend(self.pairs())
        return [json_value(r) for r in out]


def _clear(lo: float, hi: float, value: float, step: float, p: float, alpha: float) -> bool:
    """A difference larger than the metric's step, its interval excluding 0, and its
    (adjusted) permutation p-value below alpha."""
    return bool((lo > 0 or hi < 0) and abs(value) > step and p < alpha)


def _smallest_step(values: FloatArray) -> float:
    """The smallest positive gap between distinct finite values (0 if none)."""
    u = np.unique(values[np.isfinite(values)])
    gaps = np.diff(u)
    gaps = gaps[gaps > 0]
    return float(gaps.min()) if gaps.size else 0.0


def _tuned_draws(
    score: FloatArray,
    test: FloatArray,
    present: npt.NDArray[np.bool_],
    n_boot: int,
    rng: np.random.Generator,
) -> FloatArray:
    """`n_boot` resampled tuned test values of one cell (NaN where a resample has no
    usable trial): resample the present trials with replacement, select the best score,
    average the test values of tied best trials."""
    pos = np.flatnonzero(present)
    if pos.size == 0:
        return np.full(n_boot, np.nan)
    idx = rng.choice(pos, size=(n_boot, pos.size), replace=True)
    return _tuned_value(score[idx], test[idx])


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


def _permutation_p(
    a: tuple[FloatArray, FloatArray],
    b: tuple[FloatArray, FloatArray],
    n_perm: int,
    rng: np.random.Generator,
) -> float:
    """Two-sided permutation p-value of tuned(b) - tuned(a), where a and b are (score,
    test) of the present trials of two cells (exchangeable under "no difference")."""
    na = a[0].size
    if na == 0 or b[0].size == 0:
        return math.nan
    score = np.concatenate([a[0], b[0]])
    test = np.concatenate([a[1], b[1]])
    observed = _tuned_value(b[0], b[1]) - _tuned_value(a[0], a[1])
    if not np.isfinite(observed):
        return math.nan
    perm = rng.permuted(np.broadcast_to(np.arange(score.size), (n_perm, score.size)), axis=1)
    diff = _tuned_value(score[perm[:, na:]], test[perm[:, na:]]) - _tuned_value(
        score[perm[:, :na]], test[perm[:, :na]]
    )
    extreme = np.abs(diff[np.isfinite(diff)]) >= abs(float(observed)) - 1e-12
    return float((extreme.sum() + 1) / (extreme.size + 1))


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


def _interval(diff: FloatArray, level: float) -> tuple[float, float]:
    ok = diff[np.isfinite(diff)]
    if ok.size < 2:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(ok, [tail, 100 - tail])
    return float(lo), float(hi)


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
    n_boot: int = 2000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> ProtocolComparison:
    """Compare rankings under two protocols: two archives (`second` given; `protocols`
    are then just their labels, default ("first", "second")), or the two search-space
    names `protocols` of one archive. `match` defaults to "name" for two archives and
    "family" within one. Rankings use the test metric of the trial selected by `rule`;
    intervals come from `n_boot` resamples of each cell's trials (module docstring).
    """
    if n_boot < 2:
        raise AnalysisError(f"n_boot: {n_boot} is too small; use at least 2")
    if not 0 < level < 1:
        raise AnalysisError(f"level: {level} must be between 0 and 1")
    rng = np.random.default_rng(0) if rng is None else rng
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
        archives = (first, first)
        labels = (str(protocols[0]), str(protocols[1]))
    else:
        archives = (first, second)
        labels = (
            (str(protocols[0]), str(protocols[1])) if protocols is not None else ("first", "second")
        )
        if len(set(labels)) != 2:
            raise AnalysisError(f"protocols: labels {list(labels)} must be two different names")
        match = Match(match or Match.NAME)
    restricted = [restrict(a, workloads=workloads) for a in archives]

    per: list[dict[tuple[str, str], tuple[str, int, float, float]]] = []
    draws: list[dict[tuple[str, str], FloatArray]] = []
    trials: list[dict[tuple[str, str], tuple[FloatArray, FloatArray]]] = []
    steps: dict[str, float] = {}
    facts: dict[str, tuple[str, str]] = {}
    for ds, label in zip(restricted, labels, strict=True):
        scores = trial_scores(ds, rule=rule, repeats=repeats)
        sel = select_best(scores)
        if set(sel.data["trial"].dims) != {"workload", "optimizer"}:
            raise AnalysisError("protocol comparison needs one selection per cell (repeats 'mean')")
        if second is None:
            cells = ds["space_name"].transpose("workload", "optimizer").values.astype(str) == label
        else:
            cells = np.ones((ds.sizes["workload"], ds.sizes["optimizer"]), dtype=bool)
        keyed = _keyed(sel.data, ds, cells, match, label)
        per.append(keyed)
        sd = scores.data.transpose("workload", "optimizer", "trial", ...)
        opt_index = {str(o): i for i, o in enumerate(sd["optimizer"].values)}
        wl_index = {str(w): i for i, w in enumerate(sd["workload"].values)}
        cell_draws: dict[tuple[str, str], FloatArray] = {}
        cell_trials: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
        for (w, key), found in keyed.items():
            wi, oi = wl_index[w], opt_index[found[0]]
            test_v = sd["test_value"].values[wi, oi]
            here = sd["present"].values[wi, oi].astype(bool)
            cell_draws[(w, key)] = _tuned_draws(
                sd["score"].values[wi, oi], test_v, here, n_boot, rng
            )
            cell_trials[(w, key)] = (sd["score"].values[wi, oi][here], test_v[here])
            steps[w] = min(steps.get(w, math.inf), _smallest_step(test_v))
        draws.append(cell_draws)
        trials.append(cell_trials)
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

    common_w = sorted({w for w, _ in per[0]} & {w for w, _ in per[1]})
    if not common_w:
        raise AnalysisError(f"protocols {labels[0]!r} and {labels[1]!r} share no workload")
    keys = sorted({k for w, k in per[0] if w in common_w} | {k for w, k in per[1] if w in common_w})
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
            f"protocols {labels[0]!r} and {labels[1]!r} have no optimizer with a usable trial "
            "in both"
        )
    scored = np.where(both[None], sign[None, :, None] * test, np.nan)
    rank = np.where(both[None], competition_ranks(scored, axis=-1), np.nan)
    tau = np.array([kendall_tau(rank[0, wi], rank[1, wi]) for wi in range(n_w)])
    effect = np.full((2, n_w, n_k), np.nan)  # lo, hi
    value_ci = np.full((2, 2, n_w, n_k), np.nan)  # lo/hi, protocol, workload, key
    pair = np.full((2, 2, n_w, n_k, n_k), np.nan)  # lo/hi, protocol, workload, a, b
    effect_p = np.full((n_w, n_k), np.nan)
    pair_p = np.full((2, n_w, n_k, n_k), np.nan)
    nan_draws = np.full(n_boot, np.nan)
    for wi, w in enumerate(common_w):
        for ki, k in enumerate(keys):
            if both[wi, ki]:
                diff = draws[1][(w, k)] - draws[0][(w, k)]
                effect[:, wi, ki] = _interval(diff, level)
                effect_p[wi, ki] = _permutation_p(trials[0][(w, k)], trials[1][(w, k)], n_boot, rng)
            for pi in range(2):
                a = draws[pi].get((w, k), nan_draws)
                if both[wi, ki]:
                    value_ci[:, pi, wi, ki] = _interval(a, level)
                for kj, k2 in enumerate(keys):
                    if kj != ki and both[wi, ki] and both[wi, kj]:
                        b = draws[pi].get((w, k2), nan_draws)
                        pair[:, pi, wi, ki, kj] = _interval(sign[wi] * (b - a), level)
                        if kj > ki:
                            pp = _permutation_p(
                                trials[pi][(w, k)], trials[pi][(w, k2)], n_boot, rng
                            )
                            pair_p[pi, wi, ki, kj] = pair_p[pi, wi, kj, ki] = pp
    cell3 = ("protocol", "workload", "optimizer")
    data = xr.Dataset(
        {
            "label": (("protocol", "workload", "optimizer"), names.astype(str)),
            "trial": (("protocol", "workload", "optimizer"), trial),
            "test_value": (("protocol", "workload", "optimizer"), test),
            "selection_value": (("protocol", "workload", "optimizer"), selv),
            "rank": (("protocol", "workload", "optimizer"), rank),
            "kendall_tau": ("workload", tau),
            "value_lo": (cell3, value_ci[0]),
            "value_hi": (cell3, value_ci[1]),
            "effect_p": (("workload", "optimizer"), effect_p),
            "effect_p_adjusted": (("workload", "optimizer"), _holm(effect_p)),
            "pair_p": ((*cell3, "other"), pair_p),
            "pair_p_adjusted": ((*cell3, "other"), _pair_holm(pair_p)),
            "effect_lo": (("workload", "optimizer"), effect[0]),
            "effect_hi": (("workload", "optimizer"), effect[1]),
            "pair_lo": ((*cell3, "other"), pair[0]),
            "pair_hi": ((*cell3, "other"), pair[1]),
            "step": ("workload", np.array([steps.get(w, 0.0) for w in common_w])),
            "metric_name": ("workload", np.array([facts[w][0] for w in common_w], dtype=str)),
            "direction": ("workload", np.array([facts[w][1] for w in common_w], dtype=str)),
        },
        coords={
            "protocol": np.array(labels, dtype=str),
            "workload": np.array(common_w, dtype=str),
            "optimizer": np.array(keys, dtype=str),
            "other": np.array(keys, dtype=str),
        },
    )
    return ProtocolComparison(
        data=data, match=match, rule=SelectionRule(rule), n_boot=n_boot, level=level
    )
