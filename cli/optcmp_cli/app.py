"""The optcmp command line: a Typer app, the only layer that prints.

Dependency rule: typer, rich, matplotlib, optcmp_data, optcmp_analysis. The simulation
package `optcmp` (torch) is imported lazily, only inside commands that train, so every
other command works without torch installed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from optcmp_cli import _analyze_more  # noqa: F401  (registers analyze targets|boundary|protocol)
from optcmp_cli._analyze import analyze_app
from optcmp_cli._demo import demo
from optcmp_cli._import import export, import_app
from optcmp_cli._info import info
from optcmp_cli._listings import spaces, workloads
from optcmp_cli._optimizers import optimizers
from optcmp_cli._plots import plot
from optcmp_cli._report import report
from optcmp_cli._run import run
from optcmp_cli._score import score

__all__ = ["app", "main"]

app = typer.Typer(
    name="optcmp",
    help=(
        "Compare training optimizers honestly: tune each on its own search space with "
        "quasi-random search, store every trial, and draw conclusions from the stored "
        "archives with proper statistics (Choi et al. 2019).\n\n"
        "Example: optcmp demo --out optcmp-demo  (a real study and its report)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        from optcmp_data._provenance import optcmp_version

        typer.echo(f"optcmp {optcmp_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Compare training optimizers honestly (see `optcmp COMMAND --help`)."""


app.command("info")(info)
app.command("workloads")(workloads)
app.command("spaces")(spaces)
app.command("optimizers")(optimizers)
app.command("run")(run)
app.command("demo")(demo)
app.command("score")(score)
app.command("export")(export)
app.command("plot")(plot)
app.command("report")(report)
app.add_typer(import_app, name="import")
app.add_typer(
    analyze_app,
    name="analyze",
    help=(
        "Statistics of a stored archive (best, budget, rank, inclusion, targets, boundary, "
        "protocol); no torch needed.\n\nExample: optcmp analyze budget runs/study --json"
    ),
)


def main() -> None:
    app()
