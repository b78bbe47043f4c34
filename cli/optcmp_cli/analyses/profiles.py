"""profiles: time-to-target performance profiles across workloads.

Dependency rule: numpy, optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optcmp_cli._analyze import (
    _caveats,
)
from optcmp_cli._common import console
from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import number, table
from optcmp_cli.render.numbers import counted, num
from optcmp_cli.render.tables import LABEL, VALUE, fit_table, print_fitted

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import PerformanceProfiles
    from optcmp_cli._analyses import Common
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["FIGURE_HELP", "HELP", "figure", "options", "print_table", "section"]


def options(c: Common) -> Any:
    """The options of `plot` and `report`: the defaults."""
    from optcmp_analysis import analysis_named

    return analysis_named("profiles").options()


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = "time-to-target performance profiles"


def figure(result: PerformanceProfiles, ds: xr.Dataset) -> Figure:
    """Time-to-target performance profiles (AlgoPerf's own where the archive is one)."""
    from optcmp_cli._plots_across import profiles_figure
    from optcmp_cli.render.palette import styles_of

    return profiles_figure(
        result, algoperf=bool(ds.attrs.get("base_workloads")), styles=styles_of(ds)
    )


def _left_out(records: list[dict[str, Any]]) -> str | None:
    """Why the section has nothing to show (None: it has something)."""
    if not any(r["record"] == "time" and r["value"] is not None for r in records):
        targets = sorted(
            {
                f"{md(r['workload'])} {number(r['target'], 4)}"
                for r in records
                if r["record"] == "time"
            }
        )
        return (
            "no optimizer reached the target of any workload within its step budget "
            f"(targets: {', '.join(targets)}), so there is no time to compare"
        )
    return None


def section(b: Builder, result: PerformanceProfiles, g: Group) -> None:
    """The figure, the profile areas and the result's caveats; when no optimizer reached
    any target, one line saying so (no empty table or figure)."""
    import numpy as np

    records = result.to_json()
    reason = _left_out(records)
    if reason is not None:
        b.lines += [f"Left out: {reason}.", ""]
        b.add_records("profiles", records, g.label)
        return
    b.draw("profiles", result, g, "time-to-target performance profiles")
    b.lines += [
        f"Time to each workload's target ({result.measure}) of every optimizer's fastest "
        f"trial (of {result.budget_phrase} per study), as a ratio to the fastest optimizer's; "
        "the profile is the share of "
        f"the {counted(len(result.workloads), 'workload')} within a ratio tau, and the area "
        "under it "
        f"over [1, {result.max_tau:g}] scaled to [0, 1] (AlgoPerf's score form).",
        "",
    ]
    if b.results.get("score") is not None:
        b.lines += [
            f"This profile area is not the AlgoPerf score: it covers all "
            f"{len(result.workloads)} workloads of this report with a target (base and "
            "held-out variants alike), without the held-out rules or the 4x cut, and a "
            "study's time is its fastest trial's rather than that of the trial first "
            "reaching the target by evaluation index. The score is in AlgoPerf score.",
            "",
        ]
    areas = sorted(
        (r for r in records if r["record"] == "area"), key=lambda r: -(r["value"] or 0.0)
    )
    rows = []
    tau = result.data["tau"].values
    for r in areas:
        rho = result.data["rho"].sel(optimizer=r["optimizer"]).values
        at = [number(float(rho[np.searchsorted(tau, t - 1e-9)]), 3) for t in (1.0, 2.0)]
        rows.append([md(r["optimizer"]), number(r["value"], 3), *at])
    b.lines += table(["optimizer", "profile area", "within 1x", "within 2x"], rows)
    b.add_records("profiles", records, g.label)
    for c in result.caveats:
        b.caveat(md(c))


#: The help of `optcmp analyze profiles`.
HELP = """Time-to-target performance profiles (AlgoPerf style): per workload each optimizer's
time (or steps) to reach the workload's target, its ratio to the fastest optimizer's,
and for every ratio tau the share of workloads where the optimizer is within tau of the
fastest; the area under that profile is a score in [0, 1].

JSON records ("record" key): "area" — optimizer, value (area score), n_workloads,
budget, measure; "profile" — optimizer, tau, value (share of workloads within tau of the
fastest), measure; "time" — workload, optimizer, metric, split, target, value (time or
steps to target; null: never reached), ratio, measure.

Example: optcmp analyze profiles runs/algoperf.nc --measure time --json
"""


def print_table(result: PerformanceProfiles, options: Any, ds: xr.Dataset) -> None:
    """What `optcmp analyze profiles` prints (without --json)."""
    import numpy as np

    records = result.to_json()
    tau = result.data["tau"].values
    marks = [t for t in (1.0, 1.5, 2.0, 3.0, options.max_tau) if t <= options.max_tau]
    title = (
        f"Time-to-target profiles over {counted(len(result.workloads), 'workload')} "
        f"({result.measure}; share of workloads within tau of the fastest)"
    )
    heads = [f"tau={t:g}" for t in dict.fromkeys(marks)]
    area_rows = sorted(
        (r for r in records if r["record"] == "area"), key=lambda r: -(r["value"] or 0.0)
    )
    rows = []
    for r in area_rows:
        rho = result.data["rho"].sel(optimizer=r["optimizer"]).values
        shown = [num(float(rho[np.searchsorted(tau, t - 1e-9)]), 3) for t in dict.fromkeys(marks)]
        rows.append([r["optimizer"], num(r["value"], 3), *shown])
    columns = [("optimizer", LABEL), ("area", VALUE), *((h, VALUE) for h in heads)]
    print_fitted(*fit_table(title, columns, rows, heads[::-1], right=("area", *heads)))
    if ds.attrs.get("base_workloads"):
        console.print(
            f"note: the area is not the AlgoPerf score: it covers all "
            f"{len(result.workloads)} workloads with a target (base and held-out alike), "
            "without the held-out rules or the 4x cut, and a study's time is its fastest "
            f"trial's of {result.budget_phrase}; `optcmp score` gives the benchmark's score.",
            markup=False,
        )
    _caveats(result.caveats)
