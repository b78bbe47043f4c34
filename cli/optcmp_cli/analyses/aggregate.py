"""aggregate: normalised scores across workloads (IQM, optimality gap, improvement).

Dependency rule: numpy, optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from optcmp_analysis import AGGREGATE_STATISTICS
from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import cell_num, number, table

if TYPE_CHECKING:
    from optcmp_analysis import AggregateScores
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


def section(b: Builder, result: AggregateScores, g: Group) -> None:
    """The figure, the aggregate scores with their intervals, the clear improvements and
    the result's caveats."""
    b.draw("aggregate", result, g, "aggregate scores across workloads")
    level = f"{100 * result.confidence:g}%"
    n_w = len(result.workloads)
    anchors = {
        "targets": "0 is the untrained model's test value (the median at step 0 or 1) and 1 "
        "the workload's target, fixed per workload (AlgoPerf style)",
        "reference": "0 and 1 are the reference scores given per workload",
        "identity": "scores are the test values as they are (already normalised)",
        "minmax-compared": "1 is the best test value any compared trial reached and 0 the "
        "tuned value of "
        + (f"`{md(result.reference)}`" if result.reference else "the worst tuned optimizer")
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
        b.lines += [md(result.interval_note[0].upper() + result.interval_note[1:]) + ".", ""]
    records = result.to_json()
    agg = {(r["optimizer"], r["statistic"]): r for r in records if r["record"] == "aggregate"}
    names = sorted({o for o, _ in agg}, key=lambda o: -(agg[(o, "iqm")]["value"] or -np.inf))

    def cell(r: dict[str, Any], digits: int) -> str:
        value = cell_num(r["value"], digits)
        if r["lo"] is None or r["hi"] is None:
            return value
        return f"{value} [{cell_num(r['lo'], digits)}, {cell_num(r['hi'], digits)}]"

    rows = [[md(o), *(cell(agg[(o, st)], 3) for st in AGGREGATE_STATISTICS)] for o in names]
    b.lines += table(["optimizer", "IQM", "mean", "median", "optimality gap"], rows)
    if result.interval_note is None:
        imp = [r for r in records if r["record"] == "improvement" and r["clear"]]
        clear = [
            f"{md(r['optimizer'])} over {md(r['other'])}: {cell(r, 2)} (Holm p "
            f"{number(r['p_holm'], 2)})"
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
    b.add_records("aggregate", records, g.label)
    for c in result.caveats:
        b.caveat(md(c))
