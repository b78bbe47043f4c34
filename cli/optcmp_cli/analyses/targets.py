"""targets: steps to target values, and verdicts that depend on the target or budget.

Dependency rule: optcmp_analysis records, the report's builder and the targets figure's
choice of conditions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import number, table

if TYPE_CHECKING:
    from optcmp_analysis import TargetStudy
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


def section(b: Builder, study: TargetStudy, g: Group) -> None:
    """The figure, steps to each target per workload, and the verdicts that depend on
    the target or the step budget."""
    from optcmp_cli._plots import full_budget_steps

    b.draw("targets", study, g, "steps to target per optimizer")
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
            f"{study.metric_names[w]} {number(targets[study.condition_target[c]])}" for c in conds
        ]
        rows = [
            [md(o), *[number(study.tuned.sel(workload=w, optimizer=o).values[c]) for c in conds]]
            for o in study.optimizers
        ]
        b.lines += [f"**{md(w)}**", "", *table(headers, rows)]
    flips = study.flips()
    changes = study.verdict_changes()
    b.lines += [
        f"Ranking flips against the reference (final test metric at the full budget) over "
        f"all targets and truncated budgets: {len(flips)}; inclusion verdicts that depend "
        f"on the target or budget: {len(changes)}.",
        "",
    ]
    records = study.to_json()
    _verdict_changes(b, [r for r in records if r["record"] == "inclusion"], changes, g.label)
    b.add_records("targets", records, g.label)


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
            steps.setdefault(number(r["target_value"], 3), []).append(share)
    parts = []
    if steps:
        parts.append("steps to " + ", ".join(f"{t} ({'/'.join(fr)}%)" for t, fr in steps.items()))
    if final:
        parts.append(f"final test metric ({'/'.join(final)}%)")
    return "; ".join(parts)


def _verdict_changes(
    b: Builder,
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
            f"{md(v)} under {_condition_text(rs)}" for v, rs in sorted(others.items())
        )
        pair = f"{md(special)} ⊆ {md(general)} on {md(w)}"
        b.lines.append(f"- {pair}: {md(ref)} at the reference; {detail}")
        n_other = sum(len(rs) for rs in others.values())
        prefix = f"{pair}{where}:"
        for i, line in enumerate(b.supported):
            if line.startswith(prefix):
                b.supported[i] = (
                    f"{line}; this holds for the final test metric at the full step budget: "
                    f"under {n_other} of {len(mine) - 1} other target or budget conditions "
                    f"the verdict is {' or '.join(md(v) for v in sorted(others))} (see Steps "
                    "to target)"
                )
    b.lines.append("")
