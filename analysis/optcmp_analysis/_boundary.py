"""Boundary check: do the best trials of a search sit at an edge of its search space?

Dependency rule: numpy, xarray, attrs and optcmp_data (through this package's selection).

A good search space has its best trials away from its edges (method.md section 3); a best
trial at an edge says the optimum may lie outside the space, so the optimizer was not
fully tuned. Distances are measured in each hyperparameter's own search scale: log10(x)
for "log", log10(1 - x) for "one_minus_log", x for "linear"; as a fraction of the space's
width there, so 0 is the low edge and 1 the high edge (of the natural value, for every
scale). The record's dataset also holds the data of the paper's Appendix E projection
plots: every trial's selection value against each hyperparameter, with the edges.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._enums import Edge
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import sort_trials
from optcmp_analysis._records import (
    Cell,
    Computed,
    Field,
    Labels,
    Records,
    Result,
    Spread,
    Var,
    attr,
    restrict,
)
from optcmp_analysis._selection import RepeatMode, SelectionRule, usable_scores
from optcmp_data import Scale

__all__ = ["BoundaryCheck", "Edge", "boundary_check", "scaled_position"]

FloatArray = npt.NDArray[np.float64]

_SEARCHED = (Scale.LINEAR.value, Scale.LOG.value, Scale.ONE_MINUS_LOG.value)


def _transform(x: FloatArray, scale: npt.NDArray[np.str_]) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log10(np.where(x > 0, x, np.nan))
        one_minus = np.log10(np.where(x < 1, 1.0 - x, np.nan))
    return np.where(
        scale == Scale.LOG.value,
        log,
        np.where(
            scale == Scale.ONE_MINUS_LOG.value,
            one_minus,
            np.where(scale == Scale.LINEAR.value, x, np.nan),
        ),
    )


def scaled_position(
    value: npt.ArrayLike, low: npt.ArrayLike, high: npt.ArrayLike, scale: npt.ArrayLike
) -> FloatArray:
    """Position of `value` in [low, high] measured in the search scale: 0 at `low`, 1 at
    `high` (values outside the space fall outside [0, 1]); NaN for fixed or absent
    hyperparameters, NaN values, and values the scale cannot represent (x <= 0 on "log",
    x >= 1 on "one_minus_log"). All arguments broadcast.
    """
    x, lo, hi = (np.asarray(a, dtype=np.float64) for a in (value, low, high))
    sc = np.asarray(scale).astype(str)
    t_x, t_lo, t_hi = _transform(x, sc), _transform(lo, sc), _transform(hi, sc)
    width = t_hi - t_lo
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (t_x - t_lo) / width
    return np.where(np.isfinite(width) & (width != 0), pos, np.nan)


@attrs.frozen
class BoundaryCheck(Result):
    """Edges of the top trials per (workload, optimizer, hparam), and projection data.

    `data` dims: (workload, optimizer, hparam) for `scale`, `space_low`, `space_high`,
    `searched`, `n_top` (top trials with a value), `n_near_low`, `n_near_high`,
    `best_value`, `best_position`, `edge`; (workload, optimizer, trial) for `top_rank`
    (1 = best, 0 = not usable), `selection_value`, `test_value`, `usable`, `present`; (workload,
    optimizer, trial, hparam) for `value` and `position` (the projection plot's x). Per
    workload: `metric_name`, `selection_split`.
    """

    data: xr.Dataset
    rule: SelectionRule = attrs.field(metadata=attr())
    top: int = attrs.field(metadata=attr())
    fraction: float = attrs.field(metadata=attr())

    def warnings(self) -> list[str]:
        """One plain-words sentence per (workload, optimizer, hparam) with a top trial at an
        edge."""
        d = self.data
        # Label lookups per cell cost ~0.3 ms each; visit only the cells with an edge.
        edge = d["edge"].transpose("workload", "optimizer", "hparam").values.astype(str)
        out: list[str] = []
        for wi, w in enumerate(d["workload"].values):
            for oi, o in enumerate(d["optimizer"].values):
                for hi, h in enumerate(d["hparam"].values):
                    if edge[wi, oi, hi] == Edge.NONE:
                        continue
                    cell = d.sel(workload=w, optimizer=o, hparam=h)
                    text = _warning(
                        str(w), str(o), str(h), cell, top=self.top, fraction=self.fraction
                    )
                    if text:
                        out.append(text)
        return out

    def points(self) -> list[dict[str, Any]]:
        """The projection plots' points ("record": "point"), one per present trial and
        searched hyperparameter: workload, optimizer, trial, hparam, hparam_value, position
        (0 = low edge, 1 = high edge), top_rank (1 = best; 0 = not usable), metric, split,
        value (the selection value), test_value."""
        return self.json_records(_POINTS)

    def _metric_split(self, cell: Cell) -> dict[str, str]:
        """The metric and split the selection values are in."""
        if self.rule is SelectionRule.FINAL_TRAIN_LOSS:
            return {"metric": "train_loss", "split": "train"}
        return {"metric": str(cell["metric_name"]), "split": str(cell["selection_split"])}

    def _best(self, cell: Cell) -> int | None:
        """Position along `trial` of the cell's best trial (top_rank 1), None if none."""
        best = np.flatnonzero(cell["top_rank"] == 1)
        return int(best[0]) if best.size else None

    def _best_trial(self, cell: Cell) -> int | None:
        best = self._best(cell)
        return None if best is None else int(self.data["trial"].values[best])

    def _best_selection(self, cell: Cell) -> float | None:
        best = self._best(cell)
        return None if best is None else float(cell["selection_value"][best])

    def _warning_of(self, cell: Cell) -> str | None:
        if str(cell["edge"]) == Edge.NONE:
            return None
        w, o, h = (str(cell.labels[d]) for d in ("workload", "optimizer", "hparam"))
        at = self.data.sel(workload=w, optimizer=o, hparam=h)
        return _warning(w, o, h, at, top=self.top, fraction=self.fraction) or None

    # One record ("record": "edge") per searched (workload, optimizer, hparam): workload,
    # optimizer, hparam, scale, low, high, top, n_top, n_near_low, n_near_high, edge, trial
    # (the best trial), best_value (its hyperparameter value), best_position (0 = low
    # edge, 1 = high edge, in the search scale), metric, split, value (its selection
    # value), warning.
    JSON = (
        Records(
            record="edge",
            dims=("workload", "optimizer", "hparam"),
            where=("searched",),
            keys=(
                Labels(),
                Var("scale", cast=str),
                Var("low", "space_low", cast=float),
                Var("high", "space_high", cast=float),
                Field("top"),
                Var("n_top", cast=int),
                Var("n_near_low", cast=int),
                Var("n_near_high", cast=int),
                Var("edge", cast=str),
                Computed("trial", "_best_trial"),
                Var("best_value", cast=float),
                Var("best_position", cast=float),
                Spread(("metric", "split"), "_metric_split"),
                Computed("value", "_best_selection"),
                Computed("warning", "_warning_of"),
            ),
        ),
    )


# The projection plots' points (`BoundaryCheck.points`).
_POINTS = Records(
    record="point",
    dims=("workload", "optimizer", "trial", "hparam"),
    where=("present", "searched"),
    keys=(
        Labels(),
        Var("hparam_value", "value", cast=float),
        Var("position", cast=float),
        Var("top_rank", cast=int),
        Spread(("metric", "split"), "_metric_split"),
        Var("value", "selection_value", cast=float),
        Var("test_value", cast=float),
    ),
)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _warning(w: str, o: str, h: str, cell: xr.Dataset, *, top: int, fraction: float) -> str:
    edge = str(cell["edge"].item())
    if edge == Edge.NONE:
        return ""
    n_top = int(cell["n_top"])
    parts = []
    if edge in (Edge.LOW, Edge.BOTH):
        parts.append(f"{int(cell['n_near_low'])} at the low edge {_fmt(float(cell['space_low']))}")
    if edge in (Edge.HIGH, Edge.BOTH):
        parts.append(
            f"{int(cell['n_near_high'])} at the high edge {_fmt(float(cell['space_high']))}"
        )
    return (
        f"{o} on {w}: of its best {n_top} trial{'s' if n_top != 1 else ''}, "
        f"{' and '.join(parts)} of {h} (within {fraction:.0%} of the range, "
        f"{cell['scale'].item()} scale); the best {h} may lie outside the search space, "
        "so widen it there and re-run"
    )


def boundary_check(
    archive: xr.Dataset,
    /,
    *,
    top: int = 3,
    fraction: float = 0.05,
    rule: SelectionRule | str = SelectionRule.FINAL_VALID,
    workloads: list[str] | tuple[str, ...] | None = None,
    optimizers: list[str] | tuple[str, ...] | None = None,
) -> BoundaryCheck:
    """For every searched hyperparameter of every (workload, optimizer): how many of the
    `top` best trials under `rule` lie within `fraction` of the space's width (in the search
    scale) of its low or high edge, or beyond it. `edge` is "low", "high", "both" or
    "none". Repeats are averaged (a trial's score is the mean over its runs).
    """
    if top < 1:
        raise AnalysisError(f"top: {top} must be at least 1")
    if not 0.0 < fraction < 0.5:
        raise AnalysisError(f"fraction: {fraction} must lie in (0, 0.5)")
    ds = restrict(archive, workloads=workloads, optimizers=optimizers)
    scores = usable_scores(ds, rule=rule, repeats=RepeatMode.MEAN)
    s = scores.data.transpose("workload", "optimizer", "trial", ...)
    order, _, _ = sort_trials(s["score"].values, s["usable"].values, s["present"].values)
    # top_rank: 1 for the best usable trial, 2 for the next, ...; 0 for unusable trials.
    rank_of = np.empty_like(order)
    np.put_along_axis(rank_of, order, np.arange(order.shape[-1])[None, None, :] + 1, axis=-1)
    top_rank = np.where(s["usable"].values, rank_of, 0)

    hp = ds["hparams"].transpose("workload", "optimizer", "trial", "hparam").values
    low = ds["space_low"].transpose("workload", "optimizer", "hparam").values
    high = ds["space_high"].transpose("workload", "optimizer", "hparam").values
    scale = ds["space_scale"].transpose("workload", "optimizer", "hparam").values.astype(str)
    searched = np.isin(scale, _SEARCHED)
    position = scaled_position(hp, low[:, :, None], high[:, :, None], scale[:, :, None])
    is_top = ((top_rank >= 1) & (top_rank <= top))[..., None] & np.isfinite(position)
    near_low = is_top & (position <= fraction) & searched[:, :, None]
    near_high = is_top & (position >= 1.0 - fraction) & searched[:, :, None]
    n_low = near_low.sum(axis=2)
    n_high = near_high.sum(axis=2)
    edge = np.where(
        (n_low > 0) & (n_high > 0),
        Edge.BOTH.value,
        np.where(n_low > 0, Edge.LOW.value, np.where(n_high > 0, Edge.HIGH.value, Edge.NONE.value)),
    )
    best = (top_rank == 1)[..., None]
    has_best = best.any(axis=2)
    best_value = np.where(has_best, np.where(best, hp, 0.0).sum(axis=2), np.nan)
    best_position = np.where(has_best, np.where(best, position, 0.0).sum(axis=2), np.nan)

    woh = ("workload", "optimizer", "hparam")
    wot = ("workload", "optimizer", "trial")
    coords = {
        "workload": ds["workload"].values,
        "optimizer": ds["optimizer"].values,
        "trial": ds["trial"].values,
        "hparam": ds["hparam"].values,
    }
    data = xr.Dataset(
        {
            "scale": (woh, scale),
            "space_low": (woh, low),
            "space_high": (woh, high),
            "searched": (woh, searched),
            "n_top": (woh, is_top.sum(axis=2)),
            "n_near_low": (woh, n_low),
            "n_near_high": (woh, n_high),
            "edge": (woh, edge.astype(str)),
            "best_value": (woh, np.where(searched, best_value, np.nan)),
            "best_position": (woh, np.where(searched, best_position, np.nan)),
            "top_rank": (wot, top_rank.astype(np.int64)),
            "selection_value": (wot, s["selection_value"].values),
            "test_value": (wot, s["test_value"].values),
            "usable": (wot, s["usable"].values),
            "present": (wot, s["present"].values),
            "value": ((*wot, "hparam"), hp),
            "position": ((*wot, "hparam"), position),
            "metric_name": ("workload", ds["metric_name"].values.astype(str)),
            "selection_split": ("workload", ds["selection_split"].values.astype(str)),
        },
        coords=coords,
    )
    return BoundaryCheck(data=data, rule=scores.rule, top=top, fraction=fraction)
