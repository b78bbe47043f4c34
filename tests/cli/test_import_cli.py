"""`optcmp import deepobs|algoperf` and `optcmp score`: output contracts, errors (one line,
exit 2), --skip-bad reporting, and atomic output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcmp_cli import app
from optcmp_data import open_archive
from tests.data.archive_trees import write_algoperf, write_deepobs

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_deepobs_then_score(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path / "tree")
    out = tmp_path / "deepobs.nc"
    code, stdout, stderr = _run("import", "deepobs", str(tmp_path / "tree"), "--out", str(out))
    assert code == 0, stderr
    assert f"wrote {out}" in stdout
    assert "caveat: selection uses the test split" in stdout
    ds = open_archive(out)
    assert ds.attrs["selection_repeats"] == "seed=42"
    code, stdout, _ = _run("score", str(out), "--json")
    assert code == 0
    payload = json.loads(stdout)
    assert list(payload) == ["deepobs"]
    chosen = {
        (r["workload"], r["optimizer"]): r["hyperparameters"]["learning_rate"]
        for r in payload["deepobs"]
    }
    assert chosen == facts.chosen
    code, stdout, _ = _run("score", str(out))
    assert code == 0
    assert "caveat:" in stdout


def test_import_algoperf_then_score_json_contract(tmp_path: Path) -> None:
    facts = write_algoperf(tmp_path / "tree")
    out = tmp_path / "algoperf.nc"
    code, stdout, stderr = _run(
        "import", "algoperf", str(tmp_path / "tree"), "--out", str(out), "--json"
    )
    assert code == 0, stderr
    summary = json.loads(stdout)["import"]
    assert summary["files_read"] == len(facts.rows)
    assert summary["skipped"] == 0
    code, stdout, _ = _run("score", str(out), "--json")
    assert code == 0
    payload = json.loads(stdout)
    assert list(payload) == ["score", "rules"]
    assert payload["rules"]["studies"] == "3 per submission (from the logs)"
    assert [sorted(r) for r in payload["score"]] == [["optimizer", "score"]] * 3
    assert sorted(r["optimizer"] for r in payload["score"]) == list(facts.submissions)
    scores = [r["score"] for r in payload["score"]]
    assert scores == sorted(scores, reverse=True)
    code, stdout, _ = _run("score", str(out), "--json", "--details")
    details = json.loads(stdout)
    assert list(details) == ["score", "rules", "details"]
    assert details["score"] == payload["score"]
    assert {d["role"] for d in details["details"]} == {"base", "held_out"}
    assert len(details["details"]) == 3 * 3  # submissions x (base + held-out workloads)
    code, stdout, _ = _run("score", str(out), "--details")
    assert code == 0
    assert "AlgoPerf score" in stdout
    assert "rule: studies: 3 per submission (from the logs)" in stdout
    assert "rule: time to target:" in stdout


def test_self_tuning_ruleset_option(tmp_path: Path) -> None:
    write_algoperf(tmp_path / "tree", ruleset="self_tuning")
    out = tmp_path / "self.nc"
    code, _, stderr = _run(
        "import", "algoperf", str(tmp_path / "tree"), "--ruleset", "self_tuning", "--out", str(out)
    )
    assert code == 0, stderr
    assert open_archive(out).attrs["ruleset"] == "self_tuning"


def _no_output(tmp_path: Path, name: str) -> bool:
    return not (tmp_path / name).exists() and not list(tmp_path.glob(f".{name}.*"))


def test_malformed_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path / "tree")
    text = facts.first_file.read_text()
    facts.first_file.write_text(text[:100])
    out = tmp_path / "deepobs.nc"
    code, stdout, stderr = _run("import", "deepobs", str(tmp_path / "tree"), "--out", str(out))
    assert code == 2
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert facts.first_file.name in lines[0]
    assert _no_output(tmp_path, "deepobs.nc")


def test_skip_bad_warns_per_file_and_counts(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path / "tree")
    broken = sorted(facts.root.rglob("random_seed__4[3-5]__*.json"))[:2]
    for path in broken:
        path.write_text("{")
    out = tmp_path / "deepobs.nc"
    code, _, stderr = _run(
        "import", "deepobs", str(tmp_path / "tree"), "--out", str(out), "--skip-bad"
    )
    assert code == 0
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(broken)
    for path, line in zip(broken, warnings, strict=True):
        assert path.name in line
    assert stderr.strip().splitlines()[-1] == f"skipped {len(broken)} bad input(s)"
    assert out.exists()


@pytest.mark.parametrize("command", ["deepobs", "algoperf"])
def test_empty_and_foreign_folders(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = _run("import", command, str(empty), "--out", str(tmp_path / "x.nc"))
    assert code == 2
    assert "empty folder" in stderr
    assert len(stderr.strip().splitlines()) == 1
    other = tmp_path / "other"
    if command == "deepobs":
        write_algoperf(other)
    else:
        write_deepobs(other)
    code, _, stderr = _run("import", command, str(other), "--out", str(tmp_path / "x.nc"))
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1
    assert _no_output(tmp_path, "x.nc")


def test_missing_target_column_names_the_csv(tmp_path: Path) -> None:
    write_algoperf(tmp_path / "tree")
    csv = next((tmp_path / "tree").rglob("wb_*/trial_1/eval_measurements.csv"))
    csv.write_text(csv.read_text().replace("validation/wer", "validation/xyz"))
    code, _, stderr = _run(
        "import", "algoperf", str(tmp_path / "tree"), "--out", str(tmp_path / "a.nc")
    )
    assert code == 2
    assert "eval_measurements.csv" in stderr
    assert "validation/wer" in stderr


def test_score_errors(tmp_path: Path) -> None:
    code, _, stderr = _run("score", str(tmp_path / "nope.nc"), "--json")
    assert code == 2
    assert "nope.nc" in stderr


def test_export_then_import_table_cli(tmp_path: Path) -> None:
    write_algoperf(tmp_path / "src")
    archive = tmp_path / "a.nc"
    assert _run("import", "algoperf", str(tmp_path / "src"), "--out", str(archive))[0] == 0
    table = tmp_path / "a.csv"
    code, stdout, _ = _run("export", str(archive), "--out", str(table), "--json")
    assert code == 0
    payload = json.loads(stdout)["export"]
    assert payload["sidecar"] == str(table) + ".meta.json"
    back = tmp_path / "b.nc"
    code, _, stderr = _run("import", "table", str(table), "--out", str(back))
    assert code == 0, stderr
    a, b = open_archive(archive), open_archive(back)
    for key in ("source", "command", "created", "optcmp_version", "git_commit"):
        a.attrs.pop(key)
        b.attrs.pop(key)
    assert a.identical(b)
    # the scores do not change through the table
    assert _run("score", str(archive), "--json")[1] == _run("score", str(back), "--json")[1]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["export", "{archive}", "--out", "{tmp}/x.txt"], "format 'txt'"),
        (["export", "{archive}", "--out", "{tmp}/nodir/x.csv"], "does not exist"),
        (["import", "table", "{tmp}/absent.csv", "--out", "{tmp}/o.nc"], "no such file"),
        (["import", "table", "{tmp}/plain.csv", "--out", "{tmp}/o.nc"], "no sidecar"),
    ],
)
def test_table_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    write_algoperf(tmp_path / "src")
    archive = tmp_path / "a.nc"
    _run("import", "algoperf", str(tmp_path / "src"), "--out", str(archive))
    (tmp_path / "plain.csv").write_text("workload,optimizer,trial,step\nw,o,1,2\n")
    argv = [a.format(archive=archive, tmp=tmp_path) for a in args]
    code, _, stderr = _run(*argv)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1
    assert needle in stderr
    assert not (tmp_path / "o.nc").exists()


def test_import_subcommands_are_the_registry() -> None:
    from typer.core import TyperGroup

    from optcmp_cli.app import load_command
    from optcmp_data.importers import IMPORTERS

    group = load_command("import")
    assert isinstance(group, TyperGroup)
    ctx = group.make_context("import", ["--help"], resilient_parsing=True)
    names = group.list_commands(ctx)
    assert names == list(IMPORTERS)
    assert [getattr(group.get_command(ctx, n), "name", None) for n in names] == names
    code, stdout, _ = _run("import", "--help")
    assert code == 0
    for name in IMPORTERS:
        assert name in stdout


def test_import_table_infer_prints_a_draft_then_imports_with_it(tmp_path: Path) -> None:
    import numpy as np

    from tests.data.test_import_table import optimizer_sweep_table

    table = tmp_path / "results.csv"
    optimizer_sweep_table(np.random.default_rng(2)).to_csv(table, index=False)
    code, stdout, stderr = _run("import", "table", str(table), "--infer")
    assert code == 0, stderr
    assert 'trial = "setting"' in stdout
    assert not (tmp_path / "results.nc").exists()
    draft = tmp_path / "draft.toml"
    draft.write_text(stdout, encoding="utf-8")
    out = tmp_path / "sweep.nc"
    code, stdout, stderr = _run(
        "import", "table", str(table), "--mapping", str(draft), "--out", str(out)
    )
    assert code == 0, stderr
    assert "caveat: seed: the repeated rows" in stdout
    for command in ("best", "rank"):
        code, _, stderr = _run("analyze", command, str(out))
        assert code == 0, stderr
    code, stdout, _ = _run("import", "table", str(table), "--infer", "--json")
    assert code == 0
    assert json.loads(stdout)["mapping"].startswith("# Draft mapping")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--infer", "--out", "x.nc"), "imports nothing"),
        ((), "missing option --out"),
    ],
)
def test_import_table_infer_and_out_options(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    table = tmp_path / "t.csv"
    table.write_text("optimizer,lr,acc\nsgd,0.1,0.5\n", encoding="utf-8")
    code, _, stderr = _run("import", "table", str(table), *args)
    assert code == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1
