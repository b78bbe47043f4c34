"""The optcmp command line: a Typer app, the only layer that prints.

Dependency rule: typer, rich, matplotlib, optcmp_data, optcmp_analysis. The simulation
package `optcmp` (torch) is imported lazily, only inside commands that train, so every
other command works without torch installed.

Start-up time: `optcmp --help` and `--version` import only typer. Each command's module
is imported when that command runs or its own help is asked for; its top-level imports
name only light things (typer, rich, the options' enums and defaults of optcmp_analysis,
optcmp_data's lazy package root), and the analyses, the archive, numpy, xarray and
matplotlib are imported inside the command bodies, so no `--help` loads them
(tests/cli/test_app_startup.py; benchmarks/help_speed.py times every help). The
top-level listing reads each command's one-line help from its module's source (the first
sentence of the command function's docstring), so the text has one source.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click as click  # typer vendors its own click: its types, not the package's
from typer.core import TyperCommand, TyperGroup

__all__ = ["COMMANDS", "app", "help_invocations", "main"]


def _never_break_on_hyphens() -> None:
    """Help text is wrapped by click's TextWrapper, which breaks words at hyphens
    ("byte-" / "identical", "final-" / "train-loss"); wrap at spaces only. click imports
    the wrapper class when it wraps, so replacing it here covers every help text."""
    from typer._click import _textwrap

    base = _textwrap.TextWrapper

    class Wrapper(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("break_on_hyphens", False)
            super().__init__(*args, **kwargs)

    if not getattr(base, "optcmp_no_hyphen_breaks", False):
        Wrapper.optcmp_no_hyphen_breaks = True
        _textwrap.TextWrapper = Wrapper  # type: ignore[misc]


_never_break_on_hyphens()

#: Command name -> (module of optcmp_cli, attribute): a function (a command) or a Typer
#: app (a group of subcommands). The order is the order of `optcmp --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("_info", "info"),
    "workloads": ("_listings", "workloads"),
    "spaces": ("_listings", "spaces"),
    "optimizers": ("_optimizers", "optimizers_app"),
    "run": ("_run", "run"),
    "demo": ("_demo", "demo"),
    "score": ("_score", "score"),
    "plan": ("_plan", "plan"),
    "export": ("_import", "export"),
    "plot": ("_plot_command", "plot"),
    "report": ("_report_command", "report"),
    "import": ("_import", "import_app"),
    "analyze": ("_analyze_app", "analyze_app"),
}

# Help of the groups, given here so that `optcmp --help` reads their first sentence
# without importing them (their Typer apps are built in their modules). "{commands}"
# stands for the group's commands, named when the group is loaded.
_GROUP_HELP = {
    "optimizers": (
        "List the registered update rules (the paper's six, AdamW, NAdamW, plug-ins) with "
        "their hyperparameters, schedules and inclusions; check a declared inclusion with "
        "`check-inclusion`.\n\nExample: optcmp optimizers --json"
    ),
    "import": (
        "Import trials optcmp did not run (DeepOBS, AlgoPerf, tables of runs, Optuna "
        "studies, MLflow runs) as optcmp archives.\n\n"
        "Example: optcmp import deepobs deepobs-baselines --out deepobs.nc"
    ),
    "analyze": (
        "Statistics of a stored archive, one command per analysis; no torch needed.\n\n"
        "Analyses: {commands}.\n\n"
        "Example: optcmp analyze budget runs/study --json"
    ),
}


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split("\n\n")[0].split())
    m = re.match(r"(.+?\.)(\s|$)", flat)
    return m.group(1) if m else flat


@functools.cache
def short_help(name: str) -> str:
    """The one-line help of command `name`, read from its module's source (no import)."""
    if name in _GROUP_HELP:
        return _first_sentence(_GROUP_HELP[name])
    module, attr = COMMANDS[name]
    source = Path(__file__).with_name(f"{module}.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            return _first_sentence(ast.get_docstring(node) or "")
    return ""


def _plain(command: click.Command) -> click.Command:
    """Help without rich markup: click's formatter rewraps paragraphs at the terminal's
    width, never splits a word, and shows brackets in help texts as they are written."""
    command.rich_markup_mode = None  # type: ignore[attr-defined]
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            _plain(sub)
    return command


def load_command(name: str) -> click.Command:
    """The real click command `name` (imports its module)."""
    module, attr = COMMANDS[name]
    target: Any = getattr(importlib.import_module(f"optcmp_cli.{module}"), attr)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        help = _GROUP_HELP.get(name, group.help) or ""
        group.help = help.replace("{commands}", ", ".join(group.commands))
        return _plain(group)
    single = typer.Typer(add_completion=False)
    single.command(name)(target)
    command = typer.main.get_command(single)
    command.name = name
    return _plain(command)


class _LazyGroup(TyperGroup):
    """Commands imported only when resolved to run (or for their own help); the
    top-level listing shows stubs that carry the one-line help."""

    _resolving = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        # Commands registered the usual way (app.command) still work, after the table's.
        return [*COMMANDS, *(n for n in self.commands if n not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        if self._resolving:
            return load_command(cmd_name)
        return TyperCommand(cmd_name, help=short_help(cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        self._resolving = True
        try:
            return super().resolve_command(ctx, args)
        finally:
            self._resolving = False


app = typer.Typer(
    name="optcmp",
    cls=_LazyGroup,
    help=(
        "Compare training optimizers honestly: tune each on its own search space with "
        "quasi-random search, store every trial, and draw conclusions from the stored "
        "archives with proper statistics (Choi et al. 2019).\n\n"
        "Example: optcmp demo --out optcmp-demo  (a real study and its report)"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def help_invocations() -> list[list[str]]:
    """The arguments of every help of the command tree: the top level, each command and
    each subcommand of a group (asked of the group: some build their commands lazily)."""
    out: list[list[str]] = [["--help"]]
    for name in COMMANDS:
        out.append([name, "--help"])
        command = load_command(name)
        if isinstance(command, TyperGroup):
            for sub in command.list_commands(click.Context(command)):
                out.append([name, sub, "--help"])
    return out


def _version(value: bool) -> None:
    if value:
        # importlib.metadata directly: optcmp_data's package import costs half a second.
        from importlib import metadata

        try:
            version = metadata.version("optcmp")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
        typer.echo(f"optcmp {version}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Compare training optimizers honestly (see `optcmp COMMAND --help`)."""


def main() -> None:
    app()
