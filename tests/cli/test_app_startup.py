"""The CLI's start-up and help: `optcmp --help`/`--version` import no heavy module, no
command's or subcommand's `--help` imports a heavy library, the listing's one-line help
is each command's own, and every help text renders at 80 columns without a line over 80
characters or a split choice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from optcmp_cli.app import COMMANDS, app, help_invocations, load_command, short_help

runner = CliRunner()
HEAVY = ("xarray", "matplotlib", "optcmp_data", "optcmp_analysis", "numpy")


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_top_level_help_and_version_import_nothing_heavy(flag: str) -> None:
    code = (
        "import sys\n"
        "from optcmp_cli.app import app\n"
        "try:\n"
        f"    app([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listing_help_is_the_commands_own_first_sentence(name: str) -> None:
    command = load_command(name)
    own = " ".join((command.help or "").split("\n\n")[0].split())
    assert short_help(name)
    assert own.startswith(short_help(name))


@pytest.mark.parametrize("args", help_invocations(), ids=" ".join)
def test_help_fits_80_columns_and_keeps_every_choice_whole(args: list[str]) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, result.output
    # Choices are shown as one metavar <a|b|c>: it must open and close on one line (a
    # choice list broken across lines splits a choice in two).
    for line in lines:
        bare = line.replace(">=", "").replace("<=", "")
        assert bare.count("<") == bare.count(">"), f"metavar split in {args}: {line!r}"
    for line in lines:
        for word in line.split():
            assert not word.endswith("-") or word.startswith("-"), f"word split: {line!r}"


def test_a_command_registered_the_usual_way_is_listed_and_runs() -> None:
    def zz_extra_test() -> None:
        """A command added with app.command."""
        print("ran")

    app.command("zz-extra-test")(zz_extra_test)
    try:
        assert "zz-extra-test" in runner.invoke(app, ["--help"]).output
        result = runner.invoke(app, ["zz-extra-test"])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "ran"
    finally:
        app.registered_commands.pop()


# What no `--help` may import: each costs from a tenth of a second (pandas) to seconds
# (torch), and issue 22 asks for every help in under 0.5 s. The commands import them in
# their bodies; their option declarations use the light names of optcmp_analysis
# (_enums) and optcmp_data (lazy package roots). benchmarks/help_speed.py times them.
HELP_FORBIDDEN = ("xarray", "pandas", "scipy", "matplotlib", "torch", "optcmp")


def test_no_help_imports_a_heavy_library() -> None:
    # One interpreter runs every help in turn; a heavy module is charged to the first
    # help after which it is in sys.modules (the helps before it loaded nothing heavy).
    invocations = help_invocations()
    code = (
        "import json, sys\n"
        "from optcmp_cli.app import app\n"
        "loaded = {}\n"
        f"for args in {invocations!r}:\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"    for m in {HELP_FORBIDDEN!r}:\n"
        "        if m in sys.modules and m not in loaded:\n"
        "            loaded[m] = ' '.join(args)\n"
        "print(json.dumps(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {}
