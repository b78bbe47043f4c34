"""Helpers shared by the CLI's tests and the runner's (not a test module): the one-line
error contract of every command, the `--json` records of an analyze command, and a file
name that is not UTF-8."""

from __future__ import annotations

import json
import os
from typing import Any

from typer.testing import CliRunner, Result

from optcmp_cli.app import app

NON_UTF8 = os.fsdecode(b"out-\xff\xfe")
_runner = CliRunner()


def one_line_error(result: Result, *fragments: str) -> str:
    """The error line of a refused command: exit code 2, one line on stderr that starts
    with "error: " and holds every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


def error_line(args: list[str], *fragments: str) -> str:
    """Run `optcmp ARGS` and return its one-line error; nothing may reach stdout."""
    result = _runner.invoke(app, args)
    line = one_line_error(result, *fragments)
    assert result.stdout == "", result.stdout
    return line


def json_records(args: list[str]) -> list[dict[str, Any]]:
    """Run `optcmp analyze COMMAND ... --json` (args[1] is COMMAND) and return its records:
    exit code 0, one key, the command's name, holding a list."""
    result = _runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert isinstance(payload, dict)
    assert list(payload) == [args[1]]
    records = payload[args[1]]
    assert isinstance(records, list)
    return records
