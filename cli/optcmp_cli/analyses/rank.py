"""rank: the optimizers ranked by their selected trial, with rank probabilities.

Dependency rule: numpy, optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optcmp_cli._analyze import (
    _caveats,
    _repeat_keys,
    _rule,
    _workload_label,
)
from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import none_share, number, table
from optcmp_cli.render.numbers import num, num_column, pct
from optcmp_cli.render.tables import LABEL, TEXT, VALUE, fit_table, print_fitted

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import Rankings
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = [
    "BUDGET_HELP",
    "FIGURE_HELP",
    "HELP",
    "REPORT_AT_TESTS_BUDGET",
    "figure",
    "options",
    "print_table",
    "section",
]

#: What `optcmp plot rank --budget K` means (its `options(common)` reads `common.budget`).
BUDGET_HELP = "the k compared"
#: The report ranks k-trial studies at the budget of its tests (`common.budget`), so
#: that it asks one question (the default rule: a quarter of the smallest trial count).
REPORT_AT_TESTS_BUDGET = True


def options(c: Common) -> Any:
    """The options of `plot` and `report`: the budget k, the bootstrap draws, the rule."""
    from optcmp_analysis import analysis_named

    return analysis_named("rank").options(budget=c.budget, n_boot=c.n_boot, rule=c.rule)


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = "rank probabilities"


def figure(result: Rankings, ds: xr.Dataset) -> Figure:
    """Rank probabilities per optimizer, in the archive's colours."""
    from optcmp_cli._plots import rank_figure
    from optcmp_cli.render.palette import styles_of

    return rank_figure(result, styles=styles_of(ds))


def section(b: Builder, ranks: Rankings, g: Group) -> None:
    """The figure, then the rankings of every workload with their rank distribution."""
    import numpy as np

    from optcmp_analysis import P_BEST_CAVEAT

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


#: The help of `optcmp analyze rank`.
HELP = """Rank the optimizers of every workload by their selected trial's test metric, with
rank probabilities at budget k (exact by default), P(best) against the budget, and the
share of k-trial studies without a usable result. An optimizer without a usable trial
gets no rank.

Example: optcmp analyze rank runs/demo/study --budget 16 --seed 3
"""


def print_table(result: Rankings, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze rank` prints (without --json)."""
    records = result.to_json()
    rows = []
    ordered = sorted(records, key=lambda x: (x["workload"], _repeat_keys(x), x["rank"] or 1e9))
    tests = num_column([r["value"] for r in ordered])
    for r, test in zip(ordered, tests, strict=True):
        by_k = " ".join(f"{k}:{num(p, 2)}" for k, p in r["p_best_by_k"].items())
        none_k = " ".join(f"{k}:{pct(p)}" for k, p in r["no_result_by_k"].items())
        rows.append(
            [
                _workload_label(r),
                r["optimizer"],
                num(r["rank"]),
                test,
                num(r["mean_rank"], 3),
                num(r["p_best"], 3),
                pct(r["no_result"]),
                by_k,
                none_k,
            ]
        )
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("rank", VALUE),
        ("test", VALUE),
        ("mean rank", VALUE),
        ("P(best)", VALUE),
        ("no result", VALUE),
        ("P(best) by k", TEXT),
        ("no result by k", TEXT),
    ]
    title = (
        f"Rankings at budget k={result.budget} ({_rule(options.rule, ds)}; 1 = best; "
        f"{options.method} rank probabilities)"
    )
    print_fitted(*fit_table(title, columns, rows, ("no result by k", "P(best) by k")))
    _caveats(result.caveats)
