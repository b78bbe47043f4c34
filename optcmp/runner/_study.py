"""Running a study into a study directory, resumably.

Dependency rule: the standard library, attrs, optcmp_data and the runner's own modules;
torch only through them.

A study directory holds the shards (one per finished group), a copy of the study file
(`study.toml`, when the study came from a file) and `study.json`, the canonical form of
the spec (`StudySpec.to_json`) with the effective group size. Running again into the
same directory:

- with the same spec, runs only the trials no shard holds (`optcmp_data.stored_cells`),
  in the same groups an uninterrupted run would have used, so the archive equals an
  uninterrupted run's (see `comparable`);
- with `trials` raised and nothing else changed, extends the study (trial i is always the
  i-th quasi-random point, so the first trials keep their hyperparameters); if the old
  count did not fill its last group, the new trials of that group train without the old
  ones, so they equal an uninterrupted study's only up to floating-point rounding;
- with anything else changed (its name aside), raises ConfigError naming the first
  differing key.

A lock file (`.optcmp.lock`, flock-ed, released by the OS when the process dies) keeps two
drivers out of one directory; stale temp files of a killed run are removed under it. The
lock also carries a token of the run holding it, and a shard is stored only while that run
holds the lock (`optcmp.runner._lifetime`): worker processes die with their driver, and
SIGTERM/SIGINT stop a run cleanly (`StudyInterrupted`: finished shards kept, running
groups killed, temp files removed).

A group that fails without stopping the run (`GroupFailure`: its plug-in raised, its worker
process died, or it ran past the group time limit) stores nothing; the other groups go on
and are stored, except the not yet started groups of the failed group's plug-in, which
would most likely fail the same way. At the end `GroupsFailed` reports one line per failed
plug-in (or per failed group without plug-in); running again runs only what is not stored.
A study with a plug-in or a time limit never runs groups in the driver's own process.

An extension of `trials` that stored nothing yet can be taken back: running the smaller
study again is refused only once a trial beyond its count is stored.

Before anything trains, the directory must be writable and the memory of one group (per
worker) and of the study's whole archive must fit the limit (`optcmp_data._limits`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import xarray as xr

from optcmp._plugins import group_plugins, in_process_only
from optcmp.runner._device import resolve_device
from optcmp.runner._executors import Executor, Job, LocalExecutor
from optcmp.runner._group import FailureKind, GroupFailure, GroupSummary, GroupTask, run_group
from optcmp.runner._lifetime import LOCK_FILE, StudyInterrupted, claim_lock, stop_on_signals
from optcmp.study import StudySpec
from optcmp_data import (
    CURVE_VARS,
    ArchiveIOError,
    ConfigError,
    OptcmpError,
    atomic_write_text,
    check_memory,
    git_commit,
    memory_limit,
    os_error,
    stored_cells,
)

__all__ = [
    "DEFAULT_GROUP_SIZE",
    "NONDETERMINISTIC_ATTRS",
    "NONDETERMINISTIC_VARS",
    "GroupsFailed",
    "Progress",
    "StudyInterrupted",
    "StudyRun",
    "comparable",
    "plan_groups",
    "run_study",
]

#: Group size K when neither the study file nor the caller sets one.
DEFAULT_GROUP_SIZE: Final = 16
#: What differs between two runs of one study and seed: wall time, creation time and the
#: command line (which names the output directory). Everything else is bit-identical on CPU.
NONDETERMINISTIC_VARS: Final = ("time",)
NONDETERMINISTIC_ATTRS: Final = ("created", "command")

SPEC_JSON: Final = "study.json"
SPEC_COPY: Final = "study.toml"
# Spec keys that label a study without changing a trial (e.g. the name from the file stem).
_LABELS: Final = frozenset({"name"})


class Progress(Protocol):
    """Receives progress of a run (the CLI draws a bar from it)."""

    def start(self, *, total: int, done: int, groups: int) -> None:
        """`total` trials in the study, `done` of them stored before this run."""

    def group_done(self, summary: GroupSummary) -> None:
        """One group finished and its shard is written."""


@attrs.frozen
class StudyRun:
    """What one `run_study` call did."""

    study_dir: Path
    total_trials: int
    stored_before: int
    trials_run: int
    diverged: int
    groups_run: int
    group_size: int
    executor: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "study_dir": str(self.study_dir),
            "total_trials": self.total_trials,
            "stored_before": self.stored_before,
            "trials_run": self.trials_run,
            "diverged": self.diverged,
            "groups_run": self.groups_run,
            "group_size": self.group_size,
            "executor": self.executor,
            "seconds": self.seconds,
        }


class GroupsFailed(OptcmpError):  # noqa: N818 - it names what happened
    """Some groups failed (`GroupFailure`) while the others ran and were stored; `lines`
    holds one complete message per failed plug-in (or failed group without plug-in)."""

    def __init__(self, lines: list[str], *, stored: int, total: int) -> None:
        self.lines = lines
        self.stored = stored
        self.total = total
        super().__init__("; ".join(lines))


def _culprits(spec: StudySpec, task: GroupTask) -> tuple[str, ...]:
    return group_plugins(spec.space(task.optimizer).family, task.workload)


def _in_process_only(spec: StudySpec, task: GroupTask) -> tuple[str, ...]:
    return in_process_only(spec.space(task.optimizer).family, task.workload)


def _run_in_this_process(executor: Executor, local: list[str], timeout: float | None) -> bool:
    """Registrations made from Python in this process (`local`) reach no worker process
    (workers start fresh): their groups run here, with one local worker and no group time
    limit; otherwise one line saying how to make them loadable. Returns `isolate`: False."""
    here = isinstance(executor, LocalExecutor) and executor.workers == 1 and timeout is None
    if not here:
        them = "it" if len(local) == 1 else "them"
        raise ConfigError(
            f"{', '.join(local)}: registered from Python in this process; worker processes "
            f"start fresh and cannot see {them}. Run with one local worker and no group "
            f"time limit, or name {them} in the study's [plugins] table or in an installed "
            "package's entry points (docs/extending.md)"
        )
    return False


def _describe_failure(failure: GroupFailure, culprits: tuple[str, ...]) -> str:
    group = failure.task.describe()
    who = " or ".join(culprits)
    if failure.kind is FailureKind.RAISED:
        return f"{failure.detail} ({group})"
    if failure.kind is FailureKind.DIED:
        what = f"the worker process running {group} died ({failure.detail})"
    else:
        what = (
            f"{group} ran past the group time limit of {failure.detail}; its worker "
            "process was stopped"
        )
    return f"{who}: {what}" if who else what


def _failure_lines(
    spec: StudySpec, failures: list[GroupFailure], not_run: list[GroupTask]
) -> list[str]:
    """One line per failed plug-in (or group without plug-in), in order of failure."""
    lines = []
    seen: set[tuple[str, ...]] = set()
    for failure in failures:
        culprits = _culprits(spec, failure.task)
        if culprits and culprits in seen:
            continue
        seen.add(culprits)
        line = _describe_failure(failure, culprits)
        if culprits:
            shared = set(culprits).intersection
            more = sum(1 for f in failures if f is not failure and shared(_culprits(spec, f.task)))
            skipped = sum(1 for t in not_run if shared(_culprits(spec, t)))
            if more:
                line += f"; {more} more of its groups failed"
            if skipped:
                line += f"; {skipped} of its groups not run"
        lines.append(line)
    return lines


def comparable(archive: xr.Dataset) -> xr.Dataset:
    """`archive` without the data that legitimately differs between two runs of one study
    (`NONDETERMINISTIC_VARS`, `NONDETERMINISTIC_ATTRS`); equal studies give identical
    results (`xr.Dataset.identical`)."""
    out = archive.drop_vars([v for v in NONDETERMINISTIC_VARS if v in archive.variables])
    out.attrs = {k: v for k, v in archive.attrs.items() if k not in NONDETERMINISTIC_ATTRS}
    return out


def plan_groups(
    spec: StudySpec, group_size: int, stored: set[tuple[Any, ...]] | frozenset[Any] = frozenset()
) -> list[GroupTask]:
    """Tasks for every trial not in `stored`: per (workload, optimizer), trial indices are
    cut into fixed slots of `group_size`, and each slot's missing trials form one task."""
    if group_size < 1:
        raise ConfigError(f"group size {group_size} must be >= 1")
    tasks = []
    for w in spec.workloads:
        for o in spec.optimizers:
            for first in range(0, spec.trials, group_size):
                slot = range(first, min(first + group_size, spec.trials))
                todo = tuple(t for t in slot if (w, o, t) not in stored)
                if todo:
                    tasks.append(GroupTask(w, o, todo))
    return tasks


def _spec_record(spec: StudySpec, group_size: int) -> dict[str, Any]:
    record = spec.to_json()
    record["group_size"] = group_size
    return record


def _check_resume(
    old: dict[str, Any], new: dict[str, Any], where: Path, stored: Callable[[], int]
) -> None:
    """`stored()`: one more than the highest trial index stored (0: none)."""
    for key in sorted(set(old) | set(new)):
        if key in _LABELS:
            continue
        if key == "trials":
            if int(new[key]) < int(old[key]) and (last := stored()) > int(new[key]):
                raise ConfigError(
                    f"{where}: key 'trials': the study directory has {old[key]} trials per "
                    f"cell and stores trial {last - 1}; a study cannot shrink (asked for "
                    f"{new[key]})"
                )
            continue
        if old.get(key) != new.get(key):
            raise ConfigError(
                f"{where}: key {key!r}: the study directory was started with "
                f"{json.dumps(old.get(key))}, this study has {json.dumps(new.get(key))}; "
                "use a new --out directory for a different study"
            )


@contextlib.contextmanager
def _locked(study_dir: Path) -> Iterator[str]:
    """Hold the study lock; yields the run's owner token (see `_lifetime.check_lock`)."""
    try:
        handle = open(study_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as err:
        raise os_error(study_dir, err) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveIOError(
                f"{study_dir}: another optcmp run is using this study directory"
            ) from None
        try:
            token = claim_lock(handle)
        except OSError as err:
            raise os_error(study_dir, err) from None
        yield token
    finally:
        handle.close()


def _open_directory(directory: Path) -> None:
    """Create the study directory, or fail with one line, before anything trains."""
    try:
        os.fsencode(directory).decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveIOError(
            f"{os.fsdecode(directory)!r}: the path is not valid UTF-8, which netCDF cannot "
            "write to; pick another --out"
        ) from None
    if directory.exists() and not directory.is_dir():
        raise ArchiveIOError(f"{directory}: exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ArchiveIOError(f"{directory}: a path under a file, not a directory") from None
    except OSError as err:
        if err.errno == errno.ENOTDIR:
            raise ArchiveIOError(f"{directory}: a path under a file, not a directory") from None
        raise os_error(directory, err) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ArchiveIOError(f"{directory}: not writable (permission denied)")


#: Bytes per evaluation point and trial while a group trains and its shard is built and
#: written: the curves in numpy, again in the shard's dataset, and once more while netCDF
#: writes them; plus one Python int per evaluation step.
_CURVE_COPIES: Final = 3
_STEP_BYTES: Final = 40
#: Bytes per trial of an archive besides its curves (hyperparameters, status, seeds).
_TRIAL_BYTES: Final = 512


def estimate_memory(spec: StudySpec, group_size: int) -> tuple[int, int]:
    """Estimated bytes of the largest group and of the study's whole archive (as
    `open_archive` holds it: the merged curves and a copy)."""
    group = archive = 0
    n_curves = len(CURVE_VARS) + 1  # the curves and their shared wall time
    evals = []
    for w in spec.workloads:
        ws = spec.workload_spec(w)
        n_eval = -(-ws.step_budget // ws.eval_interval) + 1
        evals.append(n_eval)
        k = min(group_size, spec.trials)
        group = max(group, n_eval * (k * n_curves * 8 * _CURVE_COPIES + _STEP_BYTES))
    per_trial = max(evals) * n_curves * 8 * 2 + _TRIAL_BYTES
    archive = len(spec.workloads) * len(spec.optimizers) * spec.trials * per_trial
    return group, archive


def check_limits(spec: StudySpec, group_size: int, workers: int, limit_gib: float | None) -> None:
    """Refuse (ConfigError, one line) a study whose groups or archive cannot fit."""
    limit = memory_limit(limit_gib)
    group, archive = estimate_memory(spec, group_size)
    check_memory(
        f"{spec.source}: {workers} group(s) of {min(group_size, spec.trials)} trials at once",
        group * workers,
        limit,
        hint="lower it, or set --memory-limit GIB if the machine can hold more",
    )
    check_memory(
        f"{spec.source}: the archive of {spec.trials} trials per cell",
        archive,
        limit,
        hint="lower it, or set --memory-limit GIB if the machine can hold more",
    )


def _prepare(spec: StudySpec, study_dir: Path, group_size: int, study_file: Path | None) -> None:
    """Create or check the directory's copy of the spec (under the lock)."""
    record = _spec_record(spec, group_size)
    json_path = study_dir / SPEC_JSON
    if json_path.exists():
        try:
            old = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            detail = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ArchiveIOError(f"{json_path}: unreadable study record ({detail})") from None
        if not isinstance(old, dict) or not isinstance(old.get("trials"), int):
            raise ArchiveIOError(
                f"{json_path}: not a study record of optcmp run (expected a JSON object "
                f"with 'trials', got {type(old).__name__})"
            )
        _check_resume(
            old,
            record,
            json_path,
            lambda: max((c[2] + 1 for c in stored_cells(study_dir)), default=0),
        )
        if old == record:
            return
    elif any(study_dir.glob("*.nc")):
        raise ConfigError(
            f"{study_dir}: holds shards but no {SPEC_JSON}; not a study directory of optcmp run"
        )
    atomic_write_text(json_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    if study_file is not None:
        atomic_write_text(study_dir / SPEC_COPY, study_file.read_text(encoding="utf-8"))


def _remove_temp_files(directory: Path) -> None:
    for stale in directory.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def run_study(
    spec: StudySpec,
    study_dir: str | os.PathLike[str],
    *,
    executor: Executor | None = None,
    group_size: int | None = None,
    study_file: str | os.PathLike[str] | None = None,
    command: str | None = None,
    progress: Progress | None = None,
    memory_limit_gib: float | None = None,
    group_timeout: float | None = None,
) -> StudyRun:
    """Run (or continue) `spec` into `study_dir`; see the module docstring.

    `group_size` overrides the study's (default `DEFAULT_GROUP_SIZE`); `study_file` is
    copied into the directory; `command` is stored as provenance (default: this
    process's command line); `memory_limit_gib` replaces the available memory as the
    limit of the size checks; `group_timeout` replaces the study's time limit of one
    group in seconds (0: no limit). SIGTERM/SIGINT raise `StudyInterrupted` (finished
    shards stay, temp files are removed); failed groups raise `GroupsFailed` once every
    other group ran.

    Phases: check the settings, devices and memory (`_settings`, `check_limits`), open
    and lock the directory, check or write its study record (`_prepare`), plan the
    groups not stored (`plan_groups`), run them (`_Tally.run`), report failures.
    """
    started = time.perf_counter()
    k, timeout = _settings(spec, group_size, group_timeout)
    executor = executor if executor is not None else LocalExecutor(devices=spec.devices)
    check_limits(spec, k, getattr(executor, "workers", 1), memory_limit_gib)
    command = command if command is not None else shlex.join(sys.argv)
    directory = Path(study_dir)
    _open_directory(directory)
    with _locked(directory) as token, stop_on_signals():
        _remove_temp_files(directory)
        _prepare(spec, directory, k, Path(study_file) if study_file is not None else None)
        stored = {
            c[:3]
            for c in stored_cells(directory)
            if c[0] in spec.workloads and c[1] in spec.optimizers
        }
        tally = _Tally(spec, len(stored), len(spec.workloads) * len(spec.optimizers) * spec.trials)
        tasks = plan_groups(spec, k, stored)
        if progress is not None:
            progress.start(total=tally.total, done=tally.stored, groups=len(tasks))
        job = functools.partial(
            run_group,
            spec,
            study_dir=str(directory),
            command=command,
            git_commit=git_commit(),
            lock_token=token,
        )
        try:
            tally.run(executor, job, tasks, timeout=timeout, progress=progress)
        finally:
            _remove_temp_files(directory)
        tally.check(tasks, directory)
    return StudyRun(
        study_dir=directory,
        total_trials=tally.total,
        stored_before=tally.stored,
        trials_run=tally.trials_run,
        diverged=tally.diverged,
        groups_run=tally.groups,
        group_size=k,
        executor=executor.describe(),
        seconds=time.perf_counter() - started,
    )


def _settings(
    spec: StudySpec, group_size: int | None, group_timeout: float | None
) -> tuple[int, float | None]:
    """The group size and time limit of a run, once its devices are known to exist
    (ConfigError before any work otherwise)."""
    for device in spec.run_devices():
        resolve_device(device)
    if group_size is not None and group_size < 1:
        raise ConfigError(f"--group-size {group_size}: must be >= 1")
    k = group_size if group_size is not None else spec.group_size or DEFAULT_GROUP_SIZE
    if group_timeout is not None and not (math.isfinite(group_timeout) and group_timeout >= 0):
        raise ConfigError(
            f"--group-timeout {group_timeout}: must be a finite number of seconds >= 0 "
            "(0: no limit)"
        )
    return k, spec.group_timeout if group_timeout is None else group_timeout or None


class _Tally:
    """What the groups of one run did: `stored` of `total` trials were stored before it;
    finished groups add their trials, failed ones (`GroupFailure`) hold back the not yet
    started groups of their plug-ins."""

    def __init__(self, spec: StudySpec, stored: int, total: int) -> None:
        self.spec = spec
        self.stored = stored
        self.total = total
        self.trials_run = self.diverged = self.groups = 0
        self.failures: list[GroupFailure] = []
        self.failed: set[str] = set()  # plug-ins whose groups failed: their other groups wait
        self.done: set[GroupTask] = set()

    def run(
        self,
        executor: Executor,
        job: Job,
        tasks: list[GroupTask],
        *,
        timeout: float | None,
        progress: Progress | None,
    ) -> None:
        """Run `tasks` on `executor`; an interruption carries the trials stored so far."""
        local = sorted({r for t in tasks for r in _in_process_only(self.spec, t)})
        isolate = timeout is not None or any(_culprits(self.spec, t) for t in tasks)
        if local:
            isolate = _run_in_this_process(executor, local, timeout)
        try:
            for outcome in executor.run(
                job, tasks, timeout=timeout, isolate=isolate, skip=self._held_back
            ):
                self.done.add(outcome.task)
                if isinstance(outcome, GroupFailure):
                    self.failures.append(outcome)
                    self.failed.update(_culprits(self.spec, outcome.task))
                    continue
                self.trials_run += outcome.trials
                self.diverged += outcome.diverged
                self.groups += 1
                if progress is not None:
                    progress.group_done(outcome)
        except StudyInterrupted as stop:
            stop.stored = self.stored + self.trials_run
            stop.total = self.total
            raise

    def _held_back(self, task: GroupTask) -> bool:
        return not self.failed.isdisjoint(_culprits(self.spec, task))

    def check(self, tasks: list[GroupTask], directory: Path) -> None:
        """GroupsFailed, one line per failed plug-in, if any group failed."""
        if not self.failures:
            return
        lines = _failure_lines(self.spec, self.failures, [t for t in tasks if t not in self.done])
        lines[-1] += (
            f"; {self.stored + self.trials_run} of {self.total} trials stored in {directory}; "
            "running the same command again runs only the groups not stored"
        )
        raise GroupsFailed(lines, stored=self.stored + self.trials_run, total=self.total)
