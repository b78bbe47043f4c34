"""profiles: time-to-target performance profiles across workloads.

Dependency rule: numpy, optcmp_analysis records and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import number, table

if TYPE_CHECKING:
    from optcmp_analysis import PerformanceProfiles
    from optcmp_cli.report.builder import Builder, Group

__all__ = ["section"]


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
        f"the {len(result.workloads)} workloads within a ratio tau, and the area under it "
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
