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
from typing import Annotated

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


@reports_errors
def report(
    archive_path: ArchiveArg,
    out: Annotated[
        Path,
        typer.Option("--out", help="Directory for report.md, results.json and figures/."),
    ],
    seed: Annotated[int, typer.Option("--seed", help="Seed of every bootstrap.")] = 0,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="A second archive (another tuning protocol) to compare rankings with.",
        ),
    ] = None,
    rule: Annotated[
        SelectionRule, typer.Option("--rule", help="How the best trial of a cell is chosen.")
    ] = SelectionRule.FINAL_VALID,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=1, help="Bootstrap draws per analysis.")
    ] = DEFAULT_N_BOOT,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="html: also write OUT/report.html, self-contained (figures embedded).",
        ),
    ] = ReportFormat.MD,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy",
            help="TOML or JSON file of inclusion relations (default: the paper's).",
        ),
    ] = None,
    title: Annotated[
        str | None, typer.Option("--title", help="Report title (default: the archive's name).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print {report, results, html, figures} as JSON.")
    ] = False,
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
    import numpy as np

    from optcmp_cli.report.groups import protocol_groups
    from optcmp_cli.report.write import group_steps, write_report
    from optcmp_data import Taxonomy, check_bootstrap, open_archive

    seeded_rng(seed)
    check_out_dir(out)
    relations = Taxonomy.from_file(taxonomy) if taxonomy is not None else None
    archive = open_archive(archive_path)
    cell_dims = [d for d in archive["status"].dims if d != "trial"]
    check_bootstrap(int(np.prod([archive.sizes[d] for d in cell_dims])), n_boot)
    other = None if compare is None else (compare.name, open_archive(compare))
    groups = protocol_groups(archive)
    n_comparisons = (len(groups) - 1) + (compare is not None)
    total = len(groups) * len(group_steps()) + n_comparisons + 1  # + the plan
    with _progress(total) as advance, about_archive(archive_path):
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
    if json_out:
        print_json(files.to_json())
    else:
        # soft_wrap: a path must stay on one line to be copied.
        console.print(f"report: {files.report}", markup=False, soft_wrap=True)
        if files.html is not None:
            console.print(f"html: {files.html}", markup=False, soft_wrap=True)
        console.print(
            f"results: {files.results}  figures: {len(files.figures)}",
            markup=False,
            soft_wrap=True,
        )
