"""Rankings of optimizers per workload: the point ranking of the tuned optimizers, bootstrap
rank distributions at a budget k, and the probability of being best as a function of k.

Dependency rule: numpy, xarray, attrs, optcmp_data and this package. Ranks are competition
ranks (1 is best; ties share the best rank; a cell without a usable trial ranks below every
cell with one), computed along the named `optimizer` dim, so every other dim broadcasts and
the results are equivariant under reordering optimizers or permuting trials.
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
)
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import competition_ranks
from optcmp_analysis._records import iter_cells, json_value, root_seed
from optcmp_analysis._selection import (
    RepeatMode,
    SelectionRule,
    TrialScores,
    orientation,
    select_best,
    usable_scores,
)
from optcmp_data import Direction

__all__ = ["Rankings", "rank_optimizers", "rank_values"]


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
class Rankings:
    """Optimizer rankings per workload (and repeat, per-repeat mode).

    `data` variables: `rank` (point ranking of the selected trials' test values on the
    whole archive), `value` (those test values), `rank_probability` (dim `place`: the
    bootstrap probability of each rank at budget `budget`), `mean_rank`, `p_best`, and
    `p_best_by_k` (dim `k`: probability of being best, alone or tied, at each budget).
    """

    data: xr.Dataset
    budget: int
    n_boot: int
    rule: SelectionRule
    repeats: RepeatMode
    caveats: tuple[str, ...]

    def to_dataset(self) -> xr.Dataset:
        out = self.data.copy()
        out.attrs = {
            "budget": self.budget,
            "n_boot": self.n_boot,
            "rule": str(self.rule),
            "repeats": str(self.repeats),
            "caveats": "\n".join(self.caveats),
        }
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """Records per (workload, optimizer, [repeats]): k (the budget), rank, mean_rank,
        p_best, p_rank_1 ... p_rank_n, value (test value of the selected trial), metric,
        split ("test"), rule, and p_best_by_k (an object from budget to probability)."""
        d = self.data
        out = []
        for at, cell, record in iter_cells(d, [str(x) for x in d["rank"].dims]):
            record.update(
                k=self.budget,
                rank=json_value(float(cell["rank"].values)),
                mean_rank=json_value(float(cell["mean_rank"].values)),
                p_best=json_value(float(cell["p_best"].values)),
            )
            for r, p in zip(d["place"].values, cell["rank_probability"].values, strict=True):
                record[f"p_rank_{int(r)}"] = json_value(float(p))
            record.update(
                value=json_value(float(cell["value"].values)),
                metric=str(d["metric_name"].values[at["workload"]]),
                split="test",
                rule=str(self.rule),
                p_best_by_k={
                    str(int(k)): json_value(float(p))
                    for k, p in zip(d["k"].values, cell["p_best_by_k"].values, strict=True)
                },
            )
            out.append(record)
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
) -> Rankings:
    """Rank the optimizers of every workload by the test value of their selected trial.

    Bootstrap: in each of `n_boot` replicates every optimizer runs its own best-of-`budget`
    study (default: the trial count N), drawn independently per optimizer; the replicate's
    ranks give the rank distribution, mean rank and P(best). `budgets` (default 1, 2, 4,
    ..., N) gives P(best) as a function of the budget. Raises AnalysisError for a budget
    above the trial count or an archive without usable trials.
    """
    scores = usable_scores(archive, rule=rule, repeats=repeats)
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")
    n = n_trials(scores)
    (k_main,) = check_budgets([n if budget is None else budget], n)
    ks = check_budgets(default_budgets(n) if budgets is None else budgets, n)
    root = root_seed(rng)
    direction = scores.data["direction"]

    selection = select_best(scores)
    point = rank_values(selection.data["test_value"], direction)

    def replicate_ranks(k: int) -> xr.DataArray:
        draws = best_of_k_draws(scores, k, n_boot=n_boot, root=root)
        return rank_values(draws, direction)

    main = replicate_ranks(k_main)
    levels = xr.DataArray(
        np.arange(1, scores.data.sizes["optimizer"] + 1, dtype=np.int64), dims="place"
    )
    rank_probability = (main == levels).mean("draw")
    p_best_by_k = xr.concat([(replicate_ranks(k) == 1).mean("draw") for k in ks], dim="k")
    cell_dims = scores.cell_dims
    data = xr.Dataset(
        {
            "rank": point.transpose(*cell_dims),
            "value": selection.data["test_value"].transpose(*cell_dims),
            "rank_probability": rank_probability.transpose(*cell_dims, "place"),
            "mean_rank": main.mean("draw").transpose(*cell_dims),
            "p_best": rank_probability.isel(place=0, drop=True).transpose(*cell_dims),
            "p_best_by_k": p_best_by_k.transpose(*cell_dims, "k"),
            "metric_name": scores.data["metric_name"],
            "direction": direction,
        },
        coords={"place": levels.values, "k": np.array(ks, dtype=np.int64)},
    )
    return Rankings(
        data=data,
        budget=k_main,
        n_boot=n_boot,
        rule=scores.rule,
        repeats=scores.repeats,
        caveats=scores.caveats,
    )
