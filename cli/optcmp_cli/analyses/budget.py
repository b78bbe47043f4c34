"""budget: the best-of-k test metric against the budget k.

Dependency rule: optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optcmp_cli._analyze import (
    _caveats,
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

    from optcmp_analysis import BudgetCurve
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["BUDGET_HELP", "FIGURE_HELP", "HELP", "figure", "options", "print_table", "section"]

#: What `optcmp plot budget --budget K` means (its `options(common)` reads `common.budget`).
BUDGET_HELP = "the largest k drawn"


def options(c: Common) -> Any:
    """The options of `plot` and `report`: --budget is the largest k drawn (1, 2, 4, ...
    up to it), with the bootstrap draws and the rule."""
    from optcmp_analysis import analysis_named, default_budgets

    budgets = None if c.budget is None else default_budgets(c.budget)
    return analysis_named("budget").options(budgets=budgets, n_boot=c.n_boot, rule=c.rule)


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = "best-of-k vs k, bootstrap band and closed form"


def figure(result: BudgetCurve, ds: xr.Dataset) -> Figure:
    """Best-of-k against k, in the archive's colours."""
    from optcmp_cli._plots import budget_figure
    from optcmp_cli.render.palette import styles_of

    return budget_figure(result, styles=styles_of(ds))


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


#: The help of `optcmp analyze budget`.
HELP = """Best-of-k outcome against the budget k (the paper's Figures 6-8): bootstrap mean,
median and 5-95% band of the selected trial's test metric, the closed-form expectation
(Dodge et al.) and exact percentiles from order statistics.

Example: optcmp analyze budget runs/demo/study --budget 4 --budget 16 --seed 1 --json
"""


def print_table(result: BudgetCurve, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze budget` prints (without --json)."""
    records = result.to_json()
    means = num_column([r["mean"] for r in records])
    medians = num_column([r["median"] for r in records])
    expected = num_column([r["expected"] for r in records])
    los = num_column([r["lo"] for r in records])
    his = num_column([r["hi"] for r in records])
    rows = [
        [
            _workload_label(r),
            r["optimizer"],
            str(r["k"]),
            means[i],
            medians[i],
            f"{los[i]} - {his[i]}",
            expected[i],
            f"{num(r['exact_lo'])} / {num(r['exact_median'])} / {num(r['exact_hi'])}",
            pct(r["no_result_exact"]),
            num(r["settled_k"]),
        ]
        for i, r in enumerate(records)
    ]
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("k", VALUE),
        ("mean", VALUE),
        ("median", VALUE),
        ("5-95% (bootstrap)", TEXT),
        ("expected", VALUE),
        ("5-50-95% (exact)", TEXT),
        ("no result (exact)", VALUE),
        ("settled at k", VALUE),
    ]
    title = f"Best-of-k test metric ({_rule(options.rule, ds)}, {options.n_boot} bootstrap draws)"
    droppable = ("settled at k", "expected", "5-50-95% (exact)")
    print_fitted(*fit_table(title, columns, rows, droppable))
    _caveats(result.caveats)
