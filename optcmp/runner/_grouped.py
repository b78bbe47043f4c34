"""The grouped-layer fast path of a group: K stacked MLPs as grouped matmuls.

Dependency rule: torch and optcmp's workloads package (and the runner's _path).

For models that offer an `as_sequential()` view of Flatten / Linear / ReLU modules
(digits_mlp), `_GroupedLayers` holds the plan of that view and computes the K trials'
forward pass as grouped matmuls with a written-out backward pass (equal to the vmap path
up to rounding, about twice as fast as vmap on digits_mlp). `GroupedPath` is its
`GroupPath` (the interface `train_group` is written against): the loss's gradient comes
from `Workload.trial_loss_grads`, and the gradients land in buffers reused every step.
It computes in float32 only (`choose_path` uses the vmap path for "bf16").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from optcmp.runner._path import split_means
from optcmp.workloads import TensorSplit, Workload

__all__ = ["GroupedPath", "_GroupedLayers"]


class _GroupedLayers:
    """K stacked copies of an nn.Sequential of Flatten / Linear / ReLU as grouped matmuls.

    Activations are kept feature-major, [K, features, batch], so every layer is one
    `torch.baddbmm` over the trial axis and the first layer, whose input the K trials
    share, is a single [K * out, in] x [in, batch] matmul. The backward pass is written
    out (the same formulas autograd uses: dW = dZ H^T, db = sum dZ, dH = W^T dZ, ReLU's
    gradient masked by its output) so that every tensor has the layout the next matmul
    wants and the big ones live in reused buffers; only the workload's loss is
    differentiated by the workload (`Workload.trial_loss_grads`).
    """

    def __init__(self, workload: Workload, plan: list[tuple[str, int, int | None]]) -> None:
        self.workload = workload
        self._plan = plan  # ("flatten" | "relu" | "linear", weight index, bias index)
        self._last = max(i for i, step in enumerate(plan) if step[0] == "linear")
        # Hidden activations and their gradients are written into reused buffers: fresh
        # megabyte-sized tensors every step cost page faults and cache misses.
        self._buffers: dict[tuple[str, int, tuple[int, ...]], Tensor] = {}

    @classmethod
    def of(cls, workload: Workload, model: nn.Module, example: Tensor) -> _GroupedLayers | None:
        """The grouped form of `model` (one of the K models, not on the meta device), or
        None when it offers no `as_sequential` view or the view has other modules."""
        view = getattr(model, "as_sequential", None)
        if not callable(view) or list(model.buffers()) or example.dim() < 2:
            return None
        seq = view()
        if not isinstance(seq, nn.Sequential):
            return None
        index = {id(p): i for i, p in enumerate(model.parameters())}
        plan: list[tuple[str, int, int | None]] = []
        covered: set[int] = set()
        dims = example.dim()
        for module in seq:
            if isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
                dims = 2
                plan.append(("flatten", -1, None))
            elif isinstance(module, nn.ReLU) and plan and any(s[0] == "linear" for s in plan):
                plan.append(("relu", -1, None))
            elif isinstance(module, nn.Linear) and dims == 2:
                weight = index.get(id(module.weight))
                bias = None if module.bias is None else index.get(id(module.bias))
                if weight is None or (module.bias is not None and bias is None):
                    return None
                if weight in covered:  # a shared layer would need accumulated gradients
                    return None
                covered.update(i for i in (weight, bias) if i is not None)
                plan.append(("linear", weight, bias))
            else:
                return None
        if not covered or covered != set(range(len(index))):
            return None
        return cls(workload, plan)

    def _buffer(self, tag: str, i: int, shape: tuple[int, ...], like: Tensor) -> Tensor:
        key = (tag, i, shape)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return self._buffers[key]

    def forward(self, params: Sequence[Tensor], x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Outputs [K, out, B] (feature-major) and what `backward` needs; call without
        autograd recording."""
        k = params[0].shape[0]
        shared = x  # the input, common to all trials until the first Linear
        h: Tensor | None = None
        saved: list[Tensor] = []
        n = x.shape[0]
        for i, (kind, w, b) in enumerate(self._plan):
            if kind == "flatten":
                if h is None:
                    shared = shared.flatten(1)
            elif kind == "relu":
                assert h is not None
                h = h.relu_()
                saved.append(h)
            else:
                weight = params[w]
                out_f = weight.shape[1]
                # The output of the last Linear is the loss's input, fresh every call.
                z = (
                    torch.empty(k, out_f, n, dtype=weight.dtype, device=weight.device)
                    if i == self._last
                    else self._buffer("z", i, (k, out_f, n), weight)
                )
                if h is None:
                    flat, z2 = weight.view(k * out_f, -1), z.view(k * out_f, n)
                    if b is None:
                        torch.mm(flat, shared.t(), out=z2)
                    else:
                        torch.addmm(params[b].view(k * out_f, 1), flat, shared.t(), out=z2)
                    saved.append(shared)
                else:
                    saved.append(h)
                    if b is None:
                        torch.bmm(weight, h, out=z)
                    else:
                        torch.baddbmm(params[b].unsqueeze(-1), weight, h, out=z)
                h = z
        assert h is not None
        return h, saved

    def backward(
        self, params: Sequence[Tensor], saved: list[Tensor], d_out: Tensor, grads: list[Tensor]
    ) -> None:
        """Gradients of the K trials' summed losses into `grads` (one [K, *shape] per
        parameter), given d_out, the gradient with respect to the [K, out, B] outputs."""
        k = params[0].shape[0]
        g = d_out.contiguous()
        first = next(i for i, s in enumerate(self._plan) if s[0] == "linear")
        for i in range(len(self._plan) - 1, first - 1, -1):
            kind, w, b = self._plan[i]
            if kind == "flatten":
                continue
            held = saved.pop()
            if kind == "relu":
                # In place: `g` is a tensor of this step (a buffer or the loss gradient).
                torch.ops.aten.threshold_backward.grad_input(g, held, 0.0, grad_input=g)
            elif kind == "linear":
                if b is not None:
                    torch.sum(g, dim=-1, out=grads[b])
                if i == first:
                    torch.mm(
                        g.view(k * g.shape[1], -1), held, out=grads[w].view(k * g.shape[1], -1)
                    )
                else:
                    torch.bmm(g, held.transpose(1, 2), out=grads[w])
                    shape = (k, params[w].shape[2], g.shape[2])
                    g = torch.bmm(params[w].transpose(1, 2), g, out=self._buffer("dh", i, shape, g))

    def loss_grads(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Per-trial losses [K] of outputs [K, out, B] and the gradient of their sum with
        respect to `out` (non-finite only in the rows of trials whose loss is)."""
        losses, grad = self.workload.trial_loss_grads(out.transpose(1, 2), y)
        return losses, grad.transpose(1, 2)


class GroupedPath:
    """`GroupPath` of a model with a grouped form (`_GroupedLayers.of`)."""

    def __init__(self, layers: _GroupedLayers, params: Sequence[Tensor]) -> None:
        self.layers = layers
        self._grads = [torch.zeros_like(p) for p in params]
        self._saved: tuple[list[Tensor], Tensor] | None = None

    def forward(self, params: Sequence[Tensor], x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            out, acts = self.layers.forward(params, x)
            losses, d_out = self.layers.loss_grads(out, y)
        self._saved = (acts, d_out)
        return losses

    def backward(self, params: Sequence[Tensor], active: Tensor) -> list[Tensor]:
        # Unmasked: rows are independent, and those of inactive trials are zeroed by the
        # caller.
        assert self._saved is not None, "backward without forward"
        acts, d_out = self._saved
        self._saved = None
        with torch.no_grad():
            self.layers.backward(params, acts, d_out, self._grads)
        return self._grads

    def evaluate(
        self, params: Sequence[Tensor], split: TensorSplit, chunk: int
    ) -> tuple[Tensor, Tensor]:
        workload = self.layers.workload

        def both(part: TensorSplit) -> tuple[Tensor, Tensor]:
            out = self.layers.forward(params, part.inputs)[0].transpose(1, 2)
            return workload.trial_losses(out, part.targets), workload.trial_metrics(
                out, part.targets
            )

        return split_means(split, chunk, params[0], both)
