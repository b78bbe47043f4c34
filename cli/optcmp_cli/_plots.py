"""Figures in the style of Choi et al. 2019 (`optcmp plot` is in _plot_command.py).

Dependency rule: matplotlib, numpy, xarray, optcmp_data, optcmp_analysis and
`optcmp_cli.render`. Figures are built with matplotlib's object API (`Figure`, saved
through the Agg and SVG canvases), never pyplot, so nothing global is touched and nothing
opens a window.

Each figure has a panel function `*_axes(ax, result, ...)` that draws one panel (one
workload, selection rule or hyperparameter) into a given `Axes`, as rliable's plot
functions do, so that panels of different analyses can share a figure of one's own; the
`*_figure` function lays out the grid (`render.layout`), calls the panel for each cell and
adds one legend and title. Draw inside `render.style.figure_style()` for the figures'
look; `render.save.save_figure` writes a figure.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    EngFormatter,
    MaxNLocator,
)

from optcmp_analysis import (
    BoundaryCheck,
    BudgetCurve,
    ConditionKind,
    InclusionResult,
    ProtocolComparison,
    Rankings,
    Selection,
    SelectionRule,
    TargetStudy,
    Verdict,
)
from optcmp_cli.render.layout import figure_title, grid, legend_below, panel_title
from optcmp_cli.render.numbers import num, signed
from optcmp_cli.render.palette import (
    NO_RESULT,
    VERDICT_COLOURS,
    OptimizerStyle,
    complete_styles,
    readable,
    styles_of,
)
from optcmp_cli.render.style import figure_style
from optcmp_data import ConfigError, Scale

__all__ = [
    "boundary_axes",
    "boundary_figure",
    "budget_axes",
    "budget_figure",
    "curves_axes",
    "curves_figure",
    "full_budget_steps",
    "inclusion_axes",
    "inclusion_figure",
    "protocol_axes",
    "protocol_figure",
    "rank_axes",
    "rank_figure",
    "targets_axes",
    "targets_figure",
]

FloatArray = npt.NDArray[np.float64]


def step_label(archive: xr.Dataset) -> str:
    """What the archive's `step` counts: epochs for DeepOBS (its logs have one evaluation
    per epoch), the `step_unit` attribute where an archive records one, else steps."""
    unit = archive.attrs.get("step_unit")
    if unit:
        return str(unit)
    return "epoch" if archive.attrs.get("importer") == "deepobs" else "step"


def _spaced_ticks(ks: npt.NDArray[np.int64]) -> tuple[list[int], list[str]]:
    """Ticks at the budgets k on a log2 axis, leaving out a label that would touch its
    neighbour (32 and 36): the largest k is always labelled."""
    keep: list[int] = []
    for k in sorted(int(x) for x in ks)[::-1]:
        if not keep or keep[-1] / k >= 1.4:
            keep.append(k)
    keep.reverse()
    return keep, [str(k) for k in keep]


def _log_helps(values: npt.ArrayLike, direction: str) -> bool:
    """A log axis for a metric to minimise (an error or a loss) spanning a decade; never
    for one to maximise (an accuracy), where it stretches the uninteresting low end."""
    return direction != "max" and _spans_decades(values)


def _spans_decades(values: npt.ArrayLike) -> bool:
    """Whether positive data spans at least a factor of ten (then a log axis reads better)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return bool(v.size >= 2 and (v > 0).all() and v.max() / v.min() >= 10.0)


def _require_mean(data: xr.Dataset, var: str, cells: tuple[str, ...]) -> None:
    extra = [str(d) for d in data[var].dims if d not in cells]
    if extra:
        raise ConfigError(
            f"figure: {var} has repeat dims {extra}; figures need one result per "
            "(workload, optimizer): use repeats 'mean'"
        )


# --- budget (Figures 6-8) ---------------------------------------------------------------


def budget_axes(
    ax: Axes,
    curve: BudgetCurve,
    workload: str,
    *,
    target: str = "test",
    styles: dict[str, OptimizerStyle] | None = None,
) -> None:
    """One workload's best-of-k metric versus the number of trials k on `ax`: bootstrap
    median with its 5-95% range (an error bar, dodged sideways per optimizer so that many
    optimizers stay apart) and the closed-form expectation (dashed), per optimizer."""
    d = curve.data
    _require_mean(d, "median", ("workload", "optimizer", "k", "target"))
    names = [str(o) for o in d["optimizer"].values]
    styles = complete_styles(styles or styles_of(d), names)
    ks = d["k"].values.astype(np.int64)
    cell = d.sel(workload=workload, target=target)
    metric = str(d["metric_name"].sel(workload=workload).item())
    shown: list[FloatArray] = []
    for i, o in enumerate(names):
        c = cell.sel(optimizer=o)
        med, lo, hi, exp = (
            c[v].values.astype(np.float64) for v in ("median", "lo", "hi", "expected")
        )
        if not np.isfinite(med).any():
            continue
        st = styles[o]
        # Overlapping bands of six optimizers smear into one colour; error bars
        # dodged by a small factor on the log2 axis keep each range visible.
        x = ks * 2.0 ** (0.22 * (i - (len(names) - 1) / 2) / max(1, len(names) - 1))
        ax.errorbar(
            x,
            med,
            yerr=np.vstack([med - lo, hi - med]).clip(min=0),
            color=st.colour,
            marker=st.marker,
            markersize=4,
            linewidth=1.6,
            elinewidth=0.9,
            capsize=1.5,
        )
        ax.plot(ks, exp, color=st.colour, linestyle="--", linewidth=1.0)
        shown.extend([lo, hi, med])
    ax.set_xscale("log", base=2)
    ax.set_xticks(*_spaced_ticks(ks))
    ax.minorticks_off()
    direction = str(d["direction"].sel(workload=workload).item()) if "direction" in d else ""
    if shown and _log_helps(np.concatenate(shown), direction):
        ax.set_yscale("log")
    ax.set_xlabel("number of trials k (log2 scale)")
    ax.set_ylabel(f"{metric} ({target}) of the best trial")
    ax.set_title(f"{workload}")


def budget_figure(
    curve: BudgetCurve,
    *,
    target: str = "test",
    styles: dict[str, OptimizerStyle] | None = None,
) -> Figure:
    """`budget_axes` for every workload, one panel each, with one legend and title."""
    d = curve.data
    _require_mean(d, "median", ("workload", "optimizer", "k", "target"))
    names = [str(o) for o in d["optimizer"].values]
    styles = complete_styles(styles or styles_of(d), names)
    workloads = [str(w) for w in d["workload"].values]
    with figure_style():
        fig, axes = grid(len(workloads))
        for ax, w in zip(axes, workloads, strict=True):
            budget_axes(ax, curve, w, target=target, styles=styles)
        handles: list[Any] = [
            Line2D([], [], color=styles[o].colour, marker=styles[o].marker, linewidth=1.6)
            for o in names
        ]
        labels = list(names)
        handles += [
            Line2D([], [], color="0.2", linewidth=1.6),
            Line2D([], [], color="0.2", marker="|", markersize=9, linestyle="none"),
            Line2D([], [], color="0.2", linestyle="--"),
        ]
        labels += ["bootstrap median", "5-95% range", "closed form (expected)"]
        legend_below(fig, handles, labels)
        figure_title(
            fig,
            "Budget sensitivity: best-of-k test metric against the number of trials",
            f"selection {curve.rule}; {curve.n_boot} bootstrap studies of k trials drawn "
            "with replacement; dashed: expected best of k (Dodge et al. 2019)",
        )
    return fig


# --- rank probabilities -----------------------------------------------------------------


def _place_colours(n_places: int) -> list[tuple[float, float, float, float]]:
    """One colour per rank, green (first) to red (last)."""
    cmap = mpl.colormaps["RdYlGn_r"]
    return [cmap(i / max(1, n_places - 1)) for i in range(n_places)]


def rank_axes(
    ax: Axes,
    rankings: Rankings,
    workload: str,
    *,
    styles: dict[str, OptimizerStyle] | None = None,
    ylabel: bool = True,
) -> None:
    """One workload's probability of each rank per optimizer (stacked bars) on `ax`,
    optimizers ordered by mean rank; the share without a usable trial in grey.
    `ylabel`: name the y axis (the first panel of a row)."""
    d = rankings.data
    _require_mean(d, "mean_rank", ("workload", "optimizer"))
    place_colours = _place_colours(d.sizes["place"])
    cell = d.sel(workload=workload)
    mean_rank = cell["mean_rank"].values.astype(np.float64)
    order = np.argsort(np.where(np.isfinite(mean_rank), mean_rank, np.inf), kind="stable")
    names = [str(cell["optimizer"].values[i]) for i in order]
    probs = cell["rank_probability"].transpose("optimizer", "place").values[order]
    bottom = np.zeros(len(names))
    x = np.arange(len(names))
    for j, colour in enumerate(place_colours):
        ax.bar(x, probs[:, j], bottom=bottom, color=colour, width=0.7, edgecolor="white")
        bottom += probs[:, j]
    # A study without a usable trial has no rank: the rest of the bar says so.
    none = cell["no_result"].values.astype(np.float64)[order]
    ax.bar(x, none, bottom=bottom, color=NO_RESULT, width=0.7, edgecolor="white")
    ranks = cell["rank"].values[order]
    # Many bars: "#rank mean" written upwards above each bar, so that neighbours'
    # labels never run together; few bars: two short lines.
    crowded = len(names) > 6
    for xi, r, m in zip(x, ranks, mean_rank[order], strict=True):
        label = f"#{int(r)}" if np.isfinite(r) else "#-"
        ax.annotate(
            f"{label} {num(float(m), 3)}" if crowded else f"{label}\n{num(float(m), 3)}",
            (float(xi), 1.0),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=6.5 if crowded else 7,
            rotation=90 if crowded else 0,
        )
    ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0, ha="right")
    if len(names) <= 4:
        ax.set_xticks(x, names)
    # Bars are coloured by rank; the optimizer's own colour goes on its name,
    # darkened where it is too light to read on white.
    named = complete_styles(styles, [str(n) for n in names])
    for tick in ax.get_xticklabels():
        if tick.get_text() in named:
            tick.set_color(readable(named[tick.get_text()].colour))
    ax.set_ylim(0, 1.42 if crowded else 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    if ylabel:
        ax.set_ylabel("probability of each rank")
    metric = str(d["metric_name"].sel(workload=workload).item())
    ax.set_title(panel_title(ax, workload, f"ranked by test {metric}"), fontsize=9)
    ax.grid(axis="x", visible=False)


def rank_figure(rankings: Rankings, *, styles: dict[str, OptimizerStyle] | None = None) -> Figure:
    """`rank_axes` for every workload, one panel each, with one legend and title."""
    d = rankings.data
    _require_mean(d, "mean_rank", ("workload", "optimizer"))
    places = [int(p) for p in d["place"].values]
    workloads = [str(w) for w in d["workload"].values]
    with figure_style():
        fig, axes = grid(len(workloads))
        for ax, w in zip(axes, workloads, strict=True):
            spec = ax.get_subplotspec()
            first_col = spec is None or spec.is_first_col()
            rank_axes(ax, rankings, w, styles=styles, ylabel=first_col)
        handles: list[Any] = [Patch(color=c) for c in _place_colours(len(places))]
        handles.append(Patch(color=NO_RESULT))
        legend_below(fig, handles, [*(f"rank {p}" for p in places), "no result"])
        figure_title(
            fig,
            f"Rank probabilities at k={rankings.budget} trials per optimizer",
            ("exact" if str(rankings.method) == "exact" else f"{rankings.n_boot} bootstrap studies")
            + f", selection {rankings.rule}; grey: no usable trial; above each bar: "
            "#rank of the tuned optimizer on the whole archive and its mean rank given a result",
        )
    return fig


# --- inclusion consistency --------------------------------------------------------------

#: The legend's words for each verdict (colours: `render.palette.VERDICT_COLOURS`).
_VERDICT_LABELS = {
    Verdict.CONSISTENT.value: "consistent (within the workload's margin)",
    Verdict.INCONCLUSIVE.value: "inconclusive",
    Verdict.NOT_TESTED.value: "not tested (k = N, or too few trials)",
    Verdict.VIOLATED.value: "violated",
    Verdict.NOT_INCLUDED.value: "not included (search spaces; not tested)",
}


def _pairs(result: InclusionResult) -> list[str]:
    d = result.data
    return [f"{s} ⊆ {g}" for s, g in zip(d["special"].values, d["general"].values, strict=True)]


def _inclusion_cell_text(verdict: str, p_worse: float, p_within: float, diff: float) -> str:
    """What a cell of the inclusion panel says: the p-value its verdict rests on (a
    consistent cell on the within-margin test, every other tested cell on the worse test)
    and the difference of expected best-of-k values."""
    delta = f"Δ={signed(diff)}"
    if verdict == Verdict.NOT_INCLUDED.value:
        return f"not included\n{delta}"
    if verdict == Verdict.NOT_TESTED.value:
        return f"not tested\n{delta}"
    if verdict == Verdict.CONSISTENT.value:
        return f"p within={num(p_within, 3)}\n{delta}"
    return f"p worse={num(p_worse, 3)}\n{delta}"


def inclusion_axes(ax: Axes, result: InclusionResult, rule: str) -> None:
    """Inclusion pairs x workloads of one selection rule on `ax`, coloured by verdict, with
    the Holm-adjusted p-value and the difference of expected best-of-k test metrics
    (general - special, positive: the general optimizer is worse) annotated."""
    d = result.data
    _require_mean(d, "verdict", ("rule", "pair", "workload"))
    workloads = [str(w) for w in d["workload"].values]
    pairs = _pairs(result)
    order = list(VERDICT_COLOURS)
    cmap = ListedColormap([VERDICT_COLOURS[v] for v in order])
    cell = d.sel(rule=rule).transpose("pair", "workload")
    verdict = cell["verdict"].values.astype(str)
    index = np.array([[order.index(v) for v in row] for row in verdict], dtype=float)
    ax.imshow(index, cmap=cmap, vmin=-0.5, vmax=len(order) - 0.5, aspect="auto")
    p_adj = cell["p_adjusted"].values
    p_within = cell["p_noninferior_adjusted"].values
    diff = cell["difference"].values
    for i in range(len(pairs)):
        for j in range(len(workloads)):
            ax.text(
                j,
                i,
                _inclusion_cell_text(
                    verdict[i, j], float(p_adj[i, j]), float(p_within[i, j]), float(diff[i, j])
                ),
                ha="center",
                va="center",
                fontsize=7,
            )
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_yticks(range(len(pairs)), pairs)
    ax.set_xticks(np.arange(-0.5, len(workloads)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(pairs)), minor=True)
    ax.grid(which="major", visible=False)
    ax.grid(which="minor", color="white", linewidth=2, alpha=1.0)
    ax.tick_params(which="minor", length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("workload")
    ax.set_title(f"selection by {rule}")


def inclusion_figure(result: InclusionResult) -> Figure:
    """`inclusion_axes` for every selection rule, one panel each, with one legend and
    title."""
    d = result.data
    _require_mean(d, "verdict", ("rule", "pair", "workload"))
    rules = [str(r) for r in d["rule"].values]
    n_workloads = d.sizes["workload"]
    with figure_style():
        fig, axes = grid(
            len(rules),
            # Many workloads make each panel wide: one above the other, so that the
            # figure keeps a page's width and its text stays legible.
            ncols=2 if n_workloads <= 4 else 1,
            panel=(max(5.0, 2.2 + 1.3 * n_workloads), 0.9 + 0.42 * len(_pairs(result))),
            extra=1.2,
        )
        for ax, rule in zip(axes, rules, strict=True):
            inclusion_axes(ax, result, rule)
        handles: list[Any] = [Patch(color=VERDICT_COLOURS[v]) for v in VERDICT_COLOURS]
        legend_below(fig, handles, [_VERDICT_LABELS[v] for v in VERDICT_COLOURS])
        margins = ", ".join(f"{w} {m:.3g}" for w, m in result.margins.items())
        figure_title(
            fig,
            f"Inclusion consistency at budget {result.budget_text}",
            "is the tuned general optimizer worse? p worse / p within (the margin): one-sided "
            f"bootstrap-t p-values, each Holm-adjusted over {result.n_tests} tests "
            f"(alpha {result.alpha:g}); Δ: "
            "expected best-of-k test metric, general - special, positive means worse; "
            f"margins {margins}",
        )
    return fig


# --- targets (Figure 10) ----------------------------------------------------------------


def full_budget_steps(study: TargetStudy) -> list[int]:
    """The steps-to-target conditions at the full step budget, easiest target first."""
    full = max(study.fractions)
    return sorted(
        (
            c
            for c in range(len(study.condition_kind))
            if study.condition_kind[c] == ConditionKind.STEPS.value
            and study.condition_fraction[c] == full
        ),
        key=lambda c: study.condition_target[c],
    )


def targets_axes(
    ax: Axes,
    study: TargetStudy,
    workload: str,
    *,
    styles: dict[str, OptimizerStyle] | None = None,
    step_unit: str = "step",
) -> None:
    """Steps to reach each target validation value at the full step budget, per optimizer,
    for one workload on `ax`; targets never reached are marked x on the budget line."""
    full = max(study.fractions)
    conditions = full_budget_steps(study)
    styles = complete_styles(styles, list(study.optimizers))
    w = workload
    targets = study.target_value.sel(workload=w).values[
        [study.condition_target[c] for c in conditions]
    ]
    limit = float(study.step_limit.sel(workload=w, fraction=full))
    finite_steps: list[float] = []
    # Steps come from a few evaluation points, so optimizers often tie: a small
    # horizontal dodge per optimizer keeps tied points and lines visible.
    gaps = np.abs(np.diff(targets))
    step = float(gaps[gaps > 0].min()) if (gaps > 0).any() else 1.0
    n_o = len(study.optimizers)
    for i, o in enumerate(study.optimizers):
        st = styles[o]
        y = study.tuned.sel(workload=w, optimizer=o).values[conditions].astype(np.float64)
        reached = np.isfinite(y)
        x = targets + (i - (n_o - 1) / 2) * 0.35 * step / max(1, n_o - 1)
        ax.plot(
            x[reached],
            y[reached],
            color=st.colour,
            marker=st.marker,
            markersize=4,
            linewidth=1.5,
        )
        missed = np.isinf(y)
        if missed.any():
            ax.plot(
                x[missed],
                np.full(int(missed.sum()), limit),
                color=st.colour,
                marker="x",
                markersize=7,
                linestyle="none",
            )
        finite_steps.extend(y[reached].tolist())
    ax.axhline(limit, color="0.4", linestyle=":", linewidth=1)
    if _spans_decades([*finite_steps, limit]):
        ax.set_yscale("log")
    if len(targets) > 1 and targets[0] > targets[-1]:
        ax.invert_xaxis()  # easiest target on the left, hardest on the right
    metric = study.metric_names[w]
    ax.set_xlabel(f"target {metric} ({study.splits[w]}); harder to the right")
    # What a step counts (`step_label`): epochs for DeepOBS archives.
    ax.set_ylabel(f"{step_unit}s to reach the target")
    ax.set_title(f"{w}")


def targets_figure(
    study: TargetStudy,
    *,
    styles: dict[str, OptimizerStyle] | None = None,
    step_unit: str = "step",
) -> Figure:
    """`targets_axes` for every workload, one panel each, with one legend and title."""
    styles = complete_styles(styles, list(study.optimizers))
    with figure_style():
        fig, axes = grid(len(study.workloads))
        for ax, w in zip(axes, study.workloads, strict=True):
            targets_axes(ax, study, w, styles=styles, step_unit=step_unit)
        handles: list[Any] = [
            Line2D([], [], color=styles[o].colour, marker=styles[o].marker, markersize=4)
            for o in study.optimizers
        ]
        labels = list(study.optimizers)
        handles += [
            Line2D([], [], color="0.4", linestyle=":"),
            Line2D([], [], color="0.2", marker="x", linestyle="none"),
        ]
        labels += ["step budget", "not reached (drawn on the budget line)"]
        legend_below(fig, handles, labels)
        figure_title(
            fig,
            "Steps to target per optimizer (Choi et al. 2019, Figure 10)",
            "fewest steps any tuned trial needs to first reach each target on the "
            "selection split, at the full step budget; optimizers dodged sideways so that "
            "ties stay visible",
        )
    return fig


# --- boundary check (Appendix E) --------------------------------------------------------


def _to_axis(x: FloatArray, scale: str) -> FloatArray:
    """Natural values to the plotted x (1 - x for one_minus_log, plotted on a log axis)."""
    return 1.0 - x if scale == Scale.ONE_MINUS_LOG.value else x


def _from_scaled(t: float, low: float, high: float, scale: str) -> float:
    """The natural value at position t in [0, 1] of the space, measured in its search scale."""
    if scale == Scale.LOG.value:
        return float(10 ** (math.log10(low) + t * (math.log10(high) - math.log10(low))))
    if scale == Scale.ONE_MINUS_LOG.value:
        a, b = math.log10(1 - low), math.log10(1 - high)
        return float(1 - 10 ** (a + t * (b - a)))
    return low + t * (high - low)


#: Panels a row of the boundary figure holds at most (one per hyperparameter).
_BOUNDARY_PANELS = 12
#: Colour of the zone within `fraction` of a search-space edge, and of what is flagged.
_EDGE_ZONE = "#f4b183"
_FLAGGED = "#c0392b"


def _boundary_trials(
    ax: Axes, check: BoundaryCheck, cell: xr.Dataset, x: FloatArray, style: OptimizerStyle
) -> FloatArray:
    """Every trial of one (workload, optimizer) at its value `x` of one hyperparameter:
    the top trials in the optimizer's style, the best a star, unusable ones an x at the top
    of the panel. Returns the plotted metric values of the drawable trials."""
    y = cell["selection_value"].values.astype(np.float64)
    top_rank = cell["top_rank"].values
    unusable = ~cell["usable"].values.astype(bool)
    ok = np.isfinite(x) & np.isfinite(y)
    top = ok & (top_rank >= 1) & (top_rank <= check.top)
    best = ok & (top_rank == 1)
    ax.scatter(x[ok & ~top], y[ok & ~top], s=12, color="0.6", zorder=2)
    ax.scatter(
        x[top & ~best], y[top & ~best], s=24, color=style.colour, marker=style.marker, zorder=3
    )
    ax.scatter(x[best], y[best], s=110, marker="*", color=style.colour, edgecolor="k", zorder=4)
    bad = unusable & np.isfinite(x)
    if bad.any():
        ax.scatter(
            x[bad],
            np.full(int(bad.sum()), 0.96),
            marker="x",
            s=14,
            color=_FLAGGED,
            transform=ax.get_xaxis_transform(),
            zorder=3,
        )
    return y[ok]


def _boundary_space(ax: Axes, check: BoundaryCheck, low: float, high: float, scale: str) -> None:
    """The search space of one hyperparameter: its edges dashed, the zones within
    `check.fraction` of an edge shaded, the x axis in its search scale."""
    edges = [float(_to_axis(np.array([v]), scale)[0]) for v in (low, high)]
    for e in edges:
        ax.axvline(e, color="k", linestyle="--", linewidth=1)
    inner = [
        float(_to_axis(np.array([_from_scaled(t, low, high, scale)]), scale)[0])
        for t in (check.fraction, 1 - check.fraction)
    ]
    ax.axvspan(edges[0], inner[0], color=_EDGE_ZONE, alpha=0.35, linewidth=0)
    ax.axvspan(inner[1], edges[1], color=_EDGE_ZONE, alpha=0.35, linewidth=0)
    if scale in (Scale.LOG.value, Scale.ONE_MINUS_LOG.value):
        ax.set_xscale("log")
    if scale == Scale.ONE_MINUS_LOG.value:
        # Reversed, so the natural value grows to the right like on every other
        # panel: the low edge is always on the left.
        ax.invert_xaxis()


def boundary_axes(
    ax: Axes,
    check: BoundaryCheck,
    workload: str,
    optimizer: str,
    hparam: str,
    *,
    styles: dict[str, OptimizerStyle] | None = None,
    ylabel: bool = True,
) -> None:
    """Final selection metric of every trial of (`workload`, `optimizer`) against the
    searched hyperparameter `hparam` on `ax`: search-space edges dashed, the zone within
    `fraction` of an edge shaded, the top trials coloured, the best one a star, unusable
    trials x at the top; the title in red where the best trials lie at an edge.
    `ylabel`: name the metric on the y axis (the first panel of a row)."""
    d = check.data
    train = check.rule is SelectionRule.FINAL_TRAIN_LOSS
    metric = "train_loss" if train else str(d["metric_name"].sel(workload=workload).item())
    split = "train" if train else str(d["selection_split"].sel(workload=workload).item())
    cell = d.sel(workload=workload, optimizer=optimizer)
    hc = cell.sel(hparam=hparam)
    scale = str(hc["scale"].item())
    low, high = float(hc["space_low"]), float(hc["space_high"])
    x = _to_axis(hc["value"].values.astype(np.float64), scale)
    shown = _boundary_trials(ax, check, cell, x, (styles or styles_of(d))[optimizer])
    _boundary_space(ax, check, low, high, scale)
    ax.margins(y=0.12)  # keeps the best trial's star inside the panel
    if _spans_decades(shown):
        ax.set_yscale("log")
    ax.set_xlabel(
        f"1 - {hparam} (log scale, reversed)"
        if scale == Scale.ONE_MINUS_LOG.value
        else f"{hparam}{' (log scale)' if scale == Scale.LOG.value else ''}"
    )
    if ylabel:
        ax.set_ylabel(f"final {metric} ({split})")
    edge = str(hc["edge"].item())
    if edge != "none":
        where = "both edges" if edge == "both" else f"the {edge} edge"
        ax.set_title(f"{workload} / {optimizer}\nbest trials at {where}", color=_FLAGGED)
    else:
        ax.set_title(f"{workload} / {optimizer}")


def _boundary_rows(check: BoundaryCheck) -> tuple[list[tuple[str, str, list[str]]], int]:
    """The rows of the boundary figure: (workload, optimizer, its searched hyperparameters)
    for every cell that searched any, at most `_BOUNDARY_PANELS` a row (those at an edge
    first); and the most hyperparameters a row leaves out."""
    d = check.data
    rows: list[tuple[str, str, list[str]]] = []
    names = [str(h) for h in d["hparam"].values]
    left_out = 0
    for w in (str(x) for x in d["workload"].values):
        for o in (str(x) for x in d["optimizer"].values):
            cell = d.sel(workload=w, optimizer=o)
            searched = cell["searched"].values.astype(bool)
            hs = [h for h, s in zip(names, searched, strict=True) if s]
            if len(hs) > _BOUNDARY_PANELS:
                # A very wide archive: the hyperparameters at an edge first, then the rest,
                # up to a row that can still be drawn and read.
                at_edge = cell["edge"].values.astype(str) != "none"
                flagged = [h for h, s, e in zip(names, searched, at_edge, strict=True) if s and e]
                rest = [h for h in hs if h not in set(flagged)]
                left_out = max(left_out, len(hs) - _BOUNDARY_PANELS)
                hs = (flagged + rest)[:_BOUNDARY_PANELS]
            if hs:
                rows.append((w, o, hs))
    if not rows:
        raise ConfigError("boundary figure: no searched hyperparameter in the archive")
    return rows, left_out


def _boundary_grid(nrows: int, ncols: int) -> tuple[Figure, list[list[Axes]]]:
    """A fixed grid of small panels instead of constrained layout: with dozens of panels
    the layout solver dominates the run time. A six-hyperparameter, six-optimizer study
    stays about 2200 x 2000 pixels with readable text."""
    width, height = max(2.5 * ncols, 7.0), 2.0 * nrows + 1.6
    fig = Figure(figsize=(width, height))
    # Margins in inches: 0.9 on top for the title, 0.7 below for the legend.
    fig.subplots_adjust(
        left=0.75 / width,
        right=1 - 0.15 / width,
        top=1 - 1.0 / height,
        bottom=1.05 / height,
        hspace=0.95,
        wspace=0.4,
    )
    return fig, [list(row) for row in fig.subplots(nrows, ncols, squeeze=False)]


def _boundary_legend(fig: Figure, check: BoundaryCheck) -> None:
    handles: list[Any] = [
        Line2D([], [], color="0.6", marker="o", linestyle="none", markersize=4),
        Line2D([], [], color="0.2", marker="o", linestyle="none", markersize=5),
        Line2D([], [], color="0.2", marker="*", linestyle="none", markersize=10),
        Line2D([], [], color=_FLAGGED, marker="x", linestyle="none"),
        Line2D([], [], color="k", linestyle="--"),
        Patch(color=_EDGE_ZONE, alpha=0.35),
    ]
    labels = [
        "trial",
        f"top {check.top} trials",
        "best trial",
        "diverged / unusable trial",
        "search-space edge",
        f"within {check.fraction:.0%} of an edge",
    ]
    fig.legend(handles, labels, loc="lower center", ncols=3, frameon=False)


def boundary_figure(
    check: BoundaryCheck, *, styles: dict[str, OptimizerStyle] | None = None
) -> Figure:
    """`boundary_axes` for every searched hyperparameter (columns) of every (workload,
    optimizer) (rows), with one legend and title."""
    styles = styles or styles_of(check.data)
    rows, left_out = _boundary_rows(check)
    ncols = max(len(hs) for _, _, hs in rows)
    with figure_style():
        fig, axes = _boundary_grid(len(rows), ncols)
        for (w, o, hs), row in zip(rows, axes, strict=True):
            for c, ax in enumerate(row):
                if c < len(hs):
                    boundary_axes(ax, check, w, o, hs[c], styles=styles, ylabel=c == 0)
                else:
                    ax.set_visible(False)
        _boundary_legend(fig, check)
        shown = (
            f"; {_BOUNDARY_PANELS} hyperparameters a row (those at an edge first), "
            f"up to {left_out} more not drawn"
            if left_out
            else ""
        )
        figure_title(
            fig,
            "Boundary check: final metric against each searched hyperparameter",
            "x in the search scale (log, or log of 1 - x); Choi et al. 2019, Appendix E" + shown,
            y=1 - 0.12 / fig.get_figheight(),
        )
    return fig


# --- learning curves --------------------------------------------------------------------


def curves_axes(
    ax: Axes,
    archive: xr.Dataset,
    selection: Selection,
    workload: str,
    *,
    styles: dict[str, OptimizerStyle] | None = None,
) -> None:
    """Selection-split metric against step for the selected trial of every optimizer on
    one workload on `ax` (each repeat of the trial drawn; the first one thicker)."""
    sel = selection.data
    _require_mean(sel, "trial", ("workload", "optimizer"))
    names = [str(o) for o in sel["optimizer"].values]
    styles = complete_styles(styles or styles_of(archive), names)
    reps = [d for d in ("seed", "study") if d in archive.dims]
    w = workload
    split = str(archive["selection_split"].sel(workload=w).item())
    metric = str(archive["metric_name"].sel(workload=w).item())
    shown: list[FloatArray] = []
    for o in names:
        pos = int(sel["position"].sel(workload=w, optimizer=o))
        if pos < 0:
            continue
        st = styles[o]
        run = archive.sel(workload=w, optimizer=o).isel(trial=pos)
        n_eval = run.sizes["eval"]
        steps = run["step"].transpose(*reps, "eval").values.reshape(-1, n_eval)
        vals = run[f"{split}_metric"].transpose(*reps, "eval").values.reshape(-1, n_eval)
        for i, (s, v) in enumerate(zip(steps, vals, strict=True)):
            ok = (s >= 0) & np.isfinite(v)
            if not ok.any():
                continue
            order = np.argsort(s[ok], kind="stable")
            ax.plot(
                s[ok][order],
                v[ok][order],
                color=st.colour,
                marker=st.marker if i == 0 else None,
                markevery=max(1, int(ok.sum()) // 6),
                markersize=4,
                linewidth=1.5 if i == 0 else 0.8,
                alpha=1.0 if i == 0 else 0.5,
            )
            shown.append(v[ok])
    direction = str(archive["metric_direction"].sel(workload=w).item())
    if shown and _log_helps(np.concatenate(shown), direction):
        ax.set_yscale("log")
    ax.set_xlabel(step_label(archive))
    # 150000-step axes: "150k" and at most five ticks, so labels never collide.
    ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_ylabel(f"{metric} ({split})")
    ax.set_title(f"{w}")


def curves_figure(
    archive: xr.Dataset,
    selection: Selection,
    *,
    styles: dict[str, OptimizerStyle] | None = None,
) -> Figure:
    """`curves_axes` for every workload, one panel each, with one legend and title."""
    sel = selection.data
    _require_mean(sel, "trial", ("workload", "optimizer"))
    names = [str(o) for o in sel["optimizer"].values]
    styles = complete_styles(styles or styles_of(archive), names)
    workloads = [str(w) for w in sel["workload"].values]
    reps = [d for d in ("seed", "study") if d in archive.dims]
    with figure_style():
        fig, axes = grid(len(workloads))
        for ax, w in zip(axes, workloads, strict=True):
            curves_axes(ax, archive, selection, w, styles=styles)
        handles: list[Any] = [
            Line2D([], [], color=styles[o].colour, marker=styles[o].marker, linewidth=1.5)
            for o in names
        ]
        legend_below(fig, handles, names)
        figure_title(
            fig,
            "Learning curves of the selected trials",
            f"the best trial of each optimizer by {selection.rule}"
            + ("; every repeat drawn, the first one thicker" if reps else ""),
        )
    return fig


# --- protocol comparison ----------------------------------------------------------------


def protocol_axes(
    ax: Axes,
    comparison: ProtocolComparison,
    workload: str,
    *,
    styles: dict[str, OptimizerStyle] | None = None,
) -> None:
    """Expected best-of-k test value of every matched optimizer under the two protocols at
    the tested budget, for one workload on `ax`: one row per optimizer, the first protocol
    an open marker, the second a filled one with the protocol effect's interval drawn
    around it (first + [lo, hi]: an interval that reaches the open marker is not a clear
    effect), an arrow from the first to the second."""
    d = comparison.data
    keys = [str(k) for k in d["optimizer"].values]
    styles = complete_styles(styles, keys)
    cell = d.sel(workload=workload)
    # Each protocol's E_k at the tested budget, with the effect's interval drawn
    # around the second protocol's value (the first is its reference).
    value = cell["expected"].transpose("protocol", "optimizer").values
    effect_lo = cell["effect_lo"].values
    effect_hi = cell["effect_hi"].values
    lo = np.stack([value[0], value[0] + effect_lo])
    hi = np.stack([value[0], value[0] + effect_hi])
    shown = [i for i, _ in enumerate(keys) if np.isfinite(value[:, i]).all()]
    sign = -1.0 if str(cell["direction"].item()) == "max" else 1.0
    # Best (under the second protocol) on top.
    shown.sort(key=lambda i: sign * value[1, i])
    for row, i in enumerate(shown):
        st = styles[keys[i]]
        for side, dy, face in ((0, 0.15, "white"), (1, -0.15, st.colour)):
            y = row + dy
            ax.plot([lo[side, i], hi[side, i]], [y, y], color=st.colour, linewidth=1.4)
            ax.plot(
                value[side, i],
                y,
                marker="o" if side == 0 else "s",
                markersize=6,
                markerfacecolor=face,
                markeredgecolor=st.colour,
                linestyle="none",
            )
        ax.annotate(
            "",
            xy=(value[1, i], row - 0.15),
            xytext=(value[0, i], row + 0.15),
            arrowprops={"arrowstyle": "->", "color": st.colour, "lw": 0.8},
        )
    ax.set_yticks(range(len(shown)), [keys[i] for i in shown])
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)
    metric = str(cell["metric_name"].item())
    ax.set_xlabel(f"expected best-of-k test {metric}")
    ax.set_title(workload)


def protocol_figure(
    comparison: ProtocolComparison, *, styles: dict[str, OptimizerStyle] | None = None
) -> Figure:
    """`protocol_axes` for every workload, one panel each, with one legend and title."""
    d = comparison.data
    first, second = comparison.protocols
    keys = [str(k) for k in d["optimizer"].values]
    styles = complete_styles(styles, keys)
    workloads = [str(w) for w in d["workload"].values]
    level = f"{comparison.level:.0%}"
    with figure_style():
        fig, axes = grid(len(workloads), panel=(4.6, 0.45 * len(keys) + 1.2))
        for ax, w in zip(axes, workloads, strict=True):
            protocol_axes(ax, comparison, w, styles=styles)
        handles: list[Any] = [
            Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linewidth=1.4),
            Line2D([], [], color="0.3", marker="s", linewidth=1.4),
        ]
        legend_below(fig, handles, [f"{first}", f"{second} ({level} interval of the effect)"])
        figure_title(
            fig,
            f"Protocol comparison: {first} against {second}",
            f"expected best-of-k test value of each optimizer (matched by {comparison.match}) "
            f"at budget {comparison.budget_text}, with the {level} bootstrap-t interval of the "
            f"protocol effect; arrows point from {first} to {second}",
        )
    return fig
