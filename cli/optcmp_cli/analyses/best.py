"""best: the selected trial of every (workload, optimizer), the report's first section.

Dependency rule: optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optcmp_cli._analyze import (
    _HPARAMS_SHOWN,
    _caveats,
    _rule,
    _workload_label,
)
from optcmp_cli.render.escape import md, term
from optcmp_cli.render.markdown import number, table
from optcmp_cli.render.numbers import num, num_column, num_distinct
from optcmp_cli.render.tables import LABEL, TEXT, VALUE, fit_table, print_fitted

if TYPE_CHECKING:
    import xarray as xr

    from optcmp_analysis import Selection
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["HELP", "REPORT_KEY", "REQUIRED", "VIEWS", "options", "print_table", "section"]

#: Its key in the report (progress step, results.json, skipped): the selection.
REPORT_KEY = "selection"
#: Nothing else of a protocol group of the report runs without the selection.
REQUIRED = True
#: The learning curves of the selected trials: a figure (`optcmp plot curves`) and a
#: report section drawn from this analysis's result, with no analysis of their own.
VIEWS = {"curves": "optcmp_cli.analyses.curves"}


def options(c: Common) -> Any:
    """The options of `plot` and `report`: the selection rule."""
    from optcmp_analysis import analysis_named

    return analysis_named("best").options(rule=c.rule)


def section(b: Builder, sel: Selection, g: Group) -> None:
    """The selected trials: which trial each optimizer's result is, its hyperparameters,
    and the ties that decided a selection (a key caveat)."""
    for c in sel.caveats:
        b.caveat(md(c))
    b.lines += [
        f"What each optimizer achieved once tuned: the best trial of every (workload, "
        f"optimizer) by rule `{sel.rule}`, whose test metric is the optimizer's result. "
        "Diverged and incomplete trials count towards the budget but are never selected; "
        "when several trials tie on the selection value, the result is the mean of their "
        "test values (`tied` > 1) and the trial shown is the first of them.",
        "",
    ]
    records = sel.to_json()
    several = any(r["n_repeats"] > 1 for r in records)
    if several:
        b.lines += [
            "`over repeats`: the selected trial's test value over all its completed repeats "
            "(mean; min / median / max, count); `test` comes from the repeats selection used"
            + (
                f" ({md(records[0]['test_repeats'])})"
                if records and records[0]["test_repeats"] != "all"
                else ""
            )
            + ".",
            "",
        ]
    rows, ties = _rows(records, several)
    headers = ["workload", "optimizer", "trial", "usable/trials", "tied", "selection", "test"]
    headers += ["over repeats"] if several else []
    b.lines += table([*headers, "hyperparameters"], rows)
    if ties:
        b.caveat(
            "selections decided by a tie of the selection value"
            + g.under()
            + ": "
            + "; ".join(ties)
            + " (the result is the mean of the tied trials' test values)",
            key=True,
        )
    b.add_records("selection", sel.to_json(), g.label)


def _rows(records: list[dict[str, Any]], several: bool) -> tuple[list[list[Any]], list[str]]:
    """The table's rows (with the repeats' spread where there are `several`) and the
    ties that decided a selection."""
    rows = []
    ties = []
    for r in records:
        pairs = sorted(r["hyperparameters"].items())
        hps = ", ".join(f"{md(k)}={num_distinct(v)}" for k, v in pairs)
        tied = int(r.get("n_tied", 1))
        if tied > 1:
            ties.append(f"{md(r['optimizer'])} on {md(r['workload'])} ({tied} trials)")
        spread = (
            [
                f"{number(r['test_mean'])}; {number(r['test_min'])} / {number(r['test_median'])} / "
                f"{number(r['test_max'])} ({r['n_repeats']})"
            ]
            if several
            else []
        )
        rows.append(
            [
                md(r["workload"]),
                md(r["optimizer"]),
                "-" if r["trial"] is None else r["trial"],
                f"{r['n_usable']}/{r['n_trials']}",
                tied if r["trial"] is not None else "-",
                number(r["selection_value"]),
                number(r["test_value"]),
                *spread,
                hps or "-",
            ]
        )
    return rows, ties


#: The help of `optcmp analyze best`.
HELP = """The best trial of every workload and optimizer under a selection rule, with its
hyperparameters, selection value and test value.

Example: optcmp analyze best runs/demo/study --rule final-valid --json
"""


def print_table(result: Selection, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze best` prints (without --json)."""
    records = result.to_json()
    several = any(r["n_repeats"] > 1 for r in records)
    rows = []
    selections = num_column([r["selection_value"] for r in records])
    tests = num_column([r["test_value"] for r in records])
    for r, selection, test in zip(records, selections, tests, strict=True):
        # One `name=value` pair a line: a pair is never cut, and the column stays narrow.
        # A very wide archive (thousands of hyperparameters) shows the first few.
        pairs = list(r["hyperparameters"].items())
        hp = "\n".join(term(f"{k}={num_distinct(v)}") for k, v in pairs[:_HPARAMS_SHOWN])
        if len(pairs) > _HPARAMS_SHOWN:
            hp += f"\n... {len(pairs) - _HPARAMS_SHOWN} more (--json)"
        row = [
            _workload_label(r),
            r["optimizer"],
            num(r["trial"]),
            hp or "-",
            f"{selection} ({r['selection_split']})",
            f"{test} {term(r['metric'])}"
            + (f" ({term(r['test_repeats'])})" if several and r["test_repeats"] != "all" else ""),
        ]
        if several:
            row.append(
                f"{num(r['test_mean'])}; {num(r['test_min'])} / {num(r['test_median'])} / "
                f"{num(r['test_max'])} ({r['n_repeats']})"
            )
        rows.append(row)
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("trial", VALUE),
        ("hyperparameters", VALUE),
        ("selection", TEXT),
        ("test", TEXT),
    ]
    spread = "test over all repeats: mean; min / median / max (n)"
    if several:
        columns.append((spread, TEXT))
    droppable = (spread,)
    table = fit_table(
        f"Best trials ({_rule(options.rule, ds)})",
        columns,
        rows,
        droppable,
        last_resort=("hyperparameters",),
    )
    print_fitted(*table)
    _caveats(result.caveats)
