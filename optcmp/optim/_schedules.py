"""Learning-rate schedules as functions of the step, one value per trial.

Dependency rule: torch and optcmp_data only.

`scheduled_lr(kind, base_lr, step, step_budget, params)` returns the learning rate of
each of K trials at step t (counted from 0): `base_lr` is a [K] tensor and `params` maps
the schedule's own hyperparameter names to [K] tensors (other keys are ignored, so a
trial's whole hyperparameter mapping can be passed). The schedules, with budget the
number of training steps:

- constant: lr_t = lr.
- linear_decay (the paper's): T = decay_steps_fraction x budget;
  lr_t = lr (1 - (1 - decay_factor) min(t / T, 1)), so the rate reaches
  lr x decay_factor at t = T and stays there.
- linear_warmup: W = warmup_steps_fraction x budget; lr_t = lr min((t + 1) / W, 1); the
  first step already uses lr / W (a zero first step would be wasted), then constant.
- cosine_decay: T = decay_steps_fraction x budget;
  lr_t = lr (decay_factor + (1 - decay_factor) (1 + cos(pi min(t / T, 1))) / 2).

The names, defaults and valid ranges live in `optcmp_data.SCHEDULE_SPECS` (torch-free).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from optcmp.optim._validation import check_values
from optcmp_data import ConfigError, ScheduleKind, get_schedule

__all__ = ["Schedule", "schedule_factor", "scheduled_lr", "validate_schedule"]

Schedule = ScheduleKind


def _param(kind: ScheduleKind, params: Mapping[str, Tensor], name: str, like: Tensor) -> Tensor:
    if name not in params:
        raise ConfigError(f"schedule {kind.value}: parameter {name} is missing")
    value = params[name]
    if value.shape != like.shape:
        raise ConfigError(
            f"schedule {kind.value}: parameter {name} must have shape {tuple(like.shape)}, "
            f"got {tuple(value.shape)}"
        )
    return value.to(like.dtype)


def schedule_factor(
    kind: ScheduleKind | str,
    step: int,
    step_budget: int,
    params: Mapping[str, Tensor],
    *,
    like: Tensor,
) -> Tensor:
    """lr_t / lr for each trial: a tensor shaped, typed and placed like `like` ([K])."""
    kind = get_schedule(kind).kind
    if step_budget < 1:
        raise ConfigError(f"schedule {kind.value}: step_budget = {step_budget} must be >= 1")
    if step < 0:
        raise ConfigError(f"schedule {kind.value}: step = {step} must be >= 0")
    if kind is ScheduleKind.CONSTANT:
        return torch.ones_like(like)
    if kind is ScheduleKind.LINEAR_WARMUP:
        length = _param(kind, params, "warmup_steps_fraction", like) * step_budget
        return torch.clamp((step + 1) / length, max=1.0)
    factor = _param(kind, params, "decay_factor", like)
    length = _param(kind, params, "decay_steps_fraction", like) * step_budget
    progress = torch.clamp(step / length, max=1.0)
    if kind is ScheduleKind.LINEAR_DECAY:
        return 1.0 - (1.0 - factor) * progress
    return factor + (1.0 - factor) * 0.5 * (1.0 + torch.cos(math.pi * progress))


def scheduled_lr(
    kind: ScheduleKind | str,
    base_lr: Tensor,
    step: int,
    step_budget: int,
    params: Mapping[str, Tensor],
) -> Tensor:
    """The learning rate of each trial at `step` ([K], like `base_lr`); see the module doc."""
    return base_lr * schedule_factor(kind, step, step_budget, params, like=base_lr)


def validate_schedule(kind: ScheduleKind | str, params: Mapping[str, Tensor | float]) -> None:
    """ConfigError naming the schedule, parameter and value for a missing or invalid value."""
    spec = get_schedule(kind)
    for h in spec.hparams:
        if h.name not in params:
            raise ConfigError(f"schedule {spec.kind.value}: parameter {h.name} is missing")
        check_values(h, params[h.name], owner=f"schedule {spec.kind.value}")
