"""`optcmp analyze targets|boundary|protocol`: tables, the JSON contract, seeds, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optcmp_analysis import BUDGET_RULE
from optcmp_cli.app import app
from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive
from tests.cli.helpers import error_line, json_records

runner = CliRunner()
COMMANDS = ("targets", "boundary", "protocol")
FAST: dict[str, list[str]] = {"targets": ["--n-test-boot", "100"], "boundary": [], "protocol": []}


@pytest.fixture(scope="module")
def grouped_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One archive holding two protocols: optimizers "*_lr" searched on the space "lr-only"."""
    names = ["adam", "sgd", "adam_lr", "sgd_lr"]
    ds = synthetic_archive(
        optimizers=names,
        families={n: n.removesuffix("_lr") for n in names},
        n_trials=8,
        planted={"adam_lr": 0.1},
        noise=0.001,
        seed=2,
    )
    space = np.where(
        np.char.endswith(ds["optimizer"].values.astype(str), "_lr"), "lr-only", "choi2019"
    )
    ds = ds.assign(space_name=ds["space_name"].copy(data=space[None, :].copy()))
    path = tmp_path_factory.mktemp("grouped") / "g.nc"
    write_archive(ds, path)
    return path


def _args(command: str, path: Path) -> list[str]:
    """The command on one archive (protocol: the archive against itself)."""
    extra = [str(path)] if command == "protocol" else []
    return ["analyze", command, str(path), *extra, *FAST[command]]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example_and_documents_keys(command: str) -> None:
    result = runner.invoke(app, ["analyze", command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "workload" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_json_contract(archive_path: Path, command: str) -> None:
    records = json_records(_args(command, archive_path))
    assert records
    for record in records:
        assert {"record", "workload", "metric", "split"} <= set(record)
        for value in record.values():
            assert not isinstance(value, dict | list)


def test_targets_keys_seed_and_options(tested_archive_path: Path) -> None:
    base = ["analyze", "targets", str(tested_archive_path), "--n-test-boot", "150"]
    args = [*base, "--step-fraction", "0.5", "--step-fraction", "1", "--n-targets", "2"]
    a = json_records([*args, "--seed", "3"])
    # At the default budget (a quarter of the trials) the tests resample, per seed.
    assert a == json_records([*args, "--seed", "3"])
    assert all(r["tested"] for r in a if r["record"] == "inclusion")
    assert {r["budget_rule"] for r in a if r["record"] == "inclusion"} == {BUDGET_RULE}
    sampled = json_records([*args, "--budget", "3", "--seed", "3"])
    assert sampled == json_records([*args, "--budget", "3", "--seed", "3"])
    assert sampled != json_records([*args, "--budget", "3", "--seed", "4"])
    assert {r["k"] for r in sampled if r["record"] == "inclusion"} == {3}
    tuned = [r for r in a if r["record"] == "tuned"]
    # 2 workloads x 6 optimizers x (2 targets x 2 fractions + 2 finals)
    assert len(tuned) == 2 * 6 * 6
    assert {r["fraction"] for r in tuned} == {0.5, 1.0}
    for r in tuned:
        assert {"optimizer", "kind", "target", "value", "rank", "kendall_tau"} <= set(r)
    explicit = json_records([*base, "--target", "0.3", "-w", "w1", "-o", "sgd", "-o", "momentum"])
    assert {r["target_value"] for r in explicit if r["kind"] == "steps"} == {0.3}
    assert {r["workload"] for r in explicit} == {"w1"}
    assert {(r["special"], r["general"]) for r in explicit if r["record"] == "inclusion"} == {
        ("sgd", "momentum")
    }


def test_boundary_points_and_fraction(archive_path: Path) -> None:
    edges = json_records(
        ["analyze", "boundary", str(archive_path), "--fraction", "0.2", "--top", "5"]
    )
    assert {r["record"] for r in edges} == {"edge"}
    assert all(r["top"] == 5 for r in edges)
    with_points = json_records(["analyze", "boundary", str(archive_path), "--points"])
    points = [r for r in with_points if r["record"] == "point"]
    assert points
    assert {"trial", "hparam", "hparam_value", "position", "value"} <= set(points[0])


def test_protocol_within_one_archive(grouped_path: Path) -> None:
    records = json_records(
        [
            "analyze",
            "protocol",
            str(grouped_path),
            "--protocol",
            "lr-only",
            "--protocol",
            "choi2019",
        ]
    )
    cells = [r for r in records if r["record"] == "cell"]
    assert {(r["optimizer"], r["label_first"], r["label_second"]) for r in cells} == {
        ("adam", "adam_lr", "adam"),
        ("sgd", "sgd_lr", "sgd"),
    }
    flips = [r for r in records if r["record"] == "flip"]
    assert [(f["optimizer"], f["other"]) for f in flips] == [("sgd", "adam")]
    assert isinstance(flips[0]["gap_first"], float)
    assert flips[0]["gap_first"] > 0.05


@pytest.mark.parametrize("command", COMMANDS)
def test_tables(archive_path: Path, command: str) -> None:
    result = runner.invoke(app, _args(command, archive_path), env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "adam" in result.output
    assert "w1" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_errors_are_one_line_and_exit_two(
    archive_path: Path, dead_path: Path, tmp_path: Path, command: str
) -> None:
    assert "no such file" in error_line(_args(command, tmp_path / "nope.nc"))
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf", encoding="utf-8")
    assert "junk.nc" in error_line(_args(command, junk))
    assert "unknown workload" in error_line([*_args(command, archive_path), "-w", "w9"])
    if command != "protocol":
        message = error_line([*_args(command, archive_path), "--optimizer", "adma"])
        assert "unknown optimizer 'adma'" in message
    assert "no usable trial" in error_line(_args(command, dead_path))


def test_protocol_errors(archive_path: Path, grouped_path: Path) -> None:
    # One archive without --protocol: its two search spaces, so it must have two.
    assert "has 1 search spaces (synthetic); it needs exactly two" in error_line(
        ["analyze", "protocol", str(archive_path)]
    )
    assert "not a search-space name" in error_line(
        ["analyze", "protocol", str(grouped_path), "--protocol", "x", "--protocol", "choi2019"]
    )
