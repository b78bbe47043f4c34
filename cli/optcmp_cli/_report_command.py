"""`optcmp report ARCHIVE --out DIR`: every analysis of an archive, as a report.

Dependency rule: typer, rich, the CLI's options and the light names of optcmp_analysis
and optcmp_data at import; the report writer (the report package: the analyses, xarray, matplotlib)
and the archive are imported when a report is written, so `optcmp report --help` and
`optcmp demo --help` load none of them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

from optcmp_analysis import DEFAULT_N_BOOT, DEFAULT_TEST_N_BOOT, SelectionRule
from optcmp_cli._analyses import Inference
from optcmp_cli._common import (
    about_archive,
    check_out_dir,
    console,
    print_json,
    progress_on_stderr,
    reports_errors,
    seeded_rng,
)
from optcmp_cli._options import (
    DEFAULT_ALPHA,
    AlphaOpt,
    ArchiveArg,
    MarginOpt,
    MarginsOpt,
    TestBootOpt,
    TestBudgetOpt,
    margin_option,
)

if TYPE_CHECKING:
    import xarray as xr

    from optcmp_cli.report.write import ReportFiles
    from optcmp_data import Taxonomy

__all__ = ["ReportFormat", "report"]


class ReportFormat(enum.StrEnum):
    """The report's document format (report.md is always written)."""

    MD = "md"
    HTML = "html"


@contextmanager
def _progress(total: int) -> Iterator[Callable[[str], None]]:
    with progress_on_stderr(
        TextColumn("[bold]report[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=total)

        def advance(step: str) -> None:
            progress.update(task, advance=1, description=f"{step} done")

        yield advance


# The report's own options (those it shares with other commands are in _options.py).
_OutOpt = Annotated[
    Path, typer.Option("--out", help="Directory for report.md, results.json and figures/.")
]
_SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every bootstrap.")]
_CompareOpt = Annotated[
    Path | None,
    typer.Option(
        "--compare", help="A second archive (another tuning protocol) to compare rankings with."
    ),
]
_RuleOpt = Annotated[
    SelectionRule, typer.Option("--rule", help="How the best trial of a cell is chosen.")
]
_NBootOpt = Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap draws per analysis.")]
_FormatOpt = Annotated[
    ReportFormat,
    typer.Option(
        "--format", help="html: also write OUT/report.html, self-contained (figures embedded)."
    ),
]
_TaxonomyOpt = Annotated[
    Path | None,
    typer.Option(
        "--taxonomy", help="TOML or JSON file of inclusion relations (default: the paper's)."
    ),
]
_TitleOpt = Annotated[
    str | None, typer.Option("--title", help="Report title (default: the archive's name).")
]
_JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print {report, results, html, figures} as JSON.")
]


@reports_errors
def report(
    archive_path: ArchiveArg,
    out: _OutOpt,
    seed: _SeedOpt = 0,
    compare: _CompareOpt = None,
    rule: _RuleOpt = SelectionRule.FINAL_VALID,
    n_boot: _NBootOpt = DEFAULT_N_BOOT,
    fmt: _FormatOpt = ReportFormat.MD,
    taxonomy: _TaxonomyOpt = None,
    title: _TitleOpt = None,
    json_out: _JsonOpt = False,
    budget: TestBudgetOpt = None,
    n_test_boot: TestBootOpt = DEFAULT_TEST_N_BOOT,
    alpha: AlphaOpt = DEFAULT_ALPHA,
    margin: MarginOpt = None,
    margins: MarginsOpt = None,
) -> None:
    """Run every analysis of an archive and write a report with figures, led by a summary
    of its findings.

    Writes OUT/report.md (findings, caveats, tables, figures), OUT/results.json (every
    result record), OUT/figures/*.png and, with --format html, OUT/report.html. They
    replace the files of the report written there before, once the new one is complete;
    files optcmp did not write are never replaced or deleted. The same archive and --seed
    give byte-identical report.md and results.json.

    Example: optcmp report runs/demo/study --out runs/demo/report --seed 0
    """
    from optcmp_cli.report.write import write_report

    seeded_rng(seed)
    check_out_dir(out)
    archive, other, relations = _inputs(archive_path, compare, taxonomy, n_boot)
    with _progress(_steps(archive, other)) as advance, about_archive(archive_path):
        files = write_report(
            archive,
            out,
            name=archive_path.name,
            seed=seed,
            n_boot=n_boot,
            rule=rule,
            compare=other,
            advance=advance,
            title=title,
            taxonomy=relations,
            formats=(fmt,),
            inference=Inference(
                budget=budget,
                n_boot=n_test_boot,
                alpha=alpha,
                margin=margin_option(margin, margins),
            ),
        )
    _print_files(files, json_out)


def _inputs(
    archive_path: Path, compare: Path | None, taxonomy: Path | None, n_boot: int
) -> tuple[xr.Dataset, tuple[str, xr.Dataset] | None, Taxonomy | None]:
    """The archive (checked to allow `n_boot` bootstrap draws), the --compare archive with
    its name, and the --taxonomy relations; each read before the report starts."""
    import numpy as np

    from optcmp_data import Taxonomy, check_bootstrap, open_archive

    relations = Taxonomy.from_file(taxonomy) if taxonomy is not None else None
    archive = open_archive(archive_path)
    cell_dims = [d for d in archive["status"].dims if d != "trial"]
    check_bootstrap(int(np.prod([archive.sizes[d] for d in cell_dims])), n_boot)
    other = None if compare is None else (compare.name, open_archive(compare))
    return archive, other, relations


def _steps(archive: xr.Dataset, compare: tuple[str, xr.Dataset] | None) -> int:
    """The progress bar's steps: each protocol group's sections, each protocol comparison
    (the archive's restricted protocols and the --compare archive) and the plan."""
    from optcmp_cli.report.groups import protocol_groups
    from optcmp_cli.report.write import group_steps

    groups = protocol_groups(archive)
    n_comparisons = (len(groups) - 1) + (compare is not None)
    return len(groups) * len(group_steps()) + n_comparisons + 1


def _print_files(files: ReportFiles, json_out: bool) -> None:
    """Where the report was written: as JSON, or one line per file."""
    if json_out:
        print_json(files.to_json())
        return
    # soft_wrap: a path must stay on one line to be copied.
    console.print(f"report: {files.report}", markup=False, soft_wrap=True)
    if files.html is not None:
        console.print(f"html: {files.html}", markup=False, soft_wrap=True)
    console.print(
        f"results: {files.results}  figures: {len(files.figures)}",
        markup=False,
        soft_wrap=True,
    )
