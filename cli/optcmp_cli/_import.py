"""`optcmp import deepobs|algoperf`: published trial archives into the archive format.

Dependency rule: typer, rich and optcmp_data (no torch). Each command parses, calls one
importer, writes the archive atomically (`write_archive`), and reports.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from optcmp_cli._common import (
    check_archive_out,
    console,
    err_console,
    print_json,
    reports_errors,
)
from optcmp_cli._escape import visible
from optcmp_data import archive_caveats, write_archive
from optcmp_data.importers import ImportResult, Ruleset, import_algoperf, import_deepobs

__all__ = ["import_app"]

import_app = typer.Typer(
    name="import",
    help=(
        "Import published trial archives (DeepOBS, AlgoPerf) as optcmp archives.\n\n"
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


@import_app.command("deepobs")
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


@import_app.command("algoperf")
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
