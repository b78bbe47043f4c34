"""The writer of `optcmp report ARCHIVE --out DIR` (the command is in _report_command.py):
every analysis of an archive as a Markdown report.

Dependency rule: rich, matplotlib (through _plots and render), optcmp_data and
optcmp_analysis. The report is assembled here, in the CLI package: the statistics live
in optcmp_analysis, this module only runs them, renders tables and figures, and writes
DIR/report.md, DIR/results.json and DIR/figures/*.png.

Reproducibility: every analysis draws from its own `np.random.default_rng(seed)` (as
`optcmp plot` and `optcmp analyze` do), and nothing in report.md or results.json depends
on the clock or on where the report is written: the same archive and seed give
byte-identical files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from optcmp_analysis import (
    AGGREGATE_STATISTICS,
    BUDGET_RULE,
    DEFAULT_N_BOOT,
    MARGIN_RULE,
    P_BEST_CAVEAT,
    AggregateScores,
    BoundaryCheck,
    BudgetCurve,
    InclusionResult,
    Match,
    PerformanceProfiles,
    ProtocolComparison,
    Rankings,
    Selection,
    SelectionRule,
    TargetStudy,
    algoperf_score,
    boundary_check,
    default_budget,
    protocol_sensitivity,
    restrict,
    select_best,
    trial_scores,
)
from optcmp_cli._analyses import Common, Inference, analysis_named
from optcmp_cli._common import err_console, json_text
from optcmp_cli._outputs import ReportStage
from optcmp_cli._plots import (
    boundary_figure,
    curves_figure,
    full_budget_steps,
    protocol_figure,
)
from optcmp_cli._report_command import ReportFormat
from optcmp_cli.render.escape import md, visible
from optcmp_cli.render.html import to_html
from optcmp_cli.render.numbers import num, num_distinct, same_digits
from optcmp_cli.render.palette import OptimizerStyle
from optcmp_cli.render.palette import styles_of as _styles_of
from optcmp_cli.render.save import save_figure
from optcmp_data import (
    ArchiveSummary,
    OptcmpError,
    Scale,
    Taxonomy,
    atomic_write_text,
    summarize,
)

__all__ = ["ReportFiles", "ReportFormat", "write_report"]

T = TypeVar("T")

_SEARCHED = (Scale.LINEAR.value, Scale.LOG.value, Scale.ONE_MINUS_LOG.value)
# Steps of one protocol group, for the progress bar.
_GROUP_STEPS = (
    "selection",
    "budget",
    "rank",
    "aggregate",
    "profiles",
    "inclusion",
    "targets",
    "boundary",
    "curves",
)


@attrs.frozen
class ReportFiles:
    """Where a report was written."""

    report: Path
    results: Path
    figures: tuple[Path, ...]
    html: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "report": str(self.report),
            "results": str(self.results),
            "html": None if self.html is None else str(self.html),
            "figures": [str(f) for f in self.figures],
        }


# --- formatting -------------------------------------------------------------------------


def _num(value: Any, digits: int = 4) -> str:
    """A number for the report: +inf reads "never" (a target never reached)."""
    return num(value, digits, inf="never", neg_inf="-inf")


def _cell(text: Any) -> str:
    """A table cell: labels in it are escaped where the row is built (`_md`)."""
    return str(text).replace("\n", " ")


_md = md


def _interval(lo: Any, hi: Any, digits: int = 3) -> str:
    return f"[{_num(lo, digits)}, {_num(hi, digits)}]"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[_cell(c) for c in row] for row in rows]
    # One number format per column: "0.42" above "0.3805" becomes "0.4200".
    if cells and all(len(row) == len(headers) for row in cells):
        columns = [same_digits(list(col)) for col in zip(*cells, strict=True)]
        cells = [list(row) for row in zip(*columns, strict=True)]
    out = ["| " + " | ".join(_cell(h) for h in headers) + " |"]
    out.append("|" + "|".join("---" for _ in headers) + "|")
    out.extend("| " + " | ".join(row) + " |" for row in cells)
    return [*out, ""]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


# --- protocol groups --------------------------------------------------------------------


def _protocol_groups(ds: xr.Dataset) -> list[tuple[str | None, list[str]]]:
    """Optimizers grouped into tuning protocols, restricted protocols (fewer searched
    hyperparameters) first; one unnamed group when the archive holds one protocol.

    A protocol is a set of search spaces under which each optimizer family is tuned once.
    Optimizers are grouped by search-space name, and groups without a family in common
    are merged (largest first): a study where Adam alone has its own space is one
    protocol, while one that tunes every family twice, under `lr-only` and under
    `choi2019`, is two. A merged group takes the name of its largest space.
    """
    optimizers = [str(o) for o in ds["optimizer"].values]
    families = [str(f) or o for f, o in zip(ds["optimizer_family"].values, optimizers, strict=True)]
    names = ds["space_name"].transpose("workload", "optimizer").values.astype(str)
    by_space: dict[str, list[int]] = {}
    for i in range(len(optimizers)):
        spaces = set(names[:, i])
        if len(spaces) != 1:
            return [(None, optimizers)]  # spaces differ per workload: no protocol split
        by_space.setdefault(spaces.pop(), []).append(i)
    if len(by_space) < 2:
        return [(None, optimizers)]
    merged: list[tuple[str, list[int]]] = []
    for space, members in sorted(by_space.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        fams = {families[i] for i in members}
        for j, (label, group) in enumerate(merged):
            if fams.isdisjoint(families[i] for i in group):
                merged[j] = (label, group + members)
                break
        else:
            merged.append((space, list(members)))
    if len(merged) < 2:
        return [(None, optimizers)]
    scale = ds["space_scale"].transpose("workload", "optimizer", "hparam").values.astype(str)
    searched = np.isin(scale, _SEARCHED).sum(axis=(0, 2))

    def width(group: list[int]) -> float:
        return float(np.mean(searched[group]))

    merged.sort(key=lambda g: (width(g[1]), g[0]))
    return [(label, [optimizers[i] for i in sorted(group)]) for label, group in merged]


# --- the report -------------------------------------------------------------------------


@attrs.define
class _Builder:
    """Accumulates the Markdown, the JSON results and the figures of one report."""

    out: Path
    name: str
    seed: int
    n_boot: int
    rule: SelectionRule
    advance: Callable[[str], None]
    lines: list[str] = attrs.field(factory=list)
    results: dict[str, Any] = attrs.field(factory=dict)
    figures: list[Path] = attrs.field(factory=list)
    caveats: list[str] = attrs.field(factory=list)
    skipped: dict[str, str] = attrs.field(factory=dict)
    title: str = ""
    taxonomy: Taxonomy | None = None
    inference: Inference = attrs.field(factory=Inference)
    # The findings summary: statements with evidence, without, about the protocol, and
    # the caveats that change a conclusion (each list in the order found).
    supported: list[str] = attrs.field(factory=list)
    unsupported: list[str] = attrs.field(factory=list)
    protocol_notes: list[str] = attrs.field(factory=list)
    key_caveats: list[str] = attrs.field(factory=list)

    def caveat(self, text: str, *, key: bool = False) -> None:
        """Record a caveat once; `key` ones also lead the findings summary."""
        if text not in self.caveats:
            self.caveats.append(text)
        if key and text not in self.key_caveats:
            self.key_caveats.append(text)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def add_records(self, key: str, records: list[dict[str, Any]], group: str | None) -> None:
        if group is not None:
            records = [{"protocol": group, **r} for r in records]
        self.results.setdefault(key, []).extend(records)

    def figure(self, fig: Figure, stem: str, alt: str) -> None:
        path = save_figure(fig, self.out / "figures" / f"{_slug(stem)}.png")
        self.figures.append(path)
        self.lines += [f"![{md(alt)}](figures/{path.name})", ""]

    def attempt(self, key: str, fn: Callable[[], T]) -> T | None:
        """Run one analysis; an error of our own type is recorded and shown, never hidden."""
        try:
            return fn()
        except OptcmpError as err:
            reason = " ".join(str(err).split())
            self.skipped[key] = reason
            self.lines += [f"_Not available: {md(reason)}_", ""]
            err_console.print(f"warning: {visible(key)}: {visible(reason)}", markup=False)
            return None


def _suffix(group: str | None) -> str:
    return "" if group is None else f"-{group}"


def _heading(text: str, group: str | None) -> str:
    return text if group is None else f"{text} (protocol {md(group)})"


def _selection_section(b: _Builder, sel: Selection, group: str | None) -> None:
    b.lines += [f"## {_heading('Selected trials', group)}", ""]
    b.lines += [
        f"What each optimizer achieved once tuned: the best trial of every (workload, "
        f"optimizer) by rule `{sel.rule}`, whose test metric is the optimizer's result. "
        "Diverged and incomplete trials count towards the budget but are never selected; "
        "when several trials tie on the selection value, the result is the mean of their "
        "test values (`tied` > 1) and the trial shown is the first of them.",
        "",
    ]
    records = sel.to_json()
    several = any(r["n_repeats"] > 1 for r in records)
    if several:
        b.lines += [
            "`over repeats`: the selected trial's test value over all its completed repeats "
            "(mean; min / median / max, count); `test` comes from the repeats selection used"
            + (
                f" ({_md(records[0]['test_repeats'])})"
                if records and records[0]["test_repeats"] != "all"
                else ""
            )
            + ".",
            "",
        ]
    rows = []
    ties = []
    for r in records:
        pairs = sorted(r["hyperparameters"].items())
        hps = ", ".join(f"{_md(k)}={num_distinct(v)}" for k, v in pairs)
        tied = int(r.get("n_tied", 1))
        if tied > 1:
            ties.append(f"{_md(r['optimizer'])} on {_md(r['workload'])} ({tied} trials)")
        spread = (
            [
                f"{_num(r['test_mean'])}; {_num(r['test_min'])} / {_num(r['test_median'])} / "
                f"{_num(r['test_max'])} ({r['n_repeats']})"
            ]
            if several
            else []
        )
        rows.append(
            [
                _md(r["workload"]),
                _md(r["optimizer"]),
                "-" if r["trial"] is None else r["trial"],
                f"{r['n_usable']}/{r['n_trials']}",
                tied if r["trial"] is not None else "-",
                _num(r["selection_value"]),
                _num(r["test_value"]),
                *spread,
                hps or "-",
            ]
        )
    headers = ["workload", "optimizer", "trial", "usable/trials", "tied", "selection", "test"]
    headers += ["over repeats"] if several else []
    b.lines += _table([*headers, "hyperparameters"], rows)
    if ties:
        b.caveat(
            "selections decided by a tie of the selection value"
            + (f" under protocol {_md(group)}" if group else "")
            + ": "
            + "; ".join(ties)
            + " (the result is the mean of the tied trials' test values)",
            key=True,
        )
    b.add_records("selection", sel.to_json(), group)


def _budget_section(b: _Builder, curve: BudgetCurve, group: str | None) -> None:
    d = curve.data.sel(target="test")
    ks = [int(k) for k in d["k"].values]
    for w in (str(x) for x in d["workload"].values):
        metric = str(d["metric_name"].sel(workload=w).item())
        b.lines += [
            f"**{_md(w)}**: how the tuned result depends on the tuning budget: test "
            f"{_md(metric)} of the best of k trials; each cell is the bootstrap "
            "median [5%, 95%] (closed-form expectation) among studies with a result, and "
            "after `none:` the share of k-trial studies whose trials all diverged or are "
            "incomplete (no result; exact). `settled` is the smallest k from "
            f"which the exact median stays within {curve.tolerance:g} of its value at "
            f"k={ks[-1]}.",
            "",
        ]
        rows = []
        for o in (str(x) for x in d["optimizer"].values):
            c = d.sel(workload=w, optimizer=o)
            cells = [
                f"{_num(c['median'].values[i])} [{_num(c['lo'].values[i])}, "
                f"{_num(c['hi'].values[i])}] ({_num(c['expected'].values[i])})"
                + _none_share(float(c["no_result_exact"].values[i]))
                for i in range(len(ks))
            ]
            settled = int(c["settled_k"].values)
            rows.append([_md(o), *cells, settled if settled > 0 else "-"])
        b.lines += _table(["optimizer", *[f"k={k}" for k in ks], "settled"], rows)
    b.add_records("budget", curve.to_json(), group)


def _none_share(share: float) -> str:
    """ " none: x%" when some k-trial studies have no result, else nothing."""
    if not share > 0:
        return ""
    return " none: <0.1%" if share < 0.0005 else f" none: {100 * share:.1f}%"


def _rank_section(b: _Builder, ranks: Rankings, group: str | None) -> None:
    d = ranks.data
    places = [int(p) for p in d["place"].values]
    rows = []
    for w in (str(x) for x in d["workload"].values):
        cell = d.sel(workload=w)
        order = np.argsort(cell["rank"].values, kind="stable")
        for i in order:
            c = cell.isel(optimizer=int(i))
            probs = c["rank_probability"].values
            rows.append(
                [
                    _md(w),
                    _num(c["rank"].values),
                    _md(c["optimizer"].values),
                    _num(c["value"].values),
                    _num(c["mean_rank"].values, 3),
                    _num(c["p_best"].values, 3),
                    _none_share(float(c["no_result"].values)).removeprefix(" none: ") or "0%",
                    " / ".join(_num(p, 2) for p in probs),
                ]
            )
    how = (
        "exact, from the order statistics of independent studies"
        if str(ranks.method) == "exact"
        else f"over {ranks.n_boot} bootstrap studies"
    )
    b.lines += [
        "Which optimizer comes out ahead, and how reliably: optimizers ranked by the "
        f"test metric of their selected trial (1 = best; `-`: no "
        f"usable trial, no rank), with the rank distribution ({how}) of studies of "
        f"k={ranks.budget} trials each. `no result`: the probability that such a study "
        "has no usable trial (then it has no rank, so its rank probabilities sum to less "
        f"than 1). Caveat: {P_BEST_CAVEAT}.",
        "",
    ]
    header_p = "P(rank " + "/".join(str(p) for p in places) + ")"
    b.lines += _table(
        ["workload", "rank", "optimizer", "test", "mean rank", "P(best)", "no result", header_p],
        rows,
    )
    b.add_records("rank", ranks.to_json(), group)


def _cell_num(value: Any, digits: int = 3) -> str:
    """A JSON number for a table cell: None (NaN or inf in the record) as "-"."""
    return "-" if value is None else _num(value, digits)


def _aggregate_section(b: _Builder, result: AggregateScores, group: str | None) -> None:
    level = f"{100 * result.confidence:g}%"
    n_w = len(result.workloads)
    anchors = {
        "targets": "0 is the untrained model's test value (the median at step 0 or 1) and 1 "
        "the workload's target, fixed per workload (AlgoPerf style)",
        "reference": "0 and 1 are the reference scores given per workload",
        "identity": "scores are the test values as they are (already normalised)",
        "minmax-compared": "1 is the best test value any compared trial reached and 0 the "
        "tuned value of "
        + (f"`{_md(result.reference)}`" if result.reference else "the worst tuned optimizer")
        + " (a min-max over the compared optimizers: it changes when one is added)",
    }[str(result.normalisation)]
    study = (
        f"a tuned result is the selected trial of a {result.budget}-trial study"
        if result.budget is not None
        else "a tuned result is one repeated study's selected trial"
    )
    b.lines += [
        f"Normalised test scores across {n_w} workload{'s' if n_w != 1 else ''} (unit "
        f"{result.unit}; {study}): {anchors}. IQM is the mean of the middle half of all "
        "(workload, tuned result) scores, the optimality gap the mean shortfall below 1 "
        "(Agarwal et al. 2021).",
        "",
    ]
    if result.interval_note is None:
        b.lines += [
            f"Intervals: {level} expanded percentile intervals of a stratified bootstrap "
            f"over workloads ({result.n_boot} replicates; widened for the few independent "
            "studies behind a best-of-k result, as the coverage simulation in "
            "docs/method.md requires).",
            "",
        ]
    else:
        b.lines += [_md(result.interval_note[0].upper() + result.interval_note[1:]) + ".", ""]
    records = result.to_json()
    agg = {(r["optimizer"], r["statistic"]): r for r in records if r["record"] == "aggregate"}
    names = sorted({o for o, _ in agg}, key=lambda o: -(agg[(o, "iqm")]["value"] or -np.inf))

    def cell(r: dict[str, Any], digits: int) -> str:
        value = _cell_num(r["value"], digits)
        if r["lo"] is None or r["hi"] is None:
            return value
        return f"{value} [{_cell_num(r['lo'], digits)}, {_cell_num(r['hi'], digits)}]"

    rows = [[_md(o), *(cell(agg[(o, st)], 3) for st in AGGREGATE_STATISTICS)] for o in names]
    b.lines += _table(["optimizer", "IQM", "mean", "median", "optimality gap"], rows)
    if result.interval_note is None:
        imp = [r for r in records if r["record"] == "improvement" and r["clear"]]
        clear = [
            f"{_md(r['optimizer'])} over {_md(r['other'])}: {cell(r, 2)} (Holm p "
            f"{_num(r['p_holm'], 2)})"
            for r in imp
        ]
        b.lines += [
            "Probability of improvement (a tuned run of the first beats one of the second on "
            f"a random workload), clear where its Holm-adjusted p-value over the "
            f"{result.n_pairs} pairs is below {1 - result.confidence:.2g}: "
            + ("; ".join(clear) if clear else "none")
            + ".",
            "",
        ]
    b.add_records("aggregate", records, group)


def _score_section(b: _Builder, archive: xr.Dataset) -> None:
    """AlgoPerf archives: the leaderboard score by the benchmark's own rules, the number
    `optcmp score` prints, with the rules applied."""
    b.lines += ["## AlgoPerf score", ""]
    result = b.attempt("score", lambda: algoperf_score(archive))
    if result is None:
        return
    records = result.to_json()
    b.lines += [
        "The benchmark's own score (the number `optcmp score` prints): per workload the "
        "median over studies of the time to the validation target, the held-out rules, "
        "then the area under the performance profile of the base workloads only, over "
        "tau in [1, 4], divided by 3. Rules applied:",
        "",
        *(f"- {_md(name)}: {_md(rule)}" for name, rule in result.rules),
        "",
    ]
    b.lines += _table(
        ["optimizer", "score"],
        [[_md(r["optimizer"]), _num(r["score"], 4)] for r in records],
    )
    if records:
        top = records[0]
        b.supported.append(
            f"AlgoPerf score: {_md(top['optimizer'])} ranks first ({_num(top['score'], 4)}; "
            "see AlgoPerf score)"
        )
    for c in result.caveats:
        b.caveat(_md(c))
    b.results["score"] = records


def _profiles_section(b: _Builder, result: PerformanceProfiles, group: str | None) -> None:
    records = result.to_json()
    b.lines += [
        f"Time to each workload's target ({result.measure}) of every optimizer's fastest "
        f"trial (of {result.budget_phrase} per study), as a ratio to the fastest optimizer's; "
        "the profile is the share of "
        f"the {len(result.workloads)} workloads within a ratio tau, and the area under it "
        f"over [1, {result.max_tau:g}] scaled to [0, 1] (AlgoPerf's score form).",
        "",
    ]
    if b.results.get("score") is not None:
        b.lines += [
            f"This profile area is not the AlgoPerf score: it covers all "
            f"{len(result.workloads)} workloads of this report with a target (base and "
            "held-out variants alike), without the held-out rules or the 4x cut, and a "
            "study's time is its fastest trial's rather than that of the trial first "
            "reaching the target by evaluation index. The score is in AlgoPerf score.",
            "",
        ]
    areas = sorted(
        (r for r in records if r["record"] == "area"), key=lambda r: -(r["value"] or 0.0)
    )
    rows = []
    tau = result.data["tau"].values
    for r in areas:
        rho = result.data["rho"].sel(optimizer=r["optimizer"]).values
        at = [_num(float(rho[np.searchsorted(tau, t - 1e-9)]), 3) for t in (1.0, 2.0)]
        rows.append([_md(r["optimizer"]), _num(r["value"], 3), *at])
    b.lines += _table(["optimizer", "profile area", "within 1x", "within 2x"], rows)
    b.add_records("profiles", records, group)


def _inclusion_section(b: _Builder, result: InclusionResult, group: str | None) -> None:
    records = result.to_json()
    level = f"{1 - 2 * result.alpha:.0%}"
    margins = ", ".join(f"{_md(w)} {_num(m, 3)}" for w, m in result.margins.items())
    rules = sorted(set(result.margin_rules.values()))
    b.lines += [
        "Whether a more general optimizer ever loses to one it includes (the paper's "
        "central claim). For every inclusion M ⊆ N, N tuned well should not be worse than "
        "M. Δ = E_k(N) - E_k(M): the expected test metric of the trial a k-trial study "
        "selects, each estimated without bias from the trials run (Dodge et al. 2021), at "
        f"budget {_md(result.budget_text)} (the k of each row is shown); positive means N "
        "is worse. A study with no usable trial scores the worst result of the pair. The "
        f"{level} interval and the p-values come from a studentized bootstrap (bootstrap-t, "
        f"{result.n_boot} resamples) of Δ over its jackknife standard error, which keeps its "
        "level when the two search spaces give trials of different spread and shape "
        "(docs/method.md). Violated: the Holm-adjusted p-value of 'N is not worse' is below "
        f"{result.alpha:g} (one family of {result.n_tests} tests: every rule, pair and "
        "workload below). Consistent: the Holm-adjusted p-value of 'N is worse by at least "
        f"the margin' is below {result.alpha:g} (its own family of the same "
        f"{result.n_tests}). Margins in each metric's units: {margins} "
        f"({_md('; '.join(rules))}). Not tested: k equals a study's size, where no variance "
        "estimate exists; the difference is descriptive. Not included: the stored search "
        "spaces cannot express M inside N (a finding about the protocol; not tested). "
        "P(N not worse) is the chance that a k-trial study of N is not worse than an "
        "independent one of M.",
        "",
    ]
    rows = [
        [
            r["rule"],
            _md(r["workload"]),
            f"{_md(r['special'])} ⊆ {_md(r['general'])}",
            f"{r['k']} of {min(r['n_special'], r['n_general'])}",
            _cell_num(r["difference"]),
            f"[{_cell_num(r['lo'])}, {_cell_num(r['hi'])}]" if r["tested"] else "-",
            _cell_num(r["margin"]),
            _cell_num(r["p_adjusted"]) if r["tested"] else "-",
            _cell_num(r["p_noninferior_adjusted"]) if r["tested"] else "-",
            _cell_num(r["p_general_not_worse"], 2) if r["tested"] else "-",
            "not included" if r["verdict"] == "not_included" else _md(r["verdict_text"]),
        ]
        for r in records
    ]
    b.lines += _table(
        [
            "rule",
            "workload",
            "pair",
            "k of N",
            "Δ",
            level,
            "margin",
            "p worse (Holm)",
            "p not worse by margin (Holm)",
            "P(N not worse)",
            "verdict",
        ],
        rows,
    )
    violated = sorted(
        {(r["rule"], r["special"], r["general"]) for r in records if r["verdict"] == "violated"}
    )
    if violated:
        b.lines += [f"Violated (Holm-adjusted p < {result.alpha:g}):", ""]
        b.lines += [f"- `{rule}`: {_md(s)} ⊆ {_md(g)}" for rule, s, g in violated]
        b.lines.append("")
    elif result.n_tests == 0:
        b.lines += ["No pair was tested: none is an inclusion as stored (below).", ""]
    else:
        b.lines += [f"No tested inclusion is violated at level {result.alpha:g} (Holm).", ""]
    reasons: dict[tuple[str, str, str], list[str]] = {}
    for r in records:
        if r["verdict"] == "not_included":
            ws = reasons.setdefault((r["special"], r["general"], r["reason"]), [])
            if r["workload"] not in ws:
                ws.append(r["workload"])
    if reasons:
        b.lines += ["Not included as stored (not tested):", ""]
        b.lines += [
            f"- {_md(s)} ⊆ {_md(g)} ({_md(', '.join(ws))}): {_md(reason)}"
            for (s, g, reason), ws in reasons.items()
        ]
        b.lines.append("")
    for c in result.caveats:
        b.caveat(_md(c))
    _inclusion_findings(b, records, group)
    b.add_records("inclusion", records, group)


def _evidence_of_consistency(record: dict[str, Any]) -> bool:
    """A "consistent" verdict with evidence: the interval's upper end below the record's
    non-inferiority margin (0 where the record states none)."""
    hi = record.get("hi")
    margin = record.get("margin")
    limit = float(margin) if isinstance(margin, int | float) else 0.0
    return isinstance(hi, int | float) and np.isfinite(hi) and hi < limit


def _inclusion_findings(b: _Builder, records: list[dict[str, Any]], group: str | None) -> None:
    """The inclusion verdicts of the report's rule in the findings summary: violated and
    consistent (both need evidence) as supported, inconclusive as not supported, pairs
    the stored spaces cannot express as protocol findings."""
    where = f" (protocol {group})" if group else ""
    mine = [r for r in records if r.get("rule", str(b.rule)) == str(b.rule)]
    undecided = []
    untested: list[str] = []
    # One line per pair and reason, naming its workloads (not one line per workload).
    not_nested: dict[tuple[str, str, str], list[str]] = {}
    for r in mine:
        pair = f"{_md(r['special'])} ⊆ {_md(r['general'])} on {_md(r['workload'])}{where}"
        span = _interval(r.get("lo"), r.get("hi"))
        at = f"at budget k = {r['k']} of {min(r['n_special'], r['n_general'])} trials"
        if r["verdict"] == "violated":
            b.supported.append(
                f"{pair}, {at}: the general optimizer's expected best-of-k test "
                f"{_md(r['metric'])} is worse by {_num(r['difference'], 3)} (interval {span}, "
                f"Holm-adjusted p {_num(r['p_adjusted'], 3)})"
            )
        elif r["verdict"] == "consistent" and _evidence_of_consistency(r):
            b.supported.append(
                f"{pair}, {at}: the general optimizer's expected best-of-k test "
                f"{_md(r['metric'])} is not worse by more than the margin "
                f"{_num(r['margin'], 3)} (difference {_num(r['difference'], 3)}, interval "
                f"{span}, Holm-adjusted non-inferiority p "
                f"{_num(r['p_noninferior_adjusted'], 3)})"
            )
        elif r["verdict"] == "not_tested":
            untested.append(pair)
        elif r["verdict"] == "not_included":
            reason = r.get("reason") or "the stored search spaces do not nest"
            key = (r["special"], r["general"], reason)
            not_nested.setdefault(key, [])
            if r["workload"] not in not_nested[key]:
                not_nested[key].append(r["workload"])
        else:
            undecided.append(pair)
    for (special, general, reason), workloads in not_nested.items():
        b.protocol_notes.append(
            f"{_md(special)} ⊆ {_md(general)}{where} is not an inclusion as tuned on "
            f"{_md(', '.join(workloads))}: {_md(reason)}"
        )
    if undecided:
        b.unsupported.append(
            f"{len(undecided)} of {len(mine)} inclusion tests are inconclusive{where} "
            f"(e.g. {undecided[0]}): more trials are needed to decide them"
        )
    if untested:
        b.unsupported.append(
            f"{len(untested)} of {len(mine)} inclusion pairs were not tested{where} (e.g. "
            f"{untested[0]}): at k = N no variance estimate exists; the difference is "
            "descriptive"
        )


def _targets_section(b: _Builder, study: TargetStudy, group: str | None) -> None:
    conds = full_budget_steps(study)
    b.lines += [
        "How fast each optimizer gets to a given quality: steps the fastest tuned trial of "
        "each optimizer needs to first reach each target "
        "value on the selection split, at the full step budget (`never`: not reached).",
        "",
    ]
    for w in study.workloads:
        targets = study.target_value.sel(workload=w).values
        headers = ["optimizer"] + [
            f"{study.metric_names[w]} {_num(targets[study.condition_target[c]])}" for c in conds
        ]
        rows = [
            [_md(o), *[_num(study.tuned.sel(workload=w, optimizer=o).values[c]) for c in conds]]
            for o in study.optimizers
        ]
        b.lines += [f"**{_md(w)}**", "", *_table(headers, rows)]
    flips = study.flips()
    changes = study.verdict_changes()
    b.lines += [
        f"Ranking flips against the reference (final test metric at the full budget) over "
        f"all targets and truncated budgets: {len(flips)}; inclusion verdicts that depend "
        f"on the target or budget: {len(changes)}.",
        "",
    ]
    records = study.to_json()
    _verdict_changes(b, [r for r in records if r["record"] == "inclusion"], changes, group)
    b.add_records("targets", records, group)


def _condition_text(records: list[dict[str, Any]]) -> str:
    """Conditions named compactly, with the step limits as shares of the step budget:
    "steps to 0.79 (25/50%), 0.68 (25%); final test metric (25%)"."""
    steps: dict[str, list[str]] = {}
    final: list[str] = []
    for r in records:
        share = f"{100 * r['fraction']:.0f}"
        if r["kind"] == "final":
            final.append(share)
        else:
            steps.setdefault(_num(r["target_value"], 3), []).append(share)
    parts = []
    if steps:
        parts.append("steps to " + ", ".join(f"{t} ({'/'.join(fr)}%)" for t, fr in steps.items()))
    if final:
        parts.append(f"final test metric ({'/'.join(final)}%)")
    return "; ".join(parts)


def _verdict_changes(
    b: _Builder,
    records: list[dict[str, Any]],
    changes: list[tuple[str, str, str]],
    group: str | None,
) -> None:
    """Per inclusion pair whose verdict depends on the condition: its verdict at the
    reference (the final test metric at the full step budget, the condition the Inclusion
    section and the Findings test) and under which other conditions it differs. A supported
    inclusion finding is qualified with the same, so the two never disagree."""
    if not changes:
        return
    where = f" (protocol {group})" if group else ""
    full = max((r["fraction"] for r in records), default=1.0)
    b.lines += [
        "Verdicts are tested per condition (here Holm runs over every condition's tests, a "
        "larger family than the Inclusion section's); the reference is the final test metric "
        "at the full step budget, the condition the Inclusion section tests; in parentheses "
        "the step limit as a share of the step budget:",
        "",
    ]
    for w, special, general in changes:
        mine = [
            r
            for r in records
            if (r["workload"], r["special"], r["general"]) == (w, special, general)
        ]
        ref = next(
            (r["verdict"] for r in mine if r["kind"] == "final" and r["fraction"] == full), "-"
        )
        others: dict[str, list[dict[str, Any]]] = {}
        for r in mine:
            if r["verdict"] != ref:
                others.setdefault(str(r["verdict"]), []).append(r)
        detail = "; ".join(
            f"{_md(v)} under {_condition_text(rs)}" for v, rs in sorted(others.items())
        )
        pair = f"{_md(special)} ⊆ {_md(general)} on {_md(w)}"
        b.lines.append(f"- {pair}: {_md(ref)} at the reference; {detail}")
        n_other = sum(len(rs) for rs in others.values())
        prefix = f"{pair}{where}:"
        for i, line in enumerate(b.supported):
            if line.startswith(prefix):
                b.supported[i] = (
                    f"{line}; this holds for the final test metric at the full step budget: "
                    f"under {n_other} of {len(mine) - 1} other target or budget conditions "
                    f"the verdict is {' or '.join(_md(v) for v in sorted(others))} (see Steps "
                    "to target)"
                )
    b.lines.append("")


def _boundary_section(b: _Builder, check: BoundaryCheck, group: str | None) -> list[str]:
    warnings = check.warnings()
    if warnings:
        b.lines += [
            "Whether the search spaces were wide enough: best trials near an edge of the "
            f"search space (top {check.top} trials, within "
            f"{check.fraction:.0%} of the range in the search scale):",
            "",
            *[f"- {_md(text)}" for text in warnings],
            "",
        ]
    elif not bool(check.data["searched"].any()):
        b.lines += [
            "Whether the search spaces were wide enough: nothing checked: no searched "
            "hyperparameter recorded (the archive stores no search space with a range).",
            "",
        ]
    else:
        n = int(check.data["searched"].sum())
        b.lines += [
            f"Whether the search spaces were wide enough: of the {n} searched "
            f"(workload, optimizer, hyperparameter) ranges checked, none has one of its top "
            f"{check.top} trials within {check.fraction:.0%} of a search-space edge.",
            "",
        ]
    b.add_records("boundary", check.to_json(), group)
    return warnings


def _protocol_section(b: _Builder, comp: ProtocolComparison) -> None:
    first, second = comp.protocols
    records = comp.to_json()
    cells = [r for r in records if r["record"] == "cell"]
    level = f"{comp.level:.0%}"
    b.lines += [
        f"How much the tuning protocol decides the result: each optimizer's tuned test "
        f"metric (its best of N trials) under {_md(first)} and under {_md(second)} (matched "
        f"by {_md(comp.match)}); the tested difference is that of the expected best-of-k "
        f"test metric E_k ({_md(second)} minus {_md(first)}) at budget "
        f"{_md(comp.budget_text)} (k of N per row), with a {level} studentized bootstrap "
        f"interval ({comp.n_boot} resamples of each optimizer's trials) and a two-sided "
        "p-value (Holm-adjusted over the optimizers), the machinery of the inclusion test, "
        "valid when the two protocols' trials differ in spread and shape; and the ranks "
        f"under each protocol. A difference is clear when the adjusted p-value is below "
        f"{1 - comp.level:.2g} (its interval then excludes 0) and it exceeds the metric's "
        "observed step (one test example for an error rate); Kendall tau compares the two "
        "rankings of the tuned values.",
        "",
    ]
    rows = [
        [
            _md(r["workload"]),
            _md(r["optimizer"]),
            _num(r["value_first"]),
            _num(r["value_second"]),
            str(r["k"]),
            f"{_num(r['value'], 3)} {_interval(r['lo'], r['hi'])}",
            _num(r["p_adjusted"], 2),
            "yes" if r["clear"] else "no",
            f"{_num(r['rank_first'])} → {_num(r['rank_second'])}",
            _num(r["kendall_tau"], 3),
        ]
        for r in cells
    ]
    b.lines += _table(
        [
            "workload",
            "optimizer",
            f"test ({first})",
            f"test ({second})",
            "k",
            f"Δ E_k {level}",
            "p (Holm)",
            "clear",
            "rank",
            "Kendall tau",
        ],
        rows,
    )
    for r in cells:
        text = (
            f"{_md(r['optimizer'])} on {_md(r['workload'])}, at budget k = {r['k']}: "
            f"expected best-of-k test {_md(r['metric'])} {_num(r['expected_second'])} "
            f"under {_md(second)} vs {_num(r['expected_first'])} under {_md(first)} "
            f"(difference {_num(r['value'], 3)}, {level} interval "
            f"{_interval(r['lo'], r['hi'])}, Holm-adjusted bootstrap-t p "
            f"{_num(r['p_adjusted'], 2)})"
        )
        if r["clear"]:
            b.supported.append(f"protocol effect: {text}")
    unclear = [f"{_md(r['optimizer'])} on {_md(r['workload'])}" for r in cells if not r["clear"]]
    if unclear:
        b.unsupported.append(
            f"no clear protocol effect ({_md(second)} vs {_md(first)}) for "
            + ", ".join(unclear)
            + ": the difference is not significant, its interval contains 0, or it is within "
            "the metric's step"
        )
    pairs = [p for p in comp.pairs() if p["clear"]]
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in pairs:
        by_cell.setdefault((p["protocol"], p["workload"]), []).append(p)
    for (pr, w), found in by_cell.items():
        b.supported.append(
            f"under {_md(pr)} on {_md(w)}, at budget k = {found[0]['k']}, clearly better "
            f"in expected best-of-k test metric (gap, {level} interval): "
            + "; ".join(
                f"{_md(p['optimizer'])} > {_md(p['other'])} ({_num(p['gap'], 3)}, "
                f"{_interval(p['lo'], p['hi'])})"
                for p in found
            )
            + f" (Holm-adjusted bootstrap-t p ≤ {_num(max(p['p_adjusted'] for p in found), 2)})"
        )
    n_pairs = {pr: sum(1 for p in comp.pairs() if p["protocol"] == pr) for pr in (first, second)}
    for pr in (first, second):
        n_clear = sum(1 for p in pairs if p["protocol"] == pr)
        if n_clear < n_pairs[pr]:
            b.unsupported.append(
                f"under {_md(pr)}, {n_pairs[pr] - n_clear} of {n_pairs[pr]} pairs of "
                "optimizers are not clearly ordered"
            )
    flips = comp.flips()
    supported = [f for f in flips if f["supported"]]
    changed = [_md(r["optimizer"]) for r in cells if r["clear"]]
    by_workload = {str(r["workload"]): r["kendall_tau"] for r in cells}
    taus = ", ".join(f"{_md(w)} {_num(t, 2)}" for w, t in by_workload.items())
    b.protocol_notes.append(
        f"{_md(second)} instead of {_md(first)} clearly changes the tuned result of "
        f"{len(changed)} of {len(cells)} optimizers"
        + (f" ({', '.join(changed)})" if changed else "")
        + f"; Kendall tau between the two rankings: {taus}; "
        + (f"{len(supported)} ranking flip(s) are clear" if supported else "no flip is clear")
    )
    if supported:
        b.lines += [f"Rankings that clearly flip between {_md(first)} and {_md(second)}:", ""]
        for f in supported:
            line = (
                f"{_md(f['optimizer'])} is better than {_md(f['other'])} on "
                f"{_md(f['workload'])} under {_md(first)} (by {_num(f['gap_first'], 3)}, "
                f"interval {_interval(f['gap_first_lo'], f['gap_first_hi'])}) but worse "
                f"under {_md(second)} (by {_num(f['gap_second'], 3)}, interval "
                f"{_interval(f['gap_second_lo'], f['gap_second_hi'])})"
            )
            b.lines.append(f"- {line}")
            b.protocol_notes.append(f"ranking flip: {line}")
        b.lines.append("")
    else:
        b.lines += [
            f"No pair of optimizers clearly changes order between {_md(first)} and {_md(second)}.",
            "",
        ]
    if len(flips) > len(supported):
        n = len(flips) - len(supported)
        b.lines += [
            f"{n} other order change(s) between the protocols are within the uncertainty "
            "(a gap is not significant after Holm, its interval contains 0, or it is within "
            "the metric's step) and are not counted as flips.",
            "",
        ]
        b.unsupported.append(
            f"{n} order change(s) between {_md(first)} and {_md(second)} are within the uncertainty"
        )
    b.results.setdefault("protocol", []).extend(records)


def _boundary_one(
    ds: xr.Dataset, workload: str, rule: SelectionRule, styles: dict[str, OptimizerStyle]
) -> Figure:
    # The whole archive's styles, so that every workload's figure draws an optimizer alike.
    return boundary_figure(boundary_check(ds, rule=rule, workloads=[workload]), styles=styles)


def _without_empty_workloads(b: _Builder, ds: xr.Dataset, group: str | None) -> xr.Dataset:
    """`ds` without the workloads where no trial is usable (one caveat names them), so
    that an empty workload never disables an analysis for the others."""
    usable = trial_scores(ds, rule=b.rule).data["usable"]
    per_workload = usable.any([d for d in usable.dims if d != "workload"])
    empty = [str(w) for w, ok in zip(ds["workload"].values, per_workload.values, strict=True)]
    empty = [w for w, ok in zip(empty, per_workload.values, strict=True) if not ok]
    if not empty or len(empty) == ds.sizes["workload"]:
        return ds
    b.caveat(
        f"workload(s) {', '.join(_md(w) for w in empty)} have no usable trial"
        + (f" under protocol {_md(group)}" if group else "")
        + " (every trial diverged, is incomplete or missing) and are left out of the analyses",
        key=True,
    )
    keep = [str(w) for w in ds["workload"].values if str(w) not in empty]
    return restrict(ds, workloads=keep)


# The sections written alike, in the report's order: the analysis (its entry in the
# registry of analyses runs it, names its heading and draws its figure), the function
# that writes its section, the alt text of its figure, and whether the result's caveats
# join the report's.
_SECTIONS: tuple[tuple[str, Callable[[_Builder, Any, str | None], None], str, bool], ...] = (
    ("budget", _budget_section, "best-of-k test metric against k", False),
    ("rank", _rank_section, "rank probabilities per optimizer", False),
    ("aggregate", _aggregate_section, "aggregate scores across workloads", True),
    ("profiles", _profiles_section, "time-to-target performance profiles", True),
    ("inclusion", _inclusion_section, "inclusion verdicts", False),
    ("targets", _targets_section, "steps to target per optimizer", False),
)


def _test_budget(ds: xr.Dataset, inference: Inference | None) -> int | None:
    """The budget k of the inclusion and protocol tests: the one asked for, else the
    default rule on the smallest present-trial count of a (workload, optimizer) cell."""
    if inference is not None and inference.budget is not None:
        return inference.budget
    present = (ds["status"] != "missing").sum("trial")
    counts = present.values[present.values > 0]
    if counts.size == 0:
        return None
    smallest = int(counts.min())
    return default_budget(smallest, smallest)


def _left_out(name: str, result: Any) -> str | None:
    """Why a section has nothing to show (None: it has something)."""
    if name == "profiles":
        records = result.to_json()
        if not any(r["record"] == "time" and r["value"] is not None for r in records):
            targets = sorted(
                {
                    f"{_md(r['workload'])} {_num(r['target'], 4)}"
                    for r in records
                    if r["record"] == "time"
                }
            )
            return (
                "no optimizer reached the target of any workload within its step budget "
                f"(targets: {', '.join(targets)}), so there is no time to compare"
            )
    return None


def _group(b: _Builder, ds: xr.Dataset, group: str | None) -> None:
    sfx = _suffix(group)
    full = ds
    styles = _styles_of(ds)
    ds = _without_empty_workloads(b, ds, group)
    # Without a selection nothing else can run: fatal for the whole archive, a recorded
    # gap for one protocol of several.
    if group is None:
        sel: Selection | None = select_best(ds, rule=b.rule)
    else:
        sel = b.attempt(f"selection{sfx}", lambda: select_best(ds, rule=b.rule))
    b.advance("selection")
    if sel is None:
        for step in _GROUP_STEPS[1:]:
            b.advance(step)
        return
    for c in sel.caveats:
        b.caveat(_md(c))
    _selection_section(b, sel, group)

    # The inclusion section also shows the verdicts under the train-loss rule.
    rules = tuple(dict.fromkeys([b.rule, SelectionRule.FINAL_TRAIN_LOSS]))
    # Rankings are of k-trial studies at the tests' budget, so that the report asks one
    # question (the default rule: a quarter of the smallest trial count).
    test_budget = _test_budget(ds, b.inference)
    for name, write_section, alt, with_caveats in _SECTIONS:
        analysis = analysis_named(name)
        b.lines += [f"## {_heading(analysis.report_heading or name, group)}", ""]
        common = Common(
            rng=b.rng(),
            rule=b.rule,
            n_boot=b.n_boot,
            budget=test_budget if name == "rank" else None,
            rules=rules,
            taxonomy=b.taxonomy,
            inference=b.inference,
        )
        result = b.attempt(f"{name}{sfx}", functools.partial(analysis.run, ds, common))
        reason = None if result is None else _left_out(name, result)
        if result is not None and reason is not None:
            # A section with nothing to show says why in one line (no empty table/figure).
            b.lines += [f"Left out: {reason}.", ""]
            b.add_records(name, result.to_json(), group)
        elif result is not None:
            if analysis.figure is not None:
                # Colours from the whole archive's optimizers: the same in every figure.
                b.figure(analysis.figure(result, full), f"{name}{sfx}", alt)
            write_section(b, result, group)
            if with_caveats:
                for c in result.caveats:
                    b.caveat(_md(c))
        b.advance(name)

    b.lines += [f"## {_heading('Boundary check', group)}", ""]
    check = b.attempt(f"boundary{sfx}", lambda: boundary_check(ds, rule=b.rule))
    if check is not None:
        warnings = _boundary_section(b, check, group)
        if warnings:
            b.caveat(
                f"{len(warnings)} hyperparameter(s) have best trials at a search-space edge"
                + (f" under protocol {_md(group)}" if group else "")
                + ": those optimizers may be under-tuned (see Boundary check)",
                key=True,
            )
        searched = check.data["searched"]
        with_space = [str(w) for w in ds["workload"].values if bool(searched.sel(workload=w).any())]
        if len(with_space) < ds.sizes["workload"]:
            b.lines += [
                "No boundary figure for workloads whose archive records no searched "
                "hyperparameter: "
                + (", ".join(_md(w) for w in ds["workload"].values if str(w) not in with_space))
                + ".",
                "",
            ]
        for w in with_space:
            one = b.attempt(
                f"boundary-figure{sfx}-{w}",
                functools.partial(_boundary_one, ds, w, b.rule, styles),
            )
            if one is not None:
                b.figure(one, f"boundary{sfx}-{w}", f"boundary check on {w}")
    b.advance("boundary")

    b.lines += [f"## {_heading('Learning curves', group)}", ""]
    b.figure(
        curves_figure(ds, sel, styles=styles),
        f"curves{sfx}",
        "learning curves of the selected trials",
    )
    b.advance("curves")


def write_report(
    archive: xr.Dataset,
    out: Path,
    /,
    *,
    name: str,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
    rule: SelectionRule = SelectionRule.FINAL_VALID,
    compare: tuple[str, xr.Dataset] | None = None,
    advance: Callable[[str], None] = lambda step: None,
    title: str | None = None,
    taxonomy: Taxonomy | None = None,
    formats: Sequence[ReportFormat] = (ReportFormat.MD,),
    inference: Inference | None = None,
) -> ReportFiles:
    """Run every analysis on `archive` and write out/report.md, out/results.json and
    out/figures/*.png, and out/report.html (self-contained) when `formats` holds HTML.

    The files are written into a staging folder in `out` and moved into place once the
    report is complete; then the previous report's files that this one lacks are
    deleted. Only files an earlier report listed in out's manifest are replaced or
    deleted (see `_outputs`); a report that fails leaves the previous one whole.

    `name` labels the archive in the report (no absolute paths, so the files do not
    depend on where the archive lives); `title` heads it (default: `name`); `compare`
    adds a protocol comparison with a second archive; `taxonomy` replaces the default
    inclusion relations; `inference`: the inclusion and protocol tests' options (default
    their defaults). `advance` is called after each step (for progress)."""
    inference = Inference() if inference is None else inference
    names = [
        "report.md",
        "results.json",
        *(["report.html"] if ReportFormat.HTML in formats else []),
    ]
    stage = ReportStage.begin(out, names=names)
    try:
        staged = _write_staged(
            archive,
            stage.dir,
            name=name,
            seed=seed,
            n_boot=n_boot,
            rule=rule,
            compare=compare,
            advance=advance,
            title=title,
            taxonomy=taxonomy,
            formats=formats,
            inference=inference,
        )
    except BaseException:
        stage.abort()
        raise
    stage.commit()

    def moved(path: Path) -> Path:
        return out / path.relative_to(stage.dir)

    return ReportFiles(
        report=moved(staged.report),
        results=moved(staged.results),
        figures=tuple(moved(p) for p in staged.figures),
        html=None if staged.html is None else moved(staged.html),
    )


def _write_staged(
    archive: xr.Dataset,
    out: Path,
    /,
    *,
    name: str,
    seed: int,
    n_boot: int,
    rule: SelectionRule,
    compare: tuple[str, xr.Dataset] | None,
    advance: Callable[[str], None],
    title: str | None,
    taxonomy: Taxonomy | None,
    formats: Sequence[ReportFormat],
    inference: Inference,
) -> ReportFiles:
    """`write_report` into the staging folder `out`."""
    b = _Builder(
        out=out,
        name=name,
        seed=seed,
        n_boot=n_boot,
        rule=rule,
        advance=advance,
        title=title or f"{name}: optimizer comparison",
        taxonomy=taxonomy,
        inference=inference,
    )
    groups = _protocol_groups(archive)
    summary = summarize(archive, path=name)
    _partial_caveat(b, summary, name)
    for c in summary.caveats:
        b.caveat(_md(c))  # text from the archive: shown literally
    if compare is not None:
        _partial_caveat(b, summarize(compare[1], path=compare[0]), compare[0])

    body_start = len(b.lines)
    # Protocol comparisons (the point of a study with a restricted protocol) come first.
    comparisons: list[tuple[str, Callable[[], ProtocolComparison]]] = []
    if len(groups) > 1:
        widest, wide_opts = groups[-1]
        assert widest is not None
        for label, opts in groups[:-1]:
            assert label is not None
            comparisons.append(
                (
                    f"{label} vs {widest}",
                    functools.partial(
                        protocol_sensitivity,
                        restrict(archive, optimizers=opts),
                        restrict(archive, optimizers=wide_opts),
                        protocols=(label, widest),
                        match=Match.FAMILY,
                        rule=rule,
                        budget=inference.budget,
                        n_boot=inference.n_boot,
                        level=1 - inference.alpha,
                        rng=b.rng(),
                    ),
                )
            )
    if compare is not None:
        other_name, other = compare
        labels = _labels(name, other_name)
        comparisons.append(
            (
                f"{labels[0]} vs {labels[1]}",
                lambda: protocol_sensitivity(
                    archive,
                    other,
                    protocols=labels,
                    rule=rule,
                    budget=inference.budget,
                    n_boot=inference.n_boot,
                    level=1 - inference.alpha,
                    rng=b.rng(),
                ),
            )
        )
    for heading, run in comparisons:
        b.lines += [f"## Protocol comparison: {_md(heading)}", ""]
        comp = b.attempt(f"protocol {heading}", run)
        if comp is not None:
            b.figure(
                protocol_figure(comp, styles=_styles_of(archive)),
                f"protocol-{heading}",
                f"tuned results under {heading}",
            )
            _protocol_section(b, comp)
        advance("protocol")

    if archive.attrs.get("base_workloads"):
        _score_section(b, archive)
    for label, optimizers in groups:
        ds = archive if label is None else restrict(archive, optimizers=optimizers)
        _group(b, ds, label)

    _plan_undecided(b, archive, compare)
    body = b.lines[body_start:]
    head = _header(b, summary, groups, compare)
    text = "\n".join([*head, *body]).rstrip("\n") + "\n"
    report_path = out / "report.md"
    results_path = out / "results.json"
    atomic_write_text(report_path, text)
    html_path = None
    if ReportFormat.HTML in formats:
        html_path = out / "report.html"
        atomic_write_text(html_path, to_html(text, title=b.title, base=out))
    results = {
        "report": {
            "archive": name,
            "compare": None if compare is None else compare[0],
            "seed": seed,
            "n_boot": n_boot,
            "inference": {
                "budget": inference.budget,
                "budget_rule": None if inference.budget is not None else BUDGET_RULE,
                "n_test_boot": inference.n_boot,
                "alpha": inference.alpha,
                "margin": inference.margin,
                "margin_rule": MARGIN_RULE if not isinstance(inference.margin, float) else None,
            },
            "rule": str(rule),
            "protocols": [label for label, _ in groups if label is not None],
            "figures": [f"figures/{p.name}" for p in b.figures],
        },
        "archive": summary.to_json(),
        "caveats": b.caveats,
        "skipped": b.skipped,
        **b.results,
    }
    atomic_write_text(results_path, json_text(results))
    return ReportFiles(
        report=report_path, results=results_path, figures=tuple(b.figures), html=html_path
    )


def _labels(name: str, other_name: str) -> tuple[str, str]:
    """The protocol labels of a report's archive and its --compare archive."""
    return (name, other_name) if name != other_name else (f"{name} (1)", f"{name} (2)")


def _plan_undecided(
    b: _Builder, archive: xr.Dataset, compare: tuple[str, xr.Dataset] | None
) -> None:
    """Say under Not supported how many trials would decide each undecided comparison."""
    from optcmp_analysis import default_trial_grid
    from optcmp_cli._report_plan import undecided_line, undecided_plans

    # Protocol effects and pairs are planned where the comparison is of two archives
    # (matched by name, as the planner matches them).
    protocol = b.results.get("protocol", []) if compare is not None else []
    records, budget, reason = undecided_plans(
        archive,
        None if compare is None else compare[1],
        protocols=_labels(b.name, compare[0]) if compare is not None else ("first", "second"),
        inclusion=b.results.get("inclusion", []),
        protocol=protocol,
        rule=b.rule,
        taxonomy=b.taxonomy,
        seed=b.seed,
    )
    if reason is not None:
        b.unsupported.append(f"how many trials would decide them was not planned: {_md(reason)}")
    elif records and budget is not None:
        b.unsupported.append(undecided_line(records, budget, default_trial_grid(budget)[-1], _md))
        b.results["plan"] = records
    b.advance("plan")


def _partial_caveat(b: _Builder, summary: ArchiveSummary, name: str) -> None:
    """One caveat naming what an incomplete study lacks (missing and incomplete trials).

    Only for studies of `optcmp run`, where every (workload, optimizer, trial) is planned:
    an imported archive pads ragged trial and seed counts with "missing" by design."""
    if not str(summary.provenance.get("source") or "").startswith("optcmp run"):
        return
    missing = [(c.workload, c.optimizer, c.missing) for c in summary.cells if c.missing]
    incomplete = sum(c.incomplete for c in summary.cells)
    total = sum(c.completed + c.diverged + c.incomplete + c.missing for c in summary.cells)
    if not missing and not incomplete:
        return
    parts = []
    if missing:
        n = sum(m for _, _, m in missing)
        cells = ", ".join(f"{_md(o)} on {_md(w)} ({m})" for w, o, m in missing[:6])
        more = f" and {len(missing) - 6} more cells" if len(missing) > 6 else ""
        parts.append(f"{n} of {total} trials missing ({cells}{more})")
    if incomplete:
        parts.append(f"{incomplete} trials incomplete (stopped before their last step)")
    b.caveat(
        f"{_md(name)} is an incomplete study: " + "; ".join(parts) + ". Results cover "
        "the trials present; rerun the study to complete it",
        key=True,
    )


def _header(
    b: _Builder,
    summary: ArchiveSummary,
    groups: list[tuple[str | None, list[str]]],
    compare: tuple[str, xr.Dataset] | None,
) -> list[str]:
    prov = summary.provenance
    lines = [
        f"# {_md(b.title)}",
        "",
        f"Every analysis of {_md(b.name)} in the method of Choi et al. 2019, *On Empirical "
        f"Comparisons of Optimizers for Deep Learning*: selection rule `{b.rule}`, seed "
        f"{b.seed}, {b.n_boot} bootstrap draws; inclusion and protocol tests: "
        f"{_md(b.inference.describe())}. The same archive, seed and options reproduce this "
        "report.",
        "",
        *_findings(b),
        "## Caveats",
        "",
        "Everything the archive records or the analyses found that qualifies a number "
        "below, each once (those that change a conclusion are listed under Findings).",
        "",
    ]
    others = _grouped([c for c in b.caveats if c not in b.key_caveats])
    if others:
        lines += [f"- {c}" for c in others]
    else:
        lines.append("- none beyond those under Findings")
    lines.append("")
    if b.skipped:
        lines += ["Analyses not available for this archive:", ""]
        lines += [f"- {_md(k)}: {_md(v)}" for k, v in b.skipped.items()]
        lines.append("")
    lines += [
        "## Archive",
        "",
        "Where the data come from and what it holds: provenance, workloads, and the "
        "status of every trial per (workload, optimizer).",
        "",
    ]
    lines += _table(
        ["source", "created", "command", "optcmp", "torch", "git commit"],
        [
            [
                _md(prov.get("source") or "-"),
                _md(prov.get("created") or "-"),
                _md(prov.get("command") or "-"),
                _md(prov.get("optcmp_version") or "-"),
                _md(prov.get("torch_version") or "-"),
                _md(str(prov.get("git_commit") or "-")[:12]),
            ]
        ],
    )
    lines += _table(
        ["workload", "metric", "direction", "selection split", "step budget", "valid target"],
        [
            [
                _md(w["workload"]),
                _md(w["metric"]),
                w["direction"],
                w["selection_split"],
                w["step_budget"] if w["step_budget"] >= 0 else "-",
                _num(w["valid_target"]) if w["valid_target"] is not None else "-",
            ]
            for w in summary.workloads
        ],
    )
    lines += _table(
        ["workload", "optimizer", "family", "completed", "diverged", "incomplete", "missing"],
        [
            [
                _md(c.workload),
                _md(c.optimizer),
                _md(c.family) if c.family else "-",
                c.completed,
                c.diverged,
                c.incomplete,
                c.missing,
            ]
            for c in summary.cells
        ],
    )
    if len(groups) > 1:
        lines += [
            "Tuning protocols (search spaces) in this archive, each analysed on its own: "
            + "; ".join(f"{md(label)}: {', '.join(md(o) for o in opts)}" for label, opts in groups),
            "",
        ]
    if compare is not None:
        lines += [f"Compared with the archive {_md(compare[0])} (protocol comparison below).", ""]
    return lines


_PER_WORKLOAD = re.compile(r"^workload (?P<w>\S+): (?P<rest>.+)$")


def _grouped(caveats: list[str]) -> list[str]:
    """Caveats that differ only in their workload ("workload W: text") as one line naming
    every workload, at the place of the first; the others unchanged."""
    by_rest: dict[str, list[str]] = {}
    for c in caveats:
        m = _PER_WORKLOAD.match(c)
        if m:
            by_rest.setdefault(m["rest"], []).append(m["w"])
    out: list[str] = []
    for c in caveats:
        m = _PER_WORKLOAD.match(c)
        if m is None:
            out.append(c)
        elif by_rest[m["rest"]][0] == m["w"]:
            names = by_rest[m["rest"]]
            label = "workload" if len(names) == 1 else "workloads"
            out.append(f"{label} {', '.join(names)}: {m['rest']}")
    return out


def _findings(b: _Builder) -> list[str]:
    """The summary that leads the report: what the data support, what they do not, what
    the protocol decides, and the caveats that change a conclusion."""
    lines = [
        "## Findings",
        "",
        "A statement is listed as supported only with an interval that excludes 0 (or a "
        "test verdict) behind it; differences within the uncertainty or within the "
        "metric's step are never read as one optimizer beating another.",
        "",
    ]
    sections = [
        ("Supported", b.supported, "nothing: no difference is clear at this budget"),
        ("Not supported", b.unsupported, "none listed"),
        ("Protocol findings", b.protocol_notes, "none"),
        ("Caveats that change conclusions", _grouped(b.key_caveats), "none"),
    ]
    for heading, items, empty in sections:
        lines += [f"**{heading}**", ""]
        lines += [f"- {text}" for text in items] if items else [f"- {empty}"]
        lines.append("")
    return lines
