"""`optcmp info`: a summary of an archive.

Dependency rule: optcmp_data only (no torch).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from optcmp_cli._common import console, print_json, reports_errors
from optcmp_cli.render.escape import term, visible
from optcmp_cli.render.numbers import num
from optcmp_cli.render.tables import LABEL, VALUE, fit_table, print_fitted

if TYPE_CHECKING:
    from optcmp_data import ArchiveSummary

__all__ = ["info"]

# Infinite values are shown as such here ("inf", "-inf"), not as missing.
_num = partial(num, inf="inf", neg_inf="-inf")


#: Rows of the hyperparameter table shown; a very wide archive is summarised after them.
_HPARAM_ROWS = 60


@reports_errors
def info(
    path: Annotated[Path, typer.Argument(help="Archive file (.nc) or study directory of shards.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise an archive: workloads, optimizers, trials per cell, statuses, hyperparameters.

    Example: optcmp info runs/demo/study
    """
    from optcmp_data import open_archive, summarize

    summary = summarize(open_archive(path), path=str(path))
    if json_out:
        print_json({"info": summary.to_json()})
        return
    render_summary(summary)


def render_summary(summary: ArchiveSummary) -> None:
    """Print `summary`: provenance, caveats, then the workloads, cells and hyperparameters."""
    _print_provenance(summary)
    _print_workloads(summary)
    _print_cells(summary)
    if summary.hparams:
        _print_hparams(summary)


def _print_provenance(summary: ArchiveSummary) -> None:
    """Path, schema, source, versions, command, dims and caveats, one line each."""
    prov = summary.provenance
    console.print(f"[bold]{term(summary.path)}[/bold]  schema v{term(prov.get('schema_version'))}")
    console.print(
        f"source: {visible(prov.get('source'))}  created: {visible(prov.get('created'))}",
        markup=False,
    )
    console.print(
        f"optcmp {visible(prov.get('optcmp_version'))}  "
        f"torch {visible(prov.get('torch_version') or '-')}  "
        f"commit {visible(str(prov.get('git_commit') or '-')[:12])}",
        markup=False,
    )
    console.print(f"command: {visible(prov.get('command'))}", markup=False)
    sizes = ", ".join(f"{k}={v}" for k, v in summary.sizes.items())
    console.print(f"dims: {visible(sizes)}", markup=False)
    for caveat in summary.caveats:
        console.print(f"[yellow]caveat:[/yellow] {term(caveat)}")


def _print_workloads(summary: ArchiveSummary) -> None:
    """The workloads table: metric, direction, targets, step budget, selection split."""
    rows = [
        [
            w["workload"],
            term(w["metric"]),
            term(w["direction"]),
            _num(w["valid_target"]),
            _num(w["test_target"]),
            str(w["step_budget"]) if w["step_budget"] >= 0 else "-",
            term(w["selection_split"]),
        ]
        for w in summary.workloads
    ]
    columns = [
        ("workload", LABEL),
        ("metric", VALUE),
        ("dir", VALUE),
        ("valid tgt", VALUE),
        ("test tgt", VALUE),
        ("steps", VALUE),
        ("select", VALUE),
    ]
    print_fitted(*fit_table("Workloads", columns, rows))


def _print_cells(summary: ArchiveSummary) -> None:
    """The runs of each (workload, optimizer) by status, and a note on global trial ids."""
    rows = [
        [
            c.workload,
            c.optimizer,
            c.family or "-",
            str(c.completed),
            str(c.diverged),
            str(c.incomplete),
            str(c.missing),
        ]
        for c in summary.cells
    ]
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("family", LABEL),
        ("done", VALUE),
        ("diverged", VALUE),
        ("incompl.", VALUE),
        ("miss.", VALUE),
    ]
    counts = ("done", "diverged", "incompl.", "miss.")
    title = "Runs per cell (completed / diverged / incomplete / missing)"
    print_fitted(*fit_table(title, columns, rows, right=counts))
    shared = [w["workload"] for w in summary.workloads if w.get("trial_ids") == "global"]
    if shared:
        console.print(
            f"trial ids are global in {', '.join(term(w) for w in shared)} (each id belongs "
            "to one optimizer): missing counts only each optimizer's own trials"
        )


def _print_hparams(summary: ArchiveSummary) -> None:
    """The first `_HPARAM_ROWS` hyperparameter ranges and spaces, then a count of the rest."""
    rows = [
        [
            h.workload,
            h.optimizer,
            h.hparam,
            _num(h.observed_min),
            _num(h.observed_max),
            f"[{_num(h.space_low)}, {_num(h.space_high)}]" if h.scale != "none" else "-",
            term(h.scale),
        ]
        for h in summary.hparams[:_HPARAM_ROWS]
    ]
    columns = [
        ("workload", LABEL),
        ("optimizer", LABEL),
        ("hparam", LABEL),
        ("obs. min", VALUE),
        ("obs. max", VALUE),
        ("space", VALUE),
        ("scale", VALUE),
    ]
    title = "Hyperparameters (observed range and search space)"
    print_fitted(*fit_table(title, columns, rows, ("obs. min", "obs. max")))
    left = len(summary.hparams) - len(rows)
    if left:
        n_names = len({h.hparam for h in summary.hparams})
        console.print(
            f"... and {left} more rows ({n_names} hyperparameters in all); "
            "optcmp info --json lists every one",
            markup=False,
        )
