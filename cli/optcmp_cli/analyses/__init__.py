"""What the CLI shows of each analysis: one module per analysis, and the registration of
new ones.

Dependency rule: importing this package imports the CLI's view of the registry
(`_analyses`: no numpy, xarray or matplotlib); each module is light at import too and
imports the analysis layer's records, the report's builder and its figure functions
when it runs.

The analyses are the analysis layer's registry (`optcmp_analysis.analyses()`): this
package lists none. The module of a built-in analysis is `optcmp_cli.analyses.<name>`,
found by that name; an analysis added from outside names its module when it registers
it here. A module defines:

- `HELP`: the help of `optcmp analyze NAME`, whose options come from the analysis's
  options class in the analysis layer's registry;
- `print_table(result, options, archive)`: what `optcmp analyze NAME` prints;
- `section(builder, result, group)`: its section of `optcmp report`;
- optionally `figure(result, archive)`: the figure of `optcmp plot NAME` and of the
  report, with `FIGURE_HELP` (what it shows, in `optcmp plot --help`);
- optionally `options(common)`: the options `plot` and `report` run it with (default the
  options class's defaults), `BUDGET_HELP` and `BUDGET_DEFAULT` (what `plot --budget`
  means for it, which goes to `options`, and its k without the option),
  `SEED_AFTER`, `EXTRA_OPTIONS` and `records` (`optcmp analyze`), `REPORT_KEY`,
  `REQUIRED`, `HEADING` and `REPORT_AT_TESTS_BUDGET` (the report), and `VIEWS` (name ->
  module of a figure and report section drawn from its result: best's declares
  `curves`).

`register(Analysis(NAME, module_name=MODULE))` adds an analysis registered
in the analysis layer (`optcmp_analysis.register`) to `analyze`, `plot` and `report`
(docs/extending.md).
"""

from __future__ import annotations

from optcmp_cli._analyses import Analysis, Common, Inference, register

__all__ = ["Analysis", "Common", "Inference", "register"]
