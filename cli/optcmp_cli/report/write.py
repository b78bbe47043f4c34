"""`write_report`: which section of the report runs when, and the files it writes.

Dependency rule: numpy, xarray, matplotlib (through the figures), optcmp_data and
optcmp_analysis. The report is assembled in the CLI package: the statistics live in
optcmp_analysis; each analysis's CLI module (`optcmp_cli.analyses`) writes its section,
and this module runs the analyses in the CLI's order of the registry's analyses
(`optcmp_cli._analyses.group_sections()`) and writes DIR/report.md, DIR/results.json,
DIR/figures/*.png and, asked for, DIR/report.html.

Reproducibility: every analysis draws from its own `np.random.default_rng(seed)` (as
`optcmp plot` and `optcmp analyze` do), and nothing in report.md or results.json depends
on the clock or on where the report is written: the same archive and seed give
byte-identical files.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import xarray as xr

from optcmp_analysis import (
    BUDGET_RULE,
    DEFAULT_N_BOOT,
    MARGIN_RULE,
    Match,
    ProtocolComparison,
    SelectionRule,
    restrict,
)
from optcmp_cli._analyses import Analysis, Common, Inference, analysis_named, group_sections
from optcmp_cli._common import json_text
from optcmp_cli._outputs import ReportStage
from optcmp_cli._report_command import ReportFormat
from optcmp_cli.analyses.protocol import labels, test_options
from optcmp_cli.render.escape import md
from optcmp_cli.render.html import to_html
from optcmp_cli.render.palette import styles_of
from optcmp_cli.report.builder import Builder, Group
from optcmp_cli.report.groups import budget_of_tests, protocol_groups, without_empty_workloads
from optcmp_cli.report.score import score_section
from optcmp_cli.report.summary import header, partial_caveat
from optcmp_data import ArchiveSummary, Taxonomy, atomic_write_text, summarize

__all__ = ["ReportFiles", "group_steps", "write_report"]


@attrs.frozen
class ReportFiles:
    """Where a report was written."""

    report: Path
    results: Path
    figures: tuple[Path, ...]
    html: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "report": str(self.report),
            "results": str(self.results),
            "html": None if self.html is None else str(self.html),
            "figures": [str(f) for f in self.figures],
        }

    def moved(self, src: Path, dst: Path) -> ReportFiles:
        """Where the files are once the folder `src` holding them is moved to `dst`."""

        def at(path: Path) -> Path:
            return dst / path.relative_to(src)

        return ReportFiles(
            report=at(self.report),
            results=at(self.results),
            figures=tuple(at(p) for p in self.figures),
            html=None if self.html is None else at(self.html),
        )


def group_steps() -> tuple[str, ...]:
    """The steps of one protocol group, for the progress bar: its analyses' report keys."""
    return tuple(a.report_key for a in group_sections())


def _group(b: Builder, ds: xr.Dataset, label: str | None) -> None:
    """Every analysis of one protocol group, each in its section, in the registry's order.

    The first (the selection) is a precondition: without it nothing else can run, which
    is fatal for the whole archive and a recorded gap for one protocol of several."""
    g = Group(label=label, ds=without_empty_workloads(b, ds, label), full=ds, styles=styles_of(ds))
    # The inclusion section also shows the verdicts under the train-loss rule.
    rules = tuple(dict.fromkeys([b.rule, SelectionRule.FINAL_TRAIN_LOSS]))
    # The analyses that declare it (rank) run at the tests' budget.
    budget = budget_of_tests(g.ds, b.inference)
    sections = group_sections()
    for i, analysis in enumerate(sections):
        common = Common(
            rng=b.rng(),
            rule=b.rule,
            n_boot=b.n_boot,
            budget=budget if analysis.at_tests_budget else None,
            rules=rules,
            taxonomy=b.taxonomy,
            inference=b.inference,
        )
        result = _run(b, analysis, g, common)
        if result is not None:
            analysis.section()(b, result, g)
        b.advance(analysis.report_key)
        if result is None and analysis.required:
            for rest in sections[i + 1 :]:
                b.advance(rest.report_key)
            return


def _run(b: Builder, analysis: Analysis, g: Group, common: Common) -> Any:
    """Run `analysis` under its heading; None when it failed (recorded and shown). A
    required analysis of the only group fails the report; its heading follows it."""
    key = f"{analysis.report_key}{g.suffix}"
    title = f"## {g.heading(analysis.report_heading)}"
    run = functools.partial(analysis.run, g.ds, common)
    if not analysis.required:
        b.lines += [title, ""]
        return b.attempt(key, run)
    result = run() if g.label is None else b.attempt(key, run)
    if result is not None:
        b.lines += [title, ""]
    return result


def write_report(
    archive: xr.Dataset,
    out: Path,
    /,
    *,
    name: str,
    seed: int,
    n_boot: int = DEFAULT_N_BOOT,
    rule: SelectionRule = SelectionRule.FINAL_VALID,
    compare: tuple[str, xr.Dataset] | None = None,
    advance: Callable[[str], None] = lambda step: None,
    title: str | None = None,
    taxonomy: Taxonomy | None = None,
    formats: Sequence[ReportFormat] = (ReportFormat.MD,),
    inference: Inference | None = None,
) -> ReportFiles:
    """Run every analysis on `archive` and write out/report.md, out/results.json and
    out/figures/*.png, and out/report.html (self-contained) when `formats` holds HTML.

    The files are written into a staging folder in `out` and moved into place once the
    report is complete; then the previous report's files that this one lacks are
    deleted. Only files an earlier report listed in out's manifest are replaced or
    deleted (see `_outputs`); a report that fails leaves the previous one whole.

    `name` labels the archive in the report (no absolute paths, so the files do not
    depend on where the archive lives); `title` heads it (default: `name`); `compare`
    adds a protocol comparison with a second archive; `taxonomy` replaces the default
    inclusion relations; `inference`: the inclusion and protocol tests' options (default
    their defaults). `advance` is called after each step (for progress)."""
    inference = Inference() if inference is None else inference
    names = [
        "report.md",
        "results.json",
        *(["report.html"] if ReportFormat.HTML in formats else []),
    ]
    stage = ReportStage.begin(out, names=names)
    try:
        staged = _write_staged(
            archive,
            stage.dir,
            name=name,
            seed=seed,
            n_boot=n_boot,
            rule=rule,
            compare=compare,
            advance=advance,
            title=title,
            taxonomy=taxonomy,
            formats=formats,
            inference=inference,
        )
    except BaseException:
        stage.abort()
        raise
    stage.commit()
    return staged.moved(stage.dir, out)


def _write_staged(
    archive: xr.Dataset,
    out: Path,
    /,
    *,
    name: str,
    seed: int,
    n_boot: int,
    rule: SelectionRule,
    compare: tuple[str, xr.Dataset] | None,
    advance: Callable[[str], None],
    title: str | None,
    taxonomy: Taxonomy | None,
    formats: Sequence[ReportFormat],
    inference: Inference,
) -> ReportFiles:
    """`write_report` into the staging folder `out`: the caveats of the archives, the
    body (comparisons, AlgoPerf score, each protocol group, the plan), then the head (it
    summarises the body) and the files."""
    b = Builder(
        out=out,
        name=name,
        seed=seed,
        n_boot=n_boot,
        rule=rule,
        advance=advance,
        title=title or f"{name}: optimizer comparison",
        taxonomy=taxonomy,
        inference=inference,
    )
    groups = protocol_groups(archive)
    summary = summarize(archive, path=name)
    partial_caveat(b, summary, name)
    for c in summary.caveats:
        b.caveat(md(c))  # text from the archive: shown literally
    if compare is not None:
        partial_caveat(b, summarize(compare[1], path=compare[0]), compare[0])

    body_start = len(b.lines)
    _body(b, archive, groups, compare)
    body = b.lines[body_start:]
    head = header(b, summary, groups, compare)
    text = "\n".join([*head, *body]).rstrip("\n") + "\n"
    return _write_files(b, text, formats, _results(b, summary, groups, compare))


def _body(
    b: Builder,
    archive: xr.Dataset,
    groups: list[tuple[str | None, list[str]]],
    compare: tuple[str, xr.Dataset] | None,
) -> None:
    """The report's sections: the protocol comparisons (the point of a study with a
    restricted protocol) first, the AlgoPerf score, every protocol group, the plan."""
    for heading, run in _comparisons(b, archive, groups, compare):
        b.lines += [f"## Protocol comparison: {md(heading)}", ""]
        comp = b.attempt(f"protocol {heading}", run)
        if comp is not None:
            whole = Group(label=heading, ds=archive, full=archive, styles=styles_of(archive))
            analysis_named("protocol").section()(b, comp, whole)
        b.advance("protocol")

    if archive.attrs.get("base_workloads"):
        score_section(b, archive)
    for label, optimizers in groups:
        ds = archive if label is None else restrict(archive, optimizers=optimizers)
        _group(b, ds, label)
    _plan_undecided(b, archive, compare)


def _results(
    b: Builder,
    summary: ArchiveSummary,
    groups: list[tuple[str | None, list[str]]],
    compare: tuple[str, xr.Dataset] | None,
) -> dict[str, Any]:
    """results.json: how the report was made, the archive, caveats, skipped analyses and
    every analysis's records."""
    inference = b.inference
    return {
        "report": {
            "archive": b.name,
            "compare": None if compare is None else compare[0],
            "seed": b.seed,
            "n_boot": b.n_boot,
            "inference": {
                "budget": inference.budget,
                "budget_rule": None if inference.budget is not None else BUDGET_RULE,
                "n_test_boot": inference.n_boot,
                "alpha": inference.alpha,
                "margin": inference.margin,
                "margin_rule": MARGIN_RULE if not isinstance(inference.margin, float) else None,
            },
            "rule": str(b.rule),
            "protocols": [label for label, _ in groups if label is not None],
            "figures": [f"figures/{p.name}" for p in b.figures],
        },
        "archive": summary.to_json(),
        "caveats": b.caveats,
        "skipped": b.skipped,
        **b.results,
    }


def _write_files(
    b: Builder, text: str, formats: Sequence[ReportFormat], results: dict[str, Any]
) -> ReportFiles:
    """report.md, report.html (where asked for) and results.json, in that order."""
    report_path = b.out / "report.md"
    results_path = b.out / "results.json"
    atomic_write_text(report_path, text)
    html_path = None
    if ReportFormat.HTML in formats:
        html_path = b.out / "report.html"
        atomic_write_text(html_path, to_html(text, title=b.title, base=b.out))
    atomic_write_text(results_path, json_text(results))
    return ReportFiles(
        report=report_path, results=results_path, figures=tuple(b.figures), html=html_path
    )


def _comparisons(
    b: Builder,
    archive: xr.Dataset,
    groups: list[tuple[str | None, list[str]]],
    compare: tuple[str, xr.Dataset] | None,
) -> list[tuple[str, Callable[[], ProtocolComparison]]]:
    """The protocol comparisons of a report, each titled: every restricted protocol of
    the archive against its widest, then the archive against the --compare one."""
    from optcmp_analysis import analysis_named as registered

    protocol = registered("protocol")

    def run(
        first: xr.Dataset, second: xr.Dataset, labels: tuple[str, str], match: Match | None
    ) -> Callable[[], ProtocolComparison]:
        # The call of `optcmp analyze protocol` and `plot protocol`, with the tests' options.
        options = test_options(labels, match, b.rule, b.inference)
        return functools.partial(protocol.run, first, second, options=options, rng=b.rng())

    comparisons: list[tuple[str, Callable[[], ProtocolComparison]]] = []
    if len(groups) > 1:
        widest, wide_opts = groups[-1]
        assert widest is not None
        for label, opts in groups[:-1]:
            assert label is not None
            first = restrict(archive, optimizers=opts)
            second = restrict(archive, optimizers=wide_opts)
            comparisons.append(
                (f"{label} vs {widest}", run(first, second, (label, widest), Match.FAMILY))
            )
    if compare is not None:
        named = labels(b.name, compare[0])
        comparisons.append((f"{named[0]} vs {named[1]}", run(archive, compare[1], named, None)))
    return comparisons


def _plan_undecided(
    b: Builder, archive: xr.Dataset, compare: tuple[str, xr.Dataset] | None
) -> None:
    """Say under Not supported how many trials would decide each undecided comparison."""
    from optcmp_analysis import default_trial_grid
    from optcmp_cli._report_plan import undecided_line, undecided_plans

    # Protocol effects and pairs are planned where the comparison is of two archives
    # (matched by name, as the planner matches them).
    protocol = b.results.get("protocol", []) if compare is not None else []
    records, budget, reason = undecided_plans(
        archive,
        None if compare is None else compare[1],
        protocols=labels(b.name, compare[0]) if compare is not None else ("first", "second"),
        inclusion=b.results.get("inclusion", []),
        protocol=protocol,
        rule=b.rule,
        taxonomy=b.taxonomy,
        seed=b.seed,
    )
    if reason is not None:
        b.unsupported.append(f"how many trials would decide them was not planned: {md(reason)}")
    elif records and budget is not None:
        b.unsupported.append(undecided_line(records, budget, default_trial_grid(budget)[-1], md))
        b.results["plan"] = records
    b.advance("plan")
