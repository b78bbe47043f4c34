"""A small regression workload generated in memory: y = sin(3 x1) + 0.5 x2^2 + noise,
fitted by an MLP 2-32-32-1. No files needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from optcmp import Splits, TensorSplit, Workload, WorkloadSpec


def _split(rng: np.random.Generator, n: int, device: torch.device | str) -> TensorSplit:
    x = rng.uniform(-1.0, 1.0, size=(n, 2)).astype(np.float32)
    y = np.sin(3 * x[:, :1]) + 0.5 * x[:, 1:] ** 2 + 0.05 * rng.standard_normal((n, 1))
    return TensorSplit(
        torch.from_numpy(x).to(device), torch.from_numpy(y.astype(np.float32)).to(device)
    )


class SineRegression(Workload):
    spec = WorkloadSpec(
        name="sine_regression",
        description="MLP 2-32-32-1 regressing sin(3 x1) + 0.5 x2^2 (noise sd 0.05)",
        metric_name="mse",
        direction="min",
        batch_size=32,
        step_budget=300,
        eval_interval=50,
    )

    def load(self, data_dir: Path | None, *, device: torch.device | str = "cpu") -> Splits:
        del data_dir  # generated
        rng = np.random.default_rng(1234)
        train = _split(rng, 1024, device)
        return Splits(
            train, train.take(slice(0, 256)), _split(rng, 256, device), _split(rng, 256, device)
        )

    def _make_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1)
        )

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs - targets).square().mean()

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs, targets)
