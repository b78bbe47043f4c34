"""best: the selected trial of every (workload, optimizer), the report's first section.

Dependency rule: optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import number, table
from optcmp_cli.render.numbers import num_distinct

if TYPE_CHECKING:
    from optcmp_analysis import Selection
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


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
