"""The general training path of a group: `torch.func.vmap` over the trial axis and autograd.

Dependency rule: torch and optcmp's workloads package (and the runner's _path/_device).

The forward pass is `torch.func.functional_call` of one meta-device copy of the model
under `vmap` over the stacked [K, *shape] parameters and buffers (the K trials share the
minibatch), or a plain loop over trials for workloads whose spec says they do not
support vmap. The loss that is differentiated is the sum of the per-trial losses of the
active trials, whose gradient with respect to row k of a stacked parameter is the
gradient of trial k's own loss. Under precision "bf16" the forward passes run under
autocast; parameters and their gradients stay float32. On CUDA, image batches are made
channels-last, and with a compile mode other than "none" the vmapped loss and
evaluation functions go through `torch.compile` ("reduce-overhead": CUDA graphs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from optcmp.runner._device import autocast, check_compile_mode
from optcmp.runner._path import split_means
from optcmp.workloads import TensorSplit, Workload

__all__ = ["VmapPath"]


class VmapPath:
    """Per-trial loss/metric of K stacked models by vmap (or a loop), gradients by autograd."""

    def __init__(
        self,
        workload: Workload,
        base: nn.Module,
        names: list[str],
        buffers: dict[str, Tensor],
        *,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = False,
        compile_mode: str = "none",
    ) -> None:
        self._names = names
        self._buffers = buffers
        self._vmap = workload.spec.supports_vmap
        self._device = device
        self._precision = precision
        self._channels_last = channels_last
        self._saved: tuple[Sequence[Tensor], Tensor] | None = None

        def loss_one(
            params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor
        ) -> Tensor:
            out = functional_call(base, (params, buffers), (x,))
            return workload.loss(out, y)

        def both_one(
            params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor
        ) -> tuple[Tensor, Tensor]:
            out = functional_call(base, (params, buffers), (x,))
            return workload.loss(out, y), workload.metric(out, y)

        self._loss_one = loss_one
        self._both_one = both_one
        loss_v: Callable[..., Any] = vmap(loss_one, in_dims=(0, 0, None, None))
        both_v: Callable[..., Any] = vmap(both_one, in_dims=(0, 0, None, None))
        mode = check_compile_mode(compile_mode)
        if mode != "none" and self._vmap:
            loss_v = torch.compile(loss_v, mode=mode, dynamic=False)
            both_v = torch.compile(both_v, mode=mode, dynamic=False)
        self._loss_v = loss_v
        self._both_v = both_v

    def _rows(self, tree: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        return {n: t[k] for n, t in tree.items()}

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    def losses(self, stacked: Sequence[Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Per-trial losses [K] of the batch, differentiable in `stacked`."""
        params = dict(zip(self._names, stacked, strict=True))
        x = self._layout(x)
        with autocast(self._device, self._precision):
            if self._vmap:
                out: Tensor = self._loss_v(params, self._buffers, x, y)
                return out
            k = stacked[0].shape[0]
            return torch.stack(
                [
                    self._loss_one(self._rows(params, i), self._rows(self._buffers, i), x, y)
                    for i in range(k)
                ]
            )

    def forward(self, params: Sequence[Tensor], x: Tensor, y: Tensor) -> Tensor:
        for p in params:
            p.requires_grad_(True)
        losses = self.losses(params, x, y)
        self._saved = (params, losses)
        return losses.detach()

    def backward(self, params: Sequence[Tensor], active: Tensor) -> list[Tensor]:
        assert self._saved is not None, "backward without forward"
        saved, losses = self._saved
        self._saved = None
        grads = list(torch.autograd.grad(torch.where(active, losses, 0.0).sum(), list(saved)))
        for p in params:
            p.requires_grad_(False)
        return grads

    def evaluate(
        self, params: Sequence[Tensor], split: TensorSplit, chunk: int
    ) -> tuple[Tensor, Tensor]:
        tree = dict(zip(self._names, params, strict=True))
        k = params[0].shape[0]
        buffers = self._buffers

        def both(part: TensorSplit) -> tuple[Tensor, Tensor]:
            inputs = self._layout(part.inputs)
            with autocast(self._device, self._precision):
                if self._vmap:
                    out: tuple[Tensor, Tensor] = self._both_v(tree, buffers, inputs, part.targets)
                    return out
                pairs = [
                    self._both_one(
                        self._rows(tree, i), self._rows(buffers, i), inputs, part.targets
                    )
                    for i in range(k)
                ]
            return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

        return split_means(split, chunk, params[0], both)
