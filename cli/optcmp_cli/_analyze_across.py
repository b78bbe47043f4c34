"""`optcmp analyze aggregate|profiles`: statistics across workloads (rliable-style aggregates
with stratified-bootstrap intervals; time-to-target performance profiles).

Dependency rule: typer, rich, optcmp_data and optcmp_analysis (no torch). The commands are
added to `analyze_app` of `optcmp_cli._analyze`; importing this module registers them.
With `--json` each prints only `{"<command>": [flat records]}` on stdout.
"""

from __future__ import annotations

from typing import Annotated

import typer

from optcmp_analysis import Measure, Normalisation, SelectionRule, Unit
from optcmp_cli._analyze import _caveats, _load, _rule, analyze_app
from optcmp_cli._common import about_archive, console, print_json, reports_errors, seeded_rng
from optcmp_cli._options import (
    ArchiveArg,
    JsonOpt,
    NormaliseOpt,
    OptimizerOpt,
    ReferenceScoresOpt,
    RuleOpt,
    SeedOpt,
    UnitOpt,
    WithReplacementOpt,
    WorkloadOpt,
)
from optcmp_cli.render.escape import term
from optcmp_cli.render.numbers import num
from optcmp_cli.render.tables import LABEL, TEXT, VALUE, fit_table, print_fitted

__all__ = ["aggregate", "profiles"]

_STAT_LABELS = {
    "iqm": "IQM",
    "mean": "mean",
    "median": "median",
    "optimality_gap": "optimality gap",
}


@analyze_app.command("aggregate")
@reports_errors
def aggregate(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    unit: UnitOpt = Unit.AUTO,
    budget: Annotated[
        int | None,
        typer.Option(
            "--budget",
            min=1,
            help="Trials per tuning study (unit trial); default the smallest trial count of "
            "the compared cells. Intervals need a budget of at most half every cell's count.",
        ),
    ] = None,
    normalise: NormaliseOpt = Normalisation.TARGETS,
    reference_scores: ReferenceScoresOpt = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="With --normalise minmax-compared: the optimizer whose tuned value scores 0 "
            "(default the worst one on each workload).",
        ),
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=1, help="Stratified bootstrap replicates.")
    ] = 2000,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Level of the (expanded) percentile intervals.")
    ] = 0.95,
    seed: SeedOpt = 0,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    with_replacement: WithReplacementOpt = False,
) -> None:
    """Across workloads, rliable-style: per-workload normalised scores of the tuned
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
    import numpy as np

    from optcmp_analysis import AGGREGATE_STATISTICS, ReferenceScores, aggregate_scores

    ds = _load(archive, workload, optimizer)
    scores = None if reference_scores is None else ReferenceScores.from_toml(reference_scores)
    with about_archive(archive):
        result = aggregate_scores(
            ds,
            rng=seeded_rng(seed),
            unit=unit,
            budget=budget,
            normalisation=Normalisation.REFERENCE if scores is not None else normalise,
            reference_scores=scores,
            reference=reference,
            n_boot=n_boot,
            confidence=confidence,
            rule=rule,
            with_replacement=with_replacement,
        )
    records = result.to_json()
    if json_out:
        print_json({"aggregate": records})
        return
    level = f"{100 * confidence:g}%"
    shown = result.interval_note is None
    k = "" if result.budget is None else f", k = {result.budget} trials per study"
    title = (
        f"Normalised scores across {len(result.workloads)} workload"
        f"{'' if len(result.workloads) == 1 else 's'} ({_rule(rule, ds)}, unit "
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
        f" [{level} interval]; * clear: Holm-adjusted p < {1 - confidence:.2g} over "
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


def _cell(record: dict[str, object], digits: int) -> str:
    """ "value [lo, hi]", or the value alone where there is no interval."""
    value = num(record["value"], digits)
    if record["lo"] is None or record["hi"] is None:
        return value
    return f"{value} [{num(record['lo'], digits)}, {num(record['hi'], digits)}]"


@analyze_app.command("profiles")
@reports_errors
def profiles(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    measure: Annotated[
        Measure,
        typer.Option(
            "--measure",
            help="Time to target in recorded time or in steps; auto: time where the archive "
            "records any.",
        ),
    ] = Measure.AUTO,
    max_tau: Annotated[
        float, typer.Option("--max-tau", help="Largest ratio to the fastest optimizer shown.")
    ] = 4.0,
    budget: Annotated[
        int | None,
        typer.Option(
            "--budget",
            min=1,
            help="Trials per study whose fastest sets the study's time; default the smallest "
            "trial count of the compared cells.",
        ),
    ] = None,
    with_replacement: WithReplacementOpt = False,
) -> None:
    """Time-to-target performance profiles (AlgoPerf style): per workload each optimizer's
    time (or steps) to reach the workload's target, its ratio to the fastest optimizer's,
    and for every ratio tau the share of workloads where the optimizer is within tau of the
    fastest; the area under that profile is a score in [0, 1].

    JSON records ("record" key): "area" — optimizer, value (area score), n_workloads,
    budget, measure; "profile" — optimizer, tau, value (share of workloads within tau of the
    fastest), measure; "time" — workload, optimizer, metric, split, target, value (time or
    steps to target; null: never reached), ratio, measure.

    Example: optcmp analyze profiles runs/algoperf.nc --measure time --json
    """
    import numpy as np

    from optcmp_analysis import performance_profiles

    ds = _load(archive, workload, optimizer)
    with about_archive(archive):
        result = performance_profiles(
            ds, measure=measure, max_tau=max_tau, budget=budget, with_replacement=with_replacement
        )
    records = result.to_json()
    if json_out:
        print_json({"profiles": records})
        return
    tau = result.data["tau"].values
    marks = [t for t in (1.0, 1.5, 2.0, 3.0, max_tau) if t <= max_tau]
    title = (
        f"Time-to-target profiles over {len(result.workloads)} workloads "
        f"({result.measure}; share of workloads within tau of the fastest)"
    )
    heads = [f"tau={t:g}" for t in dict.fromkeys(marks)]
    area_rows = sorted(
        (r for r in records if r["record"] == "area"), key=lambda r: -(r["value"] or 0.0)
    )
    rows = []
    for r in area_rows:
        rho = result.data["rho"].sel(optimizer=r["optimizer"]).values
        shown = [num(float(rho[np.searchsorted(tau, t - 1e-9)]), 3) for t in dict.fromkeys(marks)]
        rows.append([r["optimizer"], num(r["value"], 3), *shown])
    columns = [("optimizer", LABEL), ("area", VALUE), *((h, VALUE) for h in heads)]
    print_fitted(*fit_table(title, columns, rows, heads[::-1], right=("area", *heads)))
    if ds.attrs.get("base_workloads"):
        console.print(
            f"note: the area is not the AlgoPerf score: it covers all "
            f"{len(result.workloads)} workloads with a target (base and held-out alike), "
            "without the held-out rules or the 4x cut, and a study's time is its fastest "
            f"trial's of {result.budget_phrase}; `optcmp score` gives the benchmark's score.",
            markup=False,
        )
    _caveats(result.caveats)
