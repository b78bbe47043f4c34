"""One unit of work: train one group of trials and store it as one atomic shard.

Dependency rule: torch, attrs, optcmp_data and optcmp's study/workloads/optim modules.

`run_group` is what every executor runs, in-process, in a worker process or on a Dask
worker: it needs only the (picklable) `StudySpec`, the `GroupTask`, the study directory
and the driver's provenance (command line, commit). Its phases: `GroupPlan.of` asks the study
once for what the group trains (workload spec, search space, trials); `train_group`
trains it on the data this process loaded once per workload; `build_shard` turns the
curves into `TrialRecord`s of an `ArchiveBuilder` that carries the provenance; the
builder names the shard and writes it (`ArchiveBuilder.write_shard`). A shard is written
only when the whole group has finished, so a killed run leaves finished groups complete
and unfinished ones absent.
"""

from __future__ import annotations

import enum
import functools
import os
import time
from typing import Final

import attrs
import torch

from optcmp._plugins import plugin_errors, plugin_record
from optcmp.runner._device import group_settings, resolve_device
from optcmp.runner._lifetime import check_lock
from optcmp.runner._placement import assigned_device
from optcmp.runner._train import GroupResult, GroupTrials, TrainOptions, train_group
from optcmp.spaces import SearchSpace
from optcmp.study import StudySpec, derive_seed
from optcmp.workloads import WORKLOAD_SOURCES, Splits, WorkloadSpec, get_workload
from optcmp_data import (
    CURVE_VARS,
    ArchiveBuilder,
    Curves,
    Status,
    TrialRecord,
    get_family,
)

__all__ = [
    "TIME_CAVEAT",
    "FailureKind",
    "GroupFailure",
    "GroupPlan",
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
        return ArchiveBuilder.shard_name(self.workload, self.optimizer, self.trials)

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


@attrs.frozen
class GroupPlan:
    """What one group trains, asked of the study once: the workload's spec with the
    study's budget, interval and batch size, the optimizer's search space, the trials
    (hyperparameters drawn from the space, seeds derived from the study seed) and the
    study's precision and compile mode."""

    task: GroupTask
    workload_spec: WorkloadSpec
    space: SearchSpace
    trials: GroupTrials
    options: TrainOptions

    @classmethod
    def of(cls, spec: StudySpec, task: GroupTask) -> GroupPlan:
        lo = min(task.trials)
        drawn = spec.trial_hparams(
            task.workload, task.optimizer, start=lo, count=max(task.trials) - lo + 1
        )
        trials = GroupTrials(
            hparams=[drawn[t - lo] for t in task.trials],
            seeds=[spec.trial_seed(task.workload, task.optimizer, t) for t in task.trials],
            data_seed=data_seed(spec, task.workload),
        )
        return cls(
            task,
            spec.workload_spec(task.workload),
            spec.space(task.optimizer),
            trials,
            TrainOptions(precision=spec.precision, compile_mode=spec.compile),
        )


def build_shard(
    plan: GroupPlan,
    result: GroupResult,
    *,
    command: str,
    git_commit: str | None = None,
) -> ArchiveBuilder:
    """The archive records of one finished group (workload facts, space, trials) with
    its provenance: the run's `command` and `git_commit` (None: this process's commit)
    and the precision the group trained at."""
    task = plan.task
    builder = ArchiveBuilder(
        source="optcmp run",
        command=command,
        torch_version=torch.__version__,
        git_commit=git_commit,
        precision=plan.options.precision,
        caveats=(TIME_CAVEAT,),
    )
    builder.add_workload(plan.workload_spec.info())
    family = get_family(plan.space.family)
    builder.add_optimizer(task.optimizer, family=family.name)
    if family.source != "optcmp":
        builder.add_plugin(task.optimizer, plugin_record(family))
    workload_source = WORKLOAD_SOURCES.get(task.workload, "optcmp")
    if workload_source != "optcmp":
        builder.add_plugin(task.workload, {"source": workload_source}, kind="workload")
    builder.add_space(task.workload, task.optimizer, plan.space.to_record())
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
                hparams=plan.trials.hparams[i],
                curves=curves,
                seed=plan.trials.seeds[i],
            )
        )
    return builder


def _train(spec: StudySpec, plan: GroupPlan) -> GroupResult:
    """Train the group on the device the executor placed this process on (`_placement`),
    else on the study's `device`."""
    device = resolve_device(assigned_device() or spec.device)
    with (
        group_settings(device, plan.options.precision),
        plugin_errors(plan.space.family, plan.task.workload),
    ):
        return train_group(
            get_workload(plan.task.workload),
            _splits(spec, plan.task.workload, device),
            plan.trials,
            space=plan.space,
            device=device,
            spec=plan.workload_spec,
            options=plan.options,
        )


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
    `lock_token` (the driver's, from its study lock), the shard is renamed into
    place only while that driver still holds the lock; otherwise ArchiveIOError and no
    shard. A shard of the same name already there is refused (ArchiveIOError).
    """
    if lock_token is not None:
        check_lock(study_dir, lock_token)  # a stale worker must not even start training
    started = time.perf_counter()
    spec.load_plugins()  # a spawned worker starts with the built-ins only
    plan = GroupPlan.of(spec, task)
    result = _train(spec, plan)
    builder = build_shard(plan, result, command=command, git_commit=git_commit)
    path = builder.write_shard(
        study_dir,
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
