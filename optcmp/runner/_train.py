"""Batched training of one group of K trials of one (workload, optimizer) on one device.

Dependency rule: torch, numpy, attrs, optcmp_data and optcmp's optim/workloads packages.

How a group trains: the K models (each built from its own trial seed) are stacked
parameter by parameter into contiguous [K, *shape] tensors. A `GroupPath` (`_path.py`)
computes the K per-trial losses of a minibatch and the gradients of their sum: the
general `VmapPath` (`_vmap.py`: `torch.func.functional_call` under `vmap`, or a loop for
workloads that do not support vmap) or, for models that offer an `as_sequential()` view
of Flatten / Linear / ReLU modules (digits_mlp), the grouped-layer fast path
(`_grouped.py`). All K trials see the same minibatches in the same order, and the
gradient of the summed losses with respect to row k of a stacked parameter is the
gradient of trial k's own loss. The batched optimizer rule then updates the stacked
tensors in place, so per-step Python overhead is paid once per group, not once per trial.
Device, thread and precision switches live in `_device.py` (`group_settings`).

No host synchronisation inside a step: minibatch indices are cut on the device from one
permutation per epoch, each trial's finiteness is accumulated in a device mask, and the
host reads that mask only every `divergence_check` steps and at evaluations.

Divergence: a trial whose training loss at a step, or whose loss on an evaluation split,
is NaN or inf is marked diverged, and every evaluation after that step is NaN; the other
trials continue unaffected (rows of the stacked tensors are independent, and the loss
of a non-finite trial is masked out of the differentiated sum from that step on). Once
the host has seen a divergence, the trial's rows are frozen (its gradient is zeroed and
its parameters and optimizer state are restored after each step). Curves and statuses do
not depend on how often the host checks (`divergence_check`).

Determinism: on the CPU the group runs with one intra-op thread and denormals flushed to
zero (`deterministic_threads`), so reductions happen in one order whatever the machine;
with the same seeds, data order and hyperparameters the results are bit-identical. Wall
time is recorded but is not deterministic (see `optcmp.runner` for how archives are compared).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from optcmp.optim import Schedule, batch_hparams, get_rule, scheduled_lr, validate_schedule
from optcmp.runner._device import (
    check_compile_mode,
    check_precision,
    synchronize,
    wants_channels_last,
)
from optcmp.runner._grouped import GroupedPath, _GroupedLayers
from optcmp.runner._path import GroupPath
from optcmp.runner._vmap import VmapPath
from optcmp.workloads import Splits, Workload
from optcmp_data import CURVE_VARS, ConfigError, Status, get_schedule

__all__ = [
    "DIVERGENCE_CHECK",
    "EvalCallback",
    "GroupResult",
    "choose_path",
    "data_order",
    "train_group",
]

FloatArray = npt.NDArray[np.float64]

# Examples x trials evaluated per chunk. Larger chunks of a K-trial group make activations
# outgrow the CPU caches; on digits_mlp with K = 32, chunks of 256 evaluated twice as fast
# as chunks of 1024. Chunking changes results only by rounding (means are size-weighted).
_EVAL_ROWS: Final = 8192

#: Steps between two host reads of the group's divergence mask (besides evaluations).
DIVERGENCE_CHECK: Final = 8

#: Called after every evaluation with (step, number of trials diverged so far).
EvalCallback = Callable[[int, int], None]


def data_order(
    n_examples: int, batch_size: int, seed: int, device: torch.device | None = None
) -> Iterator[Tensor]:
    """Minibatch indices forever: a fresh seeded permutation per epoch, last partial batch
    dropped (the whole permutation when the split is smaller than one batch). The
    permutation is drawn on the CPU (the same order on every device) and, for another
    `device`, copied there once per epoch, so batches are cut on the device."""
    gen = torch.Generator().manual_seed(seed)
    size = min(batch_size, n_examples)
    while True:
        perm = torch.randperm(n_examples, generator=gen)
        if device is not None and device.type == "cuda":
            perm = perm.pin_memory().to(device, non_blocking=True)
        elif device is not None and device.type != "cpu":
            perm = perm.to(device)
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


def choose_path(
    workload: Workload,
    models: Sequence[nn.Module],
    names: list[str],
    params: Sequence[Tensor],
    buffers: dict[str, Tensor],
    example: Tensor,
    *,
    device: torch.device,
    grouped_layers: bool = True,
    precision: str = "fp32",
    compile_mode: str = "none",
    channels_last: bool = False,
) -> GroupPath:
    """The grouped-layer path when `grouped_layers` is on, the workload supports vmap,
    the precision is a float32 one and the model has a grouped form; else the vmap path."""
    if grouped_layers and workload.spec.supports_vmap and precision != "bf16":
        layers = _GroupedLayers.of(workload, models[0], example)
        if layers is not None:
            return GroupedPath(layers, params)
    base = copy.deepcopy(models[0]).to("meta")
    return VmapPath(
        workload,
        base,
        names,
        buffers,
        device=device,
        precision=precision,
        channels_last=channels_last,
        compile_mode=compile_mode,
    )


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
    precision: str = "fp32",
    compile_mode: str = "none",
    channels_last: bool | None = None,
    divergence_check: int = DIVERGENCE_CHECK,
) -> GroupResult:
    """Train K = len(seeds) trials of `optimizer` on `workload` as one batched group.

    `hparams[k]` holds trial k's optimizer and schedule hyperparameters (learning_rate
    and, for the schedule, e.g. decay_factor / decay_steps_fraction); optimizer values it
    omits take the family defaults. `splits` must already be on `device`. Evaluations are
    taken at steps 0, eval_interval, 2 eval_interval, ... and at step_budget.

    With `grouped_layers` (the default), a model that offers an `as_sequential()` view of
    Flatten / Linear / ReLU modules trains as grouped matmuls (`_GroupedLayers`), several
    times faster than vmap on small MLPs; results agree with the vmap path to rounding.
    `precision` ("fp32", "tf32", "bf16") and `compile_mode` ("none", "default",
    "reduce-overhead", "max-autotune"; vmap path only) are the study settings of those
    names; the caller sets the process-wide switches with `group_settings`.
    `channels_last` (default: on CUDA for image inputs) sets the layout of input batches.
    The host reads the divergence mask every `divergence_check` steps (results do not
    depend on it).
    """
    k = len(seeds)
    if k < 1 or len(hparams) != k:
        raise ConfigError(
            f"train_group: {k} seeds and {len(hparams)} hyperparameter sets; need K >= 1 of each"
        )
    if step_budget < 1 or eval_interval < 1 or batch_size < 1 or divergence_check < 1:
        raise ConfigError(
            f"train_group: step_budget={step_budget}, eval_interval={eval_interval}, "
            f"batch_size={batch_size}, divergence_check={divergence_check} must all be >= 1"
        )
    check_precision(precision)
    check_compile_mode(compile_mode)
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
    inputs, targets = splits.train.inputs, splits.train.targets
    path = choose_path(
        workload,
        models,
        names,
        params,
        buffers,
        inputs,
        device=device,
        grouped_layers=grouped_layers,
        precision=precision,
        compile_mode=compile_mode,
        channels_last=(
            wants_channels_last(device, inputs) if channels_last is None else channels_last
        ),
    )
    state = rule.init(params)
    base_lr = opt_hp["learning_rate"]

    eval_steps = _eval_steps(step_budget, eval_interval)
    n_eval = len(eval_steps)
    curves = {name: np.full((k, n_eval), np.nan) for name in CURVE_VARS}
    times = np.zeros(n_eval)
    # `active` (device) turns False at a trial's first non-finite loss, with no host sync;
    # `diverged` (host) is what the host has seen of it, `frozen` its row indices.
    active = torch.ones(k, dtype=torch.bool, device=device)
    diverged = np.zeros(k, dtype=bool)
    frozen = torch.empty(0, dtype=torch.long, device=device)
    order = data_order(len(splits.train), batch_size, data_seed, device=device)
    chunk = max(1, min(workload.spec.eval_batch_size, _EVAL_ROWS // k))
    eval_splits = (("train", splits.train_eval), ("valid", splits.valid), ("test", splits.test))
    trained = 0.0

    def mark(newly: npt.NDArray[np.bool_]) -> None:
        nonlocal frozen
        if newly.any():
            diverged[newly] = True
            frozen = torch.as_tensor(np.flatnonzero(diverged), device=device)

    def check() -> None:
        mark(~active.cpu().numpy() & ~diverged)

    def evaluate(index: int) -> None:
        check()
        with torch.no_grad():
            parts: list[Tensor] = []
            for _, split in eval_splits:
                parts.extend(path.evaluate(params, split, chunk))
            table = torch.stack(parts).cpu().numpy()  # one transfer for the whole table
        values = {
            f"{prefix}_{kind}": table[2 * i + j]
            for i, (prefix, _) in enumerate(eval_splits)
            for j, kind in enumerate(("loss", "metric"))
        }
        bad = ~np.isfinite(np.stack([values[f"{p}_loss"] for p, _ in eval_splits])).all(axis=0)
        newly = bad & ~diverged
        if newly.any():
            active[torch.as_tensor(newly, device=device)] = False
            mark(newly)
        for name in CURVE_VARS:
            row = np.where(diverged, np.nan, values[name])
            curves[name][:, index] = row
        times[index] = trained
        if on_eval is not None:
            on_eval(eval_steps[index], int(diverged.sum()))

    evaluate(0)
    next_eval = 1
    started = time.perf_counter()
    for step in range(step_budget):
        if step % divergence_check == 0 and step > 0:
            check()
        if diverged.all():
            break
        idx = next(order)
        losses = path.forward(params, inputs[idx], targets[idx])
        active &= torch.isfinite(losses)
        grads = path.backward(params, active)
        freeze = len(frozen) > 0
        if freeze:
            for g in grads:
                g.index_fill_(0, frozen, 0.0)
            kept = [p.index_select(0, frozen) for p in params]
            kept_state = {n: [b.index_select(0, frozen) for b in bs] for n, bs in state.items()}
        lr = scheduled_lr(sched, base_lr, step, step_budget, sched_hp)
        rule.apply_(params, grads, state, opt_hp, lr, step)
        if freeze:
            for p, saved in zip(params, kept, strict=True):
                p.index_copy_(0, frozen, saved)
            for n, bs in state.items():
                for b, saved in zip(bs, kept_state[n], strict=True):
                    b.index_copy_(0, frozen, saved)
        if next_eval < n_eval and step + 1 == eval_steps[next_eval]:
            synchronize(device)  # the queued steps belong to the training time
            trained += time.perf_counter() - started
            evaluate(next_eval)
            next_eval += 1
            started = time.perf_counter()
    if next_eval < n_eval:  # every trial diverged early: later evaluations stay NaN
        synchronize(device)
        trained += time.perf_counter() - started
    while next_eval < n_eval:
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
