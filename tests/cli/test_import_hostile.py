"""Hostile but fair inputs to the DeepOBS and AlgoPerf importers (issue 12, items 5-6):
each is one line on stderr naming the file and the value, exit code 2, and no archive;
under --skip-bad the file is skipped with one warning line naming it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcmp_cli import app
from tests.data.archive_trees import write_algoperf, write_deepobs

runner = CliRunner()

DEEP = "[" * 100_000 + "]" * 100_000


def _deepobs_run(root: Path) -> Path:
    return sorted(root.rglob("random_seed__*.json"))[0]


def _edit_json(path: Path, **changes: object) -> None:
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


def _seed_huge(root: Path) -> Path:
    path = _deepobs_run(root)
    path.write_text(path.read_text().replace('"random_seed": ', '"random_seed": 1' + "0" * 30))
    return path


def _nested_losses(root: Path) -> Path:
    path = _deepobs_run(root)
    obj = json.loads(path.read_text())
    _edit_json(path, train_losses=[[v] for v in obj["train_losses"]])
    return path


def _deep_json(root: Path) -> Path:
    path = _deepobs_run(root)
    path.write_text(DEEP)
    return path


def _huge_hparam(root: Path) -> Path:
    path = _deepobs_run(root)
    text = path.read_text()
    obj = json.loads(text)
    key = "optimizer_hyperparams" if "optimizer_hyperparams" in obj else "hyperparams"
    obj[key] = {**(obj[key] or {}), "momentum": 0}
    path.write_text(json.dumps(obj).replace('"momentum": 0', '"momentum": 1' + "0" * 400))
    return path


DEEPOBS_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "random_seed 10**30": (_seed_huge, "random_seed: 1000000000000000000000000000000"),
    "losses [[1.0]]": (_nested_losses, "train_losses[0] is '["),
    "100k-deep JSON": (_deep_json, "nested too deeply"),
    "hyperparameter 10**400": (_huge_hparam, "too large for a float"),
}


def _algoperf_trial(root: Path) -> Path:
    return sorted(root.glob("logs/external_tuning/sub_a/study_0/wa_jax/trial_1"))[0]


def _csv_cell(value: str) -> Callable[[Path], Path]:
    def edit(root: Path) -> Path:
        path = _algoperf_trial(root) / "eval_measurements.csv"
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        cells = lines[1].split(",")
        cells[header.index("global_step")] = value
        lines[1] = ",".join(cells)
        path.write_text("\n".join(lines) + "\n")
        return path

    return edit


def _duplicate_column(root: Path) -> Path:
    path = _algoperf_trial(root) / "eval_measurements.csv"
    lines = path.read_text().splitlines()
    lines = [lines[0] + ",validation/accuracy"] + [line + ",0.5" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _hparams_huge(root: Path) -> Path:
    path = _algoperf_trial(root) / "hparams.json"
    path.write_text('{"learning_rate": 1' + "0" * 400 + "}")
    return path


def _hparams_deep(root: Path) -> Path:
    path = _algoperf_trial(root) / "hparams.json"
    path.write_text(DEEP)
    return path


def _trial_folder(name: str) -> Callable[[Path], Path]:
    def edit(root: Path) -> Path:
        trial = _algoperf_trial(root)
        path = trial.with_name(name)
        trial.rename(path)
        return path

    return edit


ALGOPERF_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "global_step 1e30": (_csv_cell("1e30"), "global_step 1e30 is not a step count"),
    "global_step 12.5": (_csv_cell("12.5"), "global_step 12.5 is not a step count"),
    "global_step -100": (_csv_cell("-100"), "global_step -100 is not a step count"),
    "duplicated column": (_duplicate_column, "'validation/accuracy' appears twice"),
    "hparams 10**400": (_hparams_huge, "too large for a float"),
    "100k-deep hparams.json": (_hparams_deep, "nested too deeply"),
    "trial_99999999999999999999999": (
        _trial_folder("trial_99999999999999999999999"),
        "'trial_99999999999999999999999' is not trial_<n> with n below 2**63",
    ),
    "trial_abc": (_trial_folder("trial_abc"), "'trial_abc' is not trial_<n>"),
}


def _check(kind: str, root: Path, tmp_path: Path, path: Path, needle: str) -> None:
    out = tmp_path / "out.nc"
    result = runner.invoke(app, ["import", kind, str(root), "--out", str(out)])
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert str(path) in lines[0]
    assert needle in lines[0]
    assert len(lines[0]) < 600
    assert not out.exists()
    # --skip-bad: the bad input is skipped with one warning naming it; no traceback
    skipped = runner.invoke(app, ["import", kind, str(root), "--out", str(out), "--skip-bad"])
    assert skipped.exit_code == 0, skipped.stderr
    warnings = [line for line in skipped.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert str(path) in warnings[0]
    assert needle in warnings[0]
    assert out.exists()


@pytest.mark.parametrize("case", sorted(DEEPOBS_CASES))
def test_deepobs_hostile_inputs(tmp_path: Path, case: str) -> None:
    root = tmp_path / "tree"
    write_deepobs(root)
    edit, needle = DEEPOBS_CASES[case]
    _check("deepobs", root, tmp_path, edit(root), needle)


@pytest.mark.parametrize("case", sorted(ALGOPERF_CASES))
def test_algoperf_hostile_inputs(tmp_path: Path, case: str) -> None:
    root = tmp_path / "tree"
    write_algoperf(root)
    edit, needle = ALGOPERF_CASES[case]
    _check("algoperf", root, tmp_path, edit(root), needle)
