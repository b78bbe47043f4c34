"""`optcmp analyze NAME` built from an analysis's registry entry and its CLI module.

Dependency rule: typer, the CLI's options and the light names of optcmp_analysis at
import; the analysis, the archive and numpy when the command runs.

The command's options are the analysis's options (`Analysis.option_specs()`, in field
order, each with its flag, help, default and bound), after `ARCHIVE` (and `OTHER`, where
the analysis compares two archives), `--json`, `--workload` and `--optimizer`, with
`--seed` after `--n-boot` where the analysis draws random numbers. It runs the analysis
as `optcmp plot` and `optcmp report` do (`Analysis.run(archive, options=..., rng=...)`)
and prints `{NAME: records}` with `--json`, else the CLI module's
`print_table(result, options, archive)`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from optcmp_analysis import OptionKind, OptionSpec
from optcmp_cli._common import about_archive, print_json, reports_errors, seeded_rng
from optcmp_cli._options import (
    ArchiveArg,
    JsonOpt,
    MarginsOpt,
    OptimizerOpt,
    SeedOpt,
    TestSeedOpt,
    WorkloadOpt,
    margin_option,
)
from optcmp_data import ConfigError

if TYPE_CHECKING:
    from optcmp_analysis import Analysis as Registered

__all__ = ["analyze_command"]

_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _option(spec: OptionSpec) -> inspect.Parameter:
    """The typer parameter of one option."""
    extra: dict[str, Any] = {} if spec.minimum is None else {"min": spec.minimum}
    kind = spec.kind
    default: Any = spec.default
    if kind is OptionKind.BOOL:
        flag = f"{spec.flag}/--no-{spec.flag[2:]}" if spec.default else spec.flag
        return inspect.Parameter(
            spec.name,
            _KEYWORD,
            default=default,
            annotation=Annotated[bool, typer.Option(flag, help=spec.help)],
        )
    if kind in (OptionKind.INTS, OptionKind.FLOATS, OptionKind.PROTOCOLS):
        # No bound per item: the analysis refuses a bad value in one line.
        item = {OptionKind.INTS: int, OptionKind.FLOATS: float, OptionKind.PROTOCOLS: str}[kind]
        annotation: Any = Annotated[
            list[item] | None,  # type: ignore[valid-type]
            typer.Option(spec.flag, help=spec.help),
        ]
        return inspect.Parameter(spec.name, _KEYWORD, default=None, annotation=annotation)
    if kind in (OptionKind.TAXONOMY, OptionKind.REFERENCE_SCORES):
        annotation = Annotated[Path | None, typer.Option(spec.flag, help=spec.help)]
        return inspect.Parameter(spec.name, _KEYWORD, default=None, annotation=annotation)
    if kind is OptionKind.MARGIN:
        annotation = Annotated[float | None, typer.Option(spec.flag, help=spec.help)]
        return inspect.Parameter(spec.name, _KEYWORD, default=None, annotation=annotation)
    base: Any = {
        OptionKind.INT: int,
        OptionKind.FLOAT: float,
        OptionKind.STR: str,
        OptionKind.ENUM: spec.enum,
    }[kind]
    if spec.optional:
        base = base | None
    annotation = Annotated[base, typer.Option(spec.flag, help=spec.help, **extra)]
    return inspect.Parameter(spec.name, _KEYWORD, default=default, annotation=annotation)


def _parameters(entry: Registered, module: Any) -> list[inspect.Parameter]:
    """The command's parameters, in the order of its help: the archive(s), --json, the
    subset options (no --optimizer where two archives are matched), the analysis's
    options with --seed after `module.SEED_AFTER` (default n_boot; the tests' seed where
    the analysis runs tests), then the CLI module's own `EXTRA_OPTIONS`."""
    params = [inspect.Parameter("archive", _KEYWORD, annotation=ArchiveArg)]
    if entry.second_archive:
        other = Annotated[
            Path | None,
            typer.Argument(help="A second archive: compare ARCHIVE (first) with it (second)."),
        ]
        params.append(inspect.Parameter("other", _KEYWORD, default=None, annotation=other))
    params += [
        inspect.Parameter("json_out", _KEYWORD, default=False, annotation=JsonOpt),
        inspect.Parameter("workload", _KEYWORD, default=None, annotation=WorkloadOpt),
    ]
    if not entry.second_archive:
        params.append(
            inspect.Parameter("optimizer", _KEYWORD, default=None, annotation=OptimizerOpt)
        )
    specs = entry.option_specs()
    tests = any(spec.flag == "--n-test-boot" for spec in specs)
    seed = inspect.Parameter(
        "seed", _KEYWORD, default=0, annotation=TestSeedOpt if tests else SeedOpt
    )
    after = getattr(module, "SEED_AFTER", "n_boot")
    seeded = not entry.randomised
    for spec in specs:
        params.append(_option(spec))
        if spec.kind is OptionKind.MARGIN:
            params.append(
                inspect.Parameter("margins", _KEYWORD, default=None, annotation=MarginsOpt)
            )
        if spec.name == after and not seeded:
            params.append(seed)
            seeded = True
    if not seeded:
        params.append(seed)
    for name, (annotation, default) in getattr(module, "EXTRA_OPTIONS", {}).items():
        params.append(inspect.Parameter(name, _KEYWORD, default=default, annotation=annotation))
    return params


def _options(entry: Registered, values: dict[str, Any]) -> Any:
    """The analysis's options object from the command's values (None: the default)."""
    given: dict[str, Any] = {}
    for spec in entry.option_specs():
        value = values[spec.name]
        if spec.kind is OptionKind.MARGIN:
            value = margin_option(value, values["margins"])
        elif spec.kind in (OptionKind.INTS, OptionKind.FLOATS):
            if not value:
                continue
            value = tuple(value)
        elif spec.kind is OptionKind.PROTOCOLS:
            if not value:
                continue
            if len(value) != 2:
                raise ConfigError(f"{spec.flag}: give it twice (two labels), not {len(value)}x")
            value = tuple(value)
        elif spec.kind is OptionKind.TAXONOMY and value is not None:
            from optcmp_data import Taxonomy

            value = Taxonomy.from_file(value)
        elif spec.kind is OptionKind.REFERENCE_SCORES and value is not None:
            from optcmp_analysis import ReferenceScores

            value = ReferenceScores.from_toml(value)
        given[spec.name] = value
    return entry.options(**given)


def analyze_command(entry: Registered, module: Any) -> Callable[..., None]:
    """The `optcmp analyze NAME` command of registry entry `entry` and its CLI module:
    its help is `module.HELP` (default the entry's summary); it prints `{NAME: records}`
    with --json, else `module.print_table(result, options, archive, **extra)` (`extra`: the
    values of the module's `EXTRA_OPTIONS`)."""
    params = _parameters(entry, module)
    extra = list(getattr(module, "EXTRA_OPTIONS", {}))

    def command(**values: Any) -> None:
        from optcmp_analysis import restrict
        from optcmp_data import open_archive

        path: Path = values["archive"]
        workloads = values["workload"] or None
        archive = open_archive(path)
        with about_archive(path):
            ds = restrict(archive, workloads=workloads, optimizers=values.get("optimizer") or None)
            second = None
            if values.get("other") is not None:
                second = restrict(open_archive(values["other"]), workloads=workloads)
            options = _options(entry, values)
            rng = seeded_rng(values["seed"]) if entry.randomised else None
            result = entry.run(ds, second, options=options, rng=rng)
        extras = {name: values[name] for name in extra}
        if values["json_out"]:
            records = getattr(module, "records", None)
            print_json(
                {entry.name: result.to_json() if records is None else records(result, **extras)}
            )
        else:
            module.print_table(result, options, ds, **extras)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = getattr(module, "HELP", entry.summary)
    command.__name__ = entry.name.replace("-", "_")
    return reports_errors(command)
