"""rank: the optimizers ranked by their selected trial, with rank probabilities.

Dependency rule: numpy, optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from optcmp_analysis import P_BEST_CAVEAT
from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import none_share, number, table

if TYPE_CHECKING:
    from optcmp_analysis import Rankings
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


def section(b: Builder, ranks: Rankings, g: Group) -> None:
    """The figure, then the rankings of every workload with their rank distribution."""
    b.draw("rank", ranks, g, "rank probabilities per optimizer")
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
                    md(w),
                    number(c["rank"].values),
                    md(c["optimizer"].values),
                    number(c["value"].values),
                    number(c["mean_rank"].values, 3),
                    number(c["p_best"].values, 3),
                    none_share(float(c["no_result"].values)).removeprefix(" none: ") or "0%",
                    " / ".join(number(p, 2) for p in probs),
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
    b.lines += table(
        ["workload", "rank", "optimizer", "test", "mean rank", "P(best)", "no result", header_p],
        rows,
    )
    b.add_records("rank", ranks.to_json(), g.label)
