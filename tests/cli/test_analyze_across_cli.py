"""`optcmp analyze aggregate|profiles`: tables, the JSON contract, seeds, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive
from tests.cli.helpers import error_line, json_records

runner = CliRunner()
COMMANDS = ("aggregate", "profiles")
FAST: dict[str, list[str]] = {"aggregate": ["--n-boot", "100"], "profiles": []}


@pytest.fixture(scope="module")
def across_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("across") / "a.nc"
    ds = synthetic_archive(
        workloads=3, n_trials=8, diverged_fraction=0.2, ragged=True, planted={"adam": -0.05}, seed=4
    )
    write_archive(ds, path)
    return path


@pytest.fixture(scope="module")
def nan_target_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dead") / "dead.nc"
    ds = synthetic_archive(n_trials=3, diverged_fraction=1.0, seed=1)
    ds["valid_target"][:] = float("nan")
    write_archive(ds, path)
    return path


def _args(command: str, path: Path) -> list[str]:
    return ["analyze", command, str(path), *FAST[command]]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_and_documents_keys(command: str) -> None:
    result = runner.invoke(app, ["analyze", command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "optimizer" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_json_contract(across_path: Path, command: str) -> None:
    records = json_records(_args(command, across_path))
    assert records
    for record in records:
        assert {"record", "optimizer", "value"} <= set(record)
        for value in record.values():
            assert not isinstance(value, dict | list)


def test_aggregate_records_seed_and_options(across_path: Path) -> None:
    args = [*_args("aggregate", across_path), "--budget", "2"]
    a = json_records([*args, "--seed", "3"])
    assert a == json_records([*args, "--seed", "3"])
    assert a != json_records([*args, "--seed", "4"])
    kinds = {r["record"] for r in a}
    assert kinds == {"aggregate", "improvement", "score"}
    agg = {(r["optimizer"], r["statistic"]): r for r in a if r["record"] == "aggregate"}
    assert agg[("adam", "iqm")]["value"] > agg[("sgd", "iqm")]["value"]
    assert all(r["n_workloads"] == 3 for r in agg.values())
    assert all(r["interval_note"] is None for r in agg.values())
    assert all(r["normalisation"] == "targets" for r in agg.values())
    ref = json_records(
        [*args, "--normalise", "minmax-compared", "--reference", "sgd", "-w", "w0", "-w", "w1"]
    )
    scores = [r for r in ref if r["record"] == "score"]
    assert {r["workload"] for r in scores} == {"w0", "w1"}
    assert all(abs(r["value"]) < 1e-9 for r in scores if r["optimizer"] == "sgd")


def test_profiles_records(across_path: Path) -> None:
    records = json_records(
        [*_args("profiles", across_path), "--measure", "steps", "--max-tau", "3"]
    )
    assert {r["record"] for r in records} == {"area", "profile", "time"}
    assert max(r["tau"] for r in records if r["record"] == "profile") == 3.0
    assert all(r["measure"] == "steps" for r in records)


@pytest.mark.parametrize("command", COMMANDS)
def test_tables(across_path: Path, command: str) -> None:
    result = runner.invoke(app, _args(command, across_path), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "adam" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_errors_are_one_line_and_exit_two(
    across_path: Path, nan_target_path: Path, tmp_path: Path, command: str
) -> None:
    assert "no such file" in error_line(_args(command, tmp_path / "nope.nc"))
    assert "unknown workload" in error_line([*_args(command, across_path), "-w", "w9"])
    message = error_line(_args(command, nan_target_path))
    assert "dead.nc" in message
    assert "normalised" in message or "no target" in message or "no workload" in message


def test_aggregate_without_intervals_says_why(across_path: Path) -> None:
    one = runner.invoke(app, [*_args("aggregate", across_path), "-w", "w0"], env={"COLUMNS": "250"})
    assert one.exit_code == 0, one.output
    assert "no intervals: 1 workload entered the aggregate, fewer than 3" in one.output
    assert "[" not in one.output.split("P(row")[0].split("\n", 2)[2]
    full = runner.invoke(app, _args("aggregate", across_path), env={"COLUMNS": "250"})
    assert "no intervals at budget k =" in full.output


def test_aggregate_reference_scores_file(across_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "ref.toml"
    path.write_text("[w0]\nzero = 0.5\none = 0.0\n[w1]\nzero = 0.5\none = 0.0\n")
    records = json_records([*_args("aggregate", across_path), "--reference-scores", str(path)])
    scores = {(r["workload"], r["optimizer"]): r for r in records if r["record"] == "score"}
    assert scores[("w0", "adam")]["zero_value"] == 0.5
    assert scores[("w0", "adam")]["value"] == pytest.approx(
        (scores[("w0", "adam")]["tuned_value"] - 0.5) / -0.5
    )
    assert not scores[("w2", "adam")]["included"]
    path.write_text("[w0]\nzero = 'a'\none = 0\n")
    message = error_line([*_args("aggregate", across_path), "--reference-scores", str(path)])
    assert "ref.toml" in message
    assert "zero must be a number" in message


def test_aggregate_option_errors(across_path: Path) -> None:
    minmax = ["--normalise", "minmax-compared"]
    assert "unknown reference" in error_line(
        [*_args("aggregate", across_path), *minmax, "--reference", "nope"]
    )
    assert "minmax-compared only" in error_line(
        [*_args("aggregate", across_path), "--reference", "sgd"]
    )
    assert "repeat axis" in error_line([*_args("aggregate", across_path), "--unit", "repeat"])
