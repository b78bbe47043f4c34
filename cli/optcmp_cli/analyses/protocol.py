"""protocol: how much the tuning protocol decides the result.

Dependency rule: optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from optcmp_cli._common import console
from optcmp_cli.render.escape import md, term
from optcmp_cli.render.markdown import interval, number, table
from optcmp_cli.render.numbers import num

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import Match, ProtocolComparison, SelectionRule
    from optcmp_cli._analyses import Common, Inference
    from optcmp_cli.report.builder import Builder, Group

__all__ = [
    "FIGURE_HELP",
    "HELP",
    "figure",
    "labels",
    "options",
    "print_table",
    "section",
    "test_options",
]


def options(c: Common) -> Any:
    """The options of `plot` and `report`, the tests' options: with --compare the two
    archives' names as labels, else the archive's two search spaces matched by family."""
    from optcmp_analysis import Match

    if c.compare is not None:
        return test_options(labels(c.name, c.compare[0]), None, c.rule, c.inference)
    return test_options(None, Match.FAMILY, c.rule, c.inference)


def labels(name: str, other_name: str) -> tuple[str, str]:
    """The protocol labels of an archive and the --compare archive (numbered where the
    two names are the same)."""
    return (name, other_name) if name != other_name else (f"{name} (1)", f"{name} (2)")


def test_options(
    protocols: tuple[str, str] | None, match: Match | None, rule: SelectionRule, i: Inference
) -> Any:
    """The registry's options of the protocol test with the tests' options `i`: the one
    call of `analyze`, `plot` and the report's protocol comparisons."""
    from optcmp_analysis import analysis_named

    return analysis_named("protocol").options(
        protocols=protocols,
        match=match,
        rule=rule,
        budget=i.budget,
        n_boot=i.n_boot,
        alpha=i.alpha,
    )


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = (
    "tuned results under two protocols: the two search spaces of one archive, or --compare ARCHIVE"
)


def figure(result: ProtocolComparison, ds: xr.Dataset) -> Figure:
    """The tuned results under the two protocols, in the archive's colours."""
    from optcmp_cli._plots import protocol_figure
    from optcmp_cli.render.palette import styles_of

    return protocol_figure(result, styles=styles_of(ds))


def section(b: Builder, comp: ProtocolComparison, g: Group) -> None:
    """The figure, the tuned results under both protocols, and what the comparison
    supports: clear protocol effects, clearly ordered pairs, ranking flips."""
    b.draw("protocol", comp, g, f"tuned results under {g.label}")
    records = comp.to_json()
    cells = [r for r in records if r["record"] == "cell"]
    _table(b, comp, cells)
    _effects(b, comp, cells)
    _pairs(b, comp)
    _flips(b, comp, cells)
    b.results.setdefault("protocol", []).extend(records)


def _table(b: Builder, comp: ProtocolComparison, cells: list[dict[str, Any]]) -> None:
    """What is compared and how, and one row per (workload, optimizer)."""
    first, second = comp.protocols
    level = f"{comp.level:.0%}"
    b.lines += [
        f"How much the tuning protocol decides the result: each optimizer's tuned test "
        f"metric (its best of N trials) under {md(first)} and under {md(second)} (matched "
        f"by {md(comp.match)}); the tested difference is that of the expected best-of-k "
        f"test metric E_k ({md(second)} minus {md(first)}) at budget "
        f"{md(comp.budget_text)} (k of N per row), with a {level} studentized bootstrap "
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
            md(r["workload"]),
            md(r["optimizer"]),
            number(r["value_first"]),
            number(r["value_second"]),
            str(r["k"]),
            f"{number(r['value'], 3)} {interval(r['lo'], r['hi'])}",
            number(r["p_adjusted"], 2),
            "yes" if r["clear"] else "no",
            f"{number(r['rank_first'])} → {number(r['rank_second'])}",
            number(r["kendall_tau"], 3),
        ]
        for r in cells
    ]
    b.lines += table(
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


def _effects(b: Builder, comp: ProtocolComparison, cells: list[dict[str, Any]]) -> None:
    """Each optimizer's protocol effect: supported where clear, the others in one line."""
    first, second = comp.protocols
    level = f"{comp.level:.0%}"
    for r in cells:
        text = (
            f"{md(r['optimizer'])} on {md(r['workload'])}, at budget k = {r['k']}: "
            f"expected best-of-k test {md(r['metric'])} {number(r['expected_second'])} "
            f"under {md(second)} vs {number(r['expected_first'])} under {md(first)} "
            f"(difference {number(r['value'], 3)}, {level} interval "
            f"{interval(r['lo'], r['hi'])}, Holm-adjusted bootstrap-t p "
            f"{number(r['p_adjusted'], 2)})"
        )
        if r["clear"]:
            b.supported.append(f"protocol effect: {text}")
    unclear = [f"{md(r['optimizer'])} on {md(r['workload'])}" for r in cells if not r["clear"]]
    if unclear:
        b.unsupported.append(
            f"no clear protocol effect ({md(second)} vs {md(first)}) for "
            + ", ".join(unclear)
            + ": the difference is not significant, its interval contains 0, or it is within "
            "the metric's step"
        )


def _pairs(b: Builder, comp: ProtocolComparison) -> None:
    """The pairs of optimizers clearly ordered under each protocol, and how many are not."""
    first, second = comp.protocols
    level = f"{comp.level:.0%}"
    pairs = [p for p in comp.pairs() if p["clear"]]
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in pairs:
        by_cell.setdefault((p["protocol"], p["workload"]), []).append(p)
    for (pr, w), found in by_cell.items():
        b.supported.append(
            f"under {md(pr)} on {md(w)}, at budget k = {found[0]['k']}, clearly better "
            f"in expected best-of-k test metric (gap, {level} interval): "
            + "; ".join(
                f"{md(p['optimizer'])} > {md(p['other'])} ({number(p['gap'], 3)}, "
                f"{interval(p['lo'], p['hi'])})"
                for p in found
            )
            + f" (Holm-adjusted bootstrap-t p ≤ {number(max(p['p_adjusted'] for p in found), 2)})"
        )
    n_pairs = {pr: sum(1 for p in comp.pairs() if p["protocol"] == pr) for pr in (first, second)}
    for pr in (first, second):
        n_clear = sum(1 for p in pairs if p["protocol"] == pr)
        if n_clear < n_pairs[pr]:
            b.unsupported.append(
                f"under {md(pr)}, {n_pairs[pr] - n_clear} of {n_pairs[pr]} pairs of "
                "optimizers are not clearly ordered"
            )


def _flips(b: Builder, comp: ProtocolComparison, cells: list[dict[str, Any]]) -> None:
    """What the protocol changes (a protocol finding) and the rankings that clearly flip;
    order changes within the uncertainty are counted, not listed as flips."""
    first, second = comp.protocols
    flips = comp.flips()
    supported = [f for f in flips if f["supported"]]
    changed = [md(r["optimizer"]) for r in cells if r["clear"]]
    by_workload = {str(r["workload"]): r["kendall_tau"] for r in cells}
    taus = ", ".join(f"{md(w)} {number(t, 2)}" for w, t in by_workload.items())
    b.protocol_notes.append(
        f"{md(second)} instead of {md(first)} clearly changes the tuned result of "
        f"{len(changed)} of {len(cells)} optimizers"
        + (f" ({', '.join(changed)})" if changed else "")
        + f"; Kendall tau between the two rankings: {taus}; "
        + (f"{len(supported)} ranking flip(s) are clear" if supported else "no flip is clear")
    )
    if supported:
        b.lines += [f"Rankings that clearly flip between {md(first)} and {md(second)}:", ""]
        for f in supported:
            line = (
                f"{md(f['optimizer'])} is better than {md(f['other'])} on "
                f"{md(f['workload'])} under {md(first)} (by {number(f['gap_first'], 3)}, "
                f"interval {interval(f['gap_first_lo'], f['gap_first_hi'])}) but worse "
                f"under {md(second)} (by {number(f['gap_second'], 3)}, interval "
                f"{interval(f['gap_second_lo'], f['gap_second_hi'])})"
            )
            b.lines.append(f"- {line}")
            b.protocol_notes.append(f"ranking flip: {line}")
        b.lines.append("")
    else:
        b.lines += [
            f"No pair of optimizers clearly changes order between {md(first)} and {md(second)}.",
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
            f"{n} order change(s) between {md(first)} and {md(second)} are within the uncertainty"
        )


#: The help of `optcmp analyze protocol`.
HELP = """Protocol sensitivity: rank the optimizers of each workload under two tuning
protocols (two archives, or two search spaces of one archive) by the test metric of
their selected trial, list where rankings flip and by how much, and test each
protocol effect: the expected best-of-k test metric E_k under each protocol at a
stated budget k, their difference with a (1 - alpha) bootstrap-t interval and a
two-sided p-value, Holm-adjusted over the optimizers (docs/method.md).

JSON records ("record" key): "cell" — workload, optimizer (the matched name or
family), first, second (protocol labels), label_first, label_second, trial_first,
trial_second, metric, split ("test"), value_first, value_second (tuned: best of N),
k, budget_rule, expected_first, expected_second (E_k), value (E_k second minus
first), lo, hi, p_value, p_adjusted, tested, clear, step, level, rank_first,
rank_second, rank_change, kendall_tau; "flip" — workload, optimizer (ranked better
under the first protocol), other, first, second, metric, split, value_first,
other_value_first, value_second, other_value_second, gap_first, gap_second (how much
the better one was better, under each), rank_change, supported; "pair" — protocol,
workload, optimizer (the better at budget k), other, k, gap, lo, hi, p_value,
p_adjusted, clear.

Example: optcmp analyze protocol runs/all.nc --protocol lr-only --protocol choi2019 --json
"""


def print_table(result: ProtocolComparison, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze protocol` prints (without --json)."""
    records = result.to_json()
    a, b = result.protocols
    table = Table(
        title=f"Tuned test metric and rank: {term(a)} → {term(b)} ({options.rule}; 1 = best)"
    )
    level = f"{1 - options.alpha:.0%}"
    for col in ("workload", "optimizer", term(a), "rank", term(b), "rank", "change", "tau"):
        table.add_column(col)
    effects = Table(
        title=f"Protocol effect at budget {term(result.budget_text)}: E_k({term(b)}) - "
        f"E_k({term(a)}), {level} bootstrap-t interval, Holm-adjusted two-sided p"
    )
    for col in ("workload", "optimizer", "k", "Δ E_k", level, "p (Holm)", "clear"):
        effects.add_column(col)
    for r in records:
        if r["record"] != "cell":
            continue
        change = r["rank_change"]
        table.add_row(
            term(r["workload"]),
            term(r["optimizer"]),
            num(r["value_first"]),
            num(r["rank_first"]),
            num(r["value_second"]),
            num(r["rank_second"]),
            "=" if change == 0 else f"{change:+.0f}",
            num(r["kendall_tau"], 3),
        )
        effects.add_row(
            term(r["workload"]),
            term(r["optimizer"]),
            str(r["k"]),
            num(r["value"], 3),
            f"[{num(r['lo'], 3)}, {num(r['hi'], 3)}]" if r["tested"] else "not tested",
            num(r["p_adjusted"], 2) if r["tested"] else "-",
            "yes" if r["clear"] else "no",
        )
    console.print(table)
    console.print(effects)
    flips = [r for r in records if r["record"] == "flip"]
    console.print(f"{len(flips)} flips")
    for f in flips:
        console.print(
            f"  {term(f['workload'])}: {term(f['optimizer'])} beat {term(f['other'])} by "
            f"{num(f['gap_first'], 3)} under {term(a)}, lost by {num(f['gap_second'], 3)} "
            f"under {term(b)} ({term(f['metric'])})",
            highlight=False,
        )
