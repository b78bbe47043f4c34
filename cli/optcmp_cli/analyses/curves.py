"""curves: the learning curves of the selected trials (a figure, no records).

Dependency rule: the report's builder and the curves figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import Selection
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["figure", "options", "section"]


def options(c: Common) -> Any:
    """The options of the selection the curves are drawn from: the selection rule."""
    from optcmp_analysis import analysis_named

    return analysis_named("best").options(rule=c.rule)


def figure(result: Selection, ds: xr.Dataset) -> Figure:
    """The learning curves of the selected trials."""
    from optcmp_cli._plots import curves_figure

    return curves_figure(ds, result)


def section(b: Builder, sel: Selection, g: Group) -> None:
    """The learning curves of the selected trials, in the whole archive's colours."""
    from optcmp_cli._plots import curves_figure

    b.figure(
        curves_figure(g.ds, sel, styles=g.styles),
        f"curves{g.suffix}",
        "learning curves of the selected trials",
    )
