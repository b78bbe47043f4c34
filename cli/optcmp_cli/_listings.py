"""`optcmp workloads` and `optcmp spaces`: what a study can run, as tables or JSON.

Dependency rule: typer, rich and optcmp_data at import time; the simulation package
`optcmp` (torch) is imported inside the commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from optcmp_cli._common import console, print_json, reports_errors, require_torch
from optcmp_cli.render.numbers import num

__all__ = ["spaces", "workloads"]


@reports_errors
def workloads(
    json_out: Annotated[bool, typer.Option("--json", help="Print the workloads as JSON.")] = False,
) -> None:
    """List the registered workloads: metric, direction, batch size, step budget, evaluation
    interval and validation target (descriptions with --json).

    Example: optcmp workloads --json
    """
    require_torch("workloads")
    from optcmp import discover_plugins
    from optcmp.workloads import WORKLOAD_SOURCES, WORKLOADS

    discover_plugins()  # installed plug-in packages register on first use
    specs = [factory().spec for factory in WORKLOADS.values()]
    if json_out:
        print_json(
            {
                "workloads": [
                    {
                        "name": s.name,
                        "description": s.description,
                        "metric": s.metric_name,
                        "direction": s.direction.value,
                        "batch_size": s.batch_size,
                        "step_budget": s.step_budget,
                        "eval_interval": s.eval_interval,
                        "valid_target": s.valid_target,
                        "test_target": s.test_target,
                        "needs_data_dir": s.needs_data_dir,
                        "supports_vmap": s.supports_vmap,
                        "provided_by": WORKLOAD_SOURCES[s.name],
                    }
                    for s in specs
                ]
            }
        )
        return
    table = Table(
        title="Workloads (defaults; study files may override batch, steps, eval)",
        caption="files: yes = reads its dataset from data_dir (docs/study-file.md)",
    )
    table.add_column("workload", no_wrap=True)
    table.add_column("metric (best)")
    for col in ("batch", "steps", "eval", "target"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("files", no_wrap=True)
    table.add_column("provided by")
    for s in specs:
        table.add_row(
            s.name,
            f"{s.metric_name} ({s.direction.value})",
            str(s.batch_size),
            str(s.step_budget),
            str(s.eval_interval),
            num(s.valid_target),
            "yes" if s.needs_data_dir else "no",
            WORKLOAD_SOURCES[s.name],
        )
    console.print(table)


@reports_errors
def spaces(
    preset_names: Annotated[
        list[str] | None,
        typer.Option("--preset", help="Preset to show (repeatable); default: all presets."),
    ] = None,
    optimizer_names: Annotated[
        list[str] | None,
        typer.Option("--optimizer", help="Optimizer family to show (repeatable); default: all."),
    ] = None,
    study: Annotated[
        Path | None,
        typer.Option("--study", help="Show the spaces of this study file instead of presets."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the spaces as JSON.")] = False,
) -> None:
    """List search spaces: each hyperparameter's range and scale, or its fixed value.

    Example: optcmp spaces --preset choi2019 --optimizer adam
    """
    require_torch("spaces")
    from optcmp import discover_plugins
    from optcmp.spaces import PRESETS, preset
    from optcmp.study import StudySpec
    from optcmp_data import FAMILY_SPECS, get_family

    if study is not None:
        spec = StudySpec.from_toml(study)
        chosen = [spec.space(o) for o in spec.optimizers]
        chosen = [s for s in chosen if not optimizer_names or s.family in optimizer_names]
    else:
        for name in optimizer_names or ():
            get_family(name)
        discover_plugins()
        for name in preset_names or ():
            if name not in PRESETS:
                preset(name, next(iter(FAMILY_SPECS)))  # raises, naming the closest preset
        families = optimizer_names or list(FAMILY_SPECS)
        # Families without a declared preset (torch.optim plug-ins) have no preset space.
        chosen = [
            preset(p, f)
            for p in (preset_names or PRESETS)
            for f in families
            if optimizer_names or p in get_family(f).presets
        ]
    if json_out:
        print_json({"spaces": [s.to_json() for s in chosen]})
        return
    console.print(
        "Bounds are natural values; one_minus_log searches 1 - x on a log scale.", markup=False
    )
    for space in chosen:
        console.print(_space_table(space))


def _space_table(space: Any) -> Table:
    # `space` is an optcmp.spaces.SearchSpace; not imported here, so the CLI stays
    # importable without torch.
    table = Table(title=f"{space.name} · {space.family} · {space.schedule.value}")
    table.add_column("hparam", no_wrap=True)
    table.add_column("low", justify="right")
    table.add_column("high", justify="right")
    table.add_column("scale", no_wrap=True)
    searched: dict[str, Any] = {r.name: r for r in space.searched}
    fixed = space.fixed_values()
    for name in space.names:
        if name in searched:
            r = searched[name]
            table.add_row(name, num(r.low), num(r.high), r.scale.value)
        else:
            table.add_row(name, num(fixed[name]), "", "fixed")
    return table
