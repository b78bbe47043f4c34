"""The report writer's names where they were before the report became a package:
`write_report` and `ReportFiles` (optcmp_cli.report.write), `ReportFormat`
(optcmp_cli._report_command, the command).

Dependency rule: the report package (numpy, xarray, matplotlib, the analyses).
"""

from __future__ import annotations

from optcmp_cli._report_command import ReportFormat
from optcmp_cli.report.write import ReportFiles, write_report

__all__ = ["ReportFiles", "ReportFormat", "write_report"]
