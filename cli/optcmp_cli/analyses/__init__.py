"""One module per analysis: what the CLI shows of it.

Dependency rule: importing this package imports nothing; each module imports the
analysis layer's records and the report's builder, and its figure functions when drawn.
A module's `section(b, result, group)` writes the analysis's part of `optcmp report`
(its figure, tables and findings); the registry of analyses
(`optcmp_cli._analyses.ANALYSES`) names the module of each.
"""

from __future__ import annotations

__all__: list[str] = []
