"""The look of every figure: matplotlib's rc style, and the finishing touches a figure gets
before it is written.

Dependency rule: matplotlib (object API, never pyplot), numpy and the escape helpers.
Imported only when a figure is drawn or saved.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedFormatter, FuncFormatter, LogFormatter, LogFormatterMathtext
from matplotlib.typing import RcKeyType

from optcmp_cli.render.escape import figure

__all__ = ["STYLE", "PlainLogFormatter", "figure_style", "finish"]

STYLE: dict[RcKeyType, Any] = {
    # Labels come from archives other people wrote: a `$` is a dollar sign, never mathtext.
    "text.parse_math": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # Fixed ids make the SVG of the same figure byte-identical between runs.
    "svg.hashsalt": "optcmp",
    "figure.titlesize": 10,
}


@contextmanager
def figure_style() -> Iterator[None]:
    """The figures' rc style. rc parameters are read when artists are created and when
    files are written, so both happen inside the context."""
    with mpl.rc_context(STYLE):
        yield


def finish(fig: Figure) -> None:
    """What every figure gets before it is written: finite linear axis ranges, plain-text
    log tick labels and every text with its control characters made visible."""
    _finite_limits(fig)
    _plain_log_ticks(fig)
    _visible_text(fig)


#: Widest linear axis range drawn: matplotlib cannot place ticks on a range whose width
#: overflows (metrics near ±1e308); data beyond it is cut off at the axis edge.
_MAX_HALF_RANGE = 1e306


def _finite_limits(fig: Figure) -> None:
    """Clamp linear axis ranges whose width is not a finite number."""
    for ax in fig.axes:
        for get, set_, scale in (
            (ax.get_xlim, ax.set_xlim, ax.get_xscale),
            (ax.get_ylim, ax.set_ylim, ax.get_yscale),
        ):
            if scale() != "linear":
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                lo, hi = (float(v) for v in get())
                wide = not np.isfinite(hi - lo) or max(abs(lo), abs(hi)) > _MAX_HALF_RANGE
            if wide:
                lo, hi = (float(np.clip(v, -_MAX_HALF_RANGE, _MAX_HALF_RANGE)) for v in (lo, hi))
                if lo == hi:  # everything beyond one edge: show the half range up to it
                    lo, hi = (hi / 2, hi) if hi > 0 else (lo, lo / 2)
                set_(lo, hi)


_SUPERSCRIPT = str.maketrans(
    "-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


class PlainLogFormatter(LogFormatter):
    """Log-axis tick labels as plain text ("10\u207b\u2075", "2\u00d710\u00b3"): matplotlib's
    default log formatter writes mathtext (`$\\mathdefault{10^{-5}}$`), which `STYLE`
    turns off so that labels from archives are never read as math; its labels would then
    show literally. Which ticks get a label (decades only, or minor ticks on a short axis)
    is decided by `LogFormatter` as before; only the text differs."""

    def __init__(self, base: float = 10.0, **kwargs: Any) -> None:
        super().__init__(base=base, **kwargs)
        self.log_base = float(base)

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        fx = math.log(x) / math.log(self.log_base)
        exponent = round(fx)
        if math.isclose(fx, exponent, abs_tol=1e-9):
            coeff, power = 1.0, exponent
        else:
            power = math.floor(fx)
            coeff = round(x / self.log_base**power, 2)
        base = f"{self.log_base:g}"
        if self.log_base == 10 and vmin >= 0.01 * (1 - 1e-9) and vmax <= 1e4:
            # An axis within [0.01, 10000] reads better in plain numbers, all of them.
            return f"{x:.3g}"
        head = "" if coeff == 1 else f"{coeff:g}\u00d7"
        return f"{head}{base}{str(power).translate(_SUPERSCRIPT)}"


def _plain_log_ticks(fig: Figure) -> None:
    """Replace the mathtext formatters of every log axis by `PlainLogFormatter`."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for get, set_ in (
                (axis.get_major_formatter, axis.set_major_formatter),
                (axis.get_minor_formatter, axis.set_minor_formatter),
            ):
                old = get()
                if isinstance(old, LogFormatterMathtext):
                    set_(
                        PlainLogFormatter(
                            base=getattr(old, "_base", 10.0),
                            labelOnlyBase=old.labelOnlyBase,
                            minor_thresholds=old.minor_thresholds,
                            linthresh=getattr(old, "_linthresh", None),
                        )
                    )


def _visible_text(fig: Figure) -> None:
    """Every text of `fig` (titles, labels, legends, annotations, fixed tick labels) with
    its control characters made visible (`escape.figure`); mathtext is off in `STYLE`."""
    for text in fig.findobj(Text):
        assert isinstance(text, Text)
        text.set_text(figure(text.get_text()))
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for formatter in (axis.get_major_formatter(), axis.get_minor_formatter()):
                if isinstance(formatter, FixedFormatter):
                    formatter.seq = [figure(label) for label in formatter.seq]
                elif isinstance(formatter, FuncFormatter):  # set_ticks(locs, labels)
                    formatter.func = _visible_labels(formatter.func)


def _visible_labels(func: Callable[..., Any]) -> Callable[..., str]:
    if getattr(func, "_optcmp_visible", False):
        return func

    def visible_label(*args: Any) -> str:
        return figure(func(*args))

    visible_label._optcmp_visible = True  # type: ignore[attr-defined]
    return visible_label
