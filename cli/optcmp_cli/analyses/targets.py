"""targets: steps to target values, and verdicts that depend on the target or budget.

Dependency rule: optcmp_analysis records, the report's builder and the targets figure's
choice of conditions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from optcmp_cli._analyze import (
    _verdict,
)
from optcmp_cli._common import console
from optcmp_cli.render.escape import md, term
from optcmp_cli.render.markdown import number, table
from optcmp_cli.render.numbers import num

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import TargetStudy
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["FIGURE_HELP", "HELP", "figure", "options", "print_table", "section"]


def options(c: Common) -> Any:
    """The options of `plot` and `report`: the tests' options and the taxonomy."""
    from optcmp_analysis import analysis_named

    i = c.inference
    return analysis_named("targets").options(
        budget=i.budget, n_boot=i.n_boot, alpha=i.alpha, margin=i.margin, taxonomy=c.taxonomy
    )


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = "steps to target"


def figure(result: TargetStudy, ds: xr.Dataset) -> Figure:
    """Steps to each target, in the archive's colours and step unit."""
    from optcmp_cli._plots import step_label, targets_figure
    from optcmp_cli.render.palette import styles_of

    return targets_figure(result, styles=styles_of(ds), step_unit=step_label(ds))


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


#: The help of `optcmp analyze targets`.
HELP = """Target independence (the paper's Figure 10): steps and time to reach target
validation values under truncated step budgets, and the test metric selected on
truncated curves; whether rankings (Kendall tau against the final metric at the full
budget) and inclusion verdicts change across targets and budgets.

JSON records ("record" key): "tuned" — workload, optimizer, kind ("steps" or
"final"), target (index, -1 for final), target_value, fraction, step_limit, metric
("steps_to_target" or the metric name), split, value (tuned steps, or test metric),
reached (steps only; false: never reached, value null), time, rank, kendall_tau,
reference; "inclusion" — the keys of `optcmp analyze inclusion --json` (condition in
place of rule) plus kind, target, target_value, fraction, step_limit, verdict_changes;
"flip" — workload, kind, target, fraction, optimizer (better under the reference),
other, reference_value, other_reference_value, value, other_value, rank_change.

Example: optcmp analyze targets runs/demo/study --step-fraction 0.5 --step-fraction 1 --json
"""


def print_table(result: TargetStudy, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze targets` prints (without --json)."""
    records = result.to_json()
    tuned = [r for r in records if r["record"] == "tuned"]
    for w in result.workloads:
        table = Table(
            title=f"{term(w)}: tuned value (rank) per condition; tau against the final metric "
            "at the full budget"
        )
        table.add_column("condition")
        for o in result.optimizers:
            table.add_column(term(o), justify="right")
        table.add_column("tau", justify="right")
        rows: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
        for r in tuned:
            if r["workload"] == w:
                rows.setdefault((r["kind"], r["target"], r["fraction"]), []).append(r)
        for cells in rows.values():
            by_o = {c["optimizer"]: c for c in cells}
            label = _condition_label(cells[0]) + (" *" if cells[0]["reference"] else "")
            values = []
            for o in result.optimizers:
                c = by_o[o]
                shown = "never" if c["reached"] is False else num(c["value"])
                values.append(f"{shown} ({num(c['rank'])})")
            table.add_row(label, *values, num(cells[0]["kendall_tau"], 3))
        console.print(table)
    flips = result.flips()
    changes = result.verdict_changes()
    console.print(
        f"{len(flips)} pairwise flips against the reference (* above); "
        f"{len(changes)} inclusion verdicts change across conditions"
    )
    for w, s, g in changes:
        verdicts = sorted(
            {
                r["verdict"]
                for r in records
                if r["record"] == "inclusion"
                and (r["workload"], r["special"], r["general"]) == (w, s, g)
            }
        )
        shown = ", ".join(_verdict(v) for v in verdicts)
        console.print(f"  {term(w)}: {term(s)} ⊆ {term(g)}: {shown}")


def _condition_label(rec: dict[str, Any]) -> str:
    share = f"{100 * rec['fraction']:.0f}%"
    if rec["kind"] == "steps":
        return f"steps to {num(rec['target_value'])} (≤{share})"
    return f"final test (≤{share})"
