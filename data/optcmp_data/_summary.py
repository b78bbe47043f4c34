"""A summary record of an archive (what `optcmp info` shows).

Dependency rule: numpy, xarray, attrs.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_data._schema import Scale, Status, archive_caveats, repeat_dims

__all__ = ["ArchiveSummary", "CellCount", "HparamRange", "summarize"]


@attrs.frozen
class CellCount:
    workload: str
    optimizer: str
    family: str
    completed: int
    diverged: int
    incomplete: int
    missing: int


@attrs.frozen
class HparamRange:
    workload: str
    optimizer: str
    hparam: str
    observed_min: float
    observed_max: float
    space_low: float
    space_high: float
    scale: str


@attrs.frozen
class ArchiveSummary:
    path: str
    sizes: dict[str, int]
    repeat_dims: tuple[str, ...]
    workloads: tuple[dict[str, Any], ...]
    cells: tuple[CellCount, ...]
    hparams: tuple[HparamRange, ...]
    provenance: dict[str, Any]
    caveats: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sizes": self.sizes,
            "repeat_dims": list(self.repeat_dims),
            "workloads": list(self.workloads),
            "cells": [attrs.asdict(c) for c in self.cells],
            "hparams": [_json_floats(attrs.asdict(h)) for h in self.hparams],
            "provenance": self.provenance,
            "caveats": list(self.caveats),
        }


def _json_floats(record: dict[str, Any]) -> dict[str, Any]:
    return {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in record.items()}


def _expected_trials(status: npt.NDArray[np.str_]) -> npt.NDArray[np.bool_] | None:
    """For one workload's statuses (optimizer, trial, [repeats...]): when its trial ids
    are global (each trial id is stored by exactly one optimizer, and at least two
    optimizers store trials: a run id shared across optimizers), the (optimizer, trial)
    mask of the trials each optimizer has; None when ids are numbered per optimizer
    (every trial id is expected of every optimizer)."""
    stored = (status != Status.MISSING.value).reshape(status.shape[0], status.shape[1], -1)
    has = stored.any(axis=2)  # (optimizer, trial)
    if int(has.any(axis=1).sum()) < 2 or bool((has.sum(axis=0) > 1).any()):
        return None
    return np.asarray(has, dtype=np.bool_)


def summarize(ds: xr.Dataset, *, path: str = "") -> ArchiveSummary:
    """Counts of statuses per cell, hyperparameter ranges, per-workload facts, provenance."""
    status = ds["status"].values.astype(str)
    cells = []
    shared = set()
    for w_i, w in enumerate(ds["workload"].values):
        expected = _expected_trials(status[w_i])
        if expected is not None:
            shared.add(str(w))
        for o_i, o in enumerate(ds["optimizer"].values):
            # Counts are over runs: with repeat axes, every repeat of a trial counts;
            # with global trial ids, only the trials of this optimizer (`missing`).
            block = status[w_i, o_i]
            if expected is not None:
                block = block[expected[o_i]]
            counts = {s: int((block == s.value).sum()) for s in Status}
            cells.append(
                CellCount(
                    workload=str(w),
                    optimizer=str(o),
                    family=str(ds["optimizer_family"].values[o_i]),
                    completed=counts[Status.COMPLETED],
                    diverged=counts[Status.DIVERGED],
                    incomplete=counts[Status.INCOMPLETE],
                    missing=counts[Status.MISSING],
                )
            )
    ranges = _hparam_ranges(ds)
    workloads = tuple(
        {
            "workload": str(w),
            "metric": str(ds["metric_name"].values[i]),
            "direction": str(ds["metric_direction"].values[i]),
            "valid_target": _finite_or_none(ds["valid_target"].values[i]),
            "test_target": _finite_or_none(ds["test_target"].values[i]),
            "step_budget": int(ds["step_budget"].values[i]),
            "selection_split": str(ds["selection_split"].values[i]),
            "trial_ids": "global" if str(w) in shared else "per optimizer",
        }
        for i, w in enumerate(ds["workload"].values)
    )
    provenance = {
        k: (v.item() if isinstance(v, np.generic) else v)
        for k, v in ds.attrs.items()
        if k != "caveats"
    }
    caveats = tuple(archive_caveats(ds))
    return ArchiveSummary(
        path=path,
        sizes={str(k): int(v) for k, v in ds.sizes.items()},
        repeat_dims=repeat_dims(ds),
        workloads=workloads,
        cells=tuple(cells),
        hparams=tuple(ranges),
        provenance=provenance,
        caveats=caveats,
    )


def _hparam_ranges(ds: xr.Dataset) -> list[HparamRange]:
    """Observed range and search space of every (workload, optimizer, hyperparameter)
    that has a value or a space; computed on whole arrays, so that an archive with
    100,000 hyperparameters is summarised in a second, not minutes."""
    woh = ("workload", "optimizer", "hparam")
    hp = ds["hparams"].transpose("workload", "optimizer", "hparam", "trial").values
    finite = np.isfinite(hp)
    lo = np.where(finite, hp, np.inf).min(axis=-1, initial=np.inf)
    hi = np.where(finite, hp, -np.inf).max(axis=-1, initial=-np.inf)
    seen = finite.any(axis=-1)
    lo, hi = np.where(seen, lo, np.nan), np.where(seen, hi, np.nan)
    scale = ds["space_scale"].transpose(*woh).values.astype(str)
    low = ds["space_low"].transpose(*woh).values.astype(np.float64)
    high = ds["space_high"].transpose(*woh).values.astype(np.float64)
    workloads = [str(w) for w in ds["workload"].values]
    optimizers = [str(o) for o in ds["optimizer"].values]
    hparams = [str(h) for h in ds["hparam"].values]
    keep = seen | (scale != Scale.NONE.value)
    w_i, o_i, h_i = np.nonzero(keep)
    # Plain Python values, taken once per array: indexing numpy scalars one by one would
    # cost more than the records themselves.
    return [
        HparamRange(
            workload=workloads[w],
            optimizer=optimizers[o],
            hparam=hparams[h],
            observed_min=omin,
            observed_max=omax,
            space_low=slo,
            space_high=shi,
            scale=sc,
        )
        for w, o, h, omin, omax, slo, shi, sc in zip(
            w_i.tolist(),
            o_i.tolist(),
            h_i.tolist(),
            lo[keep].tolist(),
            hi[keep].tolist(),
            low[keep].tolist(),
            high[keep].tolist(),
            scale[keep].tolist(),
            strict=True,
        )
    ]


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
