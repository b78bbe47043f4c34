"""A user's .npz arrays as a workload declared in the study file (no class to write):
classification and regression, MLP / CNN / ResNet from the built-in architectures."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from optcmp.study import StudySpec
from optcmp.workloads import get_workload
from optcmp_cli.app import app
from optcmp_data import ConfigError, DataFormatError, open_archive

runner = CliRunner()


def blobs(path: Path, *, image: bool = False, regression: bool = False) -> Path:
    """Three Gaussian classes (or a linear target) in 4 dimensions, or 1x6x6 images."""
    rng = np.random.default_rng(0)
    arrays: dict[str, Any] = {}
    for split, n in (("train", 240), ("valid", 60), ("test", 60)):
        y = rng.integers(0, 3, n)
        shape = (n, 1, 6, 6) if image else (n, 4)
        x = rng.normal(size=shape) + y.reshape(-1, *([1] * (len(shape) - 1)))
        arrays[f"x_{split}"] = x.astype(np.float32)
        if regression:
            arrays[f"y_{split}"] = (x.reshape(n, -1) @ np.arange(x[0].size) / 10).astype(np.float32)
        else:
            arrays[f"y_{split}"] = y
    np.savez(path, allow_pickle=False, **arrays)
    return path


def study(tmp_path: Path, table: str, name: str = "mine") -> Path:
    path = tmp_path / "study.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            workloads = ["{name}"]
            optimizers = ["sgd", "adam"]
            trials = 2
            space = "lr-only"
            [arrays.{name}]
            """
        )
        + textwrap.dedent(table),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("model", "image", "regression", "metric"),
    [
        ("mlp", False, False, "error_rate"),
        ("mlp", False, True, "mse"),
        ("cnn", True, False, "error_rate"),
        ("resnet", True, False, "error_rate"),
    ],
)
def test_array_workload_trains_from_the_study_file(
    tmp_path: Path, model: str, image: bool, regression: bool, metric: str
) -> None:
    blobs(tmp_path / "data.npz", image=image, regression=regression)
    task = "regression" if regression else "classification"
    path = study(
        tmp_path,
        f"""
        path = "data.npz"
        task = "{task}"
        model = "{model}"
        widths = [16]
        batch_size = 32
        step_budget = 30
        eval_interval = 15
        """,
        name=f"mine_{model}_{task}",
    )
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    archive = open_archive(out)
    assert str(archive["metric_name"].values[0]) == metric
    loss = archive["train_loss"].sel(optimizer="adam").values[0]
    assert np.isfinite(loss).all()
    assert loss[:, -1].min() < loss[:, 0].max()  # some trial trained


def test_model_shapes_follow_the_arrays(tmp_path: Path) -> None:
    blobs(tmp_path / "data.npz")
    spec = StudySpec.from_toml(
        study(tmp_path, 'path = "data.npz"\ntask = "classification"\nmodel = "mlp"\n', "shapes")
    )
    workload = get_workload("shapes")
    assert spec.workload_spec("shapes").metric_name == "error_rate"
    model = workload.build_model(0)
    out = model(torch.zeros(5, 4))
    assert out.shape == (5, 3)
    splits = workload.load(None)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (240, 60, 60)


def test_bad_arrays_name_the_file_and_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(4, dtype=int))
    StudySpec.from_toml(
        study(tmp_path, 'path = "bad.npz"\ntask = "classification"\nmodel = "mlp"\n', "bad1")
    )
    with pytest.raises(DataFormatError, match=r"bad\.npz: missing arrays x_valid"):
        get_workload("bad1").load(None)
    with pytest.raises(ConfigError, match=r"arrays\.bad2\.model: 'transformer'"):
        StudySpec.from_toml(
            study(
                tmp_path, 'path = "x.npz"\ntask = "classification"\nmodel = "transformer"\n', "bad2"
            )
        )
    with pytest.raises(ConfigError, match="collides with the built-in workload"):
        StudySpec.from_toml(
            study(tmp_path, 'path = "x.npz"\ntask = "regression"\nmodel = "mlp"\n', "digits_mlp")
        )
