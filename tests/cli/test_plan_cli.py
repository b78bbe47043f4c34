"""`optcmp plan`: the table, the JSON contract, the figure, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive

runner = CliRunner()


@pytest.fixture(scope="module")
def pilots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("plan")
    first, second = root / "a.nc", root / "b.nc"
    opts = ("sgd", "momentum", "adam")
    write_archive(synthetic_archive(optimizers=opts, n_trials=12, seed=1), first)
    write_archive(
        synthetic_archive(optimizers=opts, n_trials=12, planted={"adam": 0.05}, seed=2), second
    )
    return first, second


FAST = ["--budget", "4", "--n-sim", "10", "--trials", "8", "--trials", "16"]


def test_plan_json_has_a_record_per_comparison_and_goal(pilots: tuple[Path, Path]) -> None:
    first, second = pilots
    result = runner.invoke(
        app, ["plan", str(first), "--compare", str(second), *FAST, "--json", "--effect", "0.05"]
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)["plan"]
    plans = [r for r in records if r["record"] == "plan"]
    # 3 inclusion pairs (sgd ⊆ momentum ⊆ adam, sgd ⊆ adam) x 2 goals + 3 protocol effects.
    assert sorted((r["kind"], r["goal"]) for r in plans).count(("inclusion", "violated")) == 3
    assert sum(r["kind"] == "protocol" for r in plans) == 3
    for r in plans:
        assert r["k"] == 4
        assert r["needed"] is None or r["needed"] in (8, 16)
        if r["goal"] == "violated":
            assert r["true_difference"] == pytest.approx(0.05)
    curves = [r for r in records if r["record"] == "curve"]
    assert {c["trials"] for c in curves} == {8, 16}
    assert all(0 <= c["approx_power"] <= 1 for c in curves)


def test_plan_table_and_figure(pilots: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = pilots
    out = tmp_path / "power.png"
    result = runner.invoke(
        app,
        ["plan", str(first), *FAST, "--pilot-effect", "--figure", str(out)],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    assert "Trials per optimizer for power 0.8 at k = 4" in result.output
    assert "sgd ⊆ adam" in result.output
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "16", "--trials", "8"], "must exceed the budget"),
        (["--power", "1.5"], "power 1.5"),
        (["--figure", "x.txt"], "unknown image format"),
    ],
)
def test_plan_bad_options_exit_2(pilots: tuple[Path, Path], args: list[str], message: str) -> None:
    first, _ = pilots
    result = runner.invoke(app, ["plan", str(first), "--n-sim", "10", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_report_line_groups_undecided_comparisons_by_trials_needed() -> None:
    from optcmp_analysis import SelectionRule
    from optcmp_cli._report_plan import _undecided, undecided_line
    from optcmp_cli.render.escape import md

    inclusion = [
        {
            "rule": "final-valid",
            "verdict": "inconclusive",
            "workload": "w",
            "special": "sgd",
            "general": "adam",
            "k": 4,
        },
        {
            "rule": "final-valid",
            "verdict": "consistent",
            "workload": "w",
            "special": "sgd",
            "general": "momentum",
            "k": 4,
        },
        {
            "rule": "final-train-loss",
            "verdict": "inconclusive",
            "workload": "w",
            "special": "sgd",
            "general": "nadam",
            "k": 4,
        },
    ]
    protocol = [
        {"record": "cell", "clear": False, "workload": "w", "optimizer": "adam", "k": 4},
        {"record": "cell", "clear": True, "workload": "w", "optimizer": "sgd", "k": 4},
        {
            "record": "pair",
            "clear": False,
            "protocol": "lr-only",
            "workload": "w",
            "optimizer": "sgd",
            "other": "adam",
            "k": 4,
        },
    ]
    wanted, budget = _undecided(inclusion, protocol, SelectionRule.FINAL_VALID)
    assert budget == 4
    assert wanted == [
        ("inclusion", "", "w", "sgd", "adam"),
        ("protocol", "", "w", "adam", "adam"),
        ("pair", "lr-only", "w", "adam", "sgd"),
    ]
    records: list[dict[str, Any]] = [
        {"kind": "inclusion", "a": "sgd", "b": "a*dam", "workload": "w", "needed": 96},
        {"kind": "protocol", "a": "adam", "b": "adam", "workload": "w", "needed": None},
        {
            "kind": "pair",
            "a": "adam",
            "b": "sgd",
            "workload": "w",
            "protocol": "lr-only",
            "needed": 24,
        },
    ]
    line = undecided_line(records, 4, 512, md)
    assert "24: adam vs sgd under lr-only on w; 96: sgd ⊆ a\\*dam on w; more than 512: " in line
    assert line.endswith("protocol effect of adam on w")
