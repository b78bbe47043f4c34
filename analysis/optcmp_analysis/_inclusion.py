"""Inclusion consistency: with enough tuning a more general optimizer should not do worse
than one it includes. Paired bootstrap of (tuned general) - (tuned special) at budget k,
one-sided p-values, Holm correction over all pairs and workloads, verdicts.

Dependency rule: numpy, xarray, attrs, statsmodels, optcmp_data and this package.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import xarray as xr
from statsmodels.stats.multitest import multipletests

from optcmp_analysis._budget import (
    DEFAULT_N_BOOT,
    best_of_k_draws,
    check_budgets,
    n_trials,
)
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._records import iter_cells, json_value, root_seed
from optcmp_analysis._selection import (
    RepeatMode,
    SelectionRule,
    TrialScores,
    orientation,
    require_usable,
    select_best,
    trial_scores,
)
from optcmp_data import Taxonomy, taxonomy_labels

__all__ = [
    "InclusionResult",
    "Verdict",
    "default_inclusion_budget",
    "inclusion_consistency",
    "one_sided_p_values",
]


class Verdict(enum.StrEnum):
    """What the data say about one inclusion pair on one workload."""

    CONSISTENT = "consistent"  # the tuned general optimizer did at least as well
    VIOLATED = "violated"  # the general optimizer is worse, significantly after Holm
    INCONCLUSIVE = "inconclusive"  # it looks worse, but not significantly (or no data)


def one_sided_p_values(diff: np.ndarray, *, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap p-value for "the difference is positive" along `axis`: the share of
    replicates at or below zero, (1 + #{d <= 0}) / (1 + n), over replicates with a result.
    Returns (p, n); p is NaN where no replicate has a result."""
    moved = np.moveaxis(diff, axis, -1)
    valid = np.isfinite(moved)
    n = valid.sum(axis=-1)
    at_or_below = (valid & (np.where(valid, moved, 0.0) <= 0)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, (1.0 + at_or_below) / (1.0 + n), np.nan)
    return p, n


@attrs.frozen
class InclusionResult:
    """Inclusion checks, dims (rule, pair, workload, [repeat dims]).

    Each `pair` has coordinates special, general (optimizer names) and special_family,
    general_family. Variables: `difference` (bootstrap mean of general - special at budget
    k, signed so that positive means the general optimizer is worse), `lo`, `hi` (its 5%
    and 95% quantiles), `observed` (the same difference between the selected trials of
    the whole archive), `p_value` (one-sided, "general is worse"), `p_adjusted` (Holm over
    all pairs x workloads x repeats of one rule), `verdict`, `n_valid` (replicates where
    both studies had a usable trial); `pair_verdict` (rule, pair): violated if any
    workload is, consistent if all are, else inconclusive.
    """

    data: xr.Dataset
    budget: int
    n_boot: int
    alpha: float
    repeats: RepeatMode
    caveats: tuple[str, ...]

    def to_dataset(self) -> xr.Dataset:
        out = self.data.copy()
        out.attrs = {
            "budget": self.budget,
            "n_boot": self.n_boot,
            "alpha": self.alpha,
            "repeats": str(self.repeats),
            "caveats": "\n".join(self.caveats),
        }
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """Records per (rule, pair, workload, [repeats]): rule, workload, special, general,
        special_family, general_family, k, metric, split ("test"), value (= difference),
        difference, lo, hi, observed, p_value, p_adjusted, verdict, pair_verdict, n_valid."""
        d = self.data
        out = []
        for at, cell, record in iter_cells(d, [str(x) for x in d["difference"].dims]):
            del record["pair"]
            for name in ("special", "general", "special_family", "general_family"):
                record[name] = str(cell[name].values)
            diff = float(cell["difference"].values)
            record.update(
                k=self.budget,
                metric=str(d["metric_name"].values[at["workload"]]),
                split="test",
                value=json_value(diff),
                difference=json_value(diff),
                lo=json_value(float(cell["lo"].values)),
                hi=json_value(float(cell["hi"].values)),
                observed=json_value(float(cell["observed"].values)),
                p_value=json_value(float(cell["p_value"].values)),
                p_adjusted=json_value(float(cell["p_adjusted"].values)),
                verdict=str(cell["verdict"].values),
                pair_verdict=str(cell["pair_verdict"].values),
                n_valid=int(cell["n_valid"].values),
            )
            out.append(record)
        return out


def default_inclusion_budget(n: int) -> int:
    """Half the trial count (at least 1).

    Near k = N the bootstrap is dominated by the single best trial and reuses its test
    noise in most replicates, which makes the one-sided test liberal (simulated: about 6-7%
    false violations at alpha 0.05 for k = N = 20); at k = N/2 it stays below 2%.
    """
    return max(1, n // 2)


def _pairs(archive: xr.Dataset, taxonomy: Taxonomy) -> list[tuple[str, str, str, str]]:
    """(special optimizer, general optimizer, special family, general family) for every
    inclusion pair of the taxonomy's closure (an optimizer without a family takes part
    under its own name)."""
    return list(taxonomy.optimizer_pairs(archive))


def _verdicts(violated: np.ndarray, consistent: np.ndarray) -> np.ndarray:
    """Violated where `violated`, else consistent where `consistent`, else inconclusive."""
    return np.where(
        violated,
        Verdict.VIOLATED.value,
        np.where(consistent, Verdict.CONSISTENT.value, Verdict.INCONCLUSIVE.value),
    )


def _combine(verdicts: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    violated = (verdicts == Verdict.VIOLATED.value).any(axis=axis)
    consistent = (verdicts == Verdict.CONSISTENT.value).all(axis=axis)
    return _verdicts(violated, consistent)


def inclusion_consistency(
    archive: xr.Dataset,
    /,
    *,
    budget: int | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    rng: np.random.Generator,
    rules: Sequence[SelectionRule | str] = (
        SelectionRule.FINAL_VALID,
        SelectionRule.FINAL_TRAIN_LOSS,
    ),
    repeats: RepeatMode | str = RepeatMode.MEAN,
    taxonomy: Taxonomy | None = None,
    alpha: float = 0.05,
) -> InclusionResult:
    """Check every inclusion pair (special ⊆ general, transitive closure of `taxonomy`,
    default the archive's own) on every workload, under each selection rule.

    In each of `n_boot` replicates both optimizers run an independent best-of-`budget`
    study (default: half the trial count, see `default_inclusion_budget`); the
    replicates' differences of the selected test values, signed so that positive means
    the general optimizer is worse, give a one-sided p-value. Holm's correction runs
    over all pairs x workloads (x repeats) of a rule. The first rule must have usable
    trials (AnalysisError otherwise); a later rule without any (e.g. no training loss
    recorded) is left out with a caveat.
    """
    if not rules:
        raise AnalysisError("no selection rule given")
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha {alpha} must lie strictly between 0 and 1")
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")
    taxonomy = Taxonomy.from_archive(archive) if taxonomy is None else taxonomy
    pairs = _pairs(archive, taxonomy)
    if not pairs:
        raise AnalysisError(
            "no inclusion pair of the taxonomy matches two optimizers of the archive "
            f"(their families, or names where they have none: {sorted(taxonomy_labels(archive))}; "
            f"taxonomy: {list(taxonomy.families)}); declare relations with --taxonomy FILE"
        )
    root = root_seed(rng)
    rule_list = [SelectionRule(r) for r in dict.fromkeys(rules)]
    caveats: list[str] = []
    per_rule = []
    k_main: int | None = None
    kept_rules = []
    for i, rule in enumerate(rule_list):
        scores = trial_scores(archive, rule=rule, repeats=repeats)
        if not bool(scores.data["usable"].any()):
            if i == 0:
                require_usable(scores)
            caveats.append(f"rule {rule} left out: no trial is usable under it")
            continue
        n = n_trials(scores)
        (k,) = check_budgets([default_inclusion_budget(n) if budget is None else budget], n)
        k_main = k if k_main is None else k_main
        caveats.extend(c for c in scores.caveats if c not in caveats)
        per_rule.append(_one_rule(scores, pairs, k_main, n_boot, root, alpha))
        kept_rules.append(str(rule))
    assert k_main is not None
    data = xr.concat(per_rule, dim="rule").assign_coords(rule=kept_rules)
    data["metric_name"] = archive["metric_name"].astype(str)
    verdicts = data["verdict"].values
    extra_axes = tuple(i for i, d in enumerate(data["verdict"].dims) if d not in ("rule", "pair"))
    data["pair_verdict"] = (("rule", "pair"), _combine(verdicts, extra_axes))
    return InclusionResult(
        data=data,
        budget=k_main,
        n_boot=n_boot,
        alpha=alpha,
        repeats=RepeatMode(repeats),
        caveats=tuple(caveats),
    )


def _one_rule(
    scores: TrialScores,
    pairs: list[tuple[str, str, str, str]],
    k: int,
    n_boot: int,
    root: int,
    alpha: float,
) -> xr.Dataset:
    orient = orientation(scores.data["direction"])
    draws = best_of_k_draws(scores, k, n_boot=n_boot, root=root)
    point = select_best(scores).data["test_value"]
    special = [p[0] for p in pairs]
    general = [p[1] for p in pairs]

    def by_pair(values: xr.DataArray, names: list[str]) -> xr.DataArray:
        picked = values.sel(optimizer=xr.DataArray(names, dims="pair"))
        return picked.drop_vars("optimizer")

    diff = orient * (by_pair(draws, general) - by_pair(draws, special))
    observed = orient * (by_pair(point, general) - by_pair(point, special))
    cell_dims = ("pair", *[d for d in scores.cell_dims if d != "optimizer"])
    diff = diff.transpose(*cell_dims, "draw")
    p, n_valid = one_sided_p_values(diff.values, axis=-1)
    flat = p.reshape(-1)
    adjusted = np.full_like(flat, np.nan)
    tested = np.isfinite(flat)
    if tested.any():
        _, corrected, _, _ = multipletests(flat[tested], alpha=alpha, method="holm")
        adjusted[tested] = corrected
    adjusted = adjusted.reshape(p.shape)
    values = diff.values
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.where(finite, values, 0.0).sum(axis=-1) / n_valid
    quant = _safe_quantiles(values)
    violated = np.isfinite(adjusted) & (adjusted < alpha)
    verdict = _verdicts(violated, np.isfinite(estimate) & (estimate <= 0))
    coords = {
        "pair": ("pair", [f"{s}⊆{g}" for s, g in zip(special, general, strict=True)]),
        "special": ("pair", special),
        "general": ("pair", general),
        "special_family": ("pair", [q[2] for q in pairs]),
        "general_family": ("pair", [q[3] for q in pairs]),
    }
    return xr.Dataset(
        {
            "difference": (cell_dims, estimate),
            "lo": (cell_dims, quant[0]),
            "hi": (cell_dims, quant[1]),
            "observed": observed.transpose(*cell_dims),
            "p_value": (cell_dims, p),
            "p_adjusted": (cell_dims, adjusted),
            "verdict": (cell_dims, verdict.astype(str)),
            "n_valid": (cell_dims, n_valid.astype(np.int64)),
        },
        coords=coords,
    )


def _safe_quantiles(values: np.ndarray) -> np.ndarray:
    """5% and 95% quantiles over the last axis, NaN for rows without a finite value."""
    out = np.full((2, *values.shape[:-1]), np.nan)
    for index in np.ndindex(*values.shape[:-1]):
        row = values[index]
        row = row[np.isfinite(row)]
        if row.size:
            out[(slice(None), *index)] = np.quantile(row, [0.05, 0.95])
    return out
