"""curves: the learning curves of the selected trials (a figure, no records).

A view of the analysis `best`, declared by its CLI module (`VIEWS`): `optcmp plot
curves` and the report's "Learning curves" section run `best` with the options below and
draw its result; there is no `optcmp analyze curves`.

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

__all__ = ["FIGURE_HELP", "HEADING", "figure", "options", "section"]

#: The heading of its report section (it has no registry entry, whose title it would be).
HEADING = "Learning curves"


def options(c: Common) -> Any:
    """The options of the selection the curves are drawn from: the selection rule."""
    from optcmp_analysis import analysis_named

    return analysis_named("best").options(rule=c.rule)


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = "learning curves of the selected trials"


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
