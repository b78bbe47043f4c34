"""optcmp_cli: the Typer application behind the `optcmp` command.

Dependency rule: optcmp_data and optcmp_analysis (their public names only; at module
level only the light ones, so that every `--help` is fast: see app.py); imports the
torch-based `optcmp` package only lazily inside training commands.
"""

from optcmp_cli.app import app, main

__all__ = ["app", "main"]
