"""Inclusion consistency: with enough tuning a more general optimizer should not do worse
than one it includes. For every inclusion pair, workload and selection rule: the unbiased
expected best-of-k test result of each optimizer at a stated budget k, their difference, a
permutation test and interval, Holm's correction over one family per call, and a verdict
(docs/method.md, "Inclusion consistency"; the machinery is in _estimator).

Dependency rule: numpy, xarray, attrs, optcmp_data and this package.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis._budget import check_budgets, n_trials
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._estimator import (
    DEFAULT_MARGIN,
    DEFAULT_N_PERM,
    Verdict,
    pair_tests,
    verdict_text,
    verdicts,
)
from optcmp_analysis._records import iter_cells, json_value, root_seed
from optcmp_analysis._selection import (
    RepeatMode,
    SelectionRule,
    TrialScores,
    orientation,
    require_usable,
    trial_scores,
)
from optcmp_analysis._testability import pair_reasons
from optcmp_data import Taxonomy, taxonomy_labels
from optcmp_data._limits import check_bootstrap

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_N_PERM",
    "InclusionResult",
    "Verdict",
    "inclusion_consistency",
    "inclusion_tests",
]

# Per-cell variables of a result and their JSON keys (same name).
_FLOAT_VARS = (
    "difference",
    "lo",
    "hi",
    "p_value",
    "p_adjusted",
    "p_noninferior",
    "special_expected",
    "general_expected",
    "p_general_not_worse",
    "no_result_special",
    "no_result_general",
)
_INT_VARS = ("k", "n_special", "n_general")
_BOOL_VARS = ("exact",)


@attrs.frozen
class InclusionResult:
    """Inclusion tests, dims (`lead`, pair, workload, [repeat dims]); `lead` is "rule" for
    `inclusion_consistency` and "condition" for `target_study`.

    Each `pair` has coordinates special, general (optimizer names) and special_family,
    general_family. Variables (all oriented so that positive means the general optimizer
    is worse, whatever the metric's direction):

    - `k`: the budget compared; `special_expected`, `general_expected`: each optimizer's
      unbiased expected best-of-k value (oriented; a study without a usable trial scores
      the worst value of the pair's trials); `difference` = general - special.
    - `lo`, `hi`: one-sided (1 - alpha) bounds from the permutation distribution (together
      a (1 - 2 alpha) interval); `p_value`: one-sided permutation p-value for "general is
      worse" (unadjusted); `p_adjusted`: Holm over every tested cell of this result (one
      family); `p_noninferior`: permutation p-value for "general worse by >= margin".
    - `verdict`: violated (p_adjusted < alpha), else consistent (hi < margin), else
      inconclusive; not_included where the stored spaces break the inclusion (`reason`).
    - `p_general_not_worse`: P(a k-trial study of the general optimizer is not worse than
      an independent k-trial study of the special one), exact.
    - `no_result_special`, `no_result_general`: P(a k-trial study has no usable trial).
    - `pair_verdict` (lead, pair): violated if any cell is, consistent if all are,
      not_included if all are, else inconclusive.
    """

    data: xr.Dataset
    budget: int | None
    n_perm: int
    alpha: float
    margin: float
    repeats: RepeatMode
    caveats: tuple[str, ...]
    lead: str = "rule"

    @property
    def n_tests(self) -> int:
        """The size of the Holm family: cells with a p-value and an inclusion as stored."""
        return holm_family_size(self.data)

    def to_dataset(self) -> xr.Dataset:
        out = self.data.copy()
        out.attrs = {
            "budget": -1 if self.budget is None else self.budget,
            "n_perm": self.n_perm,
            "alpha": self.alpha,
            "margin": self.margin,
            "holm_family": self.n_tests,
            "repeats": str(self.repeats),
            "caveats": "\n".join(self.caveats),
        }
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """Records per (lead, pair, workload, [repeats]): rule (or condition), workload,
        special, general, special_family, general_family, k, metric, split ("test"), value
        (= difference), difference, lo, hi, ci_level, margin, p_value, p_adjusted,
        holm_family, verdict, verdict_text (careful wording), reason, pair_verdict,
        p_noninferior, special_expected, general_expected, p_general_not_worse,
        no_result_special, no_result_general, n_special, n_general, exact (permutation
        distribution enumerated, not sampled)."""
        d = self.data
        out = []
        n_tests = self.n_tests
        for at, cell, record in iter_cells(d, [str(x) for x in d["difference"].dims]):
            del record["pair"]
            for name in ("special", "general", "special_family", "general_family"):
                record[name] = str(cell[name].values)
            diff = json_value(float(cell["difference"].values))
            record.update(
                k=int(cell["k"].values),
                metric=str(d["metric_name"].values[at["workload"]]),
                split="test",
                value=diff,
            )
            for name in _FLOAT_VARS:
                record[name] = json_value(float(cell[name].values))
            record.update(
                ci_level=1 - 2 * self.alpha,
                margin=self.margin,
                holm_family=n_tests,
                verdict=str(cell["verdict"].values),
                verdict_text=verdict_text(
                    str(cell["verdict"].values), self.margin, str(cell["reason"].values)
                ),
                reason=str(cell["reason"].values),
                pair_verdict=str(cell["pair_verdict"].values),
                n_special=int(cell["n_special"].values),
                n_general=int(cell["n_general"].values),
                exact=bool(cell["exact"].values),
            )
            out.append(record)
        return out


def _combine(verdict: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    v = np.asarray(verdict)
    violated = (v == Verdict.VIOLATED.value).any(axis=axis)
    consistent = (v == Verdict.CONSISTENT.value).all(axis=axis)
    excluded = (v == Verdict.NOT_INCLUDED.value).all(axis=axis)
    return np.where(
        violated,
        Verdict.VIOLATED.value,
        np.where(
            consistent,
            Verdict.CONSISTENT.value,
            np.where(excluded, Verdict.NOT_INCLUDED.value, Verdict.INCONCLUSIVE.value),
        ),
    ).astype(str)


def _crc(label: Any) -> int:
    return zlib.crc32(str(label).encode("utf-8"))


def inclusion_tests(
    score: xr.DataArray,
    value: xr.DataArray,
    usable: xr.DataArray,
    present: xr.DataArray,
    /,
    *,
    pairs: Sequence[tuple[str, str, str, str]],
    reasons: Sequence[Sequence[str]],
    lead: str,
    budget: int | None,
    n_perm: int,
    alpha: float,
    margin: float,
    root: int,
    shift_score: bool | Sequence[bool] = True,
) -> xr.Dataset:
    """The tests behind `inclusion_consistency` and `target_study`.

    Trial arrays have dims (`lead`, workload, optimizer, [repeat dims], trial), oriented so
    that smaller is better. `reasons[pair][workload]`: "" where the stored spaces contain
    the inclusion. A study without a usable trial scores the worst usable value of the
    pair's trials. `shift_score` (one flag, or one per `lead` label): whether the selection
    score is in the reported value's units, so that the interval's shift moves it too.
    Holm's correction runs over every tested cell of the returned dataset.
    """
    rep = [str(d) for d in score.dims if d not in (lead, "workload", "optimizer", "trial")]
    order = (lead, "workload", "optimizer", *rep, "trial")
    arrays = [x.transpose(*order).values for x in (score, value, usable, present)]
    names = [str(o) for o in score["optimizer"].values]
    gi = [names.index(p[1]) for p in pairs]
    si = [names.index(p[0]) for p in pairs]
    sc, va, us, pr = arrays
    # (lead, pair, workload, *rep, trial)
    g = [np.moveaxis(a[:, :, gi], 2, 1) for a in (sc, va, us, pr)]
    s = [np.moveaxis(a[:, :, si], 2, 1) for a in (sc, va, us, pr)]
    cell_shape = g[0].shape[:-1]
    n_tr = g[0].shape[-1]
    pooled_v = np.concatenate([g[1], s[1]], axis=-1)
    pooled_u = np.concatenate([g[2], s[2]], axis=-1) & np.isfinite(pooled_v)
    w_arr = np.where(pooled_u, pooled_v, -np.inf).max(axis=-1)
    w_arr = np.where(np.isfinite(w_arr), w_arr, np.nan)
    shifts = np.broadcast_to(
        np.asarray(shift_score, dtype=bool).reshape(-1, *([1] * (len(cell_shape) - 1))),
        cell_shape,
    )
    # Each cell's stream is keyed by its labels (lead, special, general, workload, repeats),
    # so subsets and reorderings of optimizers or workloads leave its permutations unchanged.
    rep_labels = [score[d].values for d in rep]
    lead_labels, w_labels = score[lead].values, score["workload"].values
    seeds = np.empty((*cell_shape, 5 + len(rep)), dtype=np.int64)
    for index in np.ndindex(*cell_shape):
        li, pi, wi, *ri = index
        seeds[index] = [
            root,
            _crc(lead_labels[li]),
            _crc(pairs[pi][0]),
            _crc(pairs[pi][1]),
            _crc(w_labels[wi]),
            *(_crc(rep_labels[a][r]) for a, r in enumerate(ri)),
        ]
    reason = np.array(reasons, dtype=object).reshape(len(pairs), score.sizes["workload"])
    reason_full = np.broadcast_to(
        reason.reshape(1, *reason.shape, *([1] * len(rep))), cell_shape
    ).astype(str)
    flat = [x.reshape(-1, n_tr) for x in (*g, *s)]
    tests = pair_tests(
        flat[0],
        flat[1],
        flat[2],
        flat[3],
        flat[4],
        flat[5],
        flat[6],
        flat[7],
        w_arr.reshape(-1),
        budget=budget,
        n_perm=n_perm,
        alpha=alpha,
        margin=margin,
        seeds=seeds.reshape(-1, seeds.shape[-1]),
        shift_score=shifts.reshape(-1),
        interval=(reason_full == "").reshape(-1),
    )
    dims = (lead, "pair", "workload", *rep)
    included = reason_full == ""
    p_adjusted, verdict = verdicts(
        tests.p_value.reshape(cell_shape),
        tests.p_noninferior.reshape(cell_shape),
        included,
        alpha=alpha,
    )
    variables: dict[str, Any] = {
        name: (dims, getattr(tests, name).reshape(cell_shape))
        for name in _FLOAT_VARS
        if name != "p_adjusted"
    }
    variables.update(
        {
            name: (dims, getattr(tests, name).reshape(cell_shape))
            for name in (*_INT_VARS, *_BOOL_VARS)
        }
    )
    variables["p_adjusted"] = (dims, p_adjusted)
    variables["verdict"] = (dims, verdict)
    variables["reason"] = (dims, reason_full)
    extra = tuple(range(2, len(dims)))
    variables["pair_verdict"] = ((lead, "pair"), _combine(verdict, extra))
    coords: dict[str, Any] = {
        lead: score[lead].values,
        "workload": score["workload"].values,
        **{d: score[d].values for d in rep},
        "pair": ("pair", [f"{p[0]}⊆{p[1]}" for p in pairs]),
        "special": ("pair", [p[0] for p in pairs]),
        "general": ("pair", [p[1] for p in pairs]),
        "special_family": ("pair", [p[2] for p in pairs]),
        "general_family": ("pair", [p[3] for p in pairs]),
    }
    return xr.Dataset(variables, coords=coords)


def archive_pairs(
    archive: xr.Dataset, taxonomy: Taxonomy | None
) -> tuple[Taxonomy, list[tuple[str, str, str, str]], list[list[str]], list[str]]:
    """The taxonomy (default the archive's own), its optimizer pairs, the stored-space
    reasons per (pair, workload) and the caveats of that check."""
    taxonomy = Taxonomy.from_archive(archive) if taxonomy is None else taxonomy
    pairs = list(taxonomy.optimizer_pairs(archive))
    reasons, caveats = pair_reasons(archive, pairs, taxonomy)
    return taxonomy, pairs, reasons, caveats


def check_options(alpha: float, n_perm: int, margin: float) -> None:
    """AnalysisError for an alpha outside (0, 1), n_perm < 1 or a negative margin."""
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha {alpha} must lie strictly between 0 and 1")
    if n_perm < 1:
        raise AnalysisError(f"n_perm {n_perm} must be at least 1")
    if not margin >= 0:
        raise AnalysisError(f"margin {margin} must be a non-negative number")


def holm_family_size(data: xr.Dataset) -> int:
    """Tests in the Holm family of `inclusion_tests`' output: cells with a p-value."""
    return int(np.isfinite(data["p_adjusted"].values).sum())


def resolution_caveat(data: xr.Dataset, n_perm: int, alpha: float) -> list[str]:
    """A caveat when the permutation count cannot reach Holm's smallest threshold among
    the tests of `data` (the output of `inclusion_tests`)."""
    n_tests = holm_family_size(data)
    if n_tests and n_tests / (n_perm + 1) >= alpha:
        return [
            f"with {n_perm} permutations the smallest p-value is 1/{n_perm + 1}, too large to "
            f"fall below alpha/{n_tests} (Holm over {n_tests} tests): no verdict can be "
            "'violated'; raise n_perm"
        ]
    return []


def inclusion_consistency(
    archive: xr.Dataset,
    /,
    *,
    budget: int | None = None,
    n_perm: int = DEFAULT_N_PERM,
    rng: np.random.Generator,
    rules: Sequence[SelectionRule | str] = (
        SelectionRule.FINAL_VALID,
        SelectionRule.FINAL_TRAIN_LOSS,
    ),
    repeats: RepeatMode | str = RepeatMode.MEAN,
    taxonomy: Taxonomy | None = None,
    alpha: float = 0.05,
    margin: float = DEFAULT_MARGIN,
) -> InclusionResult:
    """Check every inclusion pair (special ⊆ general, transitive closure of `taxonomy`,
    default the archive's own) on every workload, under each selection rule.

    Budget k: `budget`, default for each pair the smaller of the two optimizers' numbers of
    present trials (the study as run). Holm's correction runs over every tested cell of the
    call (all rules, pairs, workloads and repeats together: one family). The first rule must
    have usable trials (AnalysisError otherwise); a later rule without any (e.g. no
    training loss recorded) is left out with a caveat.
    """
    if not rules:
        raise AnalysisError("no selection rule given")
    check_options(alpha, n_perm, margin)
    # Sampled permutation tests hold (n_perm, trials) draws per cell.
    check_bootstrap(archive.sizes["trial"], n_perm, option="--n-perm")
    taxonomy, pairs, reasons, caveats = archive_pairs(archive, taxonomy)
    if not pairs:
        raise AnalysisError(
            "no inclusion pair of the taxonomy matches two optimizers of the archive "
            f"(their families, or names where they have none: {sorted(taxonomy_labels(archive))}; "
            f"taxonomy: {list(taxonomy.families)}); declare relations with --taxonomy FILE"
        )
    root = root_seed(rng)
    rule_list = [SelectionRule(r) for r in dict.fromkeys(rules)]
    per_rule: list[TrialScores] = []
    for i, rule in enumerate(rule_list):
        scores = trial_scores(archive, rule=rule, repeats=repeats)
        if not bool(scores.data["usable"].any()):
            if i == 0:
                require_usable(scores)
            caveats.append(f"rule {rule} left out: no trial is usable under it")
            continue
        if budget is not None:
            check_budgets([budget], n_trials(scores))
        caveats.extend(c for c in scores.caveats if c not in caveats)
        per_rule.append(scores)
    kept = [str(s.rule) for s in per_rule]

    def stacked(var: str) -> xr.DataArray:
        return xr.concat([s.data[var] for s in per_rule], dim="rule").assign_coords(rule=kept)

    orient = orientation(per_rule[0].data["direction"])
    data = inclusion_tests(
        stacked("score"),
        orient * stacked("test_value"),
        stacked("usable"),
        stacked("present"),
        pairs=pairs,
        reasons=reasons,
        lead="rule",
        budget=budget,
        n_perm=n_perm,
        alpha=alpha,
        margin=margin,
        root=root,
    )
    data["metric_name"] = archive["metric_name"].astype(str)
    caveats.extend(resolution_caveat(data, n_perm, alpha))
    return InclusionResult(
        data=data,
        budget=budget,
        n_perm=n_perm,
        alpha=alpha,
        margin=margin,
        repeats=RepeatMode(repeats),
        caveats=tuple(caveats),
    )
