"""`optcmp analyze best|budget|rank|inclusion`: tables, the JSON contract, seeds, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcmp_analysis import BUDGET_RULE, MARGIN_RULE
from optcmp_cli.app import app
from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive
from tests.cli.helpers import error_line

runner = CliRunner()
COMMANDS = ("best", "budget", "rank", "inclusion")
FAST = {
    "best": [],
    "budget": ["--n-boot", "200"],
    "rank": ["--n-boot", "200"],
    "inclusion": ["--n-test-boot", "200"],
}


def _json(args: list[str]) -> dict[str, list[dict[str, object]]]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_an_example(command: str) -> None:
    result = runner.invoke(app, ["analyze", command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_json_contract(archive_path: Path, command: str) -> None:
    payload = _json(["analyze", command, str(archive_path), "--json", *FAST[command]])
    assert list(payload) == [command]
    records = payload[command]
    assert isinstance(records, list)
    assert records
    for record in records:
        assert isinstance(record, dict)
        assert {"workload", "metric", "split"} <= set(record)
        for key, value in record.items():
            # Flat records: only the documented object-valued keys hold objects.
            if isinstance(value, dict):
                assert key in {"hyperparameters", "p_best_by_k", "no_result_by_k"}
            assert not isinstance(value, list)


def test_best_and_budget_keys(archive_path: Path) -> None:
    best = _json(["analyze", "best", str(archive_path), "--json"])["best"]
    assert len(best) == 2 * 6
    for r in best:
        assert {
            "workload",
            "optimizer",
            "trial",
            "hyperparameters",
            "selection_value",
            "test_value",
        } <= set(r)
    budget = _json(["analyze", "budget", str(archive_path), "--json", "--n-boot", "100"])["budget"]
    assert {r["k"] for r in budget} == {1, 2, 4, 8}
    for r in budget:
        assert {"workload", "optimizer", "k", "mean", "median", "lo", "hi", "expected"} <= set(r)


def test_seed_makes_results_reproducible(archive_path: Path) -> None:
    args = ["analyze", "budget", str(archive_path), "--json", "--n-boot", "300", "--budget", "2"]
    a = _json([*args, "--seed", "5"])
    b = _json([*args, "--seed", "5"])
    c = _json([*args, "--seed", "6"])
    assert a == b
    assert a != c


def test_filters_budget_and_rule(archive_path: Path) -> None:
    payload = _json(
        [
            "analyze",
            "rank",
            str(archive_path),
            "--json",
            "--n-boot",
            "100",
            "-w",
            "w1",
            "-o",
            "adam",
            "-o",
            "sgd",
            "--budget",
            "4",
            "--rule",
            "final-train-loss",
        ]
    )
    records = payload["rank"]
    assert {(r["workload"], r["optimizer"]) for r in records} == {("w1", "adam"), ("w1", "sgd")}
    assert all(r["k"] == 4 and r["rule"] == "final-train-loss" for r in records)


def test_inclusion_with_a_taxonomy_file(archive_path: Path, tmp_path: Path) -> None:
    tax = tmp_path / "tax.toml"
    tax.write_text('[[inclusion]]\nspecial = "sgd"\ngeneral = "adam"\n', encoding="utf-8")
    records = _json(
        [
            "analyze",
            "inclusion",
            str(archive_path),
            "--json",
            "--n-test-boot",
            "300",
            "--taxonomy",
            str(tax),
        ]
    )["inclusion"]
    assert {(r["special"], r["general"]) for r in records} == {("sgd", "adam")}
    assert {r["rule"] for r in records} == {"final-valid", "final-train-loss"}
    only = _json(
        [
            "analyze",
            "inclusion",
            str(archive_path),
            "--json",
            "--n-test-boot",
            "100",
            "--taxonomy",
            str(tax),
            "--no-train-loss",
        ]
    )["inclusion"]
    assert {r["rule"] for r in only} == {"final-valid"}


@pytest.mark.parametrize("command", COMMANDS)
def test_tables(archive_path: Path, command: str) -> None:
    result = runner.invoke(
        app, ["analyze", command, str(archive_path), *FAST[command]], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "adam" in result.output
    assert "w1" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_errors_are_one_line_and_exit_two(
    archive_path: Path, dead_path: Path, tmp_path: Path, command: str
) -> None:
    assert "no such file" in error_line(["analyze", command, str(tmp_path / "nope.nc")])
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf", encoding="utf-8")
    assert "junk.nc" in error_line(["analyze", command, str(junk)])
    message = error_line(["analyze", command, str(archive_path), "--optimizer", "adma"])
    assert "unknown optimizer 'adma'" in message
    assert "did you mean 'adam'" in message
    assert "unknown workload" in error_line(["analyze", command, str(archive_path), "-w", "w9"])
    assert "no usable trial" in error_line(["analyze", command, str(dead_path), *FAST[command]])
    if command != "best":
        message = error_line(["analyze", command, str(archive_path), "--budget", "9"])
        assert "larger than the trial count 8" in message


def test_diverged_and_method_options(archive_path: Path) -> None:
    base = ["analyze", "budget", str(archive_path), "--json", "--n-boot", "50", "--budget", "1"]
    excluded = _json(base)["budget"]
    worst = _json([*base, "--diverged", "worst"])["budget"]
    assert max(float(str(r["no_result_exact"])) for r in excluded) > 0
    assert all(r["no_result_exact"] == 0 for r in worst)
    rank = ["analyze", "rank", str(archive_path), "--json", "--budget", "2"]
    exact = _json(rank)["rank"]
    boot = _json([*rank, "--method", "bootstrap", "--n-boot", "4000"])["rank"]
    assert {r["method"] for r in exact} == {"exact"}
    for a, b in zip(exact, boot, strict=True):
        assert abs(float(str(a["p_best"])) - float(str(b["p_best"]))) < 0.05
        assert "no_result" in a
    table = runner.invoke(app, [*rank[:3], "--budget", "2"], env={"COLUMNS": "250"})
    assert "no result" in table.output
    assert "P(best) is the chance" in table.output


def test_inclusion_table_fits_80_columns_without_breaking_words(
    tested_archive_path: Path,
) -> None:
    result = runner.invoke(
        app,
        ["analyze", "inclusion", str(tested_archive_path), "--n-test-boot", "99"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert rows, result.output
    assert max(len(line) for line in rows) <= 80, result.output
    # Every verdict is a whole word in its own column, never split over two lines.
    words = {"violated", "consistent", "inconclusive", "incl."}
    assert any(w in line.split() for line in rows for w in words), result.output
    assert "k = " in result.output  # the budget of each table is stated


def _table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(c in line for c in "│┃━")]


def test_best_table_fits_80_columns_and_never_cuts_a_pair(archive_path: Path) -> None:
    result = runner.invoke(app, ["analyze", "best", str(archive_path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = _table_lines(result.output)
    assert lines, result.output
    assert max(len(line) for line in lines) <= 80, result.output
    assert "…" not in result.output, result.output  # short labels: nothing shortened here
    words = {w for line in lines for w in line.split()}
    best = _json(["analyze", "best", str(archive_path), "--json"])["best"]
    for r in best:
        hps = r["hyperparameters"]
        assert isinstance(hps, dict)
        for k, v in hps.items():
            # One whole `name=value` pair a line, never broken inside.
            assert f"{k}={v:.3g}" in words, (k, v, result.output)


@pytest.mark.parametrize(
    ("command", "value", "left_out"),
    [
        ("budget", "median", "expected, 5-50-95% (exact), settled at k"),
        ("rank", "value", "P(best) by k, no result by k"),
    ],
)
def test_budget_and_rank_tables_fit_80_columns(
    archive_path: Path, command: str, value: str, left_out: str
) -> None:
    args = ["analyze", command, str(archive_path), *FAST[command]]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = _table_lines(result.output)
    assert lines, result.output
    assert max(len(line) for line in lines) <= 80, result.output
    assert "…" not in result.output, result.output
    # Numbers are never cut or broken: each appears whole.
    words = {w for line in lines for w in line.split()}
    for r in _json([*args, "--json"])[command]:
        shown = r[value]
        if isinstance(shown, float):
            # One format per column: 4 significant digits, trailing zeros kept.
            assert f"{shown:#.4g}".rstrip(".") in words, (shown, result.output)
    # What does not fit is named, with where to find it.
    assert f"Not shown at 80 columns: {left_out}" in result.output, result.output
    wide = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert "Not shown" not in wide.output, wide.output


def test_long_labels_end_in_an_ellipsis_at_80_columns(tmp_path: Path) -> None:
    ds = synthetic_archive(workloads=2, n_trials=4, seed=4)
    ds = ds.assign_coords(
        workload=["fashion_mnist_cnn_long_name", "cifar100_allcnnc"],
        optimizer=[f"{o}_with_a_long_suffix" for o in ds["optimizer"].values],
    )
    path = tmp_path / "long.nc"
    write_archive(ds, path)
    for command in ("best", "budget", "rank"):
        args = ["analyze", command, str(path), *FAST[command]]
        result = runner.invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        lines = _table_lines(result.output)
        assert max(len(line) for line in lines) <= 80, result.output
        assert "…" in result.output, result.output  # a label was shortened, not broken
        words = {w for line in lines for w in line.split()}
        assert {"workload", "optimizer"} <= words, result.output  # headers whole


def test_margins_from_the_command_line_and_a_toml_file(archive_path: Path, tmp_path: Path) -> None:
    """--margin sets every workload's margin, --margins FILE some of them (the rest keep
    --margin or the default rule); every record names its margin and where it came from;
    a malformed file or an unknown workload is one line and exit 2."""
    base = ["analyze", "inclusion", str(archive_path), "--n-test-boot", "99", "--json"]
    default = _json(base)["inclusion"]
    assert {r["margin_rule"] for r in default} == {MARGIN_RULE}
    assert {r["budget_rule"] for r in default} == {BUDGET_RULE}
    one = _json([*base, "--margin", "0.02"])["inclusion"]
    assert {(r["margin"], r["margin_rule"]) for r in one} == {(0.02, "given")}
    table = tmp_path / "margins.toml"
    table.write_text("[margins]\nw0 = 0.005\n", encoding="utf-8")
    mixed = _json([*base, "--margins", str(table), "--margin", "0.03"])["inclusion"]
    assert {r["margin"] for r in mixed if r["workload"] == "w0"} == {0.005}
    assert {r["margin"] for r in mixed if r["workload"] == "w1"} == {0.03}
    only_file = _json([*base, "--margins", str(table)])["inclusion"]
    w1 = {(r["margin"], r["margin_rule"]) for r in only_file if r["workload"] == "w1"}
    assert w1 == {(next(r["margin"] for r in default if r["workload"] == "w1"), MARGIN_RULE)}
    bad = tmp_path / "bad.toml"
    bad.write_text("w0 = 'wide'\n", encoding="utf-8")
    assert "bad.toml" in error_line([*base[:-1], "--margins", str(bad)])
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("w9 = 0.01\n", encoding="utf-8")
    assert "'w9'" in error_line([*base[:-1], "--margins", str(unknown)])
    assert "non-negative" in error_line([*base[:-1], "--margin", "-1"])


def test_report_and_plot_take_the_test_options(archive_path: Path, tmp_path: Path) -> None:
    """The options of `analyze inclusion` reach the report and the inclusion figure, and
    the report states them."""
    args = ["--budget", "3", "--n-test-boot", "99", "--alpha", "0.1", "--margin", "0.02"]
    out = tmp_path / "report"
    result = runner.invoke(
        app, ["report", str(archive_path), "--out", str(out), "--n-boot", "50", *args]
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["report"]["inference"]["budget"] == 3
    assert results["report"]["inference"]["alpha"] == 0.1
    assert {(r["k"], r["margin"]) for r in results["inclusion"]} == {(3, 0.02)}
    assert all(r["ci_level"] == pytest.approx(0.8) for r in results["inclusion"])
    md = (out / "report.md").read_text()
    assert "budget k = 3; alpha 0.1; 99 bootstrap-t resamples; margin 0.02" in md
    figure = tmp_path / "inclusion.png"
    plot = runner.invoke(app, ["plot", "inclusion", str(archive_path), "--out", str(figure), *args])
    assert plot.exit_code == 0, plot.output
    assert figure.stat().st_size > 0


def test_the_commands_follow_the_registry() -> None:
    """`optcmp analyze` has one command per analysis of the registry, in its order, and
    the group's help names the same analyses in the same order (generated: app.py's text
    names none)."""
    import re

    from optcmp_analysis import analyses
    from optcmp_cli.app import _GROUP_HELP, load_command

    names = [a.name for a in analyses()]
    group = load_command("analyze")
    assert list(group.commands) == names  # type: ignore[attr-defined]
    listed = re.search(r"Analyses: ([^.]*)\.", group.help or "")
    assert listed is not None
    assert [n.strip() for n in " ".join(listed.group(1).split()).split(",")] == names
    written = _GROUP_HELP["analyze"].split("Example:")[0]
    assert not any(re.search(rf"\b{n}\b", written) for n in names)
