"""A user's own arrays as a workload, declared in a study file without writing a class.

Dependency rule: torch, numpy, attrs, optcmp_data and this subpackage.

    [arrays.mydata]
    path = "mydata.npz"          # relative to the study file
    task = "classification"      # or "regression"
    model = "mlp"                # mlp | cnn | resnet
    widths = [128, 64]           # mlp: hidden widths (default [128])
    blocks = 1                   # resnet: basic blocks per stage (default 1; 5 = ResNet-32)
    batch_size = 64              # optional, as step_budget and eval_interval

The .npz file holds x_train, y_train, x_valid, y_valid, x_test, y_test. Inputs are any
float arrays with examples on axis 0 (the MLP flattens them; the CNN and ResNet need
[N, C, H, W] images with H = W). Classification targets are integer labels 0..C-1 (C is
their maximum + 1 over all splits), trained with cross-entropy, metric error_rate;
regression targets are floats ([N] or [N, D]), trained and measured with the mean squared
error (metric mse). Both metrics are minimised. Inputs are used as given (standardise them
beforehand if needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as nnf
from torch import nn

from optcmp.workloads._base import Splits, Workload, WorkloadSpec
from optcmp.workloads._common import _error_rate, make_splits
from optcmp.workloads._models import MLP, ConvNet, ResNet
from optcmp_data import ConfigError, DataFormatError

__all__ = ["ARRAY_KEYS", "ArrayConfig", "ArrayWorkload"]

ARRAY_KEYS: Final = ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")
TASKS: Final = ("classification", "regression")
MODELS: Final = ("mlp", "cnn", "resnet")


def _widths(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class ArrayConfig:
    """One `[arrays.NAME]` table, validated; calling it makes the workload (it is the
    factory registered under NAME)."""

    name: str
    path: Path
    task: str
    model: str
    widths: tuple[int, ...] = attrs.field(default=(128,), converter=_widths)
    blocks: int = 1
    batch_size: int = 64
    step_budget: int = 500
    eval_interval: int = 50

    def __attrs_post_init__(self) -> None:
        owner = f"arrays.{self.name}"
        if self.task not in TASKS:
            raise ConfigError(f"{owner}.task: {self.task!r} is not one of {', '.join(TASKS)}")
        if self.model not in MODELS:
            raise ConfigError(f"{owner}.model: {self.model!r} is not one of {', '.join(MODELS)}")
        if any(w < 1 for w in self.widths):
            raise ConfigError(f"{owner}.widths: every width must be >= 1")
        for key in ("blocks", "batch_size", "step_budget", "eval_interval"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{owner}.{key}: must be >= 1")

    def __call__(self) -> ArrayWorkload:
        return ArrayWorkload(self)


_CACHE: dict[tuple[str, float], dict[str, npt.NDArray[Any]]] = {}


def _read(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The six arrays of `path`, checked (DataFormatError naming file and key)."""
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read array file ({err.strerror})") from None
    if key in _CACHE:
        return _CACHE[key]
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ARRAY_KEYS if k not in data.files]
            if missing:
                raise DataFormatError(
                    f"{path}: missing arrays {', '.join(missing)} (needs {', '.join(ARRAY_KEYS)})"
                )
            arrays = {k: np.asarray(data[k]) for k in ARRAY_KEYS}
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path}: not a readable .npz file ({err})") from None
    shape = arrays["x_train"].shape[1:]
    for split in ("train", "valid", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2 or len(x) == 0:
            raise DataFormatError(f"{path}: x_{split} must be [N, ...] with N >= 1")
        if x.shape[1:] != shape:
            raise DataFormatError(
                f"{path}: x_{split} has example shape {x.shape[1:]}, x_train {shape}"
            )
        if len(y) != len(x):
            raise DataFormatError(f"{path}: y_{split} has {len(y)} rows, x_{split} {len(x)}")
        if x.dtype.kind not in "fiu" or not np.isfinite(x.astype(np.float64)).all():
            raise DataFormatError(f"{path}: x_{split} must hold finite numbers")
    _CACHE.clear()
    _CACHE[key] = arrays
    return arrays


class ArrayWorkload(Workload):
    """The workload of one `ArrayConfig` (see the module docstring)."""

    def __init__(self, config: ArrayConfig) -> None:
        self.config = config
        metric = "error_rate" if config.task == "classification" else "mse"
        shape = f"widths {list(config.widths)}" if config.model == "mlp" else config.model
        self.spec = WorkloadSpec(
            name=config.name,
            description=f"{config.model} ({shape}) on {config.path.name} ({config.task})",
            metric_name=metric,
            direction="min",
            batch_size=config.batch_size,
            step_budget=config.step_budget,
            eval_interval=config.eval_interval,
        )

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        arrays = _read(self.config.path)
        path = self.config.path
        if self.config.task == "classification":
            for split in ("train", "valid", "test"):
                y = arrays[f"y_{split}"]
                if y.ndim != 1 or y.dtype.kind not in "iu" or (y < 0).any():
                    raise DataFormatError(
                        f"{path}: y_{split}: classification needs [N] integer labels >= 0"
                    )
        if self.config.model in ("cnn", "resnet"):
            x = arrays["x_train"]
            if x.ndim != 4 or x.shape[2] != x.shape[3]:
                raise DataFormatError(
                    f"{path}: model {self.config.model} needs [N, C, H, W] images with H = W; "
                    f"x_train is {x.shape}"
                )
        return arrays

    def _outputs(self, arrays: dict[str, npt.NDArray[Any]]) -> int:
        if self.config.task == "classification":
            return int(max(arrays[f"y_{s}"].max() for s in ("train", "valid", "test"))) + 1
        y = arrays["y_train"]
        return 1 if y.ndim == 1 else math.prod(y.shape[1:])

    def load(self, data_dir: Path | None, *, device: torch.device | str = "cpu") -> Splits:
        del data_dir  # the path comes from the study file
        arrays = self._arrays()
        n_out = self._outputs(arrays)

        def targets(split: str) -> npt.NDArray[Any]:
            y = arrays[f"y_{split}"]
            if self.config.task == "classification":
                return y.astype(np.int64)
            return y.reshape(len(y), n_out).astype(np.float32)

        def pair(split: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
            return arrays[f"x_{split}"].astype(np.float32), targets(split)

        return make_splits(pair("train"), pair("valid"), pair("test"), device=device)

    def _make_model(self) -> nn.Module:
        arrays = self._arrays()
        x = arrays["x_train"]
        n_out = self._outputs(arrays)
        if self.config.model == "mlp":
            return MLP((math.prod(x.shape[1:]), *self.config.widths, n_out))
        if self.config.model == "cnn":
            channels, size = int(x.shape[1]), int(x.shape[2])
            pools = ((2, 2), (2, 2)) if size >= 8 else ((1, 1), (1, 1))
            return ConvNet(channels, size, ((32, 3, 1), (64, 3, 1)), pools, (128,), n_out)
        return ResNet(self.config.blocks, n_out, in_channels=int(x.shape[1]))

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.config.task == "classification":
            return nnf.cross_entropy(outputs, targets)
        return (outputs - targets).square().mean()

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.config.task == "classification":
            return _error_rate(outputs, targets)
        return (outputs - targets).square().mean()
