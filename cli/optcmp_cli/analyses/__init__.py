"""What the CLI shows of each analysis: one module per analysis, and the registration of
new ones.

Dependency rule: importing this package imports the CLI's registry (`_analyses`: no
numpy, xarray or matplotlib); each module is light at import too and imports the
analysis layer's records, the report's builder and its figure functions when it runs.

A module `optcmp_cli.analyses.<name>` (or, for an analysis added from outside, the
module named in its entry) defines:

- `HELP`: the help of `optcmp analyze NAME`, whose options come from the analysis's
  options class in the analysis layer's registry;
- `print_table(result, options, archive)`: what `optcmp analyze NAME` prints;
- `figure(result, archive)`: the figure of `optcmp plot NAME` and of the report (where
  the entry `has_figure`);
- `section(builder, result, group)`: its section of `optcmp report`;
- optionally `options(common)`: the options `plot` and `report` run it with (default the
  options class's defaults), `SEED_AFTER`, `EXTRA_OPTIONS` and `records`.

`register(Analysis(NAME, module_name=MODULE))` adds an analysis registered
in the analysis layer (`optcmp_analysis.register`) to `analyze`, `plot` and `report`
(docs/extending.md).
"""

from __future__ import annotations

from optcmp_cli._analyses import Analysis, Common, Inference, register

__all__ = ["Analysis", "Common", "Inference", "register"]
