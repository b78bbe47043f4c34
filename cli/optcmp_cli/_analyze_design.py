"""`optcmp analyze targets|boundary|protocol`: checks of a study's design on stored
archives: target independence, the search-space boundary check and protocol sensitivity.

Dependency rule: typer, rich, optcmp_data and optcmp_analysis (no torch). The commands are
added to `analyze_app` of `optcmp_cli._analyze`; importing this module registers them.
With `--json` each prints only `{"<command>": [flat records]}` on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from optcmp_analysis import (
    DEFAULT_TEST_N_BOOT,
    Match,
    RepeatMode,
    SelectionRule,
)
from optcmp_cli._analyze import _load, _verdict, analyze_app
from optcmp_cli._common import about_archive, console, print_json, reports_errors, seeded_rng
from optcmp_cli._options import (
    DEFAULT_ALPHA,
    AlphaOpt,
    ArchiveArg,
    JsonOpt,
    MarginOpt,
    MarginsOpt,
    OptimizerOpt,
    RuleOpt,
    TestBootOpt,
    TestBudgetOpt,
    TestSeedOpt,
    WorkloadOpt,
    margin_option,
)
from optcmp_cli.render.escape import term
from optcmp_cli.render.numbers import num, num_distinct
from optcmp_cli.render.tables import LABEL, VALUE, fit_table, print_fitted
from optcmp_data import Taxonomy

__all__ = ["boundary", "protocol", "targets"]


def _condition_label(rec: dict[str, Any]) -> str:
    share = f"{100 * rec['fraction']:.0f}%"
    if rec["kind"] == "steps":
        return f"steps to {num(rec['target_value'])} (≤{share})"
    return f"final test (≤{share})"


@analyze_app.command("targets")
@reports_errors
def targets(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    target: Annotated[
        list[float] | None,
        typer.Option(
            "--target",
            help="Target validation value, in the metric's units, for every workload (repeat "
            "for several); default a spread from the median to the best final value.",
        ),
    ] = None,
    n_targets: Annotated[
        int, typer.Option("--n-targets", min=1, help="Number of default targets.")
    ] = 5,
    step_fraction: Annotated[
        list[float] | None,
        typer.Option(
            "--step-fraction",
            help="Truncated step budget as a fraction of the workload's step budget (repeat "
            "for several); default 0.25, 0.5, 1.",
        ),
    ] = None,
    budget: TestBudgetOpt = None,
    n_boot: TestBootOpt = DEFAULT_TEST_N_BOOT,
    seed: TestSeedOpt = 0,
    alpha: AlphaOpt = DEFAULT_ALPHA,
    margin: MarginOpt = None,
    margins: MarginsOpt = None,
    taxonomy: Annotated[
        Path | None,
        typer.Option("--taxonomy", help="TOML or JSON file of inclusion relations."),
    ] = None,
) -> None:
    """Target independence (the paper's Figure 10): steps and time to reach target
    validation values under truncated step budgets, and the test metric selected on
    truncated curves; whether rankings (Kendall tau against the final metric at the full
    budget) and inclusion verdicts change across targets and budgets.

    JSON records ("record" key): "tuned" — workload, optimizer, kind ("steps" or
    "final"), target (index, -1 for final), target_value, fraction, step_limit, metric
    ("steps_to_target" or the metric name), split, value (tuned steps, or test metric),
    reached (steps only; false: never reached, value null), time, rank, kendall_tau,
    reference; "inclusion" — the keys of `optcmp analyze inclusion --json` (condition in
    place of rule) plus kind, target, target_value, fraction, step_limit, verdict_changes;
    "flip" — workload, kind, target, fraction, optimizer (better under the reference),
    other, reference_value, other_reference_value, value, other_value, rank_change.

    Example: optcmp analyze targets runs/demo/study --step-fraction 0.5 --step-fraction 1 --json
    """
    from optcmp_analysis import target_study

    ds = _load(archive, workload, optimizer)
    relations = Taxonomy.from_file(taxonomy) if taxonomy is not None else None
    with about_archive(archive):
        result = target_study(
            ds,
            targets=target or None,
            n_targets=n_targets,
            fractions=tuple(step_fraction) if step_fraction else (0.25, 0.5, 1.0),
            budget=budget,
            n_boot=n_boot,
            alpha=alpha,
            margin=margin_option(margin, margins),
            taxonomy=relations,
            rng=seeded_rng(seed),
        )
    records = result.to_json()
    if json_out:
        print_json({"targets": records})
        return
    tuned = [r for r in records if r["record"] == "tuned"]
    for w in result.workloads:
        table = Table(
            title=f"{term(w)}: tuned value (rank) per condition; tau against the final metric "
            "at the full budget"
        )
        table.add_column("condition")
        for o in result.optimizers:
            table.add_column(term(o), justify="right")
        table.add_column("tau", justify="right")
        rows: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
        for r in tuned:
            if r["workload"] == w:
                rows.setdefault((r["kind"], r["target"], r["fraction"]), []).append(r)
        for cells in rows.values():
            by_o = {c["optimizer"]: c for c in cells}
            label = _condition_label(cells[0]) + (" *" if cells[0]["reference"] else "")
            values = []
            for o in result.optimizers:
                c = by_o[o]
                shown = "never" if c["reached"] is False else num(c["value"])
                values.append(f"{shown} ({num(c['rank'])})")
            table.add_row(label, *values, num(cells[0]["kendall_tau"], 3))
        console.print(table)
    flips = result.flips()
    changes = result.verdict_changes()
    console.print(
        f"{len(flips)} pairwise flips against the reference (* above); "
        f"{len(changes)} inclusion verdicts change across conditions"
    )
    for w, s, g in changes:
        verdicts = sorted(
            {
                r["verdict"]
                for r in records
                if r["record"] == "inclusion"
                and (r["workload"], r["special"], r["general"]) == (w, s, g)
            }
        )
        shown = ", ".join(_verdict(v) for v in verdicts)
        console.print(f"  {term(w)}: {term(s)} ⊆ {term(g)}: {shown}")


@analyze_app.command("boundary")
@reports_errors
def boundary(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    top: Annotated[
        int, typer.Option("--top", min=1, help="How many of the best trials to check.")
    ] = 3,
    fraction: Annotated[
        float,
        typer.Option(
            "--fraction",
            help="Distance from an edge, as a fraction of the space's width in its search "
            "scale (log10 x, log10(1 - x), or x), that counts as at the edge.",
        ),
    ] = 0.05,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    points: Annotated[
        bool,
        typer.Option(
            "--points", help="Also emit every trial's point of the projection plots (JSON)."
        ),
    ] = False,
) -> None:
    """Boundary check: do the best trials of each optimizer sit at an edge of a
    hyperparameter's search space? A warning in plain words for each that does.

    JSON records ("record" key): "edge" — one per searched (workload, optimizer,
    hparam): workload, optimizer, hparam, scale, low, high, top, n_top, n_near_low,
    n_near_high, edge ("none", "low", "high", "both"), trial (the best), best_value,
    best_position (0 = low edge, 1 = high edge), metric, split, value (the best trial's
    selection value), warning; with --points also "point" — workload, optimizer, trial,
    hparam, hparam_value, position, top_rank (0 = not usable), metric, split, value,
    test_value (the data of the paper's Appendix E projection plots).

    Example: optcmp analyze boundary runs/demo/study --top 3 --fraction 0.05 --json
    """
    from optcmp_analysis import boundary_check

    ds = _load(archive, workload, optimizer)
    with about_archive(archive):
        result = boundary_check(ds, top=top, fraction=fraction, rule=rule)
    records = result.to_json()
    if json_out:
        print_json({"boundary": records + (result.points() if points else [])})
        return
    if not records:
        console.print(
            f"Boundary check ({rule}): nothing checked: no searched hyperparameter recorded "
            "(the archive stores no search space with a range).",
            markup=False,
        )
        return
    rows = [
        [
            r["workload"],
            r["optimizer"],
            r["hparam"],
            term(r["scale"]),
            f"[{num_distinct(r['low'])}, {num_distinct(r['high'])}]",
            num_distinct(r["best_value"]),
            num(r["best_position"], 2),
            r["edge"]
            if r["edge"] == "none"
            else f"[red]{r['edge']}[/red] ({r['n_near_low']}/{r['n_near_high']})",
        ]
        for r in records
    ]
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("hparam", LABEL),
        ("scale", VALUE),
        ("space", VALUE),
        ("best", VALUE),
        ("position", VALUE),
        ("edge", VALUE),
    ]
    title = f"Best {top} trials against the search-space edges ({rule})"
    print_fitted(*fit_table(title, columns, rows, ("scale", "position")))
    for warning in result.warnings():
        console.print(f"[yellow]warning:[/yellow] {term(warning)}", highlight=False)


@analyze_app.command("protocol")
@reports_errors
def protocol(
    archive: ArchiveArg,
    other: Annotated[
        Path | None,
        typer.Argument(help="A second archive: compare ARCHIVE (first) with it (second)."),
    ] = None,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    protocols: Annotated[
        list[str] | None,
        typer.Option(
            "--protocol",
            help="Give twice. One archive: the two search-space names (space_name) to "
            "compare, e.g. lr-only and choi2019. Two archives: their labels.",
        ),
    ] = None,
    match: Annotated[
        Match | None,
        typer.Option(
            "--match",
            help="Pair optimizers by name or family; default name for two archives, family "
            "within one.",
        ),
    ] = None,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    budget: TestBudgetOpt = None,
    n_boot: TestBootOpt = DEFAULT_TEST_N_BOOT,
    seed: TestSeedOpt = 0,
    alpha: AlphaOpt = DEFAULT_ALPHA,
) -> None:
    """Protocol sensitivity: rank the optimizers of each workload under two tuning
    protocols (two archives, or two search spaces of one archive) by the test metric of
    their selected trial, list where rankings flip and by how much, and test each
    protocol effect: the expected best-of-k test metric E_k under each protocol at a
    stated budget k, their difference with a (1 - alpha) bootstrap-t interval and a
    two-sided p-value, Holm-adjusted over the optimizers (docs/method.md).

    JSON records ("record" key): "cell" — workload, optimizer (the matched name or
    family), first, second (protocol labels), label_first, label_second, trial_first,
    trial_second, metric, split ("test"), value_first, value_second (tuned: best of N),
    k, budget_rule, expected_first, expected_second (E_k), value (E_k second minus
    first), lo, hi, p_value, p_adjusted, tested, clear, step, level, rank_first,
    rank_second, rank_change, kendall_tau; "flip" — workload, optimizer (ranked better
    under the first protocol), other, first, second, metric, split, value_first,
    other_value_first, value_second, other_value_second, gap_first, gap_second (how much
    the better one was better, under each), rank_change, supported; "pair" — protocol,
    workload, optimizer (the better at budget k), other, k, gap, lo, hi, p_value,
    p_adjusted, clear.

    Example: optcmp analyze protocol runs/all.nc --protocol lr-only --protocol choi2019 --json
    """
    from optcmp_analysis import protocol_sensitivity

    first = _load(archive, workload, None)
    second = _load(other, workload, None) if other is not None else None
    with about_archive(archive if other is None else f"{archive} vs {other}"):
        result = protocol_sensitivity(
            first,
            second,
            protocols=protocols or None,
            match=match,
            rule=rule,
            repeats=RepeatMode.MEAN,  # one selected trial per cell; repeats are averaged
            budget=budget,
            n_boot=n_boot,
            level=1 - alpha,
            rng=seeded_rng(seed),
        )
    records = result.to_json()
    if json_out:
        print_json({"protocol": records})
        return
    a, b = result.protocols
    table = Table(title=f"Tuned test metric and rank: {term(a)} → {term(b)} ({rule}; 1 = best)")
    level = f"{1 - alpha:.0%}"
    for col in ("workload", "optimizer", term(a), "rank", term(b), "rank", "change", "tau"):
        table.add_column(col)
    effects = Table(
        title=f"Protocol effect at budget {term(result.budget_text)}: E_k({term(b)}) - "
        f"E_k({term(a)}), {level} bootstrap-t interval, Holm-adjusted two-sided p"
    )
    for col in ("workload", "optimizer", "k", "Δ E_k", level, "p (Holm)", "clear"):
        effects.add_column(col)
    for r in records:
        if r["record"] != "cell":
            continue
        change = r["rank_change"]
        table.add_row(
            term(r["workload"]),
            term(r["optimizer"]),
            num(r["value_first"]),
            num(r["rank_first"]),
            num(r["value_second"]),
            num(r["rank_second"]),
            "=" if change == 0 else f"{change:+.0f}",
            num(r["kendall_tau"], 3),
        )
        effects.add_row(
            term(r["workload"]),
            term(r["optimizer"]),
            str(r["k"]),
            num(r["value"], 3),
            f"[{num(r['lo'], 3)}, {num(r['hi'], 3)}]" if r["tested"] else "not tested",
            num(r["p_adjusted"], 2) if r["tested"] else "-",
            "yes" if r["clear"] else "no",
        )
    console.print(table)
    console.print(effects)
    flips = [r for r in records if r["record"] == "flip"]
    console.print(f"{len(flips)} flips")
    for f in flips:
        console.print(
            f"  {term(f['workload'])}: {term(f['optimizer'])} beat {term(f['other'])} by "
            f"{num(f['gap_first'], 3)} under {term(a)}, lost by {num(f['gap_second'], 3)} "
            f"under {term(b)} ({term(f['metric'])})",
            highlight=False,
        )
