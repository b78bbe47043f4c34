"""curves: the learning curves of the selected trials (a figure, no records).

Dependency rule: the report's builder and the curves figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optcmp_analysis import Selection
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


def section(b: Builder, sel: Selection, g: Group) -> None:
    """The learning curves of the selected trials, in the whole archive's colours."""
    from optcmp_cli._plots import curves_figure

    b.figure(
        curves_figure(g.ds, sel, styles=g.styles),
        f"curves{g.suffix}",
        "learning curves of the selected trials",
    )
