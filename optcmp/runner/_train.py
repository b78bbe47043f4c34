"""Batched training of one group of K trials of one (workload, optimizer) on one device.

Dependency rule: torch, numpy, attrs, optcmp_data and optcmp's optim/workloads packages.

How a group trains: the K models (each built from its own trial seed) are stacked
parameter by parameter into contiguous [K, *shape] tensors. The forward pass is
`torch.func.functional_call` under `torch.func.vmap` over the trial axis (or a plain loop
over trials for workloads that do not support vmap), or, for models that offer an
`as_sequential()` view of Flatten / Linear / ReLU modules (digits_mlp), grouped matmuls
with a written-out backward pass (`_GroupedLayers`; equal to the vmap path up to
rounding, about twice as fast as vmap on digits_mlp). All K trials see the same minibatches
in the same order, and the loss that is differentiated is the sum of the K per-trial
losses, whose gradient with respect to row k of a stacked parameter is the gradient of
trial k's own loss. The batched optimizer rule then updates the stacked tensors in place,
so per-step Python overhead is paid once per group, not once per trial.

Divergence: a trial whose training loss at a step, or whose loss on an evaluation split,
is NaN or inf is marked diverged. From then on its rows are frozen (its gradient is zeroed
and its parameters and optimizer state are restored after each step) and every later
evaluation of it is NaN; the other trials continue unaffected.

Determinism: on the CPU the group runs with one intra-op thread and denormals flushed to
zero (`deterministic_threads`), so reductions happen in one order whatever the machine;
with the same seeds, data order and hyperparameters the results are bit-identical. Wall
time is recorded but is not deterministic (see `optcmp.runner` for how archives are compared).
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from optcmp.optim import Schedule, batch_hparams, get_rule, scheduled_lr, validate_schedule
from optcmp.workloads import Splits, TensorSplit, Workload
from optcmp_data import CURVE_VARS, ConfigError, Status, get_schedule

__all__ = [
    "EvalCallback",
    "GroupResult",
    "data_order",
    "deterministic_threads",
    "resolve_device",
    "train_group",
]

FloatArray = npt.NDArray[np.float64]

# Examples x trials evaluated per chunk. Larger chunks of a K-trial group make activations
# outgrow the CPU caches; on digits_mlp with K = 32, chunks of 256 evaluated twice as fast
# as chunks of 1024. Chunking changes results only by rounding (means are size-weighted).
_EVAL_ROWS: Final = 8192

#: Called after every evaluation with (step, number of trials diverged so far).
EvalCallback = Callable[[int, int], None]


def resolve_device(name: str) -> torch.device:
    """The torch device for a study's `device` setting; ConfigError if it is unusable."""
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available here")
        return torch.device(name)
    raise ConfigError(f"device {name!r} is not supported; use 'cpu' or 'cuda'")


@contextlib.contextmanager
def deterministic_threads(device: torch.device) -> Iterator[None]:
    """CPU settings of a group while the block runs (restored after): one intra-op thread,
    so every reduction happens in one order on any machine, and denormal floats flushed
    to zero, which keeps decaying activations and gradients of some trials (below 1e-38)
    from slowing the whole group down many times over. No effect on other devices."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    flushing = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if flushing:
            torch.set_flush_denormal(False)


def data_order(n_examples: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    """Minibatch indices forever: a fresh seeded permutation per epoch, last partial batch
    dropped (the whole permutation when the split is smaller than one batch)."""
    gen = torch.Generator().manual_seed(seed)
    size = min(batch_size, n_examples)
    while True:
        perm = torch.randperm(n_examples, generator=gen)
        for start in range(0, n_examples - size + 1, size):
            yield perm[start : start + size]


@attrs.frozen
class GroupResult:
    """Curves of the K trials of one group: arrays are [K, n_eval] (step and time [n_eval]).

    `time` is the wall time in seconds the group spent training (evaluation excluded)
    when each evaluation was taken; the K trials share it because they train together.
    """

    step: npt.NDArray[np.int64]
    time: FloatArray
    curves: Mapping[str, FloatArray]
    status: tuple[Status, ...]


def _stack_params(
    models: Sequence[nn.Module], device: torch.device
) -> tuple[list[str], list[Tensor]]:
    """Parameter names and one contiguous [K, *shape] tensor per parameter."""
    names = [n for n, _ in models[0].named_parameters()]
    per_model = [dict(m.named_parameters()) for m in models]
    return names, [
        torch.stack([p[n].detach() for p in per_model]).to(device).contiguous() for n in names
    ]


def _stack_buffers(models: Sequence[nn.Module], device: torch.device) -> dict[str, Tensor]:
    names = [n for n, _ in models[0].named_buffers()]
    return {n: torch.stack([dict(m.named_buffers())[n] for m in models]).to(device) for n in names}


def _split_means(
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


class _Batched:
    """Per-trial loss/metric of K stacked models on one batch, by vmap or by a loop."""

    def __init__(self, workload: Workload, base: nn.Module, names: list[str]) -> None:
        self._workload = workload
        self._base = base
        self._names = names
        self._vmap = workload.spec.supports_vmap

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
        self._loss_v = vmap(loss_one, in_dims=(0, 0, None, None))
        self._both_v = vmap(both_one, in_dims=(0, 0, None, None))

    def _rows(self, tree: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        return {n: t[k] for n, t in tree.items()}

    def losses(
        self, stacked: list[Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor
    ) -> Tensor:
        params = dict(zip(self._names, stacked, strict=True))
        if self._vmap:
            out: Tensor = self._loss_v(params, buffers, x, y)
            return out
        k = stacked[0].shape[0]
        return torch.stack(
            [self._loss_one(self._rows(params, i), self._rows(buffers, i), x, y) for i in range(k)]
        )

    def evaluate(
        self, stacked: list[Tensor], buffers: dict[str, Tensor], split: TensorSplit, chunk: int
    ) -> tuple[Tensor, Tensor]:
        """Size-weighted means of loss and metric over `split`, per trial ([K] each)."""
        params = dict(zip(self._names, stacked, strict=True))
        k = stacked[0].shape[0]

        def both(part: TensorSplit) -> tuple[Tensor, Tensor]:
            if self._vmap:
                out: tuple[Tensor, Tensor] = self._both_v(
                    params, buffers, part.inputs, part.targets
                )
                return out
            pairs = [
                self._both_one(
                    self._rows(params, i), self._rows(buffers, i), part.inputs, part.targets
                )
                for i in range(k)
            ]
            return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

        return _split_means(split, chunk, stacked[0], both)


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
        self._workload = workload
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
        losses, grad = self._workload.trial_loss_grads(out.transpose(1, 2), y)
        return losses, grad.transpose(1, 2)

    def evaluate(
        self, params: Sequence[Tensor], split: TensorSplit, chunk: int
    ) -> tuple[Tensor, Tensor]:
        """Size-weighted means of loss and metric over `split`, per trial ([K] each)."""

        def both(part: TensorSplit) -> tuple[Tensor, Tensor]:
            out = self.forward(params, part.inputs)[0].transpose(1, 2)
            return (
                self._workload.trial_losses(out, part.targets),
                self._workload.trial_metrics(out, part.targets),
            )

        return _split_means(split, chunk, params[0], both)


def _eval_steps(step_budget: int, eval_interval: int) -> list[int]:
    steps = list(range(0, step_budget + 1, eval_interval))
    if steps[-1] != step_budget:
        steps.append(step_budget)
    return steps


def train_group(
    workload: Workload,
    splits: Splits,
    *,
    optimizer: str,
    schedule: Schedule | str,
    hparams: Sequence[Mapping[str, float]],
    seeds: Sequence[int],
    data_seed: int,
    step_budget: int,
    eval_interval: int,
    batch_size: int,
    device: torch.device,
    on_eval: EvalCallback | None = None,
    grouped_layers: bool = True,
) -> GroupResult:
    """Train K = len(seeds) trials of `optimizer` on `workload` as one batched group.

    `hparams[k]` holds trial k's optimizer and schedule hyperparameters (learning_rate
    and, for the schedule, e.g. decay_factor / decay_steps_fraction); optimizer values it
    omits take the family defaults. `splits` must already be on `device`. Evaluations are
    taken at steps 0, eval_interval, 2 eval_interval, ... and at step_budget.

    With `grouped_layers` (the default), a model that offers an `as_sequential()` view of
    Flatten / Linear / ReLU modules trains as grouped matmuls (`_GroupedLayers`), several
    times faster than vmap on small MLPs; results agree with the vmap path to rounding.
    """
    k = len(seeds)
    if k < 1 or len(hparams) != k:
        raise ConfigError(
            f"train_group: {k} seeds and {len(hparams)} hyperparameter sets; need K >= 1 of each"
        )
    if step_budget < 1 or eval_interval < 1 or batch_size < 1:
        raise ConfigError(
            f"train_group: step_budget={step_budget}, eval_interval={eval_interval}, "
            f"batch_size={batch_size} must all be >= 1"
        )
    rule = get_rule(optimizer)
    sched_spec = get_schedule(schedule)
    sched = sched_spec.kind
    sched_names = sched_spec.hparam_names
    opt_hp = batch_hparams(
        optimizer,
        [{n: v for n, v in h.items() if n not in sched_names} for h in hparams],
        device=device,
    )
    sched_rows = [sched_spec.complete({n: h[n] for n in sched_names if n in h}) for h in hparams]
    sched_hp = {
        n: torch.tensor([row[n] for row in sched_rows], dtype=torch.float32, device=device)
        for n in sched_names
    }
    validate_schedule(sched, sched_hp)

    models = [workload.build_model(int(s)) for s in seeds]
    names, params = _stack_params(models, device)
    buffers = _stack_buffers(models, device)
    grouped = None
    if grouped_layers and workload.spec.supports_vmap:
        grouped = _GroupedLayers.of(workload, models[0], splits.train.inputs)
    grads = [torch.zeros_like(p) for p in params] if grouped is not None else []
    base = copy.deepcopy(models[0]).to("meta")
    batched = _Batched(workload, base, names)
    state = rule.init(params)
    base_lr = opt_hp["learning_rate"]

    eval_steps = _eval_steps(step_budget, eval_interval)
    n_eval = len(eval_steps)
    curves = {name: np.full((k, n_eval), np.nan) for name in CURVE_VARS}
    times = np.zeros(n_eval)
    active = torch.ones(k, dtype=torch.bool, device=device)
    diverged = np.zeros(k, dtype=bool)
    order = data_order(len(splits.train), batch_size, data_seed)
    chunk = max(1, min(workload.spec.eval_batch_size, _EVAL_ROWS // k))
    eval_splits = (("train", splits.train_eval), ("valid", splits.valid), ("test", splits.test))
    trained = 0.0

    def evaluate(index: int) -> None:
        with torch.no_grad():
            values: dict[str, Any] = {}
            for prefix, split in eval_splits:
                if grouped is not None:
                    loss, metric = grouped.evaluate(params, split, chunk)
                else:
                    loss, metric = batched.evaluate(params, buffers, split, chunk)
                values[f"{prefix}_loss"] = loss.cpu().numpy()
                values[f"{prefix}_metric"] = metric.cpu().numpy()
        bad = ~np.isfinite(np.stack([values[f"{p}_loss"] for p, _ in eval_splits])).all(axis=0)
        newly = bad & ~diverged
        if newly.any():
            diverged[newly] = True
            active[torch.as_tensor(newly, device=device)] = False
        for name in CURVE_VARS:
            row = np.where(diverged, np.nan, values[name])
            curves[name][:, index] = row
        times[index] = trained
        if on_eval is not None:
            on_eval(eval_steps[index], int(diverged.sum()))

    evaluate(0)
    next_eval = 1
    for step in range(step_budget):
        # `diverged` mirrors `~active`, so these checks need no device sync.
        if diverged.all():
            break
        started = time.perf_counter()
        idx = next(order).to(device)
        x, y = splits.train.inputs[idx], splits.train.targets[idx]
        if grouped is not None:
            with torch.no_grad():
                out, acts = grouped.forward(params, x)
                losses, d_out = grouped.loss_grads(out, y)
        else:
            for p in params:
                p.requires_grad_(True)
            losses = batched.losses(params, buffers, x, y)
        finite = torch.isfinite(losses.detach())
        # One sync per step while every trial is finite.
        if not bool(finite.all()):
            newly = active & ~finite
            active &= finite
            diverged[newly.cpu().numpy()] = True
        if grouped is not None:
            # Unmasked: rows are independent, and those of inactive trials are zeroed below.
            with torch.no_grad():
                grouped.backward(params, acts, d_out, grads)
        else:
            grads = list(torch.autograd.grad(torch.where(active, losses, 0.0).sum(), params))
            for p in params:
                p.requires_grad_(False)
        frozen = ~active if diverged.any() else None
        if frozen is not None:
            for g in grads:
                g[frozen] = 0.0
            kept = [p[frozen].clone() for p in params]
            kept_state = {n: [b[frozen].clone() for b in bs] for n, bs in state.items()}
        lr = scheduled_lr(sched, base_lr, step, step_budget, sched_hp)
        rule.apply_(params, grads, state, opt_hp, lr, step)
        if frozen is not None:
            for p, saved in zip(params, kept, strict=True):
                p[frozen] = saved
            for n, bs in state.items():
                for b, saved in zip(bs, kept_state[n], strict=True):
                    b[frozen] = saved
        trained += time.perf_counter() - started
        if next_eval < n_eval and step + 1 == eval_steps[next_eval]:
            evaluate(next_eval)
            next_eval += 1
    while next_eval < n_eval:  # every trial diverged early: later evaluations stay NaN
        times[next_eval] = trained
        next_eval += 1
        if on_eval is not None:
            on_eval(eval_steps[next_eval - 1], int(diverged.sum()))
    status = tuple(Status.DIVERGED if d else Status.COMPLETED for d in diverged)
    return GroupResult(
        step=np.asarray(eval_steps, dtype=np.int64),
        time=times,
        curves=curves,
        status=status,
    )
