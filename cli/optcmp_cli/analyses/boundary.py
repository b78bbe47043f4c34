"""boundary: do the best trials sit at an edge of the search space?

Dependency rule: optcmp_analysis, the report's builder and the boundary figure.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

import typer

from optcmp_cli._common import console
from optcmp_cli.render.escape import md, term
from optcmp_cli.render.numbers import num, num_distinct
from optcmp_cli.render.tables import LABEL, VALUE, fit_table, print_fitted

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import BoundaryCheck, SelectionRule
    from optcmp_cli._analyses import Common
    from optcmp_cli.render.palette import OptimizerStyle
    from optcmp_cli.report.builder import Builder, Group

__all__ = [
    "EXTRA_OPTIONS",
    "FIGURE_HELP",
    "HELP",
    "figure",
    "options",
    "print_table",
    "records",
    "section",
]


def options(c: Common) -> Any:
    """The options of `plot` and `report`: the selection rule."""
    from optcmp_analysis import analysis_named

    return analysis_named("boundary").options(rule=c.rule)


#: What its figure shows, in `optcmp plot --help`.
FIGURE_HELP = "metric vs each hyperparameter, search-space edges"


def figure(result: BoundaryCheck, ds: xr.Dataset) -> Figure:
    """The metric against each hyperparameter, with the search-space edges."""
    from optcmp_cli._plots import boundary_figure
    from optcmp_cli.render.palette import styles_of

    return boundary_figure(result, styles=styles_of(ds))


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


#: `optcmp analyze boundary --points`: a display choice of the command, not an option of
#: the analysis.
EXTRA_OPTIONS: dict[str, tuple[Any, Any]] = {
    "points": (
        Annotated[
            bool,
            typer.Option(
                "--points",
                help="Also emit every trial's point of the projection plots (JSON).",
            ),
        ],
        False,
    )
}


def records(result: BoundaryCheck, *, points: bool) -> list[dict[str, Any]]:
    """What `optcmp analyze boundary --json` prints: the records and, with --points, every
    trial's point of the projection plots."""
    return result.to_json() + (result.points() if points else [])


#: The help of `optcmp analyze boundary`.
HELP = """Boundary check: do the best trials of each optimizer sit at an edge of a
hyperparameter's search space? A warning in plain words for each that does.

JSON records ("record" key): "edge" — one per searched (workload, optimizer,
hparam): workload, optimizer, hparam, scale, low, high, top, n_top, n_near_low,
n_near_high, edge ("none", "low", "high", "both"), trial (the best), best_value,
best_position (0 = low edge, 1 = high edge), metric, split, value (the best trial's
selection value), warning; with --points also "point" — workload, optimizer, trial,
hparam, hparam_value, position, top_rank (0 = not usable), metric, split, value,
test_value (the data of the paper's Appendix E projection plots).

Example: optcmp analyze boundary runs/demo/study --top 3 --fraction 0.05 --json
"""


def print_table(result: BoundaryCheck, options: Any, ds: xr.Dataset, *, points: bool) -> None:
    """What `optcmp analyze boundary` prints (without --json)."""
    records = result.to_json()
    if not records:
        console.print(
            f"Boundary check ({options.rule}): nothing checked: no searched hyperparameter "
            "recorded "
            "(the archive stores no search space with a range).",
            markup=False,
        )
        return
    rows = [
        [
            r["workload"],
            r["optimizer"],
            r["hparam"],
            term(r["scale"]),
            f"[{num_distinct(r['low'])}, {num_distinct(r['high'])}]",
            num_distinct(r["best_value"]),
            num(r["best_position"], 2),
            r["edge"]
            if r["edge"] == "none"
            else f"[red]{r['edge']}[/red] ({r['n_near_low']}/{r['n_near_high']})",
        ]
        for r in records
    ]
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("hparam", LABEL),
        ("scale", VALUE),
        ("space", VALUE),
        ("best", VALUE),
        ("position", VALUE),
        ("edge", VALUE),
    ]
    title = f"Best {options.top} trials against the search-space edges ({options.rule})"
    print_fitted(*fit_table(title, columns, rows, ("scale", "position")))
    for warning in result.warnings():
        console.print(f"[yellow]warning:[/yellow] {term(warning)}", highlight=False)
