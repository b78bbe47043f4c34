"""`optcmp analyze aggregate|profiles`: statistics across workloads (rliable-style aggregates
with stratified-bootstrap intervals; time-to-target performance profiles).

Dependency rule: typer, rich, optcmp_data and optcmp_analysis (no torch). The commands are
added to `analyze_app` of `optcmp_cli._analyze`; importing this module registers them.
With `--json` each prints only `{"<command>": [flat records]}` on stdout.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from optcmp_analysis import (
    AGGREGATE_STATISTICS,
    Measure,
    SelectionRule,
    Unit,
    aggregate_scores,
    performance_profiles,
)
from optcmp_cli._analyze import _caveats, _load, analyze_app
from optcmp_cli._common import about_archive, console, print_json, reports_errors, seeded_rng
from optcmp_cli._escape import term
from optcmp_cli._format import num
from optcmp_cli._options import ArchiveArg, JsonOpt, OptimizerOpt, RuleOpt, SeedOpt, WorkloadOpt

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
    unit: Annotated[
        Unit,
        typer.Option(
            "--unit",
            help="What is resampled per workload and optimizer: trial (one tuning study, "
            "repeats averaged) or repeat (every seed/study is its own tuning study).",
        ),
    ] = Unit.TRIAL,
    budget: Annotated[
        int | None,
        typer.Option(
            "--budget",
            min=1,
            help="Trials per tuning study (unit trial); default all: the selected trial.",
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Optimizer whose tuned value is normalised score 0; default the worst one "
            "on each workload (1 is the best value seen there).",
        ),
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=1, help="Stratified bootstrap replicates.")
    ] = 2000,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Level of the percentile intervals.")
    ] = 0.95,
    seed: SeedOpt = 0,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
) -> None:
    """Across workloads, rliable-style: per-workload normalised scores of the tuned
    optimizers, their interquartile mean (IQM), mean, median and optimality gap, and the
    probability that each optimizer beats each other one, all with stratified-bootstrap
    confidence intervals (strata = workloads).

    JSON records ("record" key): "aggregate" — optimizer, statistic (iqm, mean, median,
    optimality_gap), value, lo, hi, confidence, n_workloads, unit, rule; "improvement" —
    optimizer, other, value (P(optimizer better than other)), lo, hi, confidence; "score"
    — workload, optimizer, metric, split, value (normalised score), tuned_value,
    no_result, units, reference_value, best_value, included.

    Example: optcmp analyze aggregate runs/demo/study --n-boot 2000 --seed 0 --json
    """
    ds = _load(archive, workload, optimizer)
    with about_archive(archive):
        result = aggregate_scores(
            ds,
            rng=seeded_rng(seed),
            unit=unit,
            budget=budget,
            reference=reference,
            n_boot=n_boot,
            confidence=confidence,
            rule=rule,
        )
    records = result.to_json()
    if json_out:
        print_json({"aggregate": records})
        return
    level = f"{100 * confidence:g}%"
    table = Table(
        title=f"Normalised scores across {len(result.workloads)} workloads ({rule}, unit "
        f"{unit}; 1 = best seen, 0 = {term(reference) if reference else 'worst tuned'}; "
        f"{level} stratified-bootstrap intervals)"
    )
    table.add_column("optimizer")
    for s in AGGREGATE_STATISTICS:
        table.add_column(_STAT_LABELS[s], justify="right")
    by_o: dict[str, dict[str, dict[str, object]]] = {}
    for r in records:
        if r["record"] == "aggregate":
            by_o.setdefault(r["optimizer"], {})[r["statistic"]] = r
    order = sorted(by_o, key=lambda o: -(by_o[o]["iqm"]["value"] or -np.inf))  # type: ignore[operator]
    for o in order:
        cells = [
            f"{num(by_o[o][s]['value'], 3)} [{num(by_o[o][s]['lo'], 3)}, "
            f"{num(by_o[o][s]['hi'], 3)}]"
            for s in AGGREGATE_STATISTICS
        ]
        table.add_row(term(o), *cells)
    console.print(table)
    pairs = Table(title=f"P(row optimizer better than column optimizer) [{level} interval]")
    pairs.add_column("")
    for o in order:
        pairs.add_column(term(o), justify="right")
    imp = {(r["optimizer"], r["other"]): r for r in records if r["record"] == "improvement"}
    for o in order:
        row = []
        for other in order:
            if o == other:
                row.append("-")
                continue
            r = imp[(o, other)]
            row.append(f"{num(r['value'], 2)} [{num(r['lo'], 2)}, {num(r['hi'], 2)}]")
        pairs.add_row(term(o), *row)
    console.print(pairs)
    _caveats(result.caveats)


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
) -> None:
    """Time-to-target performance profiles (AlgoPerf style): per workload each optimizer's
    time (or steps) to reach the workload's target, its ratio to the fastest optimizer's,
    and for every ratio tau the share of workloads where the optimizer is within tau of the
    fastest; the area under that profile is a score in [0, 1].

    JSON records ("record" key): "area" — optimizer, value (area score), n_workloads,
    measure; "profile" — optimizer, tau, value (share of workloads within tau of the
    fastest), measure; "time" — workload, optimizer, metric, split, target, value (time or
    steps to target; null: never reached), ratio, measure.

    Example: optcmp analyze profiles runs/algoperf.nc --measure time --json
    """
    ds = _load(archive, workload, optimizer)
    with about_archive(archive):
        result = performance_profiles(ds, measure=measure, max_tau=max_tau)
    records = result.to_json()
    if json_out:
        print_json({"profiles": records})
        return
    tau = result.data["tau"].values
    marks = [t for t in (1.0, 1.5, 2.0, 3.0, max_tau) if t <= max_tau]
    table = Table(
        title=f"Time-to-target profiles over {len(result.workloads)} workloads "
        f"({result.measure}; share of workloads within tau of the fastest)"
    )
    table.add_column("optimizer")
    table.add_column("area", justify="right")
    for t in dict.fromkeys(marks):
        table.add_column(f"tau={t:g}", justify="right")
    rows = sorted((r for r in records if r["record"] == "area"), key=lambda r: -(r["value"] or 0.0))
    for r in rows:
        rho = result.data["rho"].sel(optimizer=r["optimizer"]).values
        shown = [num(float(rho[np.searchsorted(tau, t - 1e-9)]), 3) for t in dict.fromkeys(marks)]
        table.add_row(term(r["optimizer"]), num(r["value"], 3), *shown)
    console.print(table)
    _caveats(result.caveats)
