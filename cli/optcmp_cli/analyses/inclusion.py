"""inclusion: does a more general optimizer ever lose to one it includes?

Dependency rule: numpy, optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from optcmp_analysis import BUDGET_RULE
from optcmp_cli._analyze import (
    _caveats,
    _verdict,
    _workload_label,
)
from optcmp_cli._common import console
from optcmp_cli.render.escape import md, term
from optcmp_cli.render.markdown import cell_num, interval, number, table
from optcmp_cli.render.numbers import num

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import InclusionResult
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = [
    "BUDGET_DEFAULT",
    "BUDGET_HELP",
    "FIGURE_HELP",
    "HELP",
    "figure",
    "options",
    "print_table",
    "section",
]

#: What `optcmp plot inclusion --budget K` means (its `options(common)` reads
#: `common.budget`), and its k without --budget (the others: all trials).
BUDGET_HELP = "the k compared"
BUDGET_DEFAULT = BUDGET_RULE


def options(c: Common) -> Any:
    """The options of `plot` and `report`: the tests' options (--budget of plot first),
    the rule, and the train-loss rule where asked for (`c.rules`)."""
    from optcmp_analysis import SelectionRule, analysis_named

    i = c.inference
    rules = (c.rule,) if c.rules is None else c.rules
    return analysis_named("inclusion").options(
        budget=c.budget if c.budget is not None else i.budget,
        n_boot=i.n_boot,
        rule=rules[0],
        train_loss=SelectionRule.FINAL_TRAIN_LOSS in rules,
        taxonomy=c.taxonomy,
        alpha=i.alpha,
        margin=i.margin,
    )


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = "verdict per pair and workload"


def figure(result: InclusionResult, ds: xr.Dataset) -> Figure:
    """The verdict of every pair and workload."""
    from optcmp_cli._plots import inclusion_figure

    return inclusion_figure(result)


def section(b: Builder, result: InclusionResult, g: Group) -> None:
    """The figure, the verdict of every pair and workload, the violated pairs, the pairs
    the stored spaces do not nest, and the findings."""
    b.draw("inclusion", result, g, "inclusion verdicts")
    records = result.to_json()
    _explain(b, result)
    _verdicts(b, result, records)
    _lists(b, result, records)
    for c in result.caveats:
        b.caveat(md(c))
    _inclusion_findings(b, records, g.label)
    b.add_records("inclusion", records, g.label)


def _explain(b: Builder, result: InclusionResult) -> None:
    """What is tested, how, and what each verdict means."""
    from optcmp_analysis import min_test_trials

    level = f"{1 - 2 * result.alpha:.0%}"
    margins = ", ".join(f"{md(w)} {number(m, 3)}" for w, m in result.margins.items())
    rules = sorted(set(result.margin_rules.values()))
    b.lines += [
        "Whether a more general optimizer ever loses to one it includes (the paper's "
        "central claim). For every inclusion M ⊆ N, N tuned well should not be worse than "
        "M. Δ = E_k(N) - E_k(M): the expected test metric of the trial a k-trial study "
        "selects given that it has a result (a diverged trial counts in k but is never "
        "selected; the chance of no result is reported apart), estimated from the trials run "
        f"(Dodge et al. 2021), at budget {md(result.budget_text)} (the k of each row is "
        "shown); positive means N is worse. The "
        f"{level} interval and the p-values come from a studentized bootstrap (bootstrap-t, "
        f"{result.n_boot} resamples) of Δ over its jackknife standard error, which keeps its "
        "level when the two search spaces give trials of different spread and shape "
        "(docs/method.md). Violated: the Holm-adjusted p-value of 'N is not worse' is below "
        f"{result.alpha:g} (one family of {result.n_tests} tests: every rule, pair and "
        "workload below). Consistent: the Holm-adjusted p-value of 'N is worse by at least "
        f"the margin' is below {result.alpha:g} (its own family of the same "
        f"{result.n_tests}). Margins in each metric's units: {margins} "
        f"({md('; '.join(rules))}). Not tested: k equals a study's size, where no variance "
        "estimate exists, or a study has too few trials for any test to keep its level "
        f"(fewer than {min_test_trials(result.alpha)}); the difference is descriptive. Not "
        "included: the "
        "stored search "
        "spaces cannot express M inside N (a finding about the protocol; not tested). "
        "P(N not worse) is the chance that a k-trial study of N is not worse than an "
        "independent one of M.",
        "",
    ]


def _verdicts(b: Builder, result: InclusionResult, records: list[dict[str, Any]]) -> None:
    """One row per rule, pair and workload."""
    level = f"{1 - 2 * result.alpha:.0%}"
    rows = [
        [
            r["rule"],
            md(r["workload"]),
            f"{md(r['special'])} ⊆ {md(r['general'])}",
            f"{r['k']} of {min(r['n_special'], r['n_general'])}",
            cell_num(r["difference"]),
            f"[{cell_num(r['lo'])}, {cell_num(r['hi'])}]" if r["tested"] else "-",
            cell_num(r["margin"]),
            cell_num(r["p_adjusted"]) if r["tested"] else "-",
            cell_num(r["p_noninferior_adjusted"]) if r["tested"] else "-",
            cell_num(r["p_general_not_worse"], 2) if r["tested"] else "-",
            "not included" if r["verdict"] == "not_included" else md(r["verdict_text"]),
        ]
        for r in records
    ]
    b.lines += table(
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


def _lists(b: Builder, result: InclusionResult, records: list[dict[str, Any]]) -> None:
    """The violated pairs (or that none is), and the pairs the stored spaces do not nest."""
    violated = sorted(
        {(r["rule"], r["special"], r["general"]) for r in records if r["verdict"] == "violated"}
    )
    if violated:
        b.lines += [f"Violated (Holm-adjusted p < {result.alpha:g}):", ""]
        b.lines += [f"- `{rule}`: {md(s)} ⊆ {md(gen)}" for rule, s, gen in violated]
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
            f"- {md(s)} ⊆ {md(gen)} ({md(', '.join(ws))}): {md(reason)}"
            for (s, gen, reason), ws in reasons.items()
        ]
        b.lines.append("")


def _evidence_of_consistency(record: dict[str, Any]) -> bool:
    """A "consistent" verdict with evidence: the interval's upper end below the record's
    non-inferiority margin (0 where the record states none)."""
    import numpy as np

    hi = record.get("hi")
    margin = record.get("margin")
    limit = float(margin) if isinstance(margin, int | float) else 0.0
    return isinstance(hi, int | float) and np.isfinite(hi) and hi < limit


def _inclusion_findings(b: Builder, records: list[dict[str, Any]], group: str | None) -> None:
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
        pair = f"{md(r['special'])} ⊆ {md(r['general'])} on {md(r['workload'])}{where}"
        span = interval(r.get("lo"), r.get("hi"))
        at = f"at budget k = {r['k']} of {min(r['n_special'], r['n_general'])} trials"
        if r["verdict"] == "violated":
            b.supported.append(
                f"{pair}, {at}: the general optimizer's expected best-of-k test "
                f"{md(r['metric'])} is worse by {number(r['difference'], 3)} (interval {span}, "
                f"Holm-adjusted p {number(r['p_adjusted'], 3)})"
            )
        elif r["verdict"] == "consistent" and _evidence_of_consistency(r):
            b.supported.append(
                f"{pair}, {at}: the general optimizer's expected best-of-k test "
                f"{md(r['metric'])} is not worse by more than the margin "
                f"{number(r['margin'], 3)} (difference {number(r['difference'], 3)}, interval "
                f"{span}, Holm-adjusted non-inferiority p "
                f"{number(r['p_noninferior_adjusted'], 3)})"
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
            f"{md(special)} ⊆ {md(general)}{where} is not an inclusion as tuned on "
            f"{md(', '.join(workloads))}: {md(reason)}"
        )
    if undecided:
        b.unsupported.append(
            f"{len(undecided)} of {len(mine)} inclusion tests are inconclusive{where} "
            f"(e.g. {undecided[0]}): more trials are needed to decide them"
        )
    if untested:
        b.unsupported.append(
            f"{len(untested)} of {len(mine)} inclusion pairs were not tested{where} (e.g. "
            f"{untested[0]}): at k = N no variance estimate exists, and with too few trials "
            "per optimizer no test keeps its level (docs/method.md); the difference is "
            "descriptive"
        )


#: The help of `optcmp analyze inclusion`.
HELP = """Inclusion consistency: for every special ⊆ general pair and workload, is the tuned
general optimizer worse than the one it includes? Difference of the expected best-of-k
test metric given a result (general - special, positive: general worse) at a stated budget
k (default a quarter of the trials), a studentized bootstrap test and interval, Holm
within each family; verdict violated, consistent (within the workload's margin),
inconclusive, not tested (k = N, or too few trials), or not included (the stored
search spaces do not contain the inclusion). See docs/method.md.

Example: optcmp analyze inclusion runs/demo/study --taxonomy my_taxonomy.toml --json
"""


def print_table(result: InclusionResult, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze inclusion` prints (without --json)."""
    records = result.to_json()
    level = f"{1 - 2 * options.alpha:.0%}"
    console.print(
        f"Inclusion checks: Δ = general - special of the expected best-of-k test metric "
        f"(positive: general worse) at budget {term(result.budget_text)}, {level} "
        f"bootstrap-t interval; p (Holm, {result.n_tests} tests each): 'general worse' | "
        "'general worse by the margin or more' (violated, resp. consistent within the "
        f"margin, below alpha); alpha {options.alpha:g}, up to {options.n_boot} resamples.",
        highlight=False,
    )
    not_included: dict[tuple[str, str, str], list[str]] = {}
    groups: dict[tuple[str, str, str, float], list[dict[str, Any]]] = {}
    for r in records:
        n = min(r["n_special"], r["n_general"])
        key = (r["rule"], _workload_label(r), f"k = {r['k']} of {n}", r["margin"])
        groups.setdefault(key, []).append(r)
    for (rule_name, workload_label, k, margin_w), rows in groups.items():
        # One small table per (rule, workload): five columns fit 80 terminal columns.
        table = Table(
            title=f"{rule_name} · {term(workload_label)} · {k} · margin {num(margin_w, 3)}",
            box=box.SIMPLE_HEAD,
            title_justify="left",
        )
        table.add_column("special ⊆ general", overflow="ellipsis")
        for col in ("Δ", level, "p (Holm)"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        for r in rows:
            tested = r["tested"]  # not a test: no interval, no p shown
            if r["verdict"] == "not_included":
                found = not_included.setdefault((r["special"], r["general"], r["reason"]), [])
                if r["workload"] not in found:
                    found.append(r["workload"])
            table.add_row(
                f"{term(r['special'])} ⊆ {term(r['general'])}",
                num(r["difference"], 3),
                f"[{num(r['lo'], 3)}, {num(r['hi'], 3)}]" if tested else "-",
                f"{num(r['p_adjusted'], 2)}|{num(r['p_noninferior_adjusted'], 2)}"
                if tested
                else "-",
                _verdict(
                    r["verdict"],
                    {"not_included": "not incl.", "not_tested": "not tested"}.get(r["verdict"]),
                ),
            )
        console.print(table)
    for (special, general, reason), workloads in not_included.items():
        console.print(
            f"[blue]not included[/blue] {term(special)} ⊆ {term(general)} "
            f"({term(', '.join(workloads))}): {term(reason)}"
        )
    _caveats(result.caveats)
