"""`optcmp info`: a summary for valid archives; one line and exit 2 for anything invalid."""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import pytest
from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import write_archive
from optcmp_data._io import write_shard
from optcmp_data.testing import synthetic_archive

runner = CliRunner()


@pytest.fixture
def info_archive_path(tmp_path: Path) -> Path:
    path = tmp_path / "a.nc"
    write_archive(synthetic_archive(workloads=2, n_trials=3, diverged_fraction=0.3, seed=4), path)
    return path


def test_help_has_example() -> None:
    result = runner.invoke(app, ["info", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_summary_table(info_archive_path: Path) -> None:
    result = runner.invoke(app, ["info", str(info_archive_path)])
    assert result.exit_code == 0, result.output
    # At 80 columns long labels end in an ellipsis, so look for their beginnings.
    for word in ("Workloads", "w0", "w1", "adam", "nesterov", "learn", "schema v1"):
        assert word in result.output


def test_json(info_archive_path: Path) -> None:
    result = runner.invoke(app, ["info", str(info_archive_path), "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)["info"]
    assert set(payload) >= {"sizes", "workloads", "cells", "hparams", "provenance", "caveats"}
    assert payload["sizes"]["trial"] == 3
    total = sum(c["completed"] + c["diverged"] + c["incomplete"] for c in payload["cells"])
    assert total == 2 * 6 * 3


def test_study_directory(tmp_path: Path) -> None:
    ds = synthetic_archive(n_trials=2)
    write_shard(ds.isel(trial=[0]), tmp_path, "a")
    write_shard(ds.isel(trial=[1]), tmp_path, "b")
    result = runner.invoke(app, ["info", str(tmp_path), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["info"]["sizes"]["trial"] == 2


def _schema_v2(path: Path) -> None:
    with netCDF4.Dataset(path, "a") as nc:
        nc.setncattr("schema_version", 2)


def _drop_variable(path: Path) -> None:
    ds = synthetic_archive()
    ds.drop_vars("valid_metric").to_netcdf(path)


def _wrong_dims(path: Path) -> None:
    ds = synthetic_archive()
    ds.assign(test_loss=ds["test_loss"].isel(eval=0)).to_netcdf(path)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing", "no such file"),
        ("not netcdf", "not a readable netCDF4 archive"),
        ("truncated", "not a readable netCDF4 archive"),
        ("schema v2", "version 2 is not supported"),
        ("missing variable", "valid_metric: missing variable"),
        ("wrong dims", "test_loss: has dims"),
    ],
)
def test_invalid_inputs_one_line_exit_2(
    info_archive_path: Path, tmp_path: Path, case: str, fragment: str
) -> None:
    target = tmp_path / "bad.nc"
    if case == "not netcdf":
        target.write_text("hello")
    elif case == "truncated":
        target.write_bytes(info_archive_path.read_bytes()[:1500])
    elif case == "schema v2":
        target.write_bytes(info_archive_path.read_bytes())
        _schema_v2(target)
    elif case == "missing variable":
        _drop_variable(target)
    elif case == "wrong dims":
        _wrong_dims(target)
    result = runner.invoke(app, ["info", str(target)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_archive_text_is_shown_verbatim_not_as_markup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a short relative path: the first line does not wrap
    caveat = "lr [learning_rate] capped; see [/b] notes"
    ds = synthetic_archive(n_trials=2)
    ds.attrs["caveats"] = caveat
    write_archive(ds, Path("[run].nc"))
    outputs = []
    for args in (["info", "[run].nc"], ["analyze", "best", "[run].nc"]):
        result = runner.invoke(app, args, env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        assert f"caveat: {caveat}" in result.stdout
        outputs.append(result.stdout)
    assert outputs[0].startswith("[run].nc  schema v1")


def test_tables_fit_80_columns_and_never_cut_numbers(tmp_path: Path) -> None:
    ds = synthetic_archive(
        optimizers=("GradientDescentOptimizer", "adam"),
        families={"GradientDescentOptimizer": "sgd"},
        n_trials=3,
        seed=1,
    )
    path = tmp_path / "long_names.nc"
    write_archive(ds, path)
    result = runner.invoke(app, ["info", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    table_lines = [line for line in result.output.splitlines() if any(c in line for c in "│┃━")]
    assert table_lines
    assert max(len(line) for line in table_lines) <= 80
    # Labels may be shortened; no cell continues on a second line ("fold").
    cells = [c.strip() for line in table_lines if "│" in line for c in line.split("│")]
    numbers = [c for c in cells if c and c[0].isdigit()]
    assert numbers
    assert not any(c.endswith("…") for c in numbers)
