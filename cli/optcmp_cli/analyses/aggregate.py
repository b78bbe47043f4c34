"""aggregate: normalised scores across workloads (IQM, optimality gap, improvement).

Dependency rule: numpy, optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optcmp_cli._analyze import (
    _caveats,
    _rule,
)
from optcmp_cli._common import console
from optcmp_cli.render.escape import md, term
from optcmp_cli.render.markdown import cell_num, number, table
from optcmp_cli.render.numbers import num
from optcmp_cli.render.tables import LABEL, TEXT, VALUE, fit_table, print_fitted

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import AggregateScores
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = [
    "FIGURE_HELP",
    "HELP",
    "MAX_N_BOOT",
    "SEED_AFTER",
    "figure",
    "options",
    "print_table",
    "section",
]

#: Bootstrap replicates of `plot` and `report` are capped: each replicate resamples every
#: workload, and the interval is stable well before this.
MAX_N_BOOT = 2000


def options(c: Common) -> Any:
    """The options of `plot` and `report`: the bootstrap draws (at most
    MAX_N_BOOT) and the rule."""
    from optcmp_analysis import analysis_named

    return analysis_named("aggregate").options(n_boot=min(c.n_boot, MAX_N_BOOT), rule=c.rule)


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = (
    "IQM, optimality gap and probability of improvement across workloads; at most "
    f"{MAX_N_BOOT} bootstrap replicates"
)


def figure(result: AggregateScores, ds: xr.Dataset) -> Figure:
    """IQM, optimality gap and probability of improvement across workloads."""
    from optcmp_cli._plots_across import aggregate_figure
    from optcmp_cli.render.palette import styles_of

    return aggregate_figure(result, styles=styles_of(ds))


def section(b: Builder, result: AggregateScores, g: Group) -> None:
    """The figure, the aggregate scores with their intervals, the clear improvements and
    the result's caveats."""
    import numpy as np

    from optcmp_analysis import AGGREGATE_STATISTICS

    b.draw("aggregate", result, g, "aggregate scores across workloads")
    b.lines += _method(result)
    records = result.to_json()
    agg = {(r["optimizer"], r["statistic"]): r for r in records if r["record"] == "aggregate"}
    names = sorted({o for o, _ in agg}, key=lambda o: -(agg[(o, "iqm")]["value"] or -np.inf))
    rows = [[md(o), *(_md_cell(agg[(o, st)], 3) for st in AGGREGATE_STATISTICS)] for o in names]
    b.lines += table(["optimizer", "IQM", "mean", "median", "optimality gap"], rows)
    if result.interval_note is None:
        b.lines += _improvements(result, records)
    b.add_records("aggregate", records, g.label)
    for c in result.caveats:
        b.caveat(md(c))


def _method(result: AggregateScores) -> list[str]:
    """How the scores were made: their anchors, what a tuned result is, the statistics
    and the intervals (or why there are none)."""
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
    lines = [
        f"Normalised test scores across {n_w} workload{'s' if n_w != 1 else ''} (unit "
        f"{result.unit}; {study}): {anchors}. IQM is the mean of the middle half of all "
        "(workload, tuned result) scores, the optimality gap the mean shortfall below 1 "
        "(Agarwal et al. 2021).",
        "",
    ]
    if result.interval_note is None:
        return [
            *lines,
            f"Intervals: {level} expanded percentile intervals of a stratified bootstrap "
            f"over workloads ({result.n_boot} replicates; widened for the few independent "
            "studies behind a best-of-k result, as the coverage simulation in "
            "docs/method.md requires).",
            "",
        ]
    return [*lines, md(result.interval_note[0].upper() + result.interval_note[1:]) + ".", ""]


def _md_cell(r: dict[str, Any], digits: int) -> str:
    """A record's value with its interval, where it has one, for a Markdown cell."""
    value = cell_num(r["value"], digits)
    if r["lo"] is None or r["hi"] is None:
        return value
    return f"{value} [{cell_num(r['lo'], digits)}, {cell_num(r['hi'], digits)}]"


def _improvements(result: AggregateScores, records: list[dict[str, Any]]) -> list[str]:
    """The clear probabilities of improvement, in one paragraph."""
    imp = [r for r in records if r["record"] == "improvement" and r["clear"]]
    clear = [
        f"{md(r['optimizer'])} over {md(r['other'])}: {_md_cell(r, 2)} (Holm p "
        f"{number(r['p_holm'], 2)})"
        for r in imp
    ]
    return [
        "Probability of improvement (a tuned run of the first beats one of the second on "
        f"a random workload), clear where its Holm-adjusted p-value over the "
        f"{result.n_pairs} pairs is below {1 - result.confidence:.2g}: "
        + ("; ".join(clear) if clear else "none")
        + ".",
        "",
    ]


#: `--seed` follows `--confidence` in the help.
SEED_AFTER = "confidence"

#: The help of `optcmp analyze aggregate`.
HELP = """Across workloads, rliable-style: per-workload normalised scores of the tuned
optimizers, their interquartile mean (IQM), mean, median and optimality gap, and the
probability that each optimizer beats each other one, with stratified-bootstrap
confidence intervals (strata = workloads) where they are valid, and a Holm-adjusted
"clear" for the probability of improvement. Scores are normalised with fixed anchors
per workload (the archive's targets, a reference-scores file, or identity); the min-max
over the compared optimizers only with --normalise minmax-compared.

JSON records ("record" key): "aggregate" — optimizer, statistic (iqm, mean, median,
optimality_gap), value, lo, hi (null: no interval, interval_note says why),
confidence, n_workloads, unit, budget, normalisation, rule, interval_note;
"improvement" — optimizer, other, value (P(optimizer better than other)), lo, hi, p,
p_holm, holm_family, clear, confidence; "score" — workload, optimizer, metric, split,
value (normalised score), tuned_value, no_result, units, zero_value, one_value,
anchors, included.

Example: optcmp analyze aggregate runs/demo/study --n-boot 2000 --seed 0 --json
"""


def print_table(result: AggregateScores, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze aggregate` prints (without --json)."""
    import numpy as np

    from optcmp_analysis import AGGREGATE_STATISTICS

    records = result.to_json()
    level = f"{100 * options.confidence:g}%"
    shown = result.interval_note is None
    k = "" if result.budget is None else f", k = {result.budget} trials per study"
    title = (
        f"Normalised scores across {len(result.workloads)} workload"
        f"{'' if len(result.workloads) == 1 else 's'} ({_rule(options.rule, ds)}, unit "
        f"{result.unit}{k}; {term(result.scale_phrase)}"
        + (f"; {level} expanded stratified-bootstrap intervals)" if shown else "; no intervals)")
    )
    by_o: dict[str, dict[str, dict[str, object]]] = {}
    for r in records:
        if r["record"] == "aggregate":
            by_o.setdefault(r["optimizer"], {})[r["statistic"]] = r
    order = sorted(by_o, key=lambda o: -(by_o[o]["iqm"]["value"] or -np.inf))  # type: ignore[operator]
    rows = [[o, *(_cell(by_o[o][s], 3) for s in AGGREGATE_STATISTICS)] for o in order]
    columns = [("optimizer", LABEL), *((_STAT_LABELS[s], TEXT) for s in AGGREGATE_STATISTICS)]
    print_fitted(*fit_table(title, columns, rows))
    imp = {(r["optimizer"], r["other"]): r for r in records if r["record"] == "improvement"}

    def cell(o: str, other: str) -> str:
        r = imp[(o, other)]
        return _cell(r, 2) + ("*" if r["clear"] else "")

    mark = (
        f" [{level} interval]; * clear: Holm-adjusted p < {1 - options.confidence:.2g} over "
        f"{result.n_pairs} pairs"
        if shown
        else ""
    )
    title = f"P(row optimizer better than column optimizer){mark}"
    matrix = [[o, *("-" if o == other else cell(o, other) for other in order)] for o in order]
    table, left_out = fit_table(
        title, [("", LABEL), *((o, VALUE) for o in order)], matrix, droppable=order[::-1]
    )
    if left_out:
        # Too many optimizers for a matrix at this width: one line per pair instead
        # (P(b better than a) is 1 - P(a better than b), so each pair once).
        title = f"P(optimizer a better than optimizer b){mark}"
        pair_rows = [[a, b, cell(a, b)] for i, a in enumerate(order) for b in order[i + 1 :]]
        table, left_out = fit_table(
            title, [("a", LABEL), ("b", LABEL), ("P(a better)", VALUE)], pair_rows
        )
    print_fitted(table, left_out)
    if result.interval_note:
        console.print(term(result.interval_note), highlight=False)
    _caveats(result.caveats)


_STAT_LABELS = {
    "iqm": "IQM",
    "mean": "mean",
    "median": "median",
    "optimality_gap": "optimality gap",
}


def _cell(record: dict[str, object], digits: int) -> str:
    """ "value [lo, hi]", or the value alone where there is no interval."""
    value = num(record["value"], digits)
    if record["lo"] is None or record["hi"] is None:
        return value
    return f"{value} [{num(record['lo'], digits)}, {num(record['hi'], digits)}]"
