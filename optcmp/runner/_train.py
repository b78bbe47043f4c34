"""Batched training of one group of K trials of one (workload, optimizer) on one device.

Dependency rule: torch, numpy, attrs, optcmp_data and optcmp's optim, spaces and workloads
modules.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from optcmp.optim import (
    Schedule,
    State,
    batch_hparams,
    get_rule,
    scheduled_lr,
    validate_schedule,
)
from optcmp.runner._device import (
    check_compile_mode,
    check_precision,
    synchronize,
    wants_channels_last,
)
from optcmp.runner._grouped import GroupedPath, _GroupedLayers
from optcmp.runner._path import GroupPath
from optcmp.runner._vmap import VmapPath
from optcmp.spaces import SearchSpace
from optcmp.workloads import Splits, TensorSplit, Workload, WorkloadSpec
from optcmp_data import CURVE_VARS, ConfigError, Status, get_schedule

__all__ = [
    "DIVERGENCE_CHECK",
    "EvalCallback",
    "GroupResult",
    "GroupTrials",
    "TrainOptions",
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


def _hparam_rows(rows: Iterable[Mapping[str, float]]) -> tuple[Mapping[str, float], ...]:
    return tuple(rows)


def _ints(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@attrs.frozen
class GroupTrials:
    """The K trials of one group: trial k's hyperparameters (`hparams[k]`: learning_rate,
    the optimizer's others, which take the family defaults where omitted, and the
    schedule's, e.g. decay_factor / decay_steps_fraction) and model seed (`seeds[k]`),
    and the seed of the minibatch order the K trials share (`data_seed`)."""

    hparams: tuple[Mapping[str, float], ...] = attrs.field(converter=_hparam_rows)
    seeds: tuple[int, ...] = attrs.field(converter=_ints)
    data_seed: int

    def __attrs_post_init__(self) -> None:
        k = len(self.seeds)
        if k < 1 or len(self.hparams) != k:
            raise ConfigError(
                f"train_group: {k} seeds and {len(self.hparams)} hyperparameter sets; "
                "need K >= 1 of each"
            )


@attrs.frozen
class TrainOptions:
    """How a group trains; none of it changes results beyond rounding.

    `precision` ("fp32", "tf32", "bf16") and `compile_mode` ("none", "default",
    "reduce-overhead", "max-autotune"; vmap path only) are the study settings of those
    names; the caller sets the process-wide switches with `group_settings`. With
    `grouped_layers` (the default), a model that offers an `as_sequential()` view of
    Flatten / Linear / ReLU modules trains as grouped matmuls (`_GroupedLayers`), several
    times faster than vmap on small MLPs; results agree with the vmap path to rounding.
    `channels_last` (None: on CUDA for image inputs) sets the layout of input batches.
    The host reads the divergence mask every `divergence_check` steps (results do not
    depend on it).
    """

    precision: str = "fp32"
    compile_mode: str = "none"
    grouped_layers: bool = True
    channels_last: bool | None = None
    divergence_check: int = DIVERGENCE_CHECK

    def __attrs_post_init__(self) -> None:
        check_precision(self.precision)
        check_compile_mode(self.compile_mode)


def train_group(
    workload: Workload,
    splits: Splits,
    trials: GroupTrials,
    *,
    space: SearchSpace,
    device: torch.device,
    spec: WorkloadSpec | None = None,
    options: TrainOptions | None = None,
    on_eval: EvalCallback | None = None,
) -> GroupResult:
    """Train the K trials of `trials` with `space`'s optimizer family and schedule on
    `workload` as one batched group.

    `spec` (default `workload.spec`; a study's is `StudySpec.workload_spec`, with its
    overrides) gives the step budget, the evaluation interval and the batch size.
    `splits` must already be on `device`. Evaluations are taken at steps 0,
    eval_interval, 2 eval_interval, ... and at step_budget; `on_eval` is called after
    each. `options`: `TrainOptions` (precision, compile mode, layout, fast path).

    Phases: the K stacked models with their path, optimizer state and hyperparameters
    (`_Stack`), then the steps (`_train_steps`), whose evaluations and divergences
    `_Recorder` keeps.
    """
    spec = workload.spec if spec is None else spec
    options = TrainOptions() if options is None else options
    _check_budget(spec, options)
    stack = _Stack(workload, splits, trials, space, device, options)
    recorder = _Recorder(
        len(trials.seeds), _eval_steps(spec.step_budget, spec.eval_interval), device, on_eval
    )
    _train_steps(workload, splits, trials, spec, options, stack, recorder)
    return recorder.result()


def _check_budget(spec: WorkloadSpec, options: TrainOptions) -> None:
    if (
        spec.step_budget < 1
        or spec.eval_interval < 1
        or spec.batch_size < 1
        or options.divergence_check < 1
    ):
        raise ConfigError(
            f"train_group: step_budget={spec.step_budget}, eval_interval={spec.eval_interval}, "
            f"batch_size={spec.batch_size}, divergence_check={options.divergence_check} must "
            "all be >= 1"
        )


@attrs.frozen
class _Hparams:
    """The optimizer rule of a group and its trials' hyperparameters as [K] device
    tensors: the optimizer's (`optimizer`) and the schedule's (`schedule_hp`)."""

    rule: Any
    optimizer: dict[str, Tensor]
    schedule: Schedule
    schedule_hp: dict[str, Tensor]

    @classmethod
    def of(cls, space: SearchSpace, trials: GroupTrials, device: torch.device) -> _Hparams:
        rule = get_rule(space.family)
        sched_spec = get_schedule(space.schedule)
        sched_names = sched_spec.hparam_names
        opt_hp = batch_hparams(
            space.family,
            [{n: v for n, v in h.items() if n not in sched_names} for h in trials.hparams],
            device=device,
        )
        sched_rows = [
            sched_spec.complete({n: h[n] for n in sched_names if n in h}) for h in trials.hparams
        ]
        sched_hp = {
            n: torch.tensor([row[n] for row in sched_rows], dtype=torch.float32, device=device)
            for n in sched_names
        }
        validate_schedule(sched_spec.kind, sched_hp)
        return cls(rule, opt_hp, sched_spec.kind, sched_hp)


class _Stack:
    """The K models of a group (each from its trial's seed) stacked into [K, *shape]
    parameter tensors, the path that trains them (`choose_path`), the rule's state and
    the trials' hyperparameters (`_Hparams`); `step` updates all K."""

    def __init__(
        self,
        workload: Workload,
        splits: Splits,
        trials: GroupTrials,
        space: SearchSpace,
        device: torch.device,
        options: TrainOptions,
    ) -> None:
        self.hp = _Hparams.of(space, trials, device)
        self.params, self.path = _stacked_models(workload, splits, trials, device, options)
        self.state: State = self.hp.rule.init(self.params)

    def step(self, x: Tensor, y: Tensor, step: int, step_budget: int, recorder: _Recorder) -> None:
        """One step on the minibatch (x, y): a trial whose loss is not finite turns
        inactive (`recorder.active`); the rows of `recorder.frozen` trials keep their
        parameters and optimizer state (their gradient is zeroed)."""
        losses = self.path.forward(self.params, x, y)
        recorder.active &= torch.isfinite(losses)
        grads = self.path.backward(self.params, recorder.active)
        frozen = recorder.frozen
        freeze = len(frozen) > 0
        if freeze:
            for g in grads:
                g.index_fill_(0, frozen, 0.0)
            kept = [p.index_select(0, frozen) for p in self.params]
            kept_state = {
                n: [b.index_select(0, frozen) for b in bs] for n, bs in self.state.items()
            }
        hp = self.hp
        lr = scheduled_lr(
            hp.schedule, hp.optimizer["learning_rate"], step, step_budget, hp.schedule_hp
        )
        hp.rule.apply_(self.params, grads, self.state, hp.optimizer, lr, step)
        if freeze:
            for p, saved in zip(self.params, kept, strict=True):
                p.index_copy_(0, frozen, saved)
            for n, bs in self.state.items():
                for b, saved in zip(bs, kept_state[n], strict=True):
                    b.index_copy_(0, frozen, saved)


def _stacked_models(
    workload: Workload,
    splits: Splits,
    trials: GroupTrials,
    device: torch.device,
    options: TrainOptions,
) -> tuple[list[Tensor], GroupPath]:
    """The K models stacked into [K, *shape] parameter tensors, and their path."""
    models = [workload.build_model(s) for s in trials.seeds]
    names, params = _stack_params(models, device)
    buffers = _stack_buffers(models, device)
    inputs = splits.train.inputs
    path = choose_path(
        workload,
        models,
        names,
        params,
        buffers,
        inputs,
        device=device,
        grouped_layers=options.grouped_layers,
        precision=options.precision,
        compile_mode=options.compile_mode,
        channels_last=(
            wants_channels_last(device, inputs)
            if options.channels_last is None
            else options.channels_last
        ),
    )
    return params, path


class _Recorder:
    """The curves [K, n_eval], the training time at each evaluation and the divergences
    of a group. `active` (device) turns False at a trial's first non-finite loss, with no
    host sync; `diverged` (host) is what the host has seen of it, `frozen` its row
    indices (a device tensor)."""

    def __init__(
        self,
        k: int,
        eval_steps: list[int],
        device: torch.device,
        on_eval: EvalCallback | None,
    ) -> None:
        self.eval_steps = eval_steps
        self.device = device
        self.on_eval = on_eval
        self.curves = {name: np.full((k, len(eval_steps)), np.nan) for name in CURVE_VARS}
        self.times = np.zeros(len(eval_steps))
        self.active = torch.ones(k, dtype=torch.bool, device=device)
        self.diverged = np.zeros(k, dtype=bool)
        self.frozen = torch.empty(0, dtype=torch.long, device=device)

    def mark(self, newly: npt.NDArray[np.bool_]) -> None:
        if newly.any():
            self.diverged[newly] = True
            self.frozen = torch.as_tensor(np.flatnonzero(self.diverged), device=self.device)

    def check(self) -> None:
        """Read the device mask: trials that turned non-finite since the last check."""
        self.mark(~self.active.cpu().numpy() & ~self.diverged)

    def evaluate(
        self,
        index: int,
        stack: _Stack,
        eval_splits: Sequence[tuple[str, TensorSplit]],
        chunk: int,
        trained: float,
    ) -> None:
        """Evaluation `index` of every split; a non-finite loss marks its trial diverged."""
        self.check()
        with torch.no_grad():
            parts: list[Tensor] = []
            for _, split in eval_splits:
                parts.extend(stack.path.evaluate(stack.params, split, chunk))
            table = torch.stack(parts).cpu().numpy()  # one transfer for the whole table
        values = {
            f"{prefix}_{kind}": table[2 * i + j]
            for i, (prefix, _) in enumerate(eval_splits)
            for j, kind in enumerate(("loss", "metric"))
        }
        bad = ~np.isfinite(np.stack([values[f"{p}_loss"] for p, _ in eval_splits])).all(axis=0)
        newly = bad & ~self.diverged
        if newly.any():
            self.active[torch.as_tensor(newly, device=self.device)] = False
            self.mark(newly)
        for name in CURVE_VARS:
            self.curves[name][:, index] = np.where(self.diverged, np.nan, values[name])
        self.times[index] = trained
        if self.on_eval is not None:
            self.on_eval(self.eval_steps[index], int(self.diverged.sum()))

    def skip(self, index: int, trained: float) -> None:
        """Evaluation `index` after every trial diverged: NaN, at the final time."""
        self.times[index] = trained
        if self.on_eval is not None:
            self.on_eval(self.eval_steps[index], int(self.diverged.sum()))

    def result(self) -> GroupResult:
        return GroupResult(
            step=np.asarray(self.eval_steps, dtype=np.int64),
            time=self.times,
            curves=self.curves,
            status=tuple(Status.DIVERGED if d else Status.COMPLETED for d in self.diverged),
        )


def _train_steps(
    workload: Workload,
    splits: Splits,
    trials: GroupTrials,
    spec: WorkloadSpec,
    options: TrainOptions,
    stack: _Stack,
    recorder: _Recorder,
) -> None:
    """The steps of a group, with its evaluations, until the budget or until every
    trial diverged (the evaluations left then stay NaN)."""
    k = len(trials.seeds)
    inputs, targets = splits.train.inputs, splits.train.targets
    order = data_order(len(splits.train), spec.batch_size, trials.data_seed, device=recorder.device)
    chunk = max(1, min(workload.spec.eval_batch_size, _EVAL_ROWS // k))
    eval_splits = (("train", splits.train_eval), ("valid", splits.valid), ("test", splits.test))
    eval_steps, n_eval = recorder.eval_steps, len(recorder.eval_steps)
    trained = 0.0
    recorder.evaluate(0, stack, eval_splits, chunk, trained)
    next_eval = 1
    started = time.perf_counter()
    for step in range(spec.step_budget):
        if step % options.divergence_check == 0 and step > 0:
            recorder.check()
        if recorder.diverged.all():
            break
        idx = next(order)
        stack.step(inputs[idx], targets[idx], step, spec.step_budget, recorder)
        if next_eval < n_eval and step + 1 == eval_steps[next_eval]:
            synchronize(recorder.device)  # the queued steps belong to the training time
            trained += time.perf_counter() - started
            recorder.evaluate(next_eval, stack, eval_splits, chunk, trained)
            next_eval += 1
            started = time.perf_counter()
    if next_eval < n_eval:  # every trial diverged early: later evaluations stay NaN
        synchronize(recorder.device)
        trained += time.perf_counter() - started
    for index in range(next_eval, n_eval):
        recorder.skip(index, trained)
