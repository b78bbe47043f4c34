"""`optcmp optimizers`: the registered update rules, their hyperparameters, defaults and
inclusions; `optcmp optimizers check-inclusion`: a declared inclusion, checked numerically.

Dependency rule: optcmp_data at import time (no torch): everything listed is data from
optcmp_data's family, schedule and taxonomy registries. Where torch is installed, the
listing first discovers installed plug-in packages (entry points, through `optcmp`);
check-inclusion trains and needs torch.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from optcmp_cli._common import console, print_json, reports_errors, require_torch
from optcmp_data import (
    FAMILY_SPECS,
    SCHEDULE_SPECS,
    ConfigError,
    HyperparamSpec,
    Taxonomy,
    default_taxonomy,
)

__all__ = ["optimizers", "optimizers_app", "optimizers_payload"]

optimizers_app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help=(
        "List the registered update rules (the paper's six, AdamW, NAdamW, plug-ins) with "
        "their hyperparameters, schedules and inclusions; check a declared inclusion with "
        "`check-inclusion`.\n\nExample: optcmp optimizers --json"
    ),
)


def _discover_plugins() -> None:
    """Installed plug-in packages register on first use; loading them needs torch, which
    is imported only when some package declares an `optcmp.optimizers` entry point."""
    if not metadata.entry_points(group="optcmp.optimizers"):
        return
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            "installed optimizer plug-ins need torch to load: pip install 'optcmp[train]'"
        )
    from optcmp import discover_plugins

    discover_plugins()


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
                "provided_by": f.source,
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


@optimizers_app.callback()
@reports_errors
def optimizers(
    ctx: typer.Context,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print rules, schedules and inclusions as JSON.")
    ] = False,
    taxonomy_file: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy",
            help="TOML/JSON file of \\[\\[inclusion]] tables to show instead of the registry's.",
        ),
    ] = None,
) -> None:
    """List the registered update rules (the paper's six of method.md Table 1, AdamW,
    NAdamW and installed plug-ins, with the distribution providing each), their
    hyperparameters with defaults and valid ranges, the learning-rate schedules, and the
    inclusion relations with the hyperparameter map that realises each.

    Example: optcmp optimizers --json
    """
    if ctx.invoked_subcommand is not None:
        return
    _discover_plugins()
    taxonomy = default_taxonomy() if taxonomy_file is None else Taxonomy.from_file(taxonomy_file)
    if json_out:
        print_json(optimizers_payload(taxonomy))
        return

    rules = Table(title="Update rules (method.md Table 1 and more; g = gradient, t from 0)")
    for col in ("optimizer", "provided by", "hyperparameter", "symbol", "default", "valid"):
        rules.add_column(col, overflow="fold")
    rules.add_column("update", overflow="fold")
    for f in FAMILY_SPECS.values():
        for i, h in enumerate(f.hparams):
            rules.add_row(
                f.title if i == 0 else "",
                f.source if i == 0 else "",
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


@optimizers_app.command("check-inclusion")
@reports_errors
def check_inclusion_command(
    special: Annotated[str, typer.Argument(help="The special optimizer (e.g. adam).")],
    general: Annotated[str, typer.Argument(help="The general optimizer (e.g. adamw).")],
    workload: Annotated[
        str | None,
        typer.Option(
            "--workload", help="Check on this workload's model and data instead of a random MLP."
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="Training steps of both rules.")] = 200,
    tol: Annotated[
        float | None,
        typer.Option(
            "--tol",
            help="Largest relative deviation that passes (default 1e-10 exact, 1e-4 limits).",
        ),
    ] = None,
    taxonomy_file: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy",
            help="TOML/JSON file of \\[\\[inclusion]] tables (with maps), not the registry's.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check a declared inclusion SPECIAL ⊆ GENERAL numerically.

    Both rules train the same model on the same minibatches (float64), the general one
    with its hyperparameters and learning rate mapped through the declared limit; prints
    the largest relative deviation of the parameters and pass/fail. Exit code 1 when the
    check fails.

    Example: optcmp optimizers check-inclusion adam adamw --workload digits_mlp
    """
    require_torch("optimizers check-inclusion")
    from optcmp import discover_plugins
    from optcmp.optim import check_inclusion, find_relation

    discover_plugins()
    if tol is not None and not tol >= 0:
        raise ConfigError(f"--tol {tol}: must be a number >= 0")
    taxonomy = default_taxonomy() if taxonomy_file is None else Taxonomy.from_file(taxonomy_file)
    result = check_inclusion(
        find_relation(special, general, taxonomy), steps=steps, workload=workload, tol=tol
    )
    if json_out:
        print_json(result.to_json())
    else:
        verdict = "PASS" if result.passed else "FAIL"
        console.print(
            f"{verdict} {result.special} ⊆ {result.general} on {result.problem}, "
            f"{result.steps} steps ({result.schedule}): max relative deviation "
            f"{result.max_deviation:.3g} (step {result.worst_step}), tolerance {result.tol:g}; "
            f"special moved {result.moved:.3g}",
            markup=False,
            soft_wrap=True,
        )
        console.print(f"map: {result.map}", markup=False, soft_wrap=True)
    if not result.passed:
        raise typer.Exit(1)
