"""Figure layout around the panels: grids of panels, titles and legends.

Dependency rule: matplotlib (object API, never pyplot) and the escape helpers. Imported
only when a figure is drawn. The panels themselves draw into one given `Axes`
(`optcmp_cli._plots`, `optcmp_cli._plots_across`); these helpers build the `Figure` around
them.
"""

from __future__ import annotations

import math
import re
import textwrap
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from optcmp_cli.render.escape import figure

__all__ = ["figure_title", "grid", "legend_below", "panel_title"]


def grid(
    n: int, *, ncols: int = 3, panel: tuple[float, float] = (4.2, 3.2), extra: float = 0.9
) -> tuple[Figure, list[Axes]]:
    """A figure with `n` panels in rows of `ncols`; `extra` inches for title and legend."""
    if n > 6:
        # Many workloads: smaller panels, four to a row, so the figure stays readable.
        ncols, panel = 4, (3.4, 2.7)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    # At least 7 inches wide, so one panel still has room for its title and legend.
    width = max(panel[0] * ncols, 7.0)
    fig = Figure(figsize=(width, panel[1] * nrows + extra), layout="constrained")
    axes_grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = [ax for row in axes_grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def figure_title(fig: Figure, main: str, detail: str = "", *, y: float | None = None) -> None:
    """A figure title and a line of detail, both wrapped to the figure's width."""
    width = int(fig.get_figwidth() * 12)
    main, detail = figure(main), figure(detail)
    text = "\n".join([*textwrap.wrap(main, width), *textwrap.wrap(detail, width)])
    if y is None:
        fig.suptitle(text)
    else:
        fig.suptitle(text, y=y, va="top")


def panel_title(ax: Axes, name: str, detail: str) -> str:
    """A panel title that stays within its panel: the name (wrapped at underscores if
    needed) over the detail, so that neighbouring panels' titles never run together."""
    spec = ax.get_subplotspec()
    ncols = spec.get_gridspec().ncols if spec is not None else 1
    fig = ax.get_figure(root=True)
    inches = (fig.get_figwidth() if isinstance(fig, Figure) else 6.0) / ncols
    chars = max(12, int(inches * 72 / (9 * 0.6)))
    # Wrap the name after underscores (names rarely have spaces), else where it must.
    lines: list[str] = []
    for token in re.split(r"(?<=_)", name):
        if lines and len(lines[-1]) + len(token) <= chars:
            lines[-1] += token
        else:
            lines.append(token)
    lines = [piece for line in lines for piece in (textwrap.wrap(line, chars) or [line])]
    return "\n".join([*lines, *textwrap.wrap(detail, chars)])


def legend_below(fig: Figure, handles: list[Any], labels: list[str]) -> None:
    """One legend for the whole figure, below its panels, in as many columns as fit."""
    # Entries share one width (the longest label's), so the row must fit that many of them
    # across the figure: about 0.07 inch per character at the legend's font, plus the patch.
    entry = 0.6 + 0.07 * max((len(label) for label in labels), default=0)
    per_row = max(1, min(len(handles), int(0.95 * fig.get_figwidth() / entry)))
    labels = [figure(label) for label in labels]
    fig.legend(handles, labels, loc="outside lower center", ncols=per_row, frameon=False)
