"""Pieces shared by the built-in workloads: splitting, normalisation, classification loss.

Dependency rule: torch, numpy and this subpackage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as nnf

from optcmp.workloads._base import Splits, TensorSplit, Workload

__all__ = [
    "SPLIT_SEED",
    "Classification",
    "LanguageModel",
    "carve_valid",
    "make_splits",
]

# Fixed seed of every data split, so the validation split never depends on a study seed.
SPLIT_SEED = 20191004

TRAIN_EVAL_SIZE = 2048


def carve_valid(n: int, n_valid: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(train indices, valid indices) of a fixed-seed random split of n training examples."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


def make_splits(
    train: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    valid: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    test: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    *,
    device: torch.device | str,
    input_dtype: torch.dtype = torch.float32,
    train_eval_size: int = TRAIN_EVAL_SIZE,
) -> Splits:
    """Tensors on `device`; train_eval is a fixed-seed subset of the training split."""

    def split(pair: tuple[npt.NDArray[Any], npt.NDArray[Any]]) -> TensorSplit:
        x, y = pair
        return TensorSplit(
            torch.as_tensor(np.ascontiguousarray(x)).to(device=device, dtype=input_dtype),
            torch.as_tensor(np.ascontiguousarray(y)).to(device=device),
        )

    n = len(train[0])
    pick = np.sort(np.random.default_rng(SPLIT_SEED + 1).permutation(n)[: min(n, train_eval_size)])
    return Splits(
        train=split(train),
        train_eval=split((train[0][pick], train[1][pick])),
        valid=split(valid),
        test=split(test),
    )


def standardize(
    train: npt.NDArray[Any], *others: npt.NDArray[Any], axis: tuple[int, ...]
) -> list[npt.NDArray[np.float32]]:
    """Scale by the training split's mean and std over `axis` (per channel for images)."""
    x = train.astype(np.float64)
    mean = x.mean(axis=axis, keepdims=True)
    std = x.std(axis=axis, keepdims=True)
    std = np.where(std > 0, std, 1.0)
    return [((a.astype(np.float64) - mean) / std).astype(np.float32) for a in (train, *others)]


def _error_rate(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of predictions (argmax over the last axis) that differ from the targets."""
    return (outputs.argmax(dim=-1) != targets).to(outputs.dtype).mean()


class Classification(Workload):
    """Cross-entropy loss and error rate on integer class labels."""

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nnf.cross_entropy(outputs, targets)

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _error_rate(outputs, targets)


class LanguageModel(Workload):
    """Next-token cross-entropy and per-token error on [B, T] token windows."""

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nnf.cross_entropy(outputs.flatten(0, 1), targets.flatten())

    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _error_rate(outputs, targets)
