"""Which colour and marker stands for what, in every figure and table.

Dependency rule: the standard library, attrs and optcmp_data; matplotlib's colour maps are
read the first time the palette is asked for (so that a command's `--help` does not load
matplotlib).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import attrs

from optcmp_data import FAMILY_SPECS

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "MARKERS",
    "NO_RESULT",
    "TERM_VERDICT_COLOURS",
    "VERDICT_COLOURS",
    "OptimizerStyle",
    "complete_styles",
    "optimizer_styles",
    "palette",
    "readable",
    "styles_of",
]

Colour = tuple[float, float, float]

MARKERS: Final = ("s", "o", "^", "D", "v", "P", "X", "<", ">", "h")
#: Figure colour of each inclusion verdict (`optcmp_analysis.Verdict` values), in the
#: order the figure's legend lists them.
VERDICT_COLOURS: Final = {
    "consistent": "#9fd39a",
    "inconclusive": "#d9d9d9",
    "not_tested": "#f2f2f2",
    "violated": "#ef8a80",
    "not_included": "#b9cfe8",
}
#: Terminal (rich) colour of each verdict.
TERM_VERDICT_COLOURS: Final = {
    "violated": "red",
    "consistent": "green",
    "inconclusive": "yellow",
    "not_tested": "white",
    "not_included": "blue",
}
NO_RESULT: Final = "#bdbdbd"  # the share of studies without a usable trial


@functools.cache
def palette() -> tuple[Colour, ...]:
    """Ten strong colours, then (for studies with more optimizers, e.g. AlgoPerf's eleven
    submissions) the light partners of tab20, so no two optimizers share a colour below 20."""
    import matplotlib as mpl

    return tuple(mpl.colormaps["tab10"](i)[:3] for i in range(10)) + tuple(
        mpl.colormaps["tab20"](2 * i + 1)[:3] for i in range(10)
    )


@attrs.frozen
class OptimizerStyle:
    """How one optimizer is drawn in every figure."""

    colour: Colour
    marker: str


def optimizer_styles(
    optimizers: Sequence[str], families: Sequence[str]
) -> dict[str, OptimizerStyle]:
    """A stable colour and marker per optimizer: the paper's six families keep theirs in
    every figure; other optimizers (or a second optimizer of a family) take the next free
    one. Markers tell apart lines that lie on top of each other."""
    colours = palette()
    slot: dict[str, int] = {}
    taken: set[int] = set()
    names = list(FAMILY_SPECS)
    for o, f in zip(optimizers, families, strict=True):
        if f in names and names.index(f) not in taken:
            slot[o] = names.index(f)
            taken.add(slot[o])
    for o in optimizers:
        if o not in slot:
            free = [i for i in range(len(colours)) if i not in taken] or [len(slot)]
            slot[o] = free[0]
            taken.add(free[0])
    return {
        o: OptimizerStyle(colours[i % len(colours)], MARKERS[i % len(MARKERS)])
        for o, i in slot.items()
    }


def complete_styles(
    styles: dict[str, OptimizerStyle] | None, names: Sequence[str]
) -> dict[str, OptimizerStyle]:
    """`styles` for `names`, labels it lacks (e.g. family keys) styled by their own name."""
    if styles is None:
        return optimizer_styles(names, names)
    missing = [n for n in names if n not in styles]
    if not missing:
        return styles
    extra = optimizer_styles(missing, missing)
    return {**extra, **styles}


def readable(colour: Colour) -> Colour:
    """`colour` darkened until text in it reads on white (relative luminance <= 0.35):
    the light partners of the palette (pale yellow, pale blue) are kept as hues only."""
    lum = 0.2126 * colour[0] + 0.7152 * colour[1] + 0.0722 * colour[2]
    if lum <= 0.35:
        return colour
    f = 0.35 / lum
    return (colour[0] * f, colour[1] * f, colour[2] * f)


def styles_of(data: xr.Dataset) -> dict[str, OptimizerStyle]:
    """One style per optimizer label of `data` (an archive or an analysis record). Pass
    the archive's to every figure of a report, so that a label keeps its colour."""
    names = [str(o) for o in data["optimizer"].values]
    if "optimizer_family" in data.variables:
        families = [str(f) for f in data["optimizer_family"].values]
    else:
        families = names
    return optimizer_styles(names, families)
