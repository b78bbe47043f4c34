"""`optcmp plot KIND ARCHIVE --out FILE`: one figure of an archive's analysis.

Dependency rule: typer, the CLI's registry of analyses and options, and the light names
of optcmp_analysis and optcmp_data at import; the analyses, the archive and the figure
module (_plots: matplotlib) are imported when a figure is drawn, so `optcmp plot --help`
loads none of them.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from optcmp_analysis import BUDGET_RULE, DEFAULT_N_BOOT, DEFAULT_TEST_N_BOOT, SelectionRule
from optcmp_cli._analyses import FIGURES, Common, Inference, analysis_named, figures
from optcmp_cli._common import about_archive, console, print_json, reports_errors, seeded_rng
from optcmp_cli._options import (
    DEFAULT_ALPHA,
    AlphaOpt,
    ArchiveArg,
    MarginOpt,
    MarginsOpt,
    OptimizerOpt,
    TestBootOpt,
    WorkloadOpt,
    margin_option,
)
from optcmp_data import ConfigError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = ["PlotKind", "figure_for", "plot"]

# The built-in figures `optcmp plot` draws: one member per analysis with a figure in the
# registry (`figures()` adds those of registered analyses).
PlotKind = enum.StrEnum(  # type: ignore[misc]
    "PlotKind", {a.name.upper(): a.name for a in FIGURES}
)


def figure_for(
    kind: str,
    archive: xr.Dataset,
    *,
    seed: int,
    budget: int | None,
    rule: SelectionRule,
    n_boot: int,
    compare: tuple[str, xr.Dataset] | None = None,
    name: str = "first",
    inference: Inference | None = None,
) -> Figure:
    """Run the analysis behind `kind` (a name in the registry of analyses) on `archive`
    and draw its figure (`compare`: the second archive of a protocol figure; `inference`:
    the tests' options, default their defaults)."""
    common = Common(
        rng=seeded_rng(seed),
        rule=rule,
        n_boot=n_boot,
        budget=budget,
        compare=compare,
        name=name,
        inference=Inference() if inference is None else inference,
    )
    return analysis_named(str(kind), figures()).draw(archive, common)


@reports_errors
def plot(
    kind_name: Annotated[
        str,
        typer.Argument(
            metavar="KIND",
            help="Which figure to draw: " + ", ".join(a.name for a in FIGURES) + ".",
        ),
    ],
    archive_path: ArchiveArg,
    out: Annotated[Path, typer.Option("--out", help="Image file to write: .png, .svg or .pdf.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    budget: Annotated[
        int | None,
        typer.Option(
            "--budget",
            help="Trials per study k (budget: the largest k drawn; rank, inclusion: the k "
            f"compared). Default: all trials (inclusion: {BUDGET_RULE}).",
        ),
    ] = None,
    rule: Annotated[
        SelectionRule, typer.Option("--rule", help="How the best trial of a cell is chosen.")
    ] = SelectionRule.FINAL_VALID,
    n_boot: Annotated[
        int,
        typer.Option("--n-boot", min=1, help="Bootstrap draws (targets uses at most 1000)."),
    ] = DEFAULT_N_BOOT,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare", help="plot protocol: a second archive (another tuning protocol)."
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print {kind, archive, out} as JSON.")
    ] = False,
    n_test_boot: TestBootOpt = DEFAULT_TEST_N_BOOT,
    alpha: AlphaOpt = DEFAULT_ALPHA,
    margin: MarginOpt = None,
    margins: MarginsOpt = None,
) -> None:
    """Draw one figure of an archive's analysis as PNG, SVG or PDF (by the --out suffix).

    KIND: budget (best-of-k vs k, bootstrap band and closed form), rank (rank
    probabilities), aggregate (IQM, optimality gap and probability of improvement across
    workloads; at most 2000 bootstrap replicates), profiles (time-to-target performance
    profiles), inclusion (verdict per pair and workload), targets (steps to target),
    boundary (metric vs each hyperparameter, search-space edges), curves (learning curves
    of the selected trials), protocol (tuned results under two protocols: the two search
    spaces of one archive, or --compare ARCHIVE).

    Example: optcmp plot budget runs/demo/study --out budget.png --seed 0
    """
    from optcmp_analysis import restrict
    from optcmp_cli.render.save import check_image_out, save_figure
    from optcmp_data import open_archive

    drawn = figures()  # the built-in figures and those of registered analyses
    if kind_name not in {a.name for a in drawn}:
        raise ConfigError(
            f"KIND {kind_name!r}: not a figure; choose one of " + ", ".join(a.name for a in drawn)
        )
    kind = kind_name
    check_image_out(out)  # a wrong suffix or another file fails before the analysis runs
    seeded_rng(seed)
    with about_archive(archive_path):
        archive = restrict(open_archive(archive_path), workloads=workload, optimizers=optimizer)
        other = None
        if compare is not None:
            other = (compare.name, restrict(open_archive(compare), workloads=workload))
        fig = figure_for(
            kind,
            archive,
            seed=seed,
            budget=budget,
            rule=rule,
            n_boot=n_boot,
            compare=other,
            name=archive_path.name,
            inference=Inference(
                budget=budget,
                n_boot=n_test_boot,
                alpha=alpha,
                margin=margin_option(margin, margins),
            ),
        )
    save_figure(fig, out)
    if json_out:
        print_json({"kind": str(kind), "archive": str(archive_path), "out": str(out)})
    else:
        console.print(f"wrote {out}", markup=False, soft_wrap=True)
