"""protocol: how much the tuning protocol decides the result.

Dependency rule: optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import interval, number, table

if TYPE_CHECKING:
    from optcmp_analysis import ProtocolComparison
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


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
