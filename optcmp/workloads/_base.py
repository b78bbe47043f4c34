"""The workload interface: what the runner needs to train and evaluate one model/dataset pair.

Dependency rule: torch, numpy, attrs and optcmp_data only.

Contract (stable; the runner is written against it):

- `Workload.spec` is a `WorkloadSpec`: name, description, metric name and direction,
  batch size, step budget, evaluation interval, validation/test targets, whether data
  must come from the study file's `data_dir`, and whether the model can be vmapped
  (`supports_vmap`).
- `Workload.load(data_dir, *, device)` returns `Splits`: `train`, `train_eval` (a fixed
  subset of the training data for the training loss), `valid` and `test`, each a
  `TensorSplit(inputs, targets)` already on `device`. Loading is deterministic: the same
  files give the same tensors in the same order (the validation split is carved from the
  training data with a fixed seed). Missing or malformed files raise DataFormatError.
- `Workload.build_model(seed)` returns a fresh float32 `nn.Module` on the CPU whose
  parameters depend only on `seed`. Models hold no mutable state besides parameters and
  constant buffers (no BatchNorm running statistics), so `torch.func.functional_call`
  over parameters stacked with `torch.func.stack_module_state` works under `vmap` when
  `spec.supports_vmap` is true.
- `Workload.loss(outputs, targets)` and `Workload.metric(outputs, targets)` return scalar
  means over the batch. Both are pure tensor code (no `.item()`, no data-dependent
  Python branches), so they run under `vmap`; a mean over a split is the size-weighted
  mean of the per-chunk values, so the runner may evaluate large splits in chunks.
- Models take `inputs` of one split (a slice along dim 0) and return `outputs` whose
  dim 0 matches; targets are sliced the same way.

Optional fast path (the runner works without it): a model may define `as_sequential()`,
returning an `nn.Sequential` of Flatten / Linear / ReLU modules that shares the model's
parameters and computes the same function; the runner then trains K stacked copies as
grouped matmuls instead of through vmap. `Workload.trial_losses` / `trial_metrics` give
`loss` / `metric` of K trials' outputs at once and `trial_loss_grads` also the gradient of
the losses; the defaults vmap `loss` and `metric` (and differentiate with autograd), and a
workload may override them with an equal, faster form.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import attrs
import torch
from torch import nn

from optcmp_data import Direction, WorkloadInfo

__all__ = ["Splits", "TensorSplit", "Workload", "WorkloadSpec", "seeded"]


@attrs.frozen
class WorkloadSpec:
    """Facts about a workload that the runner and the archive need (stored as data)."""

    name: str
    description: str
    metric_name: str
    direction: Direction = attrs.field(converter=Direction)
    batch_size: int
    step_budget: int
    eval_interval: int
    valid_target: float = math.nan
    test_target: float = math.nan
    needs_data_dir: bool = False
    supports_vmap: bool = True
    # Chunk size the runner may use to evaluate large splits (memory bound, not semantics).
    eval_batch_size: int = 1024

    def info(self, *, step_budget: int | None = None) -> WorkloadInfo:
        """The archive's per-workload record (`step_budget` overrides the default)."""
        return WorkloadInfo(
            name=self.name,
            metric_name=self.metric_name,
            direction=self.direction,
            valid_target=self.valid_target,
            test_target=self.test_target,
            step_budget=self.step_budget if step_budget is None else step_budget,
        )


@attrs.frozen
class TensorSplit:
    """Inputs and targets of one split; dim 0 indexes examples."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __attrs_post_init__(self) -> None:
        if self.inputs.shape[0] != self.targets.shape[0]:
            raise ValueError(
                f"inputs have {self.inputs.shape[0]} examples, targets {self.targets.shape[0]}"
            )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def to(self, device: torch.device | str) -> TensorSplit:
        return TensorSplit(self.inputs.to(device), self.targets.to(device))

    def take(self, index: torch.Tensor | slice) -> TensorSplit:
        return TensorSplit(self.inputs[index], self.targets[index])


@attrs.frozen
class Splits:
    """The data of one workload: train, a fixed training subset, validation and test."""

    train: TensorSplit
    train_eval: TensorSplit
    valid: TensorSplit
    test: TensorSplit

    def to(self, device: torch.device | str) -> Splits:
        return Splits(
            self.train.to(device),
            self.train_eval.to(device),
            self.valid.to(device),
            self.test.to(device),
        )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under torch's global CPU generator seeded with `seed`, restoring it after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class Workload(abc.ABC):
    """One model/dataset pair; see the module docstring for the contract."""

    spec: WorkloadSpec

    @abc.abstractmethod
    def load(self, data_dir: Path | None, *, device: torch.device | str = "cpu") -> Splits:
        """The four splits on `device`; DataFormatError for missing or malformed files."""

    @abc.abstractmethod
    def _make_model(self) -> nn.Module:
        """A fresh model; called under a seeded generator by `build_model`."""

    def build_model(self, seed: int) -> nn.Module:
        """A fresh float32 model on the CPU, a deterministic function of `seed`."""
        with seeded(seed):
            return self._make_model().float()

    @abc.abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean training loss over the batch (scalar)."""

    @abc.abstractmethod
    def metric(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean of `spec.metric_name` over the batch (scalar)."""

    def trial_losses(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`loss` of each of K trials: outputs [K, *outputs of one batch], shared targets;
        returns [K]. Outputs may be any strided view (the runner's grouped layers pass a
        transposed view of [K, features, batch] memory)."""
        losses: torch.Tensor = torch.func.vmap(self.loss, in_dims=(0, None))(outputs, targets)
        return losses

    def trial_loss_grads(
        self, outputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`trial_losses` ([K], detached) and the gradient of their sum with respect to
        `outputs` (shaped like it); NaN or inf losses give non-finite rows of that trial only."""
        leaf = outputs.detach().requires_grad_(True)
        with torch.enable_grad():
            losses = self.trial_losses(leaf, targets)
            (grad,) = torch.autograd.grad(losses.sum(), leaf)
        return losses.detach(), grad

    def trial_metrics(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`metric` of each of K trials, as `trial_losses` is of `loss`; returns [K]."""
        metrics: torch.Tensor = torch.func.vmap(self.metric, in_dims=(0, None))(outputs, targets)
        return metrics

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r})"
