"""`optcmp score`: an archive scored by its source benchmark's own rules.

Dependency rule: typer, rich, optcmp_data and optcmp_analysis (no torch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from optcmp_analysis import DeepobsMode
from optcmp_cli._common import console, print_json, reports_errors
from optcmp_cli.render.escape import term, visible
from optcmp_cli.render.numbers import num, num_column
from optcmp_cli.render.tables import LABEL, TEXT, VALUE, fit_table, print_fitted

if TYPE_CHECKING:
    from optcmp_analysis import AlgoperfScore, DeepobsReport

__all__ = ["score"]


@reports_errors
def score(
    path: Annotated[Path, typer.Argument(help="Imported archive (.nc) or study directory.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")] = False,
    details: Annotated[
        bool,
        typer.Option(
            "--details",
            help="AlgoPerf: also give per-workload times (per study, median, after the "
            "held-out rules) and ratios.",
        ),
    ] = False,
    mode: Annotated[
        DeepobsMode,
        typer.Option("--mode", help="DeepOBS archives: rank settings by final or best value."),
    ] = DeepobsMode.FINAL,
    all_repeats: Annotated[
        bool,
        typer.Option(
            "--all-repeats",
            help="DeepOBS archives: rank settings on every seed, ignoring the archive's "
            "selection_repeats (what the DeepOBS analyser does on the final tree).",
        ),
    ] = False,
) -> None:
    """Score an archive by its source's rules: the AlgoPerf leaderboard score
    (time to target, held-out rules, performance profile) for archives that name base
    workloads; otherwise the DeepOBS analyser's chosen setting, performance and speed.

    AlgoPerf: the rules applied (benchmark version, base and held-out workloads, number
    of studies, tie rule) are read from the archive and printed as "rule:" lines.

    JSON: {"score": [{"optimizer": NAME, "score": X}, ...], "rules": {NAME: TEXT}}
    (AlgoPerf; with --details a third key "details"), or {"deepobs": [...]}.

    Example: optcmp score algoperf-external.nc --json
    """
    from optcmp_analysis import algoperf_score, deepobs_report
    from optcmp_data import open_archive

    archive = open_archive(path)
    if archive.attrs.get("base_workloads"):
        result = algoperf_score(archive)
        if json_out:
            payload: dict[str, object] = {
                "score": result.to_json(),
                "rules": result.rules_json(),
            }
            if details:
                payload["details"] = result.details_json()
            print_json(payload)
            return
        _render_algoperf(result, details)
        return
    report = deepobs_report(archive, mode=mode, all_repeats=all_repeats)
    if json_out:
        print_json({"deepobs": report.to_json()})
        return
    _render_deepobs(report)


def _caveats(caveats: tuple[str, ...]) -> None:
    for caveat in caveats:
        console.print(f"caveat: {visible(caveat)}", markup=False, soft_wrap=True)


def _render_algoperf(result: AlgoperfScore, details: bool) -> None:
    title = "AlgoPerf score (performance-profile integral over tau in [1, 4] / 3)"
    records = result.to_json()
    scores = num_column([rec["score"] for rec in records], inf="inf")
    rows = [[rec["optimizer"], score] for rec, score in zip(records, scores, strict=True)]
    columns = [("optimizer", LABEL), ("score", VALUE)]
    print_fitted(*fit_table(title, columns, rows, right=("score",)))
    for name, rule in result.rules:
        console.print(f"rule: {name}: {rule}", markup=False, soft_wrap=True)
    if details:
        rows = [
            [
                rec["optimizer"],
                rec["workload"],
                rec["role"],
                num(rec["time"] if rec["time"] is not None else math.inf, 6, inf="inf"),
                num(
                    rec["time_scored"] if rec["time_scored"] is not None else math.inf, 6, inf="inf"
                ),
                num(rec["ratio"], inf="inf") if rec["role"] == "base" else "",
            ]
            for rec in result.details_json()
        ]
        columns = [
            ("optimizer", LABEL),
            ("workload", LABEL),
            ("role", VALUE),
            ("median", VALUE),
            ("scored", VALUE),
            ("ratio", VALUE),
        ]
        title = "Time to target (s): median over studies -> after held-out rules"
        print_fitted(*fit_table(title, columns, rows, right=("median", "scored", "ratio")))
    _caveats(result.caveats)


def _render_deepobs(report: DeepobsReport) -> None:
    records = report.to_json()
    # Each value says which seeds it comes from: selection ranks settings on the
    # selection repeats (DeepOBS: seed 42), performance averages every seed of the pick.
    ranked = report.selection_repeats or "all seeds"
    perf = "final value" if report.mode == "final" else "best of the curve"
    splits = sorted({str(rec["selection_split"]) for rec in records})
    one_split = len(splits) == 1
    lrs = num_column([rec["hyperparameters"].get("learning_rate") for rec in records], inf="inf")
    selections = num_column([rec["selection_value"] for rec in records], inf="inf")
    performances = num_column([rec["performance"] for rec in records], inf="inf")
    speeds = num_column([rec["speed"] for rec in records], inf="inf")
    rows = [
        [
            rec["workload"],
            rec["optimizer"],
            str(rec["trial"]),
            lrs[i],
            selections[i] + ("" if one_split else f" ({rec['selection_split']})"),
            f"{performances[i]} {term(rec['metric'])}",
            speeds[i],
            str(rec["n_seeds"]),
        ]
        for i, rec in enumerate(records)
    ]
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("trial", VALUE),
        ("learning_rate", VALUE),
        (
            f"selection ({splits[0]}, {ranked})"
            if one_split and splits
            else f"selection ({ranked})",
            TEXT,
        ),
        (f"performance ({perf}, mean over seeds)", TEXT),
        ("speed", VALUE),
        ("seeds", VALUE),
    ]
    title = f"DeepOBS analyser (mode {report.mode})"
    print_fitted(*fit_table(title, columns, rows, ("seeds", "trial")))
    _caveats(report.caveats)
