"""Budget sensitivity (the paper's Figures 6-8): the outcome of a study with k trials,
estimated from one with N trials, by bootstrap, by closed form and exactly.

Dependency rule: numpy, xarray, attrs, optcmp_data and this package's kernels. Public
functions use named dims; the kernels in _kernels are reached through `xr.apply_ufunc`
with `trial` as the core dim, so workload, optimizer and (per-repeat) repeat dims
broadcast.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis._enums import DEFAULT_N_BOOT
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import (
    LEVELS,
    bootstrap_positions,
    exact_probabilities,
    position_probabilities,
    sort_trials,
    sorted_values,
    weighted_summary,
)
from optcmp_analysis._records import (
    Columns,
    Computed,
    Const,
    Field,
    Labels,
    Records,
    Result,
    Var,
    attr,
    cell_keys,
    finite,
    root_seed,
    where,
)
from optcmp_analysis._selection import (
    DivergedMode,
    RepeatMode,
    SelectionRule,
    TrialScores,
    usable_scores,
)

__all__ = [
    "DEFAULT_N_BOOT",
    "BudgetCurve",
    "TrialCounts",
    "best_of_k_draws",
    "budget_curve",
    "default_budgets",
    "n_trials",
    "trial_counts",
]

_STATS = (
    "mean",
    "sd",
    "median",
    "lo",
    "hi",
    "expected",
    "expected_without_replacement",
    "exact_sd",
    "exact_median",
    "exact_lo",
    "exact_hi",
    "no_result",
    "no_result_exact",
)
_TARGETS = ("test", "selection")


def n_trials(scores: TrialScores) -> int:
    """The largest number of present trials of any cell: the largest budget allowed."""
    return int(scores.data["present"].sum("trial").max())


@attrs.frozen
class TrialCounts:
    """The present-trial counts of the compared cells (cells without any trial, such as an
    optimizer that never ran on a workload, are not counted).

    `smallest` is the default budget of every analysis: a k-trial study of every compared
    cell exists only for k up to it. `fewest` names one cell with that count."""

    smallest: int
    largest: int
    fewest: str

    @property
    def mixed(self) -> bool:
        return self.smallest != self.largest

    def caveat(self, *, with_replacement: bool) -> str | None:
        """The one line a table mixing trial counts carries (None: the counts agree)."""
        if not self.mixed:
            return None
        head = (
            f"trial counts differ between cells ({self.smallest} to {self.largest}; fewest: "
            f"{self.fewest}): the default budget is the smallest, k = {self.smallest}"
        )
        if with_replacement:
            return (
                f"{head}; at a larger budget a cell with fewer trials is resampled with "
                "replacement past its count (--with-replacement)"
            )
        return (
            f"{head}; a cell with fewer trials than a budget has no value there (never "
            "resampled past its trials unless --with-replacement)"
        )

    def check(self, k: int, *, with_replacement: bool, what: str) -> None:
        """AnalysisError when `what` (which needs every cell's k-trial study) asks for more
        trials than the smallest cell holds, unless resampling past it was asked for."""
        if k > self.smallest and not with_replacement:
            raise AnalysisError(
                f"budget {k} is larger than the {self.smallest} trials of {self.fewest}: "
                f"{what} needs a study of {k} trials for every cell (use a budget <= "
                f"{self.smallest}, or --with-replacement to resample past a cell's trials)"
            )


def trial_counts(scores: TrialScores) -> TrialCounts:
    """Smallest and largest present-trial count over the cells holding any trial."""
    counts = scores.data["present"].sum("trial")
    dims = [str(d) for d in counts.dims]
    values = counts.values
    held = values > 0
    if not held.any():
        return TrialCounts(smallest=0, largest=0, fewest="no cell")
    smallest = int(values[held].min())
    at = np.argwhere(held & (values == smallest))[0]
    parts = [str(counts[d].values[i]) for d, i in zip(dims, at, strict=True)]
    fewest = f"{parts[1]} on {parts[0]}" + "".join(
        f", {d} {p}" for d, p in zip(dims[2:], parts[2:], strict=True)
    )
    return TrialCounts(smallest=smallest, largest=int(values[held].max()), fewest=fewest)


def default_budgets(n: int) -> tuple[int, ...]:
    """1, 2, 4, ... below n, and n itself."""
    if n < 1:
        return ()
    out = [1 << i for i in range(n.bit_length()) if (1 << i) < n]
    return (*out, n)


def check_budgets(budgets: Sequence[int], n: int) -> tuple[int, ...]:
    """Sorted distinct budgets; AnalysisError for a budget < 1 or above the trial count."""
    out = sorted({int(k) for k in budgets})
    if not out:
        raise AnalysisError("no budget given")
    if out[0] < 1:
        raise AnalysisError(f"budget {out[0]} is not a positive number of trials")
    if out[-1] > n:
        raise AnalysisError(f"budget {out[-1]} is larger than the trial count {n}")
    return tuple(out)


def _sorted_inputs(scores: TrialScores) -> tuple[xr.DataArray, ...]:
    d = scores.data
    return d["score"], d["usable"], d["present"]


def best_of_k_draws(
    scores: TrialScores,
    k: int,
    /,
    *,
    n_boot: int,
    root: int,
    value: str = "test_value",
) -> xr.DataArray:
    """`value` of the trial selected in each of `n_boot` best-of-k bootstrap draws per cell.

    Dims: the cell dims of `scores` plus `draw`; NaN where a draw holds no usable trial.
    Draws depend only on (`root`, the cell's labels, k), so subsets and reorderings of
    optimizers see the same draws.
    """
    score, usable, present = _sorted_inputs(scores)
    keys = cell_keys(score, scores.cell_dims)

    def kernel(
        s: np.ndarray, u: np.ndarray, p: np.ndarray, v: np.ndarray, key: np.ndarray
    ) -> np.ndarray:
        order, n_present, n_usable = sort_trials(s, u, p)
        v_sorted = sorted_values(v, s, u, order)
        pos = bootstrap_positions(n_present, key, k, n_boot, root)
        ok = (pos >= 0) & (pos < n_usable[..., None])
        picked = np.take_along_axis(v_sorted, np.clip(pos, 0, None), axis=-1)
        return np.where(ok, picked, np.nan)

    out: xr.DataArray = xr.apply_ufunc(
        kernel,
        score,
        usable,
        present,
        scores.data[value],
        keys,
        input_core_dims=[["trial"]] * 4 + [["key"]],
        output_core_dims=[["draw"]],
    )
    return out.transpose(*scores.cell_dims, "draw")


def _budget_kernel(
    s: np.ndarray,
    u: np.ndarray,
    p: np.ndarray,
    test: np.ndarray,
    sel: np.ndarray,
    key: np.ndarray,
    *,
    budgets: tuple[int, ...],
    n_boot: int,
    root: int,
    with_replacement: bool,
) -> np.ndarray:
    """(*cells, N) inputs -> (*cells, K, target, stat) with the stats of `_STATS`; NaN for a
    budget above a cell's trial count unless `with_replacement`."""
    order, n_present, n_usable = sort_trials(s, u, p)
    n = s.shape[-1]
    values_sorted = [sorted_values(x, s, u, order) for x in (test, sel)]
    boot = np.stack(
        [
            position_probabilities(bootstrap_positions(n_present, key, k, n_boot, root), n)
            for k in budgets
        ],
        axis=-2,
    )
    exact = np.stack([exact_probabilities(n_present, k, n) for k in budgets], axis=-2)
    exact_norepl = np.stack(
        [exact_probabilities(n_present, k, n, replace=False) for k in budgets], axis=-2
    )
    out = np.full((*s.shape[:-1], len(budgets), len(_TARGETS), len(_STATS)), np.nan)
    for t, values in enumerate(values_sorted):
        b_mean, b_sd, b_q, b_none = weighted_summary(boot, values, n_usable, LEVELS)
        e_mean, e_sd, e_q, e_none = weighted_summary(exact, values, n_usable, LEVELS)
        with np.errstate(invalid="ignore"):
            nr_mean, _, _, _ = weighted_summary(
                np.nan_to_num(exact_norepl, nan=0.0), values, n_usable, LEVELS
            )
        impossible = np.isnan(exact_norepl).any(axis=-1)
        nr_mean = np.where(impossible, np.nan, nr_mean)
        columns = {
            "mean": b_mean,
            "sd": b_sd,
            "median": b_q[..., 1],
            "lo": b_q[..., 0],
            "hi": b_q[..., 2],
            "expected": e_mean,
            "expected_without_replacement": nr_mean,
            "exact_sd": e_sd,
            "exact_median": e_q[..., 1],
            "exact_lo": e_q[..., 0],
            "exact_hi": e_q[..., 2],
            "no_result": b_none,
            "no_result_exact": e_none,
        }
        for i, name in enumerate(_STATS):
            out[..., t, i] = columns[name]
    if not with_replacement:
        too_few = n_present[..., None] < np.asarray(budgets)  # (*cells, K)
        out = np.where(too_few[..., None, None], np.nan, out)
    return out


# The JSON key prefix of each `target` of a BudgetCurve.
_TARGET_PREFIX = {"test": "", "selection": "selection_"}


@attrs.frozen
class BudgetCurve(Result):
    """Best-of-k outcomes per cell and budget.

    `data` has dims (workload, optimizer, [repeat dims], k, target) with target "test"
    (the selected trial's test metric) and "selection" (its selection value), and variables
    mean, sd, median, lo, hi (bootstrap: 5%, 50%, 95% quantiles of draws with a result),
    expected and expected_without_replacement (Dodge et al. closed forms), exact_sd,
    exact_median, exact_lo, exact_hi (exact, from order statistics), no_result and
    no_result_exact (share of draws without a usable trial), n_boot_results (draws with a
    result), `enough_trials` (cell, k: whether the cell holds at least k trials; where it
    does not, every statistic is NaN unless `with_replacement`), and `settled_k` (workload,
    optimizer, [repeats]): the smallest budget from which the exact test median stays within
    `tolerance` of its value at the largest budget.
    """

    data: xr.Dataset
    rule: SelectionRule = attrs.field(metadata=attr())
    repeats: RepeatMode = attrs.field(metadata=attr())
    n_boot: int = attrs.field(metadata=attr())
    tolerance: float = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    with_replacement: bool = attrs.field(default=False, metadata=attr())

    # One record per (workload, optimizer, [repeats], k): the test-metric statistics under
    # their plain names (mean, median, lo, hi, expected, ...), the selection-value
    # statistics prefixed `selection_`, plus metric, split ("test"), n_trials (the cell's
    # trial count), enough_trials (k <= n_trials; false: the statistics are null unless
    # resampled with replacement), settled_k, rule.
    JSON = (
        Records(
            dims_of="mean",
            exclude=("k", "target"),
            dims=("k",),
            keys=(
                Labels(),
                Var("metric", "metric_name", cast=str),
                Const("split", "test"),
                Columns("target", "{label}{var}", label_text=_TARGET_PREFIX, cast=float),
                Var("n_trials", cast=int),
                Computed("enough_trials", lambda r, c: bool(c.labels["k"] <= int(c["n_trials"]))),
                Var("settled_k", cast=int),
                Field("rule"),
            ),
        ),
    )


def budget_curve(
    archive: xr.Dataset | TrialScores,
    /,
    *,
    budgets: Sequence[int] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    repeats: RepeatMode | str = RepeatMode.MEAN,
    diverged: DivergedMode | str = DivergedMode.EXCLUDE,
    tolerance: float = 0.005,
    with_replacement: bool = False,
) -> BudgetCurve:
    """Best-of-k outcome for every cell and budget k (default 1, 2, 4, ..., n, n the
    smallest trial count of the compared cells; budgets up to the largest count may be
    asked for: a cell with fewer than k trials then has NaN statistics, unless
    `with_replacement`, which resamples its trials past their count).

        Bootstrap: n_boot draws of k trials with replacement per cell, all vectorised. Closed
        forms: Dodge et al. with and without replacement. Exact: the distribution of the
        selected trial from order statistics, hence exact percentiles. Draws without a usable
        trial have no result and are reported as the share `no_result` (with `diverged`
    "worst", a diverged trial is a result: the worst value of its workload). Raises AnalysisError
        for a budget above the trial count or an archive without usable trials.
    """
    scores = usable_scores(archive, rule=rule, repeats=repeats, diverged=diverged)
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")
    if not tolerance >= 0:
        raise AnalysisError(f"tolerance {tolerance} must be a non-negative number")
    n = n_trials(scores)
    counts = trial_counts(scores)
    ks = check_budgets(default_budgets(counts.smallest) if budgets is None else budgets, n)
    root = root_seed(rng)
    score, usable, present = _sorted_inputs(scores)
    keys = cell_keys(score, scores.cell_dims)
    stacked = xr.apply_ufunc(
        _budget_kernel,
        score,
        usable,
        present,
        scores.data["test_value"],
        scores.data["selection_value"],
        keys,
        input_core_dims=[["trial"]] * 5 + [["key"]],
        output_core_dims=[["k", "target", "stat"]],
        kwargs={
            "budgets": ks,
            "n_boot": n_boot,
            "root": root,
            "with_replacement": with_replacement,
        },
    )
    stacked = stacked.assign_coords(k=np.array(ks, dtype=np.int64), target=list(_TARGETS))
    data = xr.Dataset(
        {name: stacked.isel(stat=i, drop=True) for i, name in enumerate(_STATS)}
    ).transpose(*scores.cell_dims, "k", "target")
    data["n_boot_results"] = np.round((1.0 - data["no_result"]) * n_boot)
    data["n_trials"] = present.sum("trial").astype(np.int64)
    data["enough_trials"] = data["n_trials"] >= data["k"]
    data["settled_k"] = _settled(data["exact_median"].sel(target="test", drop=True), tolerance)
    data["metric_name"] = scores.data["metric_name"]
    data["direction"] = scores.data["direction"]
    return BudgetCurve(
        data=data,
        rule=scores.rule,
        repeats=scores.repeats,
        n_boot=n_boot,
        tolerance=tolerance,
        caveats=with_counts_caveat(scores.caveats, counts, with_replacement=with_replacement),
        with_replacement=with_replacement,
    )


def with_counts_caveat(
    caveats: tuple[str, ...], counts: TrialCounts, *, with_replacement: bool
) -> tuple[str, ...]:
    """The caveats plus the one mixed-trial-counts line where the cells' counts differ."""
    line = counts.caveat(with_replacement=with_replacement)
    return caveats if line is None else (*caveats, line)


def _settled(median: xr.DataArray, tolerance: float) -> xr.DataArray:
    """Smallest k from which every later median is within `tolerance` of the last one (the
    last budget a cell has a median at: a cell with fewer trials stops earlier)."""
    has = finite(median)
    last = (has * xr.DataArray(np.arange(median.sizes["k"]), dims="k")).max("k")
    final = median.isel(k=last)
    within = (abs(median - final) <= tolerance) | ~has
    # Reverse cumulative "all within from here on".
    stays = within.isel(k=slice(None, None, -1)).cumprod("k").isel(k=slice(None, None, -1))
    stays = stays.astype(bool)
    ks = median["k"]
    first = where(stays, ks, np.iinfo(np.int64).max).min("k")
    return where(finite(final), first, -1).astype(np.int64)
