"""Figures across workloads: aggregate scores with their intervals, the probability of
improvement, and time-to-target performance profiles.

Dependency rule: matplotlib (object API, never pyplot), numpy, optcmp_analysis and
`optcmp_cli.render` (style, layout and palette). Every `*_axes` function draws into a
given `Axes`, so a caller can compose them; the `*_figure` functions lay out whole figures
for `optcmp plot` and the report.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from optcmp_analysis import AGGREGATE_STATISTICS, AggregateScores, PerformanceProfiles
from optcmp_cli.render.escape import figure as figure_text
from optcmp_cli.render.layout import figure_title
from optcmp_cli.render.numbers import counted
from optcmp_cli.render.palette import OptimizerStyle, complete_styles
from optcmp_cli.render.style import figure_style

__all__ = [
    "aggregate_axes",
    "aggregate_figure",
    "improvement_axes",
    "profiles_axes",
    "profiles_figure",
]

_LABELS = {
    "iqm": "IQM",
    "mean": "mean",
    "median": "median",
    "optimality_gap": "optimality gap",
}


def _order(result: AggregateScores) -> list[str]:
    """Optimizers by IQM, best first."""
    iqm = result.data["value"].sel(statistic="iqm")
    names = [str(o) for o in result.data["optimizer"].values]
    values = np.nan_to_num(iqm.values.astype(np.float64), nan=-np.inf)
    return [names[i] for i in np.argsort(-values, kind="stable")]


def aggregate_axes(
    ax: Axes,
    result: AggregateScores,
    statistic: str = "iqm",
    *,
    styles: dict[str, OptimizerStyle] | None = None,
) -> None:
    """Point estimate and interval of one aggregate statistic per optimizer (rows);
    `styles` as in every figure (default: each optimizer styled by its own name)."""
    if statistic not in AGGREGATE_STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}")
    d = result.data.sel(statistic=statistic)
    names = _order(result)
    styles = complete_styles(styles, names)
    y = np.arange(len(names))[::-1]
    for yi, o in zip(y, names, strict=True):
        c = d.sel(optimizer=o)
        v, lo, hi = (float(c[x]) for x in ("value", "lo", "hi"))
        colour = styles[o].colour
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot(
                [lo, hi], [yi, yi], color=colour, linewidth=6, alpha=0.45, solid_capstyle="butt"
            )
        ax.plot([v], [yi], marker="|", color="black", markersize=12)
    ax.set_yticks(y, [figure_text(o) for o in names])
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # long tick labels must not overlap
    ax.set_xlabel(f"{_LABELS[statistic]} of normalised score")
    ax.set_title(_LABELS[statistic])
    ax.grid(axis="y", visible=False)


def improvement_axes(ax: Axes, result: AggregateScores) -> None:
    """P(row optimizer better than column optimizer) as a heat map, with the interval."""
    names = _order(result)
    d = result.data
    p = d["improvement"].sel(optimizer=names, other=names).values.astype(np.float64)
    lo = d["improvement_lo"].sel(optimizer=names, other=names).values
    hi = d["improvement_hi"].sel(optimizer=names, other=names).values
    clear = d["improvement_clear"].sel(optimizer=names, other=names).values
    ax.imshow(p, cmap="RdBu", vmin=0.0, vmax=1.0)
    small = len(names) <= 5
    for i in range(len(names)):
        for j in range(len(names)):
            if i == j:
                continue
            ci = small and bool(np.isfinite(lo[i, j]))
            star = "*" if bool(clear[i, j]) else ""
            text = f"{p[i, j]:.2f}{star}" + (f"\n{lo[i, j]:.2f}-{hi[i, j]:.2f}" if ci else "")
            # Light text on the dark ends of the colour map.
            colour = "white" if abs(p[i, j] - 0.5) > 0.3 else "black"
            ax.text(
                j, i, text, ha="center", va="center", fontsize=6.5 if small else 5.5, color=colour
            )
    labels = [figure_text(o) for o in names]
    ax.set_xticks(range(len(names)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), labels)
    ax.set_title("P(row better than column); * clear (Holm)")
    ax.grid(visible=False)


def aggregate_figure(
    result: AggregateScores, *, styles: dict[str, OptimizerStyle] | None = None
) -> Figure:
    """IQM and optimality gap with intervals, and the probability of improvement."""
    n = len(result.data["optimizer"])
    with figure_style():
        fig = Figure(figsize=(13.0, 1.6 + 0.5 * max(n, 5)), layout="constrained")
        axes = fig.subplots(1, 3, width_ratios=[1, 1, 1.3])
        aggregate_axes(axes[0], result, "iqm", styles=styles)
        aggregate_axes(axes[1], result, "optimality_gap", styles=styles)
        axes[1].set_yticks([])
        improvement_axes(axes[2], result)
        level = f"{100 * result.confidence:g}%"
        intervals = (
            f"{level} stratified-bootstrap intervals, expanded ({result.n_boot} replicates)"
            if result.interval_note is None
            else "no intervals (see the text)"
        )
        figure_title(
            fig,
            f"Across {len(result.workloads)} workload{'' if len(result.workloads) == 1 else 's'}"
            ": normalised test scores "
            f"({figure_text(result.scale_phrase)})",
            f"{intervals}; unit {result.unit}, selection {result.rule}; higher IQM, lower "
            "gap is better",
        )
    return fig


def profiles_axes(
    ax: Axes, result: PerformanceProfiles, *, styles: dict[str, OptimizerStyle] | None = None
) -> None:
    """rho(tau) per optimizer as step curves; `styles` as in every figure (default: each
    optimizer styled by its own name)."""
    d = result.data
    names = [str(o) for o in d["optimizer"].values]
    styles = complete_styles(styles, names)
    tau = d["tau"].values
    area = d["area"].values
    dashes = ("-", "--", ":", "-.")
    for n, i in enumerate(np.argsort(-np.nan_to_num(area.astype(np.float64)), kind="stable")):
        o = names[i]
        ax.step(
            tau,
            d["rho"].sel(optimizer=o).values,
            where="post",
            color=styles[o].colour,
            # More optimizers than colours: the line style tells them apart.
            linestyle=dashes[(i // 10) % len(dashes)],
            linewidth=1.6 if n < 3 else 1.2,
            label=f"{figure_text(o)} ({area[i]:.2f})",
        )
    ax.set_xlim(1.0, float(tau[-1]))
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau: {result.measure} to target / the fastest optimizer's")
    ax.set_ylabel("share of workloads within tau")


def profiles_figure(
    result: PerformanceProfiles,
    *,
    algoperf: bool = False,
    styles: dict[str, OptimizerStyle] | None = None,
) -> Figure:
    """Performance profiles of every optimizer; the legend gives each area score.
    `algoperf`: the archive has an AlgoPerf score, which the title tells apart."""
    with figure_style():
        fig = Figure(figsize=(9.0, 5.2), layout="constrained")
        ax = fig.subplots()
        profiles_axes(ax, result, styles=styles)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        figure_title(
            fig,
            "Time-to-target performance profiles over "
            + counted(len(result.workloads), "workload"),
            f"measure {result.measure}; legend: area under the profile over [1, "
            f"{result.max_tau:g}] / {result.max_tau - 1:g}"
            + (
                " (all workloads with a target, no held-out rules: not the AlgoPerf score, "
                "which `optcmp score` gives)"
                if algoperf
                else ""
            ),
        )
    return fig
