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

from optcmp_analysis import DEFAULT_N_BOOT, DEFAULT_TEST_N_BOOT, SelectionRule
from optcmp_cli._analyses import Common, Inference, analysis_named, figures
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

# The figures `optcmp plot` draws, as this module is imported: one member per analysis
# (or view) with a figure (`figures()` also has those of analyses registered later).
_FIGURES = figures()
PlotKind = enum.StrEnum(  # type: ignore[misc]
    "PlotKind", {a.name.upper(): a.name for a in _FIGURES}
)


def _kinds() -> str:
    """Each figure's name and, where its CLI module says, what it shows (`FIGURE_HELP`)."""
    described = []
    for a in _FIGURES:
        about = getattr(a.module(), "FIGURE_HELP", None)
        described.append(a.name if about is None else f"{a.name} ({about})")
    return ", ".join(described)


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


# The command's own options (those it shares with other commands are in _options.py).
_KindArg = Annotated[
    str,
    typer.Argument(
        metavar="KIND",
        help="Which figure to draw: " + ", ".join(a.name for a in _FIGURES) + ".",
    ),
]
_OutOpt = Annotated[Path, typer.Option("--out", help="Image file to write: .png, .svg or .pdf.")]
_SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")]


def _budget_help() -> str:
    """--budget's help from the figures that take it: what k means for each (those
    meaning the same named together) and the defaults that are not all trials."""
    meanings: dict[str, list[str]] = {}
    for a in _FIGURES:
        if a.budget_help is not None:
            meanings.setdefault(a.budget_help, []).append(a.name)
    means = "; ".join(f"{', '.join(names)}: {text}" for text, names in meanings.items())
    defaults = "; ".join(
        f"{a.name}: {a.budget_default}" for a in _FIGURES if a.budget_default is not None
    )
    return f"Trials per study k ({means}). Default: all trials" + (
        f" ({defaults})." if defaults else "."
    )


_BudgetOpt = Annotated[int | None, typer.Option("--budget", help=_budget_help())]
_RuleOpt = Annotated[
    SelectionRule, typer.Option("--rule", help="How the best trial of a cell is chosen.")
]
_NBootOpt = Annotated[
    int, typer.Option("--n-boot", min=1, help="Bootstrap draws (targets uses at most 1000).")
]
_CompareOpt = Annotated[
    Path | None,
    typer.Option("--compare", help="plot protocol: a second archive (another tuning protocol)."),
]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print {kind, archive, out} as JSON.")]


@reports_errors
def plot(
    kind: _KindArg,
    archive_path: ArchiveArg,
    out: _OutOpt,
    seed: _SeedOpt = 0,
    budget: _BudgetOpt = None,
    rule: _RuleOpt = SelectionRule.FINAL_VALID,
    n_boot: _NBootOpt = DEFAULT_N_BOOT,
    workload: WorkloadOpt = None,
    optimizer: OptimizerOpt = None,
    compare: _CompareOpt = None,
    json_out: _JsonOpt = False,
    n_test_boot: TestBootOpt = DEFAULT_TEST_N_BOOT,
    alpha: AlphaOpt = DEFAULT_ALPHA,
    margin: MarginOpt = None,
    margins: MarginsOpt = None,
) -> None:
    """Draw one figure of an archive's analysis as PNG, SVG or PDF (by the --out suffix).

    KIND: {kinds}.

    Example: optcmp plot budget runs/demo/study --out budget.png --seed 0
    """
    from optcmp_cli.render.save import check_image_out, save_figure

    drawn = figures()  # the built-in figures and those of registered analyses
    if kind not in {a.name for a in drawn}:
        raise ConfigError(
            f"KIND {kind!r}: not a figure; choose one of " + ", ".join(a.name for a in drawn)
        )
    check_image_out(out)  # a wrong suffix or another file fails before the analysis runs
    seeded_rng(seed)
    with about_archive(archive_path):
        archive, other = _archives(archive_path, compare, workload, optimizer)
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
        print_json({"kind": kind, "archive": str(archive_path), "out": str(out)})
    else:
        console.print(f"wrote {out}", markup=False, soft_wrap=True)


def _archives(
    path: Path, compare: Path | None, workload: list[str] | None, optimizer: list[str] | None
) -> tuple[xr.Dataset, tuple[str, xr.Dataset] | None]:
    """The archive restricted to --workload and --optimizer, and the --compare archive
    (its workloads restricted too) with its name."""
    from optcmp_analysis import restrict
    from optcmp_data import open_archive

    archive = restrict(open_archive(path), workloads=workload, optimizers=optimizer)
    if compare is None:
        return archive, None
    return archive, (compare.name, restrict(open_archive(compare), workloads=workload))


# The KIND paragraph of the help, from the CLI modules of the figures (no list here).
plot.__doc__ = (plot.__doc__ or "").replace("{kinds}", _kinds())
