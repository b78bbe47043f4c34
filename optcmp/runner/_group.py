"""One unit of work: train one group of trials and store it as one atomic shard.

Dependency rule: torch, attrs, optcmp_data and optcmp's study/workloads/optim modules.

`run_group` is what every executor runs, in-process, in a worker process or on a Dask
worker: it needs only the (picklable) `StudySpec`, the `GroupTask` and the study
directory, loads the workload's data once per process, trains the group with
`train_group`, converts the curves to `TrialRecord`s and writes them with
`optcmp_data.write_shard`. A shard is written only when the whole group has finished, so
a killed run leaves finished groups complete and unfinished ones absent.
"""

from __future__ import annotations

import enum
import functools
import os
import time
from pathlib import Path
from typing import Final

import attrs
import torch

from optcmp._plugins import plugin_errors, plugin_record
from optcmp.runner._device import group_settings, resolve_device
from optcmp.runner._lifetime import check_lock
from optcmp.runner._placement import assigned_device
from optcmp.runner._train import GroupResult, train_group
from optcmp.study import StudySpec, derive_seed
from optcmp.workloads import WORKLOAD_SOURCES, Splits, get_workload
from optcmp_data import (
    CURVE_VARS,
    ArchiveBuilder,
    ArchiveIOError,
    Curves,
    Status,
    TrialRecord,
    get_family,
    write_shard,
)
from optcmp_data._io import SHARD_SUFFIX

__all__ = [
    "TIME_CAVEAT",
    "FailureKind",
    "GroupFailure",
    "GroupSummary",
    "GroupTask",
    "build_shard",
    "data_seed",
    "run_group",
]

#: Caveat stored in every archive the runner writes.
TIME_CAVEAT: Final = (
    "time is the wall-clock seconds the batched group of trials (trained together) spent "
    "training when each evaluation was taken, evaluation excluded; it is shared by the "
    "trials of a group and is not reproducible (compare archives without it)"
)


@attrs.frozen
class GroupTask:
    """Trials of one (workload, optimizer) that train together as one batched group.

    The study partitions trial indices into fixed slots of K (0..K-1, K..2K-1, ...); a
    task holds the trials of one slot that are not stored yet. Its shard is named after
    its first and last trial, which no stored shard can share (those trials would be
    stored).
    """

    workload: str
    optimizer: str
    trials: tuple[int, ...]

    @property
    def shard_name(self) -> str:
        return f"{self.workload}--{self.optimizer}--{self.trials[0]:05d}-{self.trials[-1]:05d}"

    def describe(self) -> str:
        """'group digits_mlp/adam trials 0-15' (or 'trial 3'), for messages."""
        first, last = self.trials[0], self.trials[-1]
        which = f"trial {first}" if first == last else f"trials {first}-{last}"
        return f"group {self.workload}/{self.optimizer} {which}"


@attrs.frozen
class GroupSummary:
    """What a finished group reports back to the driver (for progress and totals)."""

    task: GroupTask
    trials: int
    diverged: int
    seconds: float
    shard: str


class FailureKind(enum.Enum):
    """How a group failed without stopping the run (see `GroupFailure`)."""

    RAISED = "raised"  # a plug-in raised (PluginError)
    DIED = "died"  # its worker process died (a signal or an exit code)
    TIMED_OUT = "timed out"  # it ran past the group time limit and its worker was stopped


@attrs.frozen
class GroupFailure:
    """A group that stored nothing; `detail` is the PluginError's message, the worker's
    fate ('SIGSEGV', 'exit code 3') or the time limit ('30 s')."""

    task: GroupTask
    kind: FailureKind
    detail: str


def data_seed(spec: StudySpec, workload: str) -> int:
    """Seed of the minibatch order of a workload: one order for every group and optimizer,
    so a group's results do not depend on which trials share it."""
    return derive_seed(spec.seed, "data", workload)


# Loaded splits of this process, so a worker running many groups loads each dataset once.
_SPLITS: dict[tuple[str, str, str], Splits] = {}


def _splits(spec: StudySpec, workload: str, device: torch.device) -> Splits:
    key = (workload, str(spec.data_dir), str(device))
    if key not in _SPLITS:
        _SPLITS[key] = get_workload(workload).load(spec.data_dir, device=device)
    return _SPLITS[key]


def build_shard(
    spec: StudySpec,
    task: GroupTask,
    result: GroupResult,
    *,
    command: str,
    hparams: list[dict[str, float]],
    seeds: list[int],
) -> ArchiveBuilder:
    """The archive records of one finished group (workload facts, space, trials)."""
    builder = ArchiveBuilder(
        source="optcmp run",
        command=command,
        torch_version=torch.__version__,
        caveats=(TIME_CAVEAT,),
    )
    builder.add_workload(spec.workload_spec(task.workload).info())
    family = get_family(spec.space(task.optimizer).family)
    builder.add_optimizer(task.optimizer, family=family.name)
    if family.source != "optcmp":
        builder.add_plugin(task.optimizer, plugin_record(family))
    workload_source = WORKLOAD_SOURCES.get(task.workload, "optcmp")
    if workload_source != "optcmp":
        builder.add_plugin(task.workload, {"source": workload_source}, kind="workload")
    builder.add_space(task.workload, task.optimizer, spec.space(task.optimizer).to_record())
    for i, trial in enumerate(task.trials):
        curves = Curves(
            step=result.step,
            time=result.time,
            **{name: result.curves[name][i] for name in CURVE_VARS},
        )
        builder.add_trial(
            TrialRecord(
                workload=task.workload,
                optimizer=task.optimizer,
                trial=trial,
                status=result.status[i],
                hparams=hparams[i],
                curves=curves,
                seed=seeds[i],
            )
        )
    return builder


def run_group(
    spec: StudySpec,
    task: GroupTask,
    study_dir: str,
    command: str,
    git_commit: str | None = None,
    lock_token: str | None = None,
) -> GroupSummary:
    """Train `task`'s trials and write their shard into `study_dir` (see module docstring).

    `command` and `git_commit` are the driver's, so every shard of one run carries the same
    provenance wherever it ran (`git_commit` None: the commit this process sees). With
    `lock_token` (the driver's, from its study lock), the shard is renamed into place only
    while that driver still holds the lock; otherwise ArchiveIOError and no shard.
    The group trains on the device the executor placed this process on (`_placement`),
    else on the study's `device`, at the study's `precision`, which the shard records.
    """
    if lock_token is not None:
        check_lock(study_dir, lock_token)  # a stale worker must not even start training
    started = time.perf_counter()
    spec.load_plugins()  # a spawned worker starts with the built-ins only
    device = resolve_device(assigned_device() or spec.device)
    wspec = spec.workload_spec(task.workload)
    space = spec.space(task.optimizer)
    lo = min(task.trials)
    drawn = spec.trial_hparams(
        task.workload, task.optimizer, start=lo, count=max(task.trials) - lo + 1
    )
    hparams = [drawn[t - lo] for t in task.trials]
    seeds = [spec.trial_seed(task.workload, task.optimizer, t) for t in task.trials]
    with group_settings(device, spec.precision), plugin_errors(space.family, task.workload):
        splits = _splits(spec, task.workload, device)
        result = train_group(
            get_workload(task.workload),
            splits,
            optimizer=space.family,
            schedule=space.schedule,
            hparams=hparams,
            seeds=seeds,
            data_seed=data_seed(spec, task.workload),
            step_budget=wspec.step_budget,
            eval_interval=wspec.eval_interval,
            batch_size=wspec.batch_size,
            device=device,
            precision=spec.precision,
            compile_mode=spec.compile,
        )
    builder = build_shard(spec, task, result, command=command, hparams=hparams, seeds=seeds)
    target = Path(study_dir) / f"{task.shard_name}{SHARD_SUFFIX}"
    if target.exists():
        raise ArchiveIOError(f"{target}: shard exists already; refusing to store trials twice")
    shard = builder.build()
    shard.attrs["precision"] = spec.precision
    if git_commit is not None:
        shard.attrs["git_commit"] = git_commit
    path = write_shard(
        shard,
        Path(study_dir),
        task.shard_name,
        before_rename=None
        if lock_token is None
        else functools.partial(check_lock, study_dir, lock_token),
    )
    return GroupSummary(
        task=task,
        trials=len(task.trials),
        diverged=sum(s is Status.DIVERGED for s in result.status),
        seconds=time.perf_counter() - started,
        shard=os.fspath(path),
    )
