"""Hostile but fair inputs to the DeepOBS and AlgoPerf importers (issue 12, items 5-6):
each is one line on stderr naming the file and the value, exit code 2, and no archive;
under --skip-bad the file is skipped with one warning line naming it."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from optcmp_cli import app
from optcmp_data.importers import export_table, sidecar_path
from optcmp_data.testing import synthetic_archive
from tests.data.archive_trees import write_algoperf, write_deepobs

pa = pytest.importorskip("pyarrow")
pc = pytest.importorskip("pyarrow.compute")
pq = pytest.importorskip("pyarrow.parquet")

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


# --- tables: values that cannot be stored faithfully are refused (issue 20, item 3) ------
# Each case edits row 4 (file row 6) of an exported table, or one column's type in Parquet,
# and names what the one error line must say besides the file.


def _exported_table(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    ds = synthetic_archive(optimizers=("adam", "sgd"), n_trials=3, n_evals=3)
    table, _ = export_table(ds, tmp_path / "t.csv")
    return table, pd.read_csv(table, keep_default_na=False, na_values=[""])


def _as_parquet(table: Path, frame: Any) -> Path:
    out = table.with_suffix(".parquet")
    arrow = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame)
    pq.write_table(arrow, out)
    sidecar_path(table).rename(sidecar_path(out))
    table.unlink()
    return out


def _table_cell(column: str, text: str) -> Callable[[Path, pd.DataFrame], Path]:
    def edit(table: Path, frame: pd.DataFrame) -> Path:
        frame[column] = frame[column].astype(object)
        frame.loc[4, column] = text
        frame.to_csv(table, index=False)
        return table

    return edit


def _parquet_cell(column: str, value: object) -> Callable[[Path, pd.DataFrame], Path]:
    def edit(table: Path, frame: pd.DataFrame) -> Path:
        frame.loc[4, column] = value
        arrow = pa.Table.from_pandas(frame)
        if isinstance(value, float):  # a NaN value, not pandas' null
            at = arrow.schema.get_field_index(column)
            values = pa.array(frame[column].tolist(), type=pa.float64(), from_pandas=False)
            arrow = arrow.set_column(at, column, values)
        return _as_parquet(table, arrow)

    return edit


def _parquet_type(column: str, arrow_type: Any) -> Callable[[Path, pd.DataFrame], Path]:
    def edit(table: Path, frame: pd.DataFrame) -> Path:
        arrow = pa.Table.from_pandas(frame)
        at = arrow.schema.get_field_index(column)
        values = arrow.column(at)
        if pa.types.is_binary(arrow_type):
            values = pa.array([str(v).encode() for v in values.to_pylist()], type=arrow_type)
        elif pa.types.is_decimal(arrow_type):
            values = pa.array(
                [Decimal(repr(v)).quantize(Decimal("1e-12")) for v in values.to_pylist()],
                type=arrow_type,
            )
        else:
            values = pc.cast(values.cast(pa.int64()), arrow_type)
        return _as_parquet(table, arrow.set_column(at, column, values))

    return edit


def _duplicated_row(table: Path, frame: pd.DataFrame) -> Path:
    pd.concat([frame, frame.iloc[[4]]], ignore_index=True).to_csv(table, index=False)
    return table


def _raw_label(text: bytes) -> Callable[[Path, pd.DataFrame], Path]:
    def edit(table: Path, frame: pd.DataFrame) -> Path:
        frame.to_csv(table, index=False)
        lines = table.read_bytes().split(b"\n")
        lines[5] = lines[5].replace(b"adam", text, 1)
        table.write_bytes(b"\n".join(lines))
        return table

    return edit


TABLE_CASES: dict[str, tuple[Callable[[Path, pd.DataFrame], Path], tuple[str, ...]]] = {
    "hyperparameter 1e400 (CSV)": (_table_cell("hp.learning_rate", "1e400"), ("row 6", "inf")),
    "hyperparameter inf (CSV)": (_table_cell("hp.learning_rate", "inf"), ("row 6", "finite")),
    "hyperparameter nan (CSV)": (_table_cell("hp.learning_rate", "nan"), ("row 6", "finite")),
    "hyperparameter inf (Parquet)": (
        _parquet_cell("hp.learning_rate", float("inf")),
        ("row 6", "finite"),
    ),
    "hyperparameter NaN (Parquet)": (
        _parquet_cell("hp.learning_rate", float("nan")),
        ("row 6", "finite"),
    ),
    "duplicated (trial, step) row": (_duplicated_row, ("appears twice", "rows 6 and")),
    "timestamp step (Parquet)": (_parquet_type("step", pa.timestamp("s")), ("timestamp",)),
    "binary label (Parquet)": (_parquet_type("optimizer", pa.binary()), ("binary",)),
    "decimal hyperparameter (Parquet)": (
        _parquet_type("hp.learning_rate", pa.decimal128(30, 12)),
        ("decimal",),
    ),
    "NUL byte in a label (CSV)": (_raw_label(b"ad\x00am"), ("row 6", "NUL")),
    "ESC in a label (CSV)": (_raw_label(b"ad\x1bam"), ("row 6", "U+001B")),
    "NUL in a label (Parquet)": (_parquet_cell("optimizer", "ad\x00am"), ("row 6", "U+0000")),
}


@pytest.mark.parametrize("case", sorted(TABLE_CASES))
def test_table_values_that_cannot_be_stored_are_refused(tmp_path: Path, case: str) -> None:
    table, frame = _exported_table(tmp_path)
    edit, needles = TABLE_CASES[case]
    path = edit(table, frame)
    before = path.read_bytes()
    out = tmp_path / "out.nc"
    result = runner.invoke(app, ["import", "table", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert "column" in lines[0] or "appears twice" in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert path.read_bytes() == before


def test_table_import_without_room_for_its_temporary_copy_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _ = _exported_table(tmp_path)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    out = tmp_path / "out.nc"
    result = runner.invoke(app, ["import", "table", str(table), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TMPDIR" in lines[0]
    assert not out.exists()
