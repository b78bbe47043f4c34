"""`optcmp analyze`: the analyze group with every subcommand registered.

Dependency rule: the CLI's analyze modules. Importing this module registers the
subcommands of _analyze (best, budget, rank, inclusion), _analyze_design (targets,
boundary, protocol: checks of the study's design) and _analyze_across (aggregate,
profiles) on one Typer app.
"""

from __future__ import annotations

from optcmp_cli import (
    _analyze_across,  # noqa: F401  (registers analyze aggregate|profiles)
    _analyze_design,  # noqa: F401  (registers analyze targets|boundary|protocol)
)
from optcmp_cli._analyze import analyze_app

__all__ = ["analyze_app"]
