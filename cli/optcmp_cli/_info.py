"""`optcmp info`: a summary of an archive.

Dependency rule: optcmp_data only (no torch).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from optcmp_cli._common import console, print_json, reports_errors
from optcmp_cli._escape import term, visible
from optcmp_cli._format import num
from optcmp_data import ArchiveSummary, open_archive, summarize

__all__ = ["info"]

# Infinite values are shown as such here ("inf", "-inf"), not as missing.
_num = partial(num, inf="inf", neg_inf="-inf")


# Widest a label column gets in a table: longer labels end in an ellipsis, so that the
# tables fit 80 columns (use --json for the full labels).
_LABEL = 16


def _label_width() -> int:
    """Widest label cell: 16 characters at 80 columns, more on wider terminals (labels
    are shortened with an ellipsis only where the table would not fit otherwise)."""
    return max(_LABEL, (console.width - 32) // 3)


@reports_errors
def info(
    path: Annotated[Path, typer.Argument(help="Archive file (.nc) or study directory of shards.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise an archive: workloads, optimizers, trials per cell, statuses, hyperparameters.

    Example: optcmp info runs/demo/study
    """
    summary = summarize(open_archive(path), path=str(path))
    if json_out:
        print_json({"info": summary.to_json()})
        return
    render_summary(summary)


def render_summary(summary: ArchiveSummary) -> None:
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

    wt = Table(title="Workloads")
    # At 80 columns a cell is shortened with an ellipsis, never broken inside a word.
    for col in ("workload", "metric", "dir", "valid tgt", "test tgt", "steps", "select"):
        wt.add_column(col, overflow="ellipsis", max_width=_label_width())
    for w in summary.workloads:
        wt.add_row(
            term(w["workload"]),
            term(w["metric"]),
            term(w["direction"]),
            _num(w["valid_target"]),
            _num(w["test_target"]),
            str(w["step_budget"]) if w["step_budget"] >= 0 else "-",
            term(w["selection_split"]),
        )
    console.print(wt)

    ct = Table(title="Runs per cell (completed / diverged / incomplete / missing)")
    for col in ("workload", "optimizer", "family"):
        ct.add_column(col, overflow="ellipsis", max_width=_label_width())
    for col in ("done", "diverged", "incompl.", "miss."):
        ct.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for c in summary.cells:
        ct.add_row(
            term(c.workload),
            term(c.optimizer),
            term(c.family or "-"),
            str(c.completed),
            str(c.diverged),
            str(c.incomplete),
            str(c.missing),
        )
    console.print(ct)

    if summary.hparams:
        ht = Table(title="Hyperparameters (observed range and search space)")
        rows = [
            (
                term(h.workload),
                term(h.optimizer),
                term(h.hparam),
                _num(h.observed_min),
                _num(h.observed_max),
                f"[{_num(h.space_low)}, {_num(h.space_high)}]" if h.scale != "none" else "-",
                term(h.scale),
            )
            for h in summary.hparams
        ]
        # Labels may be shortened with an ellipsis; numbers are never cut.
        for i, col in enumerate(
            ("workload", "optimizer", "hparam", "obs. min", "obs. max", "space", "scale")
        ):
            if i in (3, 4, 5):
                width = max(len(col), *(len(r[i]) for r in rows))
                ht.add_column(col, no_wrap=True, min_width=width)
            else:
                ht.add_column(col, overflow="ellipsis", max_width=_label_width())
        for row in rows:
            ht.add_row(*row)
        console.print(ht)
