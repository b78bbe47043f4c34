"""The interface of the two ways a group of K stacked models trains, and what they share.

Dependency rule: torch and optcmp's workloads package.

A `GroupPath` computes, for K models whose parameters are stacked into [K, *shape]
tensors, the K per-trial training losses of one minibatch (`forward`), the gradients of
their sum (`backward`) and per-trial evaluation means over a split (`evaluate`). Two
implementations exist, each in its own module:

- `VmapPath` (`_vmap.py`): any workload; `torch.func.functional_call` under `vmap` over
  the trial axis (or a plain loop for workloads that do not support vmap) and autograd;
- `GroupedLayers` (`_grouped.py`): models with an `as_sequential()` view of Flatten /
  Linear / ReLU modules, as grouped matmuls with a written-out backward pass.

`train_group` (`_train.py`) picks one with `choose_path` and is written against this
interface only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from optcmp.workloads import TensorSplit

__all__ = ["GroupPath", "split_means"]


class GroupPath(Protocol):
    """Loss, gradients and evaluation of K stacked models (see the module docstring)."""

    def forward(self, params: Sequence[Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Per-trial training losses [K] (detached) of the batch (x, y); keeps what
        `backward` needs."""
        ...

    def backward(self, params: Sequence[Tensor], active: Tensor) -> list[Tensor]:
        """Gradients (one [K, *shape] per parameter) of the sum of the losses of the last
        `forward`. Rows of trials not `active` ([K] bool) are unspecified: the caller
        zeroes them."""
        ...

    def evaluate(
        self, params: Sequence[Tensor], split: TensorSplit, chunk: int
    ) -> tuple[Tensor, Tensor]:
        """Size-weighted means of loss and metric over `split`, per trial ([K] each)."""
        ...


def split_means(
    split: TensorSplit,
    chunk: int,
    like: Tensor,
    both: Callable[[TensorSplit], tuple[Tensor, Tensor]],
) -> tuple[Tensor, Tensor]:
    """Size-weighted float64 means over `split` of the per-trial (loss, metric) that `both`
    gives for one chunk of at most `chunk` examples; `like` ([K, ...]) sets K and device."""
    k = like.shape[0]
    loss_sum = torch.zeros(k, dtype=torch.float64, device=like.device)
    metric_sum = torch.zeros(k, dtype=torch.float64, device=like.device)
    n = len(split)
    for start in range(0, n, chunk):
        part = split.take(slice(start, start + chunk))
        loss, metric = both(part)
        loss_sum += loss.double() * len(part)
        metric_sum += metric.double() * len(part)
    return loss_sum / n, metric_sum / n
