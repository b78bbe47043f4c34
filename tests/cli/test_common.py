"""CLI plumbing: an error of our own type is one line on stderr and exit code 2, also when
it is raised under a progress display; `print_json` prints only JSON, NaN as null."""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from rich.progress import BarColumn, TextColumn
from typer.testing import CliRunner

from optcmp_cli._common import print_json, progress_on_stderr, reports_errors
from optcmp_cli.app import app
from optcmp_data import ConfigError

runner = CliRunner()


def _app(body: Callable[[], None]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @reports_errors
    def command() -> None:
        body()

    return app


def _under_progress(fail: bool, transient: bool) -> Callable[[], None]:
    def body() -> None:
        with progress_on_stderr(
            TextColumn("{task.description}"), BarColumn(), transient=transient
        ) as progress:
            task = progress.add_task("trials", total=4)
            progress.update(task, advance=2)
            if fail:
                raise ConfigError("study.json: key 'seed': changed")

    return body


@pytest.mark.parametrize("transient", [False, True])
def test_an_error_under_a_progress_display_is_the_only_line(transient: bool) -> None:
    result = runner.invoke(_app(_under_progress(fail=True, transient=transient)))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == "error: study.json: key 'seed': changed\n"


def test_a_finished_display_stays_unless_transient() -> None:
    kept = runner.invoke(_app(_under_progress(fail=False, transient=False)))
    assert kept.exit_code == 0, kept.output
    assert "trials" in kept.stderr
    gone = runner.invoke(_app(_under_progress(fail=False, transient=True)))
    assert gone.exit_code == 0, gone.output
    assert "trials" not in gone.stderr


def test_print_json_prints_only_json_with_null_for_nan() -> None:
    payload = {"a": [1.5, math.nan, np.float64(np.inf)], "b": (np.int64(3), None)}
    result = runner.invoke(_app(lambda: print_json(payload)))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"a": [1.5, None, None], "b": [3, None]}
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ["run", "study.toml", "--out", "out"],
        ["demo", "--out", "out"],
        ["workloads"],
        ["spaces"],
    ],
)
def test_training_commands_without_torch_are_one_line(
    args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Where torch is installed, pretend it is not (tests_notorch runs this for real).
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *rest: Any) -> Any:
        return None if name == "torch" else real_find_spec(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "needs torch" in lines[0]
    assert "optcmp[train]" in lines[0]
    assert not (tmp_path / "out").exists()
