"""boundary: do the best trials sit at an edge of the search space?

Dependency rule: optcmp_analysis, the report's builder and the boundary figure.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from optcmp_cli.render.escape import md

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import BoundaryCheck, SelectionRule
    from optcmp_cli.render.palette import OptimizerStyle
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


def section(b: Builder, check: BoundaryCheck, g: Group) -> None:
    """The best trials near an edge (a key caveat when there are any), then one figure per
    workload whose archive records a searched hyperparameter."""
    warnings = _findings(b, check, g.label)
    if warnings:
        b.caveat(
            f"{len(warnings)} hyperparameter(s) have best trials at a search-space edge"
            + g.under()
            + ": those optimizers may be under-tuned (see Boundary check)",
            key=True,
        )
    ds = g.ds
    searched = check.data["searched"]
    with_space = [str(w) for w in ds["workload"].values if bool(searched.sel(workload=w).any())]
    if len(with_space) < ds.sizes["workload"]:
        b.lines += [
            "No boundary figure for workloads whose archive records no searched "
            "hyperparameter: "
            + (", ".join(md(w) for w in ds["workload"].values if str(w) not in with_space))
            + ".",
            "",
        ]
    for w in with_space:
        one = b.attempt(
            f"boundary-figure{g.suffix}-{w}", functools.partial(_one, ds, w, b.rule, g.styles)
        )
        if one is not None:
            b.figure(one, f"boundary{g.suffix}-{w}", f"boundary check on {w}")


def _one(
    ds: xr.Dataset, workload: str, rule: SelectionRule, styles: dict[str, OptimizerStyle]
) -> Figure:
    """The boundary figure of one workload. The whole archive's styles, so that every
    workload's figure draws an optimizer alike."""
    from optcmp_analysis import boundary_check
    from optcmp_cli._plots import boundary_figure

    return boundary_figure(boundary_check(ds, rule=rule, workloads=[workload]), styles=styles)


def _findings(b: Builder, check: BoundaryCheck, group: str | None) -> list[str]:
    """The best trials near an edge in words, and the records; the warnings."""
    warnings = check.warnings()
    if warnings:
        b.lines += [
            "Whether the search spaces were wide enough: best trials near an edge of the "
            f"search space (top {check.top} trials, within "
            f"{check.fraction:.0%} of the range in the search scale):",
            "",
            *[f"- {md(text)}" for text in warnings],
            "",
        ]
    elif not bool(check.data["searched"].any()):
        b.lines += [
            "Whether the search spaces were wide enough: nothing checked: no searched "
            "hyperparameter recorded (the archive stores no search space with a range).",
            "",
        ]
    else:
        n = int(check.data["searched"].sum())
        b.lines += [
            f"Whether the search spaces were wide enough: of the {n} searched "
            f"(workload, optimizer, hyperparameter) ranges checked, none has one of its top "
            f"{check.top} trials within {check.fraction:.0%} of a search-space edge.",
            "",
        ]
    b.add_records("boundary", check.to_json(), group)
    return warnings
