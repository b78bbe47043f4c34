"""`optcmp import deepobs|algoperf|table|optuna|mlflow`: other people's trials into the
archive format; `optcmp export`: an archive as a tidy table.

Dependency rule: typer, rich and optcmp_data (no torch). Each command parses, calls one
importer, writes the archive atomically (`write_archive`), and reports.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from optcmp_cli._common import (
    check_archive_out,
    check_export_out,
    console,
    err_console,
    fail,
    print_json,
    reports_errors,
)
from optcmp_cli.render.escape import visible
from optcmp_data import ConfigError, archive_caveats, open_archive, write_archive
from optcmp_data.importers import (
    IMPORTERS,
    TABLE_FORMATS,
    ImportResult,
    Ruleset,
    export_table,
    import_algoperf,
    import_deepobs,
    import_mlflow,
    import_optuna,
    import_table,
    infer_mapping,
    sidecar_path,
)

__all__ = ["export", "import_app"]

import_app = typer.Typer(
    name="import",
    help=(
        "Import trials as optcmp archives: "
        + "; ".join(f"{imp.name}: {imp.reads}" for imp in IMPORTERS.values())
        + ".\n\n"
        "Example: optcmp import deepobs deepobs-baselines --out deepobs.nc"
    ),
    no_args_is_help=True,
)

_OUT = Annotated[Path, typer.Option("--out", help="Archive file to write (.nc), atomically.")]
_SKIP = Annotated[
    bool,
    typer.Option(
        "--skip-bad",
        help="Skip malformed input files with one warning each (default: stop at the first).",
    ),
]
_JSON = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


def _command_line() -> str:
    """The command as typed, for the archive's provenance."""
    return shlex.join(["optcmp", *sys.argv[1:]])


def _report(result: ImportResult, out: Path, json_out: bool) -> None:
    for warning in result.warnings:
        err_console.print(f"warning: {visible(warning)}", markup=False)
    ds = result.dataset
    workloads = [str(w) for w in ds["workload"].values]
    optimizers = [str(o) for o in ds["optimizer"].values]
    caveats = archive_caveats(ds)
    summary = {
        "out": str(out),
        "files_read": result.files_read,
        "skipped": result.skipped,
        "workloads": workloads,
        "optimizers": optimizers,
        "sizes": {str(k): int(v) for k, v in ds.sizes.items()},
        "caveats": caveats,
        "warnings": list(result.warnings),
    }
    if json_out:
        print_json({"import": summary})
    else:
        console.print(
            f"wrote {out}: {len(workloads)} workloads, {len(optimizers)} optimizers, "
            f"{result.files_read} files read",
            markup=False,
            soft_wrap=True,
        )
        for caveat in caveats:
            console.print(f"caveat: {visible(caveat)}", markup=False, soft_wrap=True)
    if result.skipped:
        err_console.print(f"skipped {result.skipped} bad input(s)", markup=False)


@reports_errors
def deepobs(
    src: Annotated[Path, typer.Argument(help="DeepOBS output tree (1.1 or 1.2 format).")],
    out: _OUT,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            help="convergence_performance.json with per-problem targets "
            "(default: the one in SRC, if any).",
        ),
    ] = None,
    skip_bad: _SKIP = False,
    json_out: _JSON = False,
) -> None:
    """Import a DeepOBS output tree: test problems as workloads, optimizer folders as
    optimizers, setting folders as trials, seeds as a repeat axis.

    Example: optcmp import deepobs ../shared/archives/deepobs-baselines --out deepobs.nc
    """
    check_archive_out(out)
    result = import_deepobs(src, targets=targets, skip_bad=skip_bad, command=_command_line())
    write_archive(result.dataset, out)
    _report(result, out, json_out)


@reports_errors
def algoperf(
    src: Annotated[
        Path,
        typer.Argument(help="AlgoPerf log tree (holding logs/<ruleset>/), or a ruleset folder."),
    ],
    out: _OUT,
    ruleset: Annotated[
        Ruleset, typer.Option("--ruleset", help="Which ruleset's logs to import.")
    ] = Ruleset.EXTERNAL_TUNING,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            help="Workload targets JSON (default: a workload_targets*.json next to the logs).",
        ),
    ] = None,
    skip_bad: _SKIP = False,
    json_out: _JSON = False,
) -> None:
    """Import AlgoPerf logs: submissions as optimizers, trials as hyperparameter points,
    studies as a repeat axis, with each workload's target metric and step hint.

    Example: optcmp import algoperf ../shared/archives/algoperf-v05 --ruleset self_tuning
    --out algoperf-self.nc
    """
    check_archive_out(out)
    result = import_algoperf(
        src,
        ruleset=ruleset,
        targets=targets,
        skip_bad=skip_bad,
        command=_command_line(),
    )
    write_archive(result.dataset, out)
    _report(result, out, json_out)


@reports_errors
def table(
    src: Annotated[
        Path,
        typer.Argument(
            help="Table (.csv, or .parquet with the parquet extra): one row per evaluation "
            "or per run."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Archive file to write (.nc), atomically; not with --infer."),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="TOML naming the table's columns and giving the facts it lacks (metric "
            "direction, search space); not needed for a table `optcmp export` wrote.",
        ),
    ] = None,
    infer: Annotated[
        bool,
        typer.Option(
            "--infer",
            help="Print a draft mapping TOML guessed from the table's columns (optimizer, "
            "metrics, hyperparameters, step) for you to check and edit; imports nothing.",
        ),
    ] = False,
    skip_bad: _SKIP = False,
    json_out: _JSON = False,
) -> None:
    """Import a tidy table: optcmp's own export (with its FILE.meta.json sidecar), or any
    table of runs whose columns a mapping file declares (docs/importers.md); `--infer`
    prints a draft mapping for it.

    Example: optcmp import table runs.csv --infer (save the draft as runs.toml and edit
    it), then optcmp import table runs.csv --mapping runs.toml --out runs.nc
    """
    if infer:
        if out is not None or mapping is not None:
            raise fail("--infer prints a draft mapping and imports nothing: drop --out/--mapping")
        draft = infer_mapping(src)
        if json_out:
            print_json({"mapping": draft})
        else:
            sys.stdout.write(draft)
        return
    if out is None:
        raise fail("missing option --out (the archive to write), or give --infer")
    check_archive_out(out)
    result = import_table(src, mapping=mapping, skip_bad=skip_bad, command=_command_line())
    write_archive(result.dataset, out)
    _report(result, out, json_out)


@reports_errors
def export(
    path: Annotated[Path, typer.Argument(help="Archive (.nc) or study directory.")],
    out: Annotated[Path, typer.Option("--out", help="Table file to write, atomically.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"One of {', '.join(TABLE_FORMATS)} (default: from the suffix of --out; "
            "parquet needs the parquet extra).",
        ),
    ] = None,
    json_out: _JSON = False,
) -> None:
    """Export an archive as a tidy table: one row per evaluation (workload, optimizer,
    trial, repeat axes, trial_seed, status, step, time, every metric, hp.NAME columns),
    plus OUT.meta.json with per-workload facts, spaces, taxonomy and attributes;
    `optcmp import table OUT` gives the archive back. An existing OUT is replaced only
    when it is an optcmp export (it has its sidecar).

    Example: optcmp export deepobs.nc --out deepobs.csv
    """
    check_export_out(out, sidecar_path(out))
    archive = open_archive(path)
    table_path, side = export_table(archive, out, fmt=fmt)
    rows = int((archive["status"] != "missing").sum())
    if json_out:
        print_json({"export": {"out": str(table_path), "sidecar": str(side), "runs": rows}})
    else:
        console.print(f"wrote {table_path} and {side} ({rows} runs)", markup=False)


@reports_errors
def optuna(
    storage: Annotated[
        str, typer.Option("--storage", help="Optuna storage URL, e.g. sqlite:///study.db.")
    ],
    study: Annotated[str, typer.Option("--study", help="Name of the study in the storage.")],
    out: _OUT,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="TOML with workload facts ([workload] metric_name, valid_target, "
            "step_budget) and optimizer families ([families]).",
        ),
    ] = None,
    optimizer_from: Annotated[
        str,
        typer.Option(
            "--optimizer-from", help="Param or user attribute naming each trial's optimizer."
        ),
    ] = "optimizer",
    workload_from: Annotated[
        str | None,
        typer.Option(
            "--workload-from", help="Param or user attribute naming each trial's workload."
        ),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            "--workload", help="Workload label for every trial (default: the study name)."
        ),
    ] = None,
    skip_bad: _SKIP = False,
    json_out: _JSON = False,
) -> None:
    """Import an Optuna study (needs the optuna extra): params as hyperparameters,
    intermediate values as curves, the objective as the selection metric with the
    study's direction; pruned trials incomplete, failed ones diverged.

    Example: optcmp import optuna --storage sqlite:///hpo.db --study resnet --out hpo.nc
    """
    check_archive_out(out)
    result = import_optuna(
        storage,
        study,
        mapping=mapping,
        optimizer_from=optimizer_from,
        workload_from=workload_from,
        workload=workload,
        skip_bad=skip_bad,
        command=_command_line(),
    )
    write_archive(result.dataset, out)
    _report(result, out, json_out)


@reports_errors
def mlflow(
    tracking_uri: Annotated[
        str,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI: a file store (file:///path/mlruns or a path), "
            "sqlite:///path/mlflow.db, or a tracking server. Local stores are read from a "
            "private copy, never written.",
        ),
    ],
    out: _OUT,
    valid_metric: Annotated[
        str,
        typer.Option("--valid-metric", help="Metric whose history is the selection curve."),
    ],
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", help="Experiment name (default: the one experiment holding runs)."
        ),
    ] = None,
    test_metric: Annotated[
        str | None,
        typer.Option("--test-metric", help="Metric whose history is the test curve."),
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option(
            "--direction",
            help="min or max: which way the metrics are better (or direction under "
            "[workload] in --mapping).",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="TOML with workload facts ([workload] direction, metric_name, valid_target, "
            "step_budget) and optimizer families ([families]).",
        ),
    ] = None,
    optimizer_from: Annotated[
        str,
        typer.Option("--optimizer-from", help="Param or tag naming each run's optimizer."),
    ] = "optimizer",
    workload_from: Annotated[
        str | None,
        typer.Option("--workload-from", help="Param or tag naming each run's workload."),
    ] = None,
    workload: Annotated[
        str | None,
        typer.Option(
            "--workload", help="Workload label for every run (default: the experiment name)."
        ),
    ] = None,
    seed_from: Annotated[
        str,
        typer.Option("--seed-from", help="Param holding each run's seed (not a hyperparameter)."),
    ] = "seed",
    series: Annotated[
        list[str] | None,
        typer.Option(
            "--series",
            help="NAME=KEY: archive series NAME (train_loss, train_metric, valid_loss, "
            "test_loss) from metric KEY's history; repeat for several.",
        ),
    ] = None,
    skip_bad: _SKIP = False,
    json_out: _JSON = False,
) -> None:
    """Import an MLflow experiment (needs the mlflow extra): runs as trials, numeric params
    as hyperparameters, metric histories as curves; FINISHED runs completed, FAILED and
    KILLED incomplete, runs with a NaN or infinite valid metric diverged.

    Example: optcmp import mlflow --tracking-uri sqlite:///mlflow.db --experiment sweep
    --valid-metric val_loss --test-metric test_loss --direction min --out sweep.nc
    """
    check_archive_out(out)
    result = import_mlflow(
        tracking_uri,
        experiment=experiment,
        valid_metric=valid_metric,
        test_metric=test_metric,
        direction=direction,
        mapping=mapping,
        optimizer_from=optimizer_from,
        workload_from=workload_from,
        workload=workload,
        seed_from=seed_from,
        series=_pairs(series or [], "--series"),
        skip_bad=skip_bad,
        command=_command_line(),
    )
    write_archive(result.dataset, out)
    _report(result, out, json_out)


def _pairs(items: list[str], option: str) -> dict[str, str]:
    """NAME=VALUE options as a dict; ConfigError naming the option for a malformed one."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{option} {item!r}: expected NAME=KEY")
        out[name.strip()] = value.strip()
    return out


# One subcommand per entry of the importers' registry; a registry entry without its
# command here fails at import time rather than going missing from the CLI.
_COMMANDS: dict[str, Callable[..., None]] = {
    "deepobs": deepobs,
    "algoperf": algoperf,
    "table": table,
    "optuna": optuna,
    "mlflow": mlflow,
}
for _name in IMPORTERS:
    import_app.command(_name)(_COMMANDS[_name])
