"""Non-inferiority margins per workload, in each workload's own metric units.

Dependency rule: numpy, xarray and this package's errors only.

Default rule (`MARGIN_RULE`): half the interquartile range of the best quarter of the
workload's usable test values (every optimizer and trial of the compared archive, in the
metric's better-first orientation). The best quarter is what a best-of-k study at the
default budget k = N/4 chooses among, so its spread is the resolution of tuning on that
workload: one rule serves error rates, SSIM, BLEU and losses of 25-87 alike, it is the same
whether a metric is reported as accuracy or as error, and trials from the useless corners
of a wide search space (which make the spread of all trials large) do not widen it. Where
that spread is 0 the margin is 1% of the best quarter's median magnitude. A margin given
for all workloads (`--margin`) or per workload (a TOML table, `--margins FILE`) replaces
the rule where given; every record names its margin and where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from optcmp_analysis._enums import MARGIN_RULE
from optcmp_analysis._errors import AnalysisError

__all__ = ["MARGIN_RULE", "resolve_margins", "rule_margin"]

_SHARE = 0.5


def rule_margin(values: np.ndarray) -> float:
    """`MARGIN_RULE` on one workload's values, oriented so that smaller is better (NaN where
    none is finite)."""
    ok = np.sort(values[np.isfinite(values)])
    if ok.size == 0:
        return float("nan")
    best = ok[: max(2, ok.size // 4)]
    q1, q2, q3 = np.percentile(best, [25, 50, 75])
    spread = float(q3 - q1)
    return _SHARE * spread if spread > 0 else 0.01 * abs(float(q2))


def resolve_margins(
    test_value: xr.DataArray,
    usable: xr.DataArray,
    margin: float | Mapping[str, float] | None,
    *,
    sign: xr.DataArray | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """(margin, its source) per workload of `test_value` (dims workload, ...; `sign` per
    workload: +1 where smaller is better, -1 where larger is; default +1): `margin` a
    number: that number everywhere ("given"); a mapping: its value for the workloads it
    names ("given"), its "*" entry or else the default rule elsewhere; None: the default
    rule.
    AnalysisError for a negative or non-finite margin or a workload the archive lacks."""
    workloads = [str(w) for w in test_value["workload"].values]
    if isinstance(margin, Mapping):
        unknown = sorted(set(margin) - set(workloads) - {"*"})
        if unknown:
            raise AnalysisError(
                f"margins: workload {unknown[0]!r} is not in the archive (it has {workloads})"
            )
        given = {str(w): float(m) for w, m in margin.items() if w != "*"}
        if "*" in margin:
            given = {w: given.get(w, float(margin["*"])) for w in workloads}
    elif margin is None:
        given = {}
    else:
        given = dict.fromkeys(workloads, float(margin))
    for w, m in given.items():
        if not (np.isfinite(m) and m >= 0):
            raise AnalysisError(f"margin for workload {w!r}: {m} must be a non-negative number")
    values = test_value.where(usable) * (1 if sign is None else sign)
    margins: dict[str, float] = {}
    rules: dict[str, str] = {}
    for w in workloads:
        if w in given:
            margins[w], rules[w] = given[w], "given"
        else:
            margins[w] = rule_margin(np.asarray(values.sel(workload=w).values, dtype=float))
            rules[w] = MARGIN_RULE
    return margins, rules
