"""`optcmp import NAME`: other people's trials into the archive format, one command per
entry of the importers' registry (`optcmp_data.importers.IMPORTERS`), built from the
options the entry declares; `optcmp export`: an archive as a tidy table.

Dependency rule: typer, rich and optcmp_data (no torch). Each import command parses,
calls one importer, writes the archive atomically (`write_archive`), and reports. The
commands are built when `optcmp import` is resolved, from the registry as it is then, so
an importer registered with `register_importer` gets its command without a line here;
building one imports no importer module (they load when an import runs).
"""

from __future__ import annotations

import enum
import functools
import inspect
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer import _click as click  # typer vendors its own click: its types, not the package's
from typer.core import TyperGroup

from optcmp_cli._common import (
    check_archive_out,
    check_export_out,
    console,
    err_console,
    print_json,
    reports_errors,
)
from optcmp_cli.render.escape import visible
from optcmp_data import ConfigError
from optcmp_data.importers import IMPORTERS, TABLE_FORMATS, Importer, ImportOption, OptionKind

if TYPE_CHECKING:
    from optcmp_data.importers import ImportResult

__all__ = ["export", "import_app", "import_command"]

_OUT_HELP = "Archive file to write (.nc), atomically."
_SKIP = Annotated[
    bool,
    typer.Option(
        "--skip-bad",
        help="Skip malformed input files with one warning each (default: stop at the first).",
    ),
]
_JSON = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]


def _command_line() -> str:
    """The command as typed, for the archive's provenance."""
    return shlex.join(["optcmp", *sys.argv[1:]])


def _report(result: ImportResult, out: Path, json_out: bool) -> None:
    from optcmp_data import archive_caveats

    for warning in result.warnings:
        err_console.print(f"warning: {visible(warning)}", markup=False)
    ds = result.dataset
    workloads = [str(w) for w in ds["workload"].values]
    optimizers = [str(o) for o in ds["optimizer"].values]
    caveats = archive_caveats(ds)
    summary = {
        "out": str(out),
        "files_read": result.files_read,
        "skipped": result.skipped,
        "workloads": workloads,
        "optimizers": optimizers,
        "sizes": {str(k): int(v) for k, v in ds.sizes.items()},
        "caveats": caveats,
        "warnings": list(result.warnings),
    }
    if json_out:
        print_json({"import": summary})
    else:
        console.print(
            f"wrote {out}: {len(workloads)} workloads, {len(optimizers)} optimizers, "
            f"{result.files_read} files read",
            markup=False,
            soft_wrap=True,
        )
        for caveat in caveats:
            console.print(f"caveat: {visible(caveat)}", markup=False, soft_wrap=True)
    if result.skipped:
        err_console.print(f"skipped {result.skipped} bad input(s)", markup=False)


# --- commands built from the registry -------------------------------------------------

_TYPES: dict[OptionKind, Any] = {
    OptionKind.PATH: Path,
    OptionKind.TEXT: str,
    OptionKind.INT: int,
    OptionKind.FLOAT: float,
    OptionKind.FLAG: bool,
    OptionKind.PAIRS: list[str],
}


def _parameter(opt: ImportOption) -> inspect.Parameter:
    """The typer parameter of `opt`: its type, help, option name and default."""
    kind: Any = _TYPES.get(opt.kind)
    default: Any = opt.default
    if opt.kind is OptionKind.CHOICE:
        # typer shows an Enum as <a|b> and checks the value; the reader gets its str.
        choices: Any = enum.Enum(opt.name, [(c, c) for c in opt.choices])  # type: ignore[misc]
        kind = choices
        default = None if opt.default is None else choices(opt.default)
    elif opt.kind is OptionKind.FLAG:
        default = False
    if opt.required:
        default = inspect.Parameter.empty
    elif default is None:
        kind = kind | None
    metavar = opt.metavar or None
    info = (
        typer.Argument(help=opt.help, metavar=metavar)
        if opt.argument
        else typer.Option(opt.option, help=opt.help, metavar=metavar)
    )
    return inspect.Parameter(
        opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info]
    )


def _parameters(imp: Importer) -> list[inspect.Parameter]:
    """The command's parameters in the order of its help: the arguments, the required
    options, --out, the other options, --infer (with a draft), --skip-bad, --json."""

    def keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
        )

    if imp.draft is None:
        out = keyword(
            "out", Annotated[Path, typer.Option("--out", help=_OUT_HELP)], inspect.Parameter.empty
        )
    else:
        out = keyword(
            "out",
            Annotated[
                Path | None, typer.Option("--out", help=_OUT_HELP[:-1] + "; not with --infer.")
            ],
            None,
        )
    params = [
        *(_parameter(o) for o in imp.options if o.argument),
        *(_parameter(o) for o in imp.options if o.required and not o.argument),
        out,
        *(_parameter(o) for o in imp.options if not o.required),
    ]
    if imp.draft is not None:
        params.append(
            keyword("infer", Annotated[bool, typer.Option("--infer", help=imp.draft.help)], False)
        )
    params.append(keyword("skip_bad", _SKIP, False))
    params.append(keyword("json_out", _JSON, False))
    return params


def _pairs(items: list[str], option: str) -> dict[str, str]:
    """NAME=VALUE options as a dict; ConfigError naming the option for a malformed one."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{option} {item!r}: expected NAME=KEY")
        out[name.strip()] = value.strip()
    return out


def _value(opt: ImportOption, value: Any) -> Any:
    """A parsed option's value as the reader takes it."""
    if opt.kind is OptionKind.PAIRS:
        return _pairs(value or [], opt.option)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _draft(imp: Importer, values: dict[str, Any], out: Path | None, json_out: bool) -> None:
    """`--infer`: print the reader's draft mapping of the argument; import nothing."""
    assert imp.draft is not None
    others = [o for o in imp.options if not o.argument]
    if out is not None or any(values[o.name] not in (None, False, []) for o in others):
        drop = "/".join(["--out", *(o.option for o in others)])
        raise ConfigError(f"--infer prints a draft mapping and imports nothing: drop {drop}")
    (argument,) = (o for o in imp.options if o.argument)
    draft = imp.draft.load()(values[argument.name])
    if json_out:
        print_json({"mapping": draft})
    else:
        sys.stdout.write(draft)


def _run(imp: Importer, values: dict[str, Any]) -> None:
    """The body of `optcmp import NAME`: check --out, read, write atomically, report."""
    from optcmp_data import write_archive

    out: Path | None = values.pop("out")
    skip_bad: bool = values.pop("skip_bad")
    json_out: bool = values.pop("json_out")
    if values.pop("infer", False):
        _draft(imp, values, out, json_out)
        return
    if out is None:
        raise ConfigError("missing option --out (the archive to write), or give --infer")
    check_archive_out(out)
    args = [_value(o, values[o.name]) for o in imp.options if o.positional]
    kwargs = {o.name: _value(o, values[o.name]) for o in imp.options if not o.positional}
    result = imp.load()(*args, **kwargs, skip_bad=skip_bad, command=_command_line())
    write_archive(result.dataset, out)
    _report(result, out, json_out)


def _callback(imp: Importer) -> Callable[..., None]:
    """A function whose signature (Annotated typer parameters) declares `imp`'s command."""

    def command(**values: Any) -> None:
        _run(imp, values)

    params = _parameters(imp)
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = imp.help
    command.__name__ = command.__qualname__ = imp.name
    return reports_errors(command)


@functools.cache
def import_command(imp: Importer, /) -> click.Command:
    """The click command `optcmp import NAME` of registry entry `imp`."""
    single = typer.Typer(add_completion=False, rich_markup_mode=None)
    single.command(imp.name)(_callback(imp))
    command = typer.main.get_command(single)
    command.name = imp.name
    command.rich_markup_mode = None  # type: ignore[attr-defined]
    return command


class _ImportGroup(TyperGroup):
    """One subcommand per entry of the importers' registry, in its order, built when
    asked for (its help, or a run)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(IMPORTERS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        imp = IMPORTERS.get(cmd_name)
        return None if imp is None else import_command(imp)


import_app = typer.Typer(
    name="import",
    cls=_ImportGroup,
    help=(
        "Import trials as optcmp archives: "
        + "; ".join(f"{imp.name}: {imp.reads}" for imp in IMPORTERS.values())
        + ".\n\n"
        "Example: optcmp import deepobs deepobs-baselines --out deepobs.nc"
    ),
    no_args_is_help=True,
)


@reports_errors
def export(
    path: Annotated[Path, typer.Argument(help="Archive (.nc) or study directory.")],
    out: Annotated[Path, typer.Option("--out", help="Table file to write, atomically.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"One of {', '.join(TABLE_FORMATS)} (default: from the suffix of --out; "
            "parquet needs the parquet extra).",
        ),
    ] = None,
    json_out: _JSON = False,
) -> None:
    """Export an archive as a tidy table: one row per evaluation (workload, optimizer,
    trial, repeat axes, trial_seed, status, step, time, every metric, hp.NAME columns),
    plus OUT.meta.json with per-workload facts, spaces, taxonomy and attributes;
    `optcmp import table OUT` gives the archive back. An existing OUT is replaced only
    when it is an optcmp export (it has its sidecar).

    Example: optcmp export deepobs.nc --out deepobs.csv
    """
    from optcmp_data import open_archive
    from optcmp_data.importers import export_table, sidecar_path

    check_export_out(out, sidecar_path(out))
    archive = open_archive(path)
    table_path, side = export_table(archive, out, fmt=fmt)
    rows = int((archive["status"] != "missing").sum())
    if json_out:
        print_json({"export": {"out": str(table_path), "sidecar": str(side), "runs": rows}})
    else:
        console.print(f"wrote {table_path} and {side} ({rows} runs)", markup=False)
