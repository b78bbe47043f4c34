"""`optcmp optimizers`: the six update rules, their hyperparameters, defaults and inclusions.

Dependency rule: optcmp_data only (no torch): everything shown is data from
optcmp_data's family, schedule and taxonomy descriptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from optcmp_cli._common import console, print_json, reports_errors
from optcmp_data import (
    FAMILY_SPECS,
    SCHEDULE_SPECS,
    HyperparamSpec,
    Taxonomy,
    default_taxonomy,
)

__all__ = ["optimizers", "optimizers_payload"]


def _hparam_json(h: HyperparamSpec) -> dict[str, Any]:
    return {
        "name": h.name,
        "symbol": h.symbol,
        "default": h.default,
        "valid": h.interval,
        "description": h.description,
    }


def optimizers_payload(taxonomy: Taxonomy) -> dict[str, Any]:
    """Everything the command shows, as JSON-ready data."""
    return {
        "families": [
            {
                "name": f.name,
                "title": f.title,
                "update_rule": f.update_rule,
                "hparams": [_hparam_json(h) for h in f.hparams],
            }
            for f in FAMILY_SPECS.values()
        ],
        "schedules": [
            {
                "name": s.kind.value,
                "formula": s.formula,
                "hparams": [_hparam_json(h) for h in s.hparams],
            }
            for s in SCHEDULE_SPECS.values()
        ],
        "inclusions": [
            {
                "special": r.special,
                "general": r.general,
                "limit": r.limit,
                "exact": None if r.hparam_map is None else r.hparam_map.exact,
                "map": None if r.hparam_map is None else r.hparam_map.to_mapping(),
            }
            for r in taxonomy.relations
        ],
    }


@reports_errors
def optimizers(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print rules, schedules and inclusions as JSON.")
    ] = False,
    taxonomy_file: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy",
            help="TOML/JSON file of [[inclusion]] tables to show instead of the paper's.",
        ),
    ] = None,
) -> None:
    """List the paper's six update rules (method.md Table 1), their hyperparameters with
    defaults and valid ranges, the learning-rate schedules, and the inclusion relations
    with the hyperparameter map that realises each.

    Example: optcmp optimizers --json
    """
    taxonomy = default_taxonomy() if taxonomy_file is None else Taxonomy.from_file(taxonomy_file)
    if json_out:
        print_json(optimizers_payload(taxonomy))
        return

    rules = Table(title="Update rules (method.md Table 1; g = gradient, t from 0)")
    for col in ("optimizer", "hyperparameter", "symbol", "default", "valid", "update"):
        rules.add_column(col, overflow="fold")
    for f in FAMILY_SPECS.values():
        for i, h in enumerate(f.hparams):
            rules.add_row(
                f.title if i == 0 else "",
                h.name,
                h.symbol,
                f"{h.default:g}",
                h.interval,
                f.update_rule if i == 0 else "",
                end_section=i == len(f.hparams) - 1,
            )
    console.print(rules)

    sched = Table(title="Learning-rate schedules (lr_t for base rate lr)")
    for col in ("schedule", "parameter", "default", "valid", "formula"):
        sched.add_column(col, overflow="fold")
    for s in SCHEDULE_SPECS.values():
        rows: tuple[HyperparamSpec | None, ...] = s.hparams or (None,)
        for i, sh in enumerate(rows):
            sched.add_row(
                s.kind.value if i == 0 else "",
                "-" if sh is None else sh.name,
                "-" if sh is None else f"{sh.default:g}",
                "-" if sh is None else sh.interval,
                s.formula if i == 0 else "",
                end_section=i == len(rows) - 1,
            )
    console.print(sched)

    inc = Table(title="Inclusions (special ⊆ general)")
    for col in ("special", "general", "kind", "hyperparameter map"):
        inc.add_column(col, overflow="fold")
    for r in taxonomy.relations:
        if r.hparam_map is None:
            inc.add_row(r.special, r.general, "-", r.limit or "-")
        else:
            kind = "exact" if r.hparam_map.exact else "limit"
            inc.add_row(r.special, r.general, kind, r.hparam_map.describe())
    console.print(inc)
