"""Inclusion consistency: with enough tuning a more general optimizer should not do worse
than one it includes. For every inclusion pair, workload and selection rule: the expected
best-of-k test result (given a result) of each optimizer at a stated budget k (default N/4), their
difference, a studentized bootstrap test and interval, Holm's correction (one family per
call for each verdict), per-workload margins, and a verdict (docs/method.md, "Inclusion
consistency"; the machinery is in _estimator, the margins in _margins).

Dependency rule: numpy, xarray, attrs, optcmp_data and this package.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis._budget import check_budgets, n_trials
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._estimator import (
    BUDGET_RULE,
    DEFAULT_TEST_N_BOOT,
    Verdict,
    min_test_trials,
    pair_tests,
    verdict_text,
    verdicts,
)
from optcmp_analysis._margins import MARGIN_RULE, resolve_margins
from optcmp_analysis._records import (
    Cell,
    Computed,
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
    RepeatMode,
    SelectionRule,
    TrialScores,
    orientation,
    require_usable,
    trial_scores,
)
from optcmp_analysis._testability import pair_reasons
from optcmp_data import Taxonomy, check_bootstrap, taxonomy_labels

__all__ = [
    "BUDGET_RULE",
    "DEFAULT_TEST_N_BOOT",
    "MARGIN_RULE",
    "InclusionResult",
    "Verdict",
    "inclusion_consistency",
    "inclusion_tests",
    "run_inclusion",
]

# Per-cell variables of a result and their JSON keys (same name).
_FLOAT_VARS = (
    "difference",
    "se",
    "lo",
    "hi",
    "p_value",
    "p_adjusted",
    "p_noninferior",
    "p_noninferior_adjusted",
    "margin",
    "special_expected",
    "general_expected",
    "p_general_not_worse",
    "no_result_special",
    "no_result_general",
)
_INT_VARS = ("k", "n_special", "n_general", "n_resamples")
_PAIR_COORDS = ("special", "general", "special_family", "general_family")
_BOOL_VARS = ("tested",)


@attrs.frozen
class InclusionResult(Result):
    """Inclusion tests, dims (`lead`, pair, workload, [repeat dims]); `lead` is "rule" for
    `inclusion_consistency` and "condition" for `target_study`.

    Each `pair` has coordinates special, general (optimizer names) and special_family,
    general_family. Variables (all oriented so that positive means the general optimizer
    is worse, whatever the metric's direction):

    - `k`: the budget compared (default `BUDGET_RULE`); `special_expected`,
      `general_expected`: each optimizer's expected best-of-k value given that the k-trial
      study has a usable trial (oriented; diverged trials count in k, their chance of
      leaving no result is `no_result_*`);
      `difference` = general - special; `se` its jackknife standard error.
    - `tested`: a variance estimate exists (k <= N - 1 for both optimizers); where False
      (k = N) the estimates are descriptive and nothing below is computed.
    - `lo`, `hi`: one-sided (1 - alpha) bootstrap-t bounds (together a (1 - 2 alpha)
      interval, in the metric's units); `p_value`: one-sided bootstrap-t p-value for
      "general is worse" (unadjusted); `p_adjusted`: Holm over every tested cell of this
      result (one family); `p_noninferior`: bootstrap-t p-value for "general worse by at
      least the margin", `p_noninferior_adjusted` Holm over the same cells (its own family).
    - `margin` (per cell, the workload's) and `margin_rule` (its source).
    - `verdict`: violated (p_adjusted < alpha), else consistent (p_noninferior_adjusted <
      alpha), else inconclusive; not_tested where `tested` is False; not_included where the
      stored spaces break the inclusion (`reason`).
    - `p_general_not_worse`: P(a k-trial study of the general optimizer is not worse than
      an independent k-trial study of the special one), exact.
    - `no_result_special`, `no_result_general`: P(a k-trial study has no usable trial).
    - `pair_verdict` (lead, pair): violated if any cell is, consistent if all tested cells
      are, not_included if all are, not_tested if no cell is tested, else inconclusive.
    """

    data: xr.Dataset
    budget: int | None = attrs.field(metadata=attr(none=-1))
    n_boot: int = attrs.field(metadata=attr())
    alpha: float = attrs.field(metadata=attr())
    margins: dict[str, float]
    margin_rules: dict[str, str] = attrs.field(
        metadata=attr(
            name="margin_rule", encode=lambda m: "; ".join(f"{w}: {r}" for w, r in m.items())
        )
    )
    repeats: RepeatMode = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    lead: str = "rule"

    @property
    def n_tests(self) -> int:
        """The size of each Holm family: cells with a p-value and an inclusion as stored."""
        return holm_family_size(self.data)

    @property
    def budget_text(self) -> str:
        """The budget in words: "k = 4" or the default rule."""
        return BUDGET_RULE if self.budget is None else f"k = {self.budget}"

    def _extra_attrs(self) -> dict[str, Any]:
        return {"budget_rule": self.budget_text, "holm_family": self.n_tests}

    @property
    def ci_level(self) -> float:
        """The level of the interval [lo, hi]: 1 - 2 alpha."""
        return 1 - 2 * self.alpha

    def _margin_rule(self, cell: Cell) -> str:
        return self.margin_rules.get(str(cell["workload"]), MARGIN_RULE)

    def _verdict_text(self, cell: Cell) -> str:
        return verdict_text(
            str(cell["verdict"]),
            float(cell["margin"]),
            str(cell["reason"]),
            int(cell["k"]),
            min(int(cell["n_special"]), int(cell["n_general"])),
            alpha=self.alpha,
        )

    # Records per (lead, pair, workload, [repeats]): rule (or condition), workload,
    # special, general, special_family, general_family, k, budget_rule, metric, split
    # ("test"), value (= difference), difference, se, lo, hi, ci_level, margin,
    # margin_rule, p_value, p_adjusted, p_noninferior, p_noninferior_adjusted,
    # holm_family, verdict, verdict_text (careful wording naming k and N), reason,
    # pair_verdict, special_expected, general_expected, p_general_not_worse,
    # no_result_special, no_result_general, n_special, n_general, tested, n_resamples
    # (bootstrap resamples drawn: n_boot, or the first batch where it cannot reject).
    JSON = (
        Records(
            dims_of="difference",
            keys=(
                Labels(drop=("pair",)),
                *(Var(name, cast=str) for name in _PAIR_COORDS),
                Var("k", cast=int),
                Field("budget_rule", "budget_text"),
                Var("metric", "metric_name", cast=str),
                Const("split", "test"),
                Var("value", "difference", cast=float),
                *(Var(name, cast=float) for name in _FLOAT_VARS),
                Field("ci_level"),
                Computed("margin_rule", "_margin_rule"),
                Field("holm_family", "n_tests"),
                Var("verdict", cast=str),
                Computed("verdict_text", "_verdict_text"),
                Var("reason", cast=str),
                Var("pair_verdict", cast=str),
                *(Var(name, cast=int) for name in _INT_VARS if name != "k"),
                *(Var(name, cast=bool) for name in _BOOL_VARS),
            ),
        ),
    )


def _combine(verdict: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    v = np.asarray(verdict)
    violated = (v == Verdict.VIOLATED.value).any(axis=axis)
    consistent = (v == Verdict.CONSISTENT.value).all(axis=axis)
    excluded = (v == Verdict.NOT_INCLUDED.value).all(axis=axis)
    untested = np.isin(v, [Verdict.NOT_INCLUDED.value, Verdict.NOT_TESTED.value]).all(axis=axis)
    return np.where(
        violated,
        Verdict.VIOLATED.value,
        np.where(
            consistent,
            Verdict.CONSISTENT.value,
            np.where(
                excluded,
                Verdict.NOT_INCLUDED.value,
                np.where(untested, Verdict.NOT_TESTED.value, Verdict.INCONCLUSIVE.value),
            ),
        ),
    ).astype(str)


def _crc(label: Any) -> int:
    return zlib.crc32(str(label).encode("utf-8"))


# The outputs of `pair_tests` kept per cell, in this order.
_TEST_OUTPUTS = tuple(
    name
    for name in (*_FLOAT_VARS, *_INT_VARS, *_BOOL_VARS)
    if name not in ("p_adjusted", "p_noninferior_adjusted")
)


def _pair_kernel(
    score_g: np.ndarray,
    value_g: np.ndarray,
    usable_g: np.ndarray,
    present_g: np.ndarray,
    score_s: np.ndarray,
    value_s: np.ndarray,
    usable_s: np.ndarray,
    present_s: np.ndarray,
    margin: np.ndarray,
    seeds: np.ndarray,
    test: np.ndarray,
    *,
    budget: int | None,
    n_boot: int,
    alpha: float,
) -> tuple[np.ndarray, ...]:
    """`pair_tests` on cells of any leading shape (the trials, then the seed key, last):
    the leading axes are flattened into its cell axis and restored on its outputs."""
    trial_arrays = (score_g, value_g, usable_g, present_g, score_s, value_s, usable_s, present_s)
    shape = np.broadcast_shapes(
        *(x.shape[:-1] for x in trial_arrays), margin.shape, seeds.shape[:-1]
    )
    n_tr = score_g.shape[-1]
    flat = [np.broadcast_to(x, (*shape, n_tr)).reshape(-1, n_tr) for x in trial_arrays]
    tests = pair_tests(
        flat[0],
        flat[1],
        flat[2],
        flat[3],
        flat[4],
        flat[5],
        flat[6],
        flat[7],
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margin=np.broadcast_to(margin, shape).reshape(-1),
        seeds=np.broadcast_to(seeds, (*shape, seeds.shape[-1])).reshape(-1, seeds.shape[-1]),
        test=np.broadcast_to(test, shape).reshape(-1),
    )
    return tuple(getattr(tests, name).reshape(shape) for name in _TEST_OUTPUTS)


def _cell_seeds(
    root: int, pairs: Sequence[tuple[str, str, str, str]], like: xr.DataArray, rep: Sequence[str]
) -> xr.DataArray:
    """Each cell's seed (dim `key`): the call's root and the crc of its labels (special,
    general, workload, repeats), so subsets and reorderings of optimizers or workloads
    leave its resamples unchanged; not the lead label, so the same trials under two rules
    or conditions get the same test."""
    parts = [
        xr.DataArray(np.int64(root)),
        xr.DataArray(np.array([_crc(p[0]) for p in pairs], dtype=np.int64), dims="pair"),
        xr.DataArray(np.array([_crc(p[1]) for p in pairs], dtype=np.int64), dims="pair"),
        *(
            xr.DataArray(
                np.array([_crc(v) for v in like[d].values], dtype=np.int64),
                dims=d,
                coords={d: like[d].values},
            )
            for d in ("workload", *rep)
        ),
    ]
    return xr.concat(xr.broadcast(*parts), dim="key")


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
    n_boot: int,
    alpha: float,
    margins: Sequence[float] | np.ndarray,
    root: int,
) -> xr.Dataset:
    """The tests behind `inclusion_consistency` and `target_study`.

    Trial arrays have dims (`lead`, workload, optimizer, [repeat dims], trial), oriented so
    that smaller is better. `reasons[pair][workload]`: "" where the stored spaces contain
    the inclusion. E_k is the expected best-of-k value given a usable trial. `margins`:
    one per workload (or per (lead, workload)), in the value's units. Holm's corrections
    (violated; consistent) run over every tested cell of the returned dataset.
    """
    rep = [str(d) for d in score.dims if d not in (lead, "workload", "optimizer", "trial")]
    dims = (lead, "pair", "workload", *rep)
    pair_labels = [f"{p[0]}⊆{p[1]}" for p in pairs]

    def side(x: xr.DataArray, at: int) -> xr.DataArray:
        """`x` of each pair's special (at 0) or general (at 1) optimizer, dim `pair`."""
        names = xr.DataArray([p[at] for p in pairs], dims="pair")
        return x.sel(optimizer=names).drop_vars("optimizer").assign_coords(pair=pair_labels)

    arrays = (score, value, usable, present)
    general = [side(x, 1) for x in arrays]
    special = [side(x, 0) for x in arrays]
    m = np.asarray(margins, dtype=np.float64)  # (workload,) or (lead, workload)
    margin = xr.DataArray(
        m,
        dims=(lead, "workload") if m.ndim == 2 else ("workload",),
        coords={"workload": score["workload"].values},
    )
    reason = xr.DataArray(
        np.array(reasons, dtype=object).reshape(len(pairs), score.sizes["workload"]).astype(str),
        dims=("pair", "workload"),
        coords={"pair": pair_labels, "workload": score["workload"].values},
    )
    seeds = _cell_seeds(root, pairs, score, rep).assign_coords(pair=pair_labels)
    outputs = xr.apply_ufunc(
        _pair_kernel,
        *general,
        *special,
        margin,
        seeds,
        reason == "",
        input_core_dims=[["trial"]] * 8 + [[], ["key"], []],
        output_core_dims=[[]] * len(_TEST_OUTPUTS),
        kwargs={"budget": budget, "n_boot": n_boot, "alpha": alpha},
    )
    tests = {name: out.transpose(*dims) for name, out in zip(_TEST_OUTPUTS, outputs, strict=True)}
    included = (reason == "").broadcast_like(tests["tested"]).transpose(*dims)
    p_adjusted, p_ni_adjusted, verdict = verdicts(
        tests["p_value"].values,
        tests["p_noninferior"].values,
        included.values,
        tests["tested"].values,
        alpha=alpha,
    )
    variables: dict[str, Any] = {
        name: (dims, tests[name].values) for name in _TEST_OUTPUTS if name in _FLOAT_VARS
    }
    variables.update({name: (dims, tests[name].values) for name in (*_INT_VARS, *_BOOL_VARS)})
    variables["p_adjusted"] = (dims, p_adjusted)
    variables["p_noninferior_adjusted"] = (dims, p_ni_adjusted)
    variables["verdict"] = (dims, verdict)
    variables["reason"] = (dims, reason.broadcast_like(included).transpose(*dims).values)
    verdict_da = xr.DataArray(verdict, dims=dims)
    variables["pair_verdict"] = (
        (lead, "pair"),
        xr.apply_ufunc(
            _combine,
            verdict_da,
            input_core_dims=[dims[2:]],
            kwargs={"axis": tuple(range(-len(dims) + 2, 0))},
        )
        .transpose(lead, "pair")
        .values,
    )
    coords: dict[str, Any] = {
        lead: score[lead].values,
        "workload": score["workload"].values,
        **{d: score[d].values for d in rep},
        "pair": ("pair", pair_labels),
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


def check_options(alpha: float, n_boot: int) -> None:
    """AnalysisError for an alpha outside (0, 1) or n_boot < 1 (margins: `resolve_margins`)."""
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha {alpha} must lie strictly between 0 and 1")
    if n_boot < 1:
        raise AnalysisError(f"n_boot {n_boot} must be at least 1")


def holm_family_size(data: xr.Dataset) -> int:
    """Tests in each Holm family of `inclusion_tests`' output: cells with a p-value."""
    return int(np.isfinite(data["p_adjusted"].values).sum())


def resolution_caveats(data: xr.Dataset, n_boot: int, alpha: float) -> list[str]:
    """Caveats: the resample count cannot reach Holm's smallest threshold among the tests
    of `data` (the output of `inclusion_tests`); cells at k = N that are reported without a
    test."""
    out = []
    n_tests = holm_family_size(data)
    if n_tests and n_tests / (n_boot + 1) >= alpha:
        out.append(
            f"with {n_boot} bootstrap resamples the smallest p-value is 1/{n_boot + 1}, too "
            f"large to fall below alpha/{n_tests} (Holm over {n_tests} tests): no verdict can "
            "be 'violated' or 'consistent'; raise n_boot"
        )
    untested = data["verdict"] == Verdict.NOT_TESTED.value
    n = np.minimum(data["n_special"], data["n_general"])
    at_n = int((untested & (data["k"] >= n)).sum())
    few = int((untested & (data["k"] < n) & (n < min_test_trials(alpha))).sum())
    if at_n:
        out.append(
            f"{at_n} cells at a budget k equal to an optimizer's number of trials are "
            "reported without a test: the variance of a best-of-N result cannot be estimated "
            "from one study of N trials (choose a budget below N)"
        )
    if few:
        out.append(
            f"{few} cells with fewer than {min_test_trials(alpha)} trials per optimizer are "
            "reported without a test: a sample that small misses a region holding a quarter "
            f"of a search space with probability above alpha {alpha:g}"
        )
    return out


def inclusion_consistency(
    archive: xr.Dataset,
    /,
    *,
    budget: int | None = None,
    n_boot: int = DEFAULT_TEST_N_BOOT,
    rng: np.random.Generator,
    rules: Sequence[SelectionRule | str] = (
        SelectionRule.FINAL_VALID,
        SelectionRule.FINAL_TRAIN_LOSS,
    ),
    repeats: RepeatMode | str = RepeatMode.MEAN,
    taxonomy: Taxonomy | None = None,
    alpha: float = 0.05,
    margin: float | Mapping[str, float] | None = None,
) -> InclusionResult:
    """Check every inclusion pair (special ⊆ general, transitive closure of `taxonomy`,
    default the archive's own) on every workload, under each selection rule.

    Budget k: `budget`, default for each pair `BUDGET_RULE` (a quarter of the smaller
    study, the largest budget the calibration suite shows valid); at k = N a cell is
    reported without a test. `margin`: one for every workload, a mapping workload ->
    margin (the rest by the default rule), or None: `MARGIN_RULE` per workload. Holm's
    corrections run over every tested cell of the call (all rules, pairs, workloads and
    repeats together: one family for "violated", one for "consistent"). The first rule
    must have usable trials (AnalysisError otherwise); a later rule without any (e.g. no
    training loss recorded) is left out with a caveat.
    """
    if not rules:
        raise AnalysisError("no selection rule given")
    check_options(alpha, n_boot)
    # Bootstrap tests hold (n_boot, trials) draws per cell.
    check_bootstrap(archive.sizes["trial"], n_boot, option="--n-test-boot")
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
    first = per_rule[0].data
    margins, margin_rules = resolve_margins(
        first["test_value"], first["usable"], margin, sign=orientation(first["direction"])
    )

    def stacked(var: str) -> xr.DataArray:
        return xr.concat([s.data[var] for s in per_rule], dim="rule").assign_coords(rule=kept)

    orient = orientation(per_rule[0].data["direction"])
    workloads = [str(w) for w in archive["workload"].values]
    data = inclusion_tests(
        stacked("score"),
        orient * stacked("test_value"),
        stacked("usable"),
        stacked("present"),
        pairs=pairs,
        reasons=reasons,
        lead="rule",
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margins=[margins[w] for w in workloads],
        root=root,
    )
    data["metric_name"] = archive["metric_name"].astype(str)
    caveats.extend(resolution_caveats(data, n_boot, alpha))
    return InclusionResult(
        data=data,
        budget=budget,
        n_boot=n_boot,
        alpha=alpha,
        margins=margins,
        margin_rules=margin_rules,
        repeats=RepeatMode(repeats),
        caveats=tuple(caveats),
    )


def run_inclusion(
    archive: xr.Dataset,
    /,
    *,
    budget: int | None = None,
    n_boot: int = DEFAULT_TEST_N_BOOT,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    train_loss: bool = True,
    taxonomy: Taxonomy | None = None,
    alpha: float = 0.05,
    margin: float | Mapping[str, float] | None = None,
    repeats: RepeatMode | str = RepeatMode.MEAN,
    rng: np.random.Generator,
) -> InclusionResult:
    """`inclusion_consistency` under `rule` and, with `train_loss`, also under selection by
    final training loss (the paper's Figure 9): the registry's inclusion analysis."""
    rules = [SelectionRule(rule)]
    if train_loss and rules[0] is not SelectionRule.FINAL_TRAIN_LOSS:
        rules.append(SelectionRule.FINAL_TRAIN_LOSS)
    return inclusion_consistency(
        archive,
        budget=budget,
        n_boot=n_boot,
        rng=rng,
        rules=rules,
        repeats=repeats,
        taxonomy=taxonomy,
        alpha=alpha,
        margin=margin,
    )
