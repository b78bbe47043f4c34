"""budget: the best-of-k test metric against the budget k.

Dependency rule: optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import none_share, number, table

if TYPE_CHECKING:
    from optcmp_analysis import BudgetCurve
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


def section(b: Builder, curve: BudgetCurve, g: Group) -> None:
    """The figure, then per workload a table of the best-of-k test metric against k."""
    b.draw("budget", curve, g, "best-of-k test metric against k")
    d = curve.data.sel(target="test")
    ks = [int(k) for k in d["k"].values]
    for w in (str(x) for x in d["workload"].values):
        metric = str(d["metric_name"].sel(workload=w).item())
        b.lines += [
            f"**{md(w)}**: how the tuned result depends on the tuning budget: test "
            f"{md(metric)} of the best of k trials; each cell is the bootstrap "
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
                f"{number(c['median'].values[i])} [{number(c['lo'].values[i])}, "
                f"{number(c['hi'].values[i])}] ({number(c['expected'].values[i])})"
                + none_share(float(c["no_result_exact"].values[i]))
                for i in range(len(ks))
            ]
            settled = int(c["settled_k"].values)
            rows.append([md(o), *cells, settled if settled > 0 else "-"])
        b.lines += table(["optimizer", *[f"k={k}" for k in ks], "settled"], rows)
    b.add_records("budget", curve.to_json(), g.label)
