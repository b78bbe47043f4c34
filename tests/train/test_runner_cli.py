"""`optcmp run`: runs and resumes a study, reports progress, and turns mistakes into one
line on stderr with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import open_archive

runner = CliRunner()

STUDY = """
workloads = ["noisy_quadratic"]
optimizers = ["sgd", "nesterov"]
trials = 3
seed = 1
step_budget = 10
eval_interval = 5
device = "{device}"
"""


def _study(tmp_path: Path, device: str = "cpu") -> Path:
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(device=device), encoding="utf-8")
    return path


def test_help_has_example() -> None:
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "--group-size" in result.output


def test_run_then_resume_with_json(tmp_path: Path) -> None:
    study, out = _study(tmp_path), tmp_path / "out"
    first = runner.invoke(
        app, ["run", str(study), "--out", str(out), "--group-size", "2", "--json"]
    )
    assert first.exit_code == 0, first.output
    record = json.loads(first.stdout)["run"]
    assert (record["trials_run"], record["total_trials"], record["group_size"]) == (6, 6, 2)
    assert open_archive(out).sizes["trial"] == 3
    again = runner.invoke(
        app, ["run", str(study), "--out", str(out), "--group-size", "2", "--json"]
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["run"]["trials_run"] == 0


def test_progress_bar_and_summary(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", str(_study(tmp_path)), "--out", str(tmp_path / "o")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "6 trials run (0 diverged)" in result.stdout
    assert "diverged 0" in result.stderr  # the bar, drawn on stderr
    assert "6/6" in result.stderr


def test_workers_and_scheduler_exclude_each_other(tmp_path: Path) -> None:
    args = ["run", str(_study(tmp_path)), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "exclude each other" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cuda_without_cuda_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", str(_study(tmp_path, "cuda")), "--out", str(tmp_path / "o"), "--json"]
    )
    if torch.cuda.is_available():
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2
        assert "CUDA is not available" in result.stderr
        assert not (tmp_path / "o").exists()


def test_a_changed_study_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "o"
    study = _study(tmp_path)
    assert runner.invoke(app, ["run", str(study), "--out", str(out), "--json"]).exit_code == 0
    study.write_text(STUDY.format(device="cpu").replace("seed = 1", "seed = 2"), encoding="utf-8")
    result = runner.invoke(app, ["run", str(study), "--out", str(out)])
    assert result.exit_code == 2
    assert "key 'seed'" in result.stderr
