"""The report's "how many trials would decide it" line: `plan_trials` at the pilot's own
differences for the comparisons a report left undecided.

Dependency rule: optcmp_analysis and optcmp_data (no torch, no printing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from optcmp_analysis import DEFAULT_POWER, SelectionRule, plan_trials
from optcmp_data import OptcmpError, Taxonomy

__all__ = ["REPORT_N_SIM", "undecided_line", "undecided_plans"]

#: Drawn studies per tested trial count in a report (the planner's own default is larger;
#: a report states the rougher power this gives).
REPORT_N_SIM = 40


def _undecided(
    inclusion: Sequence[dict[str, Any]],
    protocol: Sequence[dict[str, Any]],
    rule: SelectionRule,
) -> tuple[list[tuple[str, str, str, str, str]], int | None]:
    """(kind, protocol, workload, a, b) of the inconclusive inclusion tests of `rule`, the
    protocol effects that are not clear and the pairs of optimizers that are not clearly
    ordered, and the budget k of those tests (None: none found)."""
    wanted: list[tuple[str, str, str, str, str]] = []
    budget: int | None = None
    for r in inclusion:
        if r.get("rule", str(rule)) != str(rule) or r.get("verdict") != "inconclusive":
            continue
        if "protocol" in r:  # a grouped archive's protocols are not planned here
            continue
        wanted.append(("inclusion", "", str(r["workload"]), str(r["special"]), str(r["general"])))
        budget = budget or int(r["k"])
    for r in protocol:
        if r.get("record") == "cell" and not r.get("clear"):
            name = str(r["optimizer"])
            wanted.append(("protocol", "", str(r["workload"]), name, name))
        elif r.get("record") == "pair" and not r.get("clear"):
            a, b = sorted((str(r["optimizer"]), str(r["other"])))
            wanted.append(("pair", str(r["protocol"]), str(r["workload"]), a, b))
        else:
            continue
        if isinstance(r.get("k"), int):
            budget = budget or int(r["k"])
    return wanted, budget


def undecided_plans(
    archive: xr.Dataset,
    compare: xr.Dataset | None,
    *,
    protocols: tuple[str, str] = ("first", "second"),
    inclusion: Sequence[dict[str, Any]],
    protocol: Sequence[dict[str, Any]],
    rule: SelectionRule,
    taxonomy: Taxonomy | None,
    seed: int,
) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Plan records (`TrialPlan.to_json`, record "plan") of the undecided comparisons at
    the pilot's own differences, their budget k, and the reason when no plan was made."""
    wanted, budget = _undecided(inclusion, protocol, rule)
    if not wanted or budget is None:
        return [], None, None
    # The margins the report's own tests used, per workload.
    margins = {
        str(r["workload"]): float(r["margin"])
        for r in inclusion
        if isinstance(r.get("margin"), float) and "protocol" not in r
    }
    if budget < 2:
        return [], budget, f"the budget k = {budget} is too small to plan for"
    try:
        plan = plan_trials(
            archive,
            compare=compare,
            protocols=protocols,
            budget=budget,
            power=DEFAULT_POWER,
            pilot_effect=True,
            margin=margins or None,
            rule=rule,
            taxonomy=taxonomy,
            n_sim=REPORT_N_SIM,
            only=wanted,
            rng=np.random.default_rng(seed),
        )
    except OptcmpError as err:
        return [], budget, " ".join(str(err).split())
    records = [r for r in plan.to_json() if r["record"] == "plan"]
    return records, budget, None


def undecided_line(
    records: Sequence[dict[str, Any]],
    budget: int,
    max_trials: int,
    escape: Callable[[str], str],
) -> str:
    """The findings line: trials per optimizer that would decide each undecided comparison
    (names passed through `escape`)."""
    # Grouped by the count, fewest first: "96: a ⊆ b on w; more than 512: ...".
    groups: dict[int, list[str]] = {}
    for r in records:
        needed = r.get("needed")
        a, b, w = (escape(str(r[key])) for key in ("a", "b", "workload"))
        what = {
            "inclusion": f"{a} ⊆ {b}",
            "protocol": f"protocol effect of {a}",
            "pair": f"{a} vs {b} under {escape(str(r.get('protocol', '')))}",
        }[str(r["kind"])]
        groups.setdefault(needed if isinstance(needed, int) else max_trials + 1, []).append(
            f"{what} on {w}"
        )
    parts = [
        f"{n if n <= max_trials else f'more than {max_trials}'}: {', '.join(items)}"
        for n, items in sorted(groups.items())
    ]
    return (
        f"trials per optimizer at which {DEFAULT_POWER:.0%} of studies would decide each of "
        f"these at budget k = {budget}, if the optimizers differ as this study shows "
        f"(`optcmp plan --pilot-effect`, {REPORT_N_SIM} drawn studies per count): "
        + "; ".join(parts)
    )
