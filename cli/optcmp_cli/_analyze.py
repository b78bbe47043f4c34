"""`optcmp analyze best|budget|rank|inclusion`: statistics of a stored archive.

Dependency rule: typer, rich, optcmp_data and optcmp_analysis (no torch). Each command
parses its options, calls one library function, and hands the record to a renderer: a
rich table, or with `--json` only JSON on stdout, `{"<command>": [flat records]}`. Other
analyze commands are added to `analyze_app` from their own modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from optcmp_analysis import (
    DEFAULT_N_BOOT,
    DEFAULT_TEST_N_BOOT,
    DivergedMode,
    RankMethod,
    RepeatMode,
    SelectionRule,
)
from optcmp_cli._common import about_archive, console, print_json, reports_errors, seeded_rng
from optcmp_cli._options import (
    DEFAULT_ALPHA,
    AlphaOpt,
    ArchiveArg,
    DivergedOpt,
    JsonOpt,
    MarginOpt,
    MarginsOpt,
    NBootOpt,
    OptimizerOpt,
    RepeatsOpt,
    RuleOpt,
    SeedOpt,
    TestBootOpt,
    TestBudgetOpt,
    TestSeedOpt,
    WithReplacementOpt,
    WorkloadOpt,
    margin_option,
)
from optcmp_cli.render.escape import term
from optcmp_cli.render.numbers import num, num_column, num_distinct, pct, rule_text
from optcmp_cli.render.palette import TERM_VERDICT_COLOURS
from optcmp_cli.render.tables import LABEL, TEXT, VALUE, fit_table, print_fitted
from optcmp_data import Taxonomy

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["analyze_app"]

analyze_app = typer.Typer(
    help="Statistics of a stored archive: best trials, budget curves, rankings, inclusion "
    "checks (and more). Torch is not needed.",
    no_args_is_help=True,
)


def _load(path: Path, workloads: list[str] | None, optimizers: list[str] | None) -> xr.Dataset:
    from optcmp_analysis import restrict
    from optcmp_data import open_archive

    archive = open_archive(path)
    with about_archive(path):
        return restrict(archive, workloads=workloads or None, optimizers=optimizers or None)


def _rule(rule: SelectionRule, ds: xr.Dataset) -> str:
    """The rule for a header, naming the split selection used (`rule_text`); escaped."""
    splits = dict(
        zip(
            (str(w) for w in ds["workload"].values),
            (str(s) for s in ds["selection_split"].values),
            strict=True,
        )
    )
    return term(rule_text(str(rule), splits))


def _caveats(caveats: tuple[str, ...]) -> None:
    for caveat in caveats:
        console.print(f"[yellow]caveat:[/yellow] {term(caveat)}", highlight=False)


def _repeat_keys(record: dict[str, Any]) -> str:
    return " ".join(f"{d}={record[d]}" for d in ("seed", "study") if d in record)


def _workload_label(record: dict[str, Any]) -> str:
    """The record's workload and, where the result is per repeat, which repeat (raw text:
    a LABEL cell of `fit_table`, or escape it)."""
    return f"{record['workload']} {_repeat_keys(record)}".strip()


def _verdict(verdict: str, text: str | None = None) -> str:
    """A verdict in its colour; `text` (escaped) replaces the bare word, e.g. the careful
    wording "consistent within margin 0.01 at k = 4 of 16 trials" or "not included: <reason>"."""
    colour = TERM_VERDICT_COLOURS[verdict]
    return f"[{colour}]{term(text if text is not None else verdict)}[/{colour}]"


#: Hyperparameters listed per best trial in the table (all of them in --json).
_HPARAMS_SHOWN = 12


@analyze_app.command("best")
@reports_errors
def best(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    repeats: RepeatsOpt = RepeatMode.MEAN,
    diverged: DivergedOpt = DivergedMode.EXCLUDE,
) -> None:
    """The best trial of every workload and optimizer under a selection rule, with its
    hyperparameters, selection value and test value.

    Example: optcmp analyze best runs/demo/study --rule final-valid --json
    """
    from optcmp_analysis import select_best

    ds = _load(archive, workload, optimizer)
    with about_archive(archive):
        result = select_best(ds, rule=rule, repeats=repeats, diverged=diverged)
    records = result.to_json()
    if json_out:
        print_json({"best": records})
        return
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
        f"Best trials ({_rule(rule, ds)})",
        columns,
        rows,
        droppable,
        last_resort=("hyperparameters",),
    )
    print_fitted(*table)
    _caveats(result.caveats)


@analyze_app.command("budget")
@reports_errors
def budget(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    budget: Annotated[
        list[int] | None,
        typer.Option(
            "--budget",
            help="Budget k (repeat for several); default 1, 2, 4, ... up to the smallest "
            "trial count of the compared cells.",
        ),
    ] = None,
    n_boot: NBootOpt = DEFAULT_N_BOOT,
    seed: SeedOpt = 0,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="Report the budget from which the median test value stays within this "
            "absolute tolerance of its value at the largest budget.",
        ),
    ] = 0.005,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    repeats: RepeatsOpt = RepeatMode.MEAN,
    diverged: DivergedOpt = DivergedMode.EXCLUDE,
    with_replacement: WithReplacementOpt = False,
) -> None:
    """Best-of-k outcome against the budget k (the paper's Figures 6-8): bootstrap mean,
    median and 5-95% band of the selected trial's test metric, the closed-form expectation
    (Dodge et al.) and exact percentiles from order statistics.

    Example: optcmp analyze budget runs/demo/study --budget 4 --budget 16 --seed 1 --json
    """
    from optcmp_analysis import budget_curve

    ds = _load(archive, workload, optimizer)
    with about_archive(archive):
        result = budget_curve(
            ds,
            budgets=budget or None,
            n_boot=n_boot,
            rng=seeded_rng(seed),
            rule=rule,
            repeats=repeats,
            diverged=diverged,
            tolerance=tolerance,
            with_replacement=with_replacement,
        )
    records = result.to_json()
    if json_out:
        print_json({"budget": records})
        return
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
    title = f"Best-of-k test metric ({_rule(rule, ds)}, {n_boot} bootstrap draws)"
    droppable = ("settled at k", "expected", "5-50-95% (exact)")
    print_fitted(*fit_table(title, columns, rows, droppable))
    _caveats(result.caveats)


@analyze_app.command("rank")
@reports_errors
def rank(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    budget: Annotated[
        int | None,
        typer.Option(
            "--budget",
            help="Budget k of the rank distribution; default the smallest trial count of "
            "the compared cells.",
        ),
    ] = None,
    n_boot: NBootOpt = DEFAULT_N_BOOT,
    seed: SeedOpt = 0,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    repeats: RepeatsOpt = RepeatMode.MEAN,
    diverged: DivergedOpt = DivergedMode.EXCLUDE,
    method: Annotated[
        RankMethod,
        typer.Option(
            "--method",
            help="exact: rank probabilities in closed form (independent optimizers); "
            "bootstrap: from --n-boot drawn studies.",
        ),
    ] = RankMethod.EXACT,
    with_replacement: WithReplacementOpt = False,
) -> None:
    """Rank the optimizers of every workload by their selected trial's test metric, with
    rank probabilities at budget k (exact by default), P(best) against the budget, and the
    share of k-trial studies without a usable result. An optimizer without a usable trial
    gets no rank.

    Example: optcmp analyze rank runs/demo/study --budget 16 --seed 3
    """
    from optcmp_analysis import rank_optimizers

    ds = _load(archive, workload, optimizer)
    with about_archive(archive):
        result = rank_optimizers(
            ds,
            budget=budget,
            n_boot=n_boot,
            rng=seeded_rng(seed),
            rule=rule,
            repeats=repeats,
            diverged=diverged,
            method=method,
            with_replacement=with_replacement,
        )
    records = result.to_json()
    if json_out:
        print_json({"rank": records})
        return
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
        f"Rankings at budget k={result.budget} ({_rule(rule, ds)}; 1 = best; "
        f"{method} rank probabilities)"
    )
    print_fitted(*fit_table(title, columns, rows, ("no result by k", "P(best) by k")))
    _caveats(result.caveats)


@analyze_app.command("inclusion")
@reports_errors
def inclusion(
    archive: ArchiveArg,
    json_out: JsonOpt = False,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    budget: TestBudgetOpt = None,
    n_boot: TestBootOpt = DEFAULT_TEST_N_BOOT,
    seed: TestSeedOpt = 0,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    train_loss: Annotated[
        bool,
        typer.Option(
            "--train-loss/--no-train-loss",
            help="Also check with selection by final training loss (the paper's Figure 9).",
        ),
    ] = True,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy",
            help="TOML or JSON file of inclusion relations; default the archive's own.",
        ),
    ] = None,
    alpha: AlphaOpt = DEFAULT_ALPHA,
    margin: MarginOpt = None,
    margins: MarginsOpt = None,
    repeats: RepeatsOpt = RepeatMode.MEAN,
) -> None:
    """Inclusion consistency: for every special ⊆ general pair and workload, is the tuned
    general optimizer worse than the one it includes? Difference of the expected best-of-k
    test metric given a result (general - special, positive: general worse) at a stated budget
    k (default a quarter of the trials), a studentized bootstrap test and interval, Holm
    within each family; verdict violated, consistent (within the workload's margin),
    inconclusive, not tested (k = N, or too few trials), or not included (the stored
    search spaces do not contain the inclusion). See docs/method.md.

    Example: optcmp analyze inclusion runs/demo/study --taxonomy my_taxonomy.toml --json
    """
    from optcmp_analysis import inclusion_consistency

    ds = _load(archive, workload, optimizer)
    relations = Taxonomy.from_file(taxonomy) if taxonomy is not None else None
    rules = [rule]
    if train_loss and rule is not SelectionRule.FINAL_TRAIN_LOSS:
        rules.append(SelectionRule.FINAL_TRAIN_LOSS)
    with about_archive(archive):
        result = inclusion_consistency(
            ds,
            budget=budget,
            n_boot=n_boot,
            rng=seeded_rng(seed),
            rules=rules,
            repeats=repeats,
            taxonomy=relations,
            alpha=alpha,
            margin=margin_option(margin, margins),
        )
    records = result.to_json()
    if json_out:
        print_json({"inclusion": records})
        return
    level = f"{1 - 2 * alpha:.0%}"
    console.print(
        f"Inclusion checks: Δ = general - special of the expected best-of-k test metric "
        f"(positive: general worse) at budget {term(result.budget_text)}, {level} "
        f"bootstrap-t interval; p (Holm, {result.n_tests} tests each): 'general worse' | "
        "'general worse by the margin or more' (violated, resp. consistent within the "
        f"margin, below alpha); alpha {alpha:g}, up to {n_boot} resamples.",
        highlight=False,
    )
    not_included: dict[tuple[str, str, str], list[str]] = {}
    groups: dict[tuple[str, str, str, float], list[dict[str, Any]]] = {}
    for r in records:
        n = min(r["n_special"], r["n_general"])
        key = (r["rule"], _workload_label(r), f"k = {r['k']} of {n}", r["margin"])
        groups.setdefault(key, []).append(r)
    for (rule_name, workload_label, k, margin_w), rows in groups.items():
        # One small table per (rule, workload): five columns fit 80 terminal columns.
        table = Table(
            title=f"{rule_name} · {term(workload_label)} · {k} · margin {num(margin_w, 3)}",
            box=box.SIMPLE_HEAD,
            title_justify="left",
        )
        table.add_column("special ⊆ general", overflow="ellipsis")
        for col in ("Δ", level, "p (Holm)"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("verdict", no_wrap=True)
        for r in rows:
            tested = r["tested"]  # not a test: no interval, no p shown
            if r["verdict"] == "not_included":
                found = not_included.setdefault((r["special"], r["general"], r["reason"]), [])
                if r["workload"] not in found:
                    found.append(r["workload"])
            table.add_row(
                f"{term(r['special'])} ⊆ {term(r['general'])}",
                num(r["difference"], 3),
                f"[{num(r['lo'], 3)}, {num(r['hi'], 3)}]" if tested else "-",
                f"{num(r['p_adjusted'], 2)}|{num(r['p_noninferior_adjusted'], 2)}"
                if tested
                else "-",
                _verdict(
                    r["verdict"],
                    {"not_included": "not incl.", "not_tested": "not tested"}.get(r["verdict"]),
                ),
            )
        console.print(table)
    for (special, general, reason), workloads in not_included.items():
        console.print(
            f"[blue]not included[/blue] {term(special)} ⊆ {term(general)} "
            f"({term(', '.join(workloads))}): {term(reason)}"
        )
    _caveats(result.caveats)
