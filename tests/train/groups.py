"""Training one group of trials on the CPU, as the runner's tests do (not a test module)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import torch

from optcmp.runner import GroupResult, GroupTrials, TrainOptions, train_group
from optcmp.runner._device import group_settings
from optcmp.spaces import SearchSpace, preset
from optcmp.workloads import Splits, Workload

CPU = torch.device("cpu")
_SPLITS: dict[str, Splits] = {}


def cpu_splits(workload: Workload) -> Splits:
    """`workload`'s splits on the CPU, loaded once per process (built-in data only)."""
    name = workload.spec.name
    if name not in _SPLITS:
        _SPLITS[name] = workload.load(None, device=CPU)
    return _SPLITS[name]


def train_on_cpu(
    workload: Workload,
    optimizer: str,
    hparams: list[dict[str, float]],
    seeds: Iterable[int],
    *,
    data_seed: int,
    schedule: str = "linear_decay",
    step_budget: int = 30,
    eval_interval: int = 10,
    **options: Any,
) -> GroupResult:
    """One group of `hparams` trials (model seeds `seeds`) of `optimizer` with `schedule`,
    batch size 32, `TrainOptions(**options)`, under the CPU settings a group trains with
    at that precision."""
    opts = TrainOptions(**options)
    with group_settings(CPU, opts.precision):
        return train_group(
            workload,
            cpu_splits(workload),
            GroupTrials(hparams, seeds, data_seed=data_seed),
            space=SearchSpace("test", optimizer, schedule),
            device=CPU,
            spec=attrs.evolve(
                workload.spec, step_budget=step_budget, eval_interval=eval_interval, batch_size=32
            ),
            options=opts,
        )


def stable_trials(optimizer: str, k: int, *, seed: int) -> list[dict[str, float]]:
    """`k` draws from the paper's search space of `optimizer` with the learning rate capped
    at 0.05: well inside the stable range, so every trial completes and comparisons cover
    whole curves (on the edge of stability, the rounding differences of two equivalent
    implementations grow without bound)."""
    trials = preset("choi2019", optimizer).sample(k, seed=seed)
    for t in trials:
        t["learning_rate"] = min(t["learning_rate"], 0.05)
    return trials
