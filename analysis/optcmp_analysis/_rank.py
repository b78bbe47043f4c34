"""Rankings of optimizers per workload: the point ranking of the tuned optimizers, rank
distributions at a budget k, and the probability of being best as a function of k.

Dependency rule: numpy, xarray, attrs, optcmp_data and this package. Ranks are competition
ranks (1 is best; ties share the best rank), computed along the named `optimizer` dim, so
every other dim broadcasts and the results are equivariant under reordering optimizers or
permuting trials. An optimizer without a usable result (no usable trial on the workload,
or a k-trial study that drew none) has no rank, and every optimizer with a result ranks
above it.

Rank distributions are exact by default (`RankMethod.EXACT`): every optimizer's k-trial
study is independent of the others', and its selected trial has the order-statistic
distribution of `exact_probabilities` (with replacement), so the rank of each outcome is
Poisson-binomial over the competitors (`exact_rank_probabilities`), with no Monte Carlo
noise. `RankMethod.BOOTSTRAP` draws the studies instead (the same quantity, estimated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis._budget import (
    DEFAULT_N_BOOT,
    best_of_k_draws,
    check_budgets,
    default_budgets,
    n_trials,
    trial_counts,
    with_counts_caveat,
)
from optcmp_analysis._enums import RankMethod
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import (
    competition_ranks,
    exact_probabilities,
    exact_rank_probabilities,
    sort_trials,
    sorted_values,
)
from optcmp_analysis._records import (
    ByLabel,
    Columns,
    Const,
    Field,
    Labels,
    Records,
    Result,
    Var,
    attr,
    root_seed,
)
from optcmp_analysis._selection import (
    DivergedMode,
    RepeatMode,
    SelectionRule,
    TrialScores,
    orientation,
    select_best,
    usable_scores,
)
from optcmp_data import Direction

__all__ = ["P_BEST_CAVEAT", "RankMethod", "Rankings", "rank_optimizers", "rank_values"]

P_BEST_CAVEAT = (
    "P(best) is the chance that an optimizer's k-trial study beats every other's, not "
    "the chance that it is the better optimizer: with k near the trial count each study "
    "mostly re-selects the same few best trials, so even two identical optimizers often "
    "give one of them P(best) >= 0.95 (in 17 of 100 simulated pairs with 16 trials each)"
)


def rank_values(
    values: xr.DataArray, direction: xr.DataArray | str, /, *, dim: str = "optimizer"
) -> xr.DataArray:
    """Competition ranks of `values` along `dim` (1 = best), direction-aware ("min"/"max",
    or a per-workload DataArray); NaN ranks below every number. Other dims broadcast."""
    if isinstance(direction, str):
        direction = xr.DataArray(Direction(direction).value)
    oriented = values * orientation(direction)
    ranks: xr.DataArray = xr.apply_ufunc(
        competition_ranks,
        oriented,
        input_core_dims=[[dim]],
        output_core_dims=[[dim]],
        kwargs={"axis": -1},
    )
    return ranks.transpose(*values.dims)


@attrs.frozen
class Rankings(Result):
    """Optimizer rankings per workload (and repeat, per-repeat mode).

    `data` variables: `rank` (point ranking of the selected trials' test values on the
    whole archive; NaN: no usable trial, no rank), `value` (those test values),
    `rank_probability` (dim `place`: the probability of each rank at budget `budget`; a
    row sums to 1 - no_result), `no_result` (probability that a `budget`-trial study has
    no usable trial), `mean_rank` (expected rank given a result), `p_best`, and
    `p_best_by_k` / `no_result_by_k` (dim `k`: probability of being best, alone or tied,
    and of no result, at each budget).
    """

    data: xr.Dataset
    budget: int = attrs.field(metadata=attr())
    n_boot: int = attrs.field(metadata=attr())
    method: RankMethod = attrs.field(metadata=attr())
    rule: SelectionRule = attrs.field(metadata=attr())
    repeats: RepeatMode = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    with_replacement: bool = attrs.field(default=False, metadata=attr())

    # Records per (workload, optimizer, [repeats]): k (the budget), rank (null: no usable
    # trial), mean_rank (given a result), p_best, p_best_caveat (what P(best) does not
    # mean), no_result (P(a k-trial study has no usable trial)), p_rank_1 ... p_rank_n,
    # value (test value of the selected trial), metric, split ("test"), rule, method, and
    # p_best_by_k, no_result_by_k (objects from budget to probability).
    JSON = (
        Records(
            dims_of="rank",
            keys=(
                Labels(),
                Field("k", "budget"),
                Var("rank", cast=float),
                Var("mean_rank", cast=float),
                Var("p_best", cast=float),
                Const("p_best_caveat", P_BEST_CAVEAT),
                Var("no_result", cast=float),
                Columns("place", "p_rank_{label}", vars=("rank_probability",), cast=float),
                Var("value", cast=float),
                Var("metric", "metric_name", cast=str),
                Const("split", "test"),
                Field("rule"),
                Field("method"),
                ByLabel("p_best_by_k", "p_best_by_k", "k", label_cast=int),
                ByLabel("no_result_by_k", "no_result_by_k", "k", label_cast=int),
            ),
        ),
    )


def _exact_kernel(
    s: np.ndarray, u: np.ndarray, p: np.ndarray, v: np.ndarray, *, k: int
) -> np.ndarray:
    """(*cells, O, N) trial inputs -> (*cells, O, O) exact rank probabilities at budget k."""
    order, n_present, n_usable = sort_trials(s, u, p)
    n = s.shape[-1]
    values = sorted_values(v, s, u, order)
    values = np.where(np.arange(n) < n_usable[..., None], values, np.nan)
    probs = exact_probabilities(n_present, k, n)
    return exact_rank_probabilities(values, probs)


def _rank_distribution(
    scores: TrialScores, k: int, direction: xr.DataArray, **kw: Any
) -> xr.DataArray:
    """Exact P(rank) at budget k: dims (*cell dims, place)."""
    oriented = scores.data["test_value"] * orientation(direction)
    out: xr.DataArray = xr.apply_ufunc(
        _exact_kernel,
        scores.data["score"],
        scores.data["usable"],
        scores.data["present"],
        oriented,
        input_core_dims=[["optimizer", "trial"]] * 4,
        output_core_dims=[["optimizer", "place"]],
        kwargs={"k": k},
    )
    return out


def rank_optimizers(
    archive: xr.Dataset | TrialScores,
    /,
    *,
    budget: int | None = None,
    budgets: Sequence[int] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    repeats: RepeatMode | str = RepeatMode.MEAN,
    diverged: DivergedMode | str = DivergedMode.EXCLUDE,
    method: RankMethod | str = RankMethod.EXACT,
    with_replacement: bool = False,
) -> Rankings:
    """Rank the optimizers of every workload by the test value of their selected trial.

    At budget k (default n, the smallest trial count of the compared cells) every optimizer
    runs its own best-of-k study (k of its trials drawn with replacement), independently of
    the others; the rank distribution, the expected rank given a result, P(best) and the
    no-result share follow exactly (`method` "exact") or from `n_boot` drawn studies
    (`method` "bootstrap"; `rng` seeds them). `budgets` (default 1, 2, 4, ..., n) gives
    P(best) and the no-result share as a function of the budget. Raises AnalysisError for a
    budget above the trial count of some cell (unless `with_replacement`, which resamples
    past a cell's trials, up to the largest count) or an archive without usable trials.
    """
    scores = usable_scores(archive, rule=rule, repeats=repeats, diverged=diverged)
    method = RankMethod(method)
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")
    n = n_trials(scores)
    counts = trial_counts(scores)
    (k_main,) = check_budgets([counts.smallest if budget is None else budget], n)
    ks = check_budgets(default_budgets(counts.smallest) if budgets is None else budgets, n)
    for k in (k_main, ks[-1]):
        counts.check(k, with_replacement=with_replacement, what="a ranking")
    root = root_seed(rng)
    direction = scores.data["direction"]

    selection = select_best(scores)
    point = rank_values(selection.data["test_value"], direction)
    # No usable result, no rank.
    point = point.where(np.isfinite(selection.data["test_value"]))
    n_opt = scores.data.sizes["optimizer"]
    levels = xr.DataArray(np.arange(1, n_opt + 1, dtype=np.int64), dims="place")

    def distribution(k: int) -> xr.DataArray:
        """P(rank r at budget k), dims (*cells, place); rows sum to 1 - no_result."""
        if method is RankMethod.EXACT:
            return _rank_distribution(scores, k, direction).assign_coords(place=levels.values)
        draws = best_of_k_draws(scores, k, n_boot=n_boot, root=root)
        ranks = rank_values(draws, direction).where(np.isfinite(draws))
        return (ranks == levels).mean("draw").assign_coords(place=levels.values)

    # Rounding may leave a probability a few ulps outside [0, 1].
    main = distribution(k_main).clip(0.0, 1.0)
    by_k = [distribution(k).clip(0.0, 1.0) for k in ks]
    has_result = main.sum("place")
    mean_rank = (main * levels.assign_coords(place=levels.values)).sum("place") / has_result
    cell_dims = scores.cell_dims
    data = xr.Dataset(
        {
            "rank": point.transpose(*cell_dims),
            "value": selection.data["test_value"].transpose(*cell_dims),
            "rank_probability": main.transpose(*cell_dims, "place"),
            "no_result": (1.0 - has_result).clip(min=0.0).transpose(*cell_dims),
            "mean_rank": mean_rank.where(has_result > 0).transpose(*cell_dims),
            "p_best": main.isel(place=0, drop=True).transpose(*cell_dims),
            "p_best_by_k": xr.concat([d.isel(place=0, drop=True) for d in by_k], dim="k").transpose(
                *cell_dims, "k"
            ),
            "no_result_by_k": xr.concat(
                [(1.0 - d.sum("place")).clip(min=0.0) for d in by_k], dim="k"
            ).transpose(*cell_dims, "k"),
            "metric_name": scores.data["metric_name"],
            "direction": direction,
        },
        coords={"place": levels.values, "k": np.array(ks, dtype=np.int64)},
    )
    return Rankings(
        data=data,
        budget=k_main,
        n_boot=n_boot,
        method=method,
        rule=scores.rule,
        repeats=scores.repeats,
        caveats=(
            *with_counts_caveat(scores.caveats, counts, with_replacement=with_replacement),
            P_BEST_CAVEAT,
        ),
        with_replacement=with_replacement,
    )
