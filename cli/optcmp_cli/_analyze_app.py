"""`optcmp analyze`: one subcommand per analysis of the registry.

Dependency rule: typer and the light names of optcmp_analysis at import, and each
analysis's CLI module (`optcmp_cli.analyses.<name>`, light at import too). Importing
this module builds `optcmp analyze NAME` for every analysis of the analysis layer's
registry (`optcmp_analysis.analyses()`, in its order) from its options and its CLI
module (`_analyze_command.analyze_command`); analyses registered later through
`optcmp_cli._analyses.register` add their command when registered.
"""

from __future__ import annotations

import importlib

from optcmp_analysis import analyses
from optcmp_cli._analyses import cli_analyses
from optcmp_cli._analyze import analyze_app
from optcmp_cli._analyze_command import analyze_command

__all__ = ["analyze_app"]


def _add_commands() -> None:
    shown = {a.name: a for a in cli_analyses()}
    have = {c.name for c in analyze_app.registered_commands}
    for entry in analyses():
        view = shown.get(entry.name)
        if view is None or entry.name in have:
            continue
        module = importlib.import_module(view.module_name or f"optcmp_cli.analyses.{entry.name}")
        analyze_app.command(entry.name)(analyze_command(entry, module))


_add_commands()
