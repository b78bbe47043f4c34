"""The AlgoPerf score section of the report (archives of AlgoPerf submissions).

Dependency rule: optcmp_analysis and the report's builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import number, table

if TYPE_CHECKING:
    import xarray as xr

    from optcmp_cli.report.builder import Builder

__all__ = ["score_section"]


def score_section(b: Builder, archive: xr.Dataset) -> None:
    """AlgoPerf archives: the leaderboard score by the benchmark's own rules, the number
    `optcmp score` prints, with the rules applied."""
    from optcmp_analysis import algoperf_score

    b.lines += ["## AlgoPerf score", ""]
    result = b.attempt("score", lambda: algoperf_score(archive))
    if result is None:
        return
    records = result.to_json()
    b.lines += [
        "The benchmark's own score (the number `optcmp score` prints): per workload the "
        "median over studies of the time to the validation target, the held-out rules, "
        "then the area under the performance profile of the base workloads only, over "
        "tau in [1, 4], divided by 3. Rules applied:",
        "",
        *(f"- {md(name)}: {md(rule)}" for name, rule in result.rules),
        "",
    ]
    b.lines += table(
        ["optimizer", "score"],
        [[md(r["optimizer"]), number(r["score"], 4)] for r in records],
    )
    if records:
        top = records[0]
        b.supported.append(
            f"AlgoPerf score: {md(top['optimizer'])} ranks first ({number(top['score'], 4)}; "
            "see AlgoPerf score)"
        )
    for c in result.caveats:
        b.caveat(md(c))
    b.results["score"] = records
