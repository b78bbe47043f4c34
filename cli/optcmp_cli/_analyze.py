"""`optcmp analyze`: the group, and what its commands share when they print.

Dependency rule: typer, rich and the CLI's render helpers (no numpy, xarray or torch).
The subcommands are built from the registry of analyses (`_analyze_app`); each
analysis's CLI module (`optcmp_cli.analyses.<name>`) prints its tables with the helpers
here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from optcmp_analysis import (
    SelectionRule,
)
from optcmp_cli._common import console
from optcmp_cli.render.escape import term
from optcmp_cli.render.numbers import rule_text
from optcmp_cli.render.palette import TERM_VERDICT_COLOURS

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["analyze_app"]

# Its help as `optcmp analyze --help` shows it is app.py's (`_GROUP_HELP`), which names
# the commands built from the registry (`_analyze_app`).
analyze_app = typer.Typer(
    help="Statistics of a stored archive, one command per analysis; no torch needed.",
    no_args_is_help=True,
)


def _rule(rule: SelectionRule, ds: xr.Dataset) -> str:
    """The rule for a header, naming the split selection used (`rule_text`); escaped."""
    splits = dict(
        zip(
            (str(w) for w in ds["workload"].values),
            (str(s) for s in ds["selection_split"].values),
            strict=True,
        )
    )
    return term(rule_text(str(rule), splits))


def _caveats(caveats: tuple[str, ...]) -> None:
    for caveat in caveats:
        console.print(f"[yellow]caveat:[/yellow] {term(caveat)}", highlight=False)


def _repeat_keys(record: dict[str, Any]) -> str:
    return " ".join(f"{d}={record[d]}" for d in ("seed", "study") if d in record)


def _workload_label(record: dict[str, Any]) -> str:
    """The record's workload and, where the result is per repeat, which repeat (raw text:
    a LABEL cell of `fit_table`, or escape it)."""
    return f"{record['workload']} {_repeat_keys(record)}".strip()


def _verdict(verdict: str, text: str | None = None) -> str:
    """A verdict in its colour; `text` (escaped) replaces the bare word, e.g. the careful
    wording "consistent within margin 0.01 at k = 4 of 16 trials" or "not included: <reason>"."""
    colour = TERM_VERDICT_COLOURS[verdict]
    return f"[{colour}]{term(text if text is not None else verdict)}[/{colour}]"


#: Hyperparameters listed per best trial in the table (all of them in --json).
_HPARAMS_SHOWN = 12
