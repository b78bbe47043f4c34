"""`optcmp workloads` and `optcmp spaces`: tables, JSON that matches the library, errors.

These commands list what the simulation layer offers, so they need torch (skipped in the
torch-free environment, where the commands are not usable either).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import FAMILY_SPECS, PAPER_FAMILIES

pytest.importorskip("torch")

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["workloads", "spaces"])
def test_help_has_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_workloads_json_lists_every_registered_workload() -> None:
    from optcmp.workloads import WORKLOADS

    result = runner.invoke(app, ["workloads", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["workloads"]
    assert [r["name"] for r in rows] == list(WORKLOADS)
    for row in rows:
        spec = WORKLOADS[row["name"]]().spec
        assert row["step_budget"] == spec.step_budget
        assert row["direction"] == spec.direction.value
        assert row["needs_data_dir"] == spec.needs_data_dir


def test_workloads_table_names_them() -> None:
    result = runner.invoke(app, ["workloads"])
    assert result.exit_code == 0
    assert "digits_mlp" in result.output
    assert "char_transformer" in result.output


def test_spaces_json_matches_the_presets() -> None:
    from optcmp.spaces import PRESETS, preset

    result = runner.invoke(app, ["spaces", "--json"])
    assert result.exit_code == 0
    spaces = json.loads(result.stdout)["spaces"]
    assert len(spaces) == len(PRESETS) * len(FAMILY_SPECS)
    assert spaces[0] == preset(PRESETS[0], next(iter(FAMILY_SPECS))).to_json()

    result = runner.invoke(app, ["spaces", "--preset", "lr-only", "--optimizer", "adam", "--json"])
    (only,) = json.loads(result.stdout)["spaces"]
    assert only["fixed"] == {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def test_spaces_of_a_study_file() -> None:
    example = ROOT / "examples" / "digits_quick.toml"
    result = runner.invoke(app, ["spaces", "--study", str(example), "--json"])
    assert result.exit_code == 0
    spaces = json.loads(result.stdout)["spaces"]
    assert [s["family"] for s in spaces] == list(PAPER_FAMILIES)
    result = runner.invoke(app, ["spaces", "--study", str(example)])
    assert "choi2019-narrow-eps" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spaces", "--optimizer", "adm"], "did you mean 'adam'"),
        (["spaces", "--preset", "choi"], "did you mean 'choi2019'"),
        (["spaces", "--study", "absent.toml"], "cannot read study file"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.strip().count("\n") == 0
