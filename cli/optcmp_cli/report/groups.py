"""The tuning protocols of an archive, and the workloads an analysis leaves out.

Dependency rule: numpy, xarray, optcmp_data and optcmp_analysis.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from optcmp_analysis import default_budget, restrict, trial_scores
from optcmp_cli._analyses import Inference
from optcmp_cli.render.escape import md
from optcmp_cli.report.builder import Builder
from optcmp_data import Scale

__all__ = ["budget_of_tests", "protocol_groups", "without_empty_workloads"]

_SEARCHED = (Scale.LINEAR.value, Scale.LOG.value, Scale.ONE_MINUS_LOG.value)


def protocol_groups(ds: xr.Dataset) -> list[tuple[str | None, list[str]]]:
    """Optimizers grouped into tuning protocols, restricted protocols (fewer searched
    hyperparameters) first; one unnamed group when the archive holds one protocol.

    A protocol is a set of search spaces under which each optimizer family is tuned once.
    Optimizers are grouped by search-space name, and groups without a family in common
    are merged (largest first): a study where Adam alone has its own space is one
    protocol, while one that tunes every family twice, under `lr-only` and under
    `choi2019`, is two. A merged group takes the name of its largest space.
    """
    optimizers = [str(o) for o in ds["optimizer"].values]
    families = [str(f) or o for f, o in zip(ds["optimizer_family"].values, optimizers, strict=True)]
    names = ds["space_name"].transpose("workload", "optimizer").values.astype(str)
    by_space: dict[str, list[int]] = {}
    for i in range(len(optimizers)):
        spaces = set(names[:, i])
        if len(spaces) != 1:
            return [(None, optimizers)]  # spaces differ per workload: no protocol split
        by_space.setdefault(spaces.pop(), []).append(i)
    if len(by_space) < 2:
        return [(None, optimizers)]
    merged: list[tuple[str, list[int]]] = []
    for space, members in sorted(by_space.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        fams = {families[i] for i in members}
        for j, (label, group) in enumerate(merged):
            if fams.isdisjoint(families[i] for i in group):
                merged[j] = (label, group + members)
                break
        else:
            merged.append((space, list(members)))
    if len(merged) < 2:
        return [(None, optimizers)]
    scale = ds["space_scale"].transpose("workload", "optimizer", "hparam").values.astype(str)
    searched = np.isin(scale, _SEARCHED).sum(axis=(0, 2))

    def width(group: list[int]) -> float:
        return float(np.mean(searched[group]))

    merged.sort(key=lambda g: (width(g[1]), g[0]))
    return [(label, [optimizers[i] for i in sorted(group)]) for label, group in merged]


def without_empty_workloads(b: Builder, ds: xr.Dataset, group: str | None) -> xr.Dataset:
    """`ds` without the workloads where no trial is usable (one caveat names them), so
    that an empty workload never disables an analysis for the others."""
    usable = trial_scores(ds, rule=b.rule).data["usable"]
    per_workload = usable.any([d for d in usable.dims if d != "workload"])
    empty = [str(w) for w, ok in zip(ds["workload"].values, per_workload.values, strict=True)]
    empty = [w for w, ok in zip(empty, per_workload.values, strict=True) if not ok]
    if not empty or len(empty) == ds.sizes["workload"]:
        return ds
    b.caveat(
        f"workload(s) {', '.join(md(w) for w in empty)} have no usable trial"
        + (f" under protocol {md(group)}" if group else "")
        + " (every trial diverged, is incomplete or missing) and are left out of the analyses",
        key=True,
    )
    keep = [str(w) for w in ds["workload"].values if str(w) not in empty]
    return restrict(ds, workloads=keep)


def budget_of_tests(ds: xr.Dataset, inference: Inference | None) -> int | None:
    """The budget k of the inclusion and protocol tests: the one asked for, else the
    default rule on the smallest present-trial count of a (workload, optimizer) cell."""
    if inference is not None and inference.budget is not None:
        return inference.budget
    present = (ds["status"] != "missing").sum("trial")
    counts = present.values[present.values > 0]
    if counts.size == 0:
        return None
    smallest = int(counts.min())
    return default_budget(smallest, smallest)
