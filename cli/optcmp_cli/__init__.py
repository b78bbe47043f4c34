"""optcmp_cli: the Typer application behind the `optcmp` command.

Dependency rule: may import optcmp_data and optcmp_analysis at module level; imports
the torch-based `optcmp` package only lazily inside training commands.
"""

from optcmp_cli.app import app, main

__all__ = ["app", "main"]
