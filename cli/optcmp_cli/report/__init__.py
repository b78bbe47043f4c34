"""The report of `optcmp report`: every analysis of an archive as Markdown (and HTML),
with results.json and the figures.

Dependency rule: importing this package imports nothing heavy; `write_report` (in
`optcmp_cli.report.write`) brings in numpy, xarray, matplotlib and the analysis layer.

- `builder`: the Markdown, records, figures and findings of one report as it is written,
  and the protocol group a section is written for;
- `groups`: the tuning protocols of an archive and the workloads left out of them;
- `summary`: the head of the report (findings, caveats, the archive);
- `score`: the AlgoPerf score section;
- `write`: the orchestration (which section runs when), `write_report` and where it
  wrote (`ReportFiles`). The command is `optcmp_cli._report_command`.

Each analysis writes its own section: its CLI module in `optcmp_cli.analyses`.
"""

from __future__ import annotations

__all__: list[str] = []
