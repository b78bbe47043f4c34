"""`optcmp analyze`: one subcommand per analysis of the registry.

Dependency rule: typer and the light names of optcmp_analysis at import, and each
analysis's CLI module (`optcmp_cli.analyses.<name>`, light at import too). Importing
this module builds `optcmp analyze NAME` for every analysis of the analysis layer's
registry that the CLI shows (`optcmp_cli._analyses.shown_analyses()`, the registry's
order) from its options and its CLI module (`_analyze_command.analyze_command`);
analyses registered later through `optcmp_cli.analyses.register` add their command
when registered.
"""

from __future__ import annotations

from optcmp_cli._analyses import shown_analyses
from optcmp_cli._analyze import analyze_app
from optcmp_cli._analyze_command import analyze_command

__all__ = ["analyze_app"]


def _add_commands() -> None:
    have = {c.name for c in analyze_app.registered_commands}
    for shown in shown_analyses():
        if shown.name not in have:
            analyze_app.command(shown.name)(analyze_command(shown.entry(), shown.module()))


_add_commands()
