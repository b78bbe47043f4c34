"""Executors: where the groups of a study run.

Dependency rule: the standard library, plus `distributed` (imported only by
`DaskExecutor`); no torch at import time.

Every executor runs the same picklable job (`functools.partial` of `run_group`) on each
`GroupTask` and yields the `GroupSummary`s as groups finish. Results reach the archive only
through the shards the job writes, so which executor ran a group does not change the
archive:

- `LocalExecutor(workers=1)` runs groups one after another in this process;
- `LocalExecutor(workers=N)` runs them in N spawned worker processes (spawn, not fork:
  forking a process that has initialised torch's thread pools is unsafe); the workers die
  with the driver (`_lifetime.worker_init`) and are killed when the run is interrupted;
- `DaskExecutor(address)` submits each group as a task to an existing Dask distributed
  cluster; its workers must see the study directory (a shared file system).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from optcmp.runner._group import GroupSummary, GroupTask
from optcmp.runner._lifetime import worker_init
from optcmp_data import ConfigError

__all__ = ["DaskExecutor", "Executor", "Job", "LocalExecutor"]

Job = Callable[[GroupTask], GroupSummary]


class Executor(Protocol):
    """Runs `job` on every task, yielding summaries in completion order."""

    def run(self, job: Job, tasks: Sequence[GroupTask]) -> Iterator[GroupSummary]: ...

    def describe(self) -> str: ...


class LocalExecutor:
    """This machine: in-process for one worker, else N spawned worker processes."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--workers {workers}: need at least one worker")
        self.workers = workers

    def describe(self) -> str:
        return f"local, {self.workers} worker{'s' if self.workers > 1 else ''}"

    def run(self, job: Job, tasks: Sequence[GroupTask]) -> Iterator[GroupSummary]:
        if self.workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield job(task)
            return
        context = multiprocessing.get_context("spawn")
        pool = cf.ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)),
            mp_context=context,
            initializer=worker_init,
            initargs=(os.getpid(),),
        )
        finished = False
        try:
            futures = [pool.submit(job, task) for task in tasks]
            for future in cf.as_completed(futures):
                yield future.result()
            finished = True
        finally:
            # On an error or an interrupt (StudyInterrupted, GeneratorExit), queued groups
            # are dropped and running ones are killed with their processes: only finished
            # groups have shards, and the driver removes the temp files.
            if not finished:
                _kill_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)


def _kill_workers(pool: cf.ProcessPoolExecutor) -> None:
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(OSError, ValueError):
            process.kill()
    for process in list(processes.values()):
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(timeout=10)


class DaskExecutor:
    """An existing Dask distributed cluster at `address` (e.g. tcp://host:8786)."""

    def __init__(self, address: str) -> None:
        if not address:
            raise ConfigError("--scheduler: empty address")
        self.address = address

    def describe(self) -> str:
        return f"dask scheduler {self.address}"

    def run(self, job: Job, tasks: Sequence[GroupTask]) -> Iterator[GroupSummary]:
        from distributed import Client, as_completed

        try:
            client = Client(self.address, timeout="30s")  # type: ignore[no-untyped-call]
        except OSError as err:
            raise ConfigError(
                f"--scheduler {self.address}: cannot connect to the Dask scheduler ({err})"
            ) from None
        futures = []
        finished = False
        try:
            futures = [client.submit(job, task, pure=False) for task in tasks]
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                summary: GroupSummary = future.result()
                yield summary
            finished = True
        finally:
            # Interrupted or failed: queued groups are cancelled; groups already running on
            # workers cannot be stopped by Dask, but their shards are refused once this
            # driver no longer holds the study lock (see `_lifetime.check_lock`).
            if not finished and futures:
                with contextlib.suppress(Exception):
                    client.cancel(futures)  # type: ignore[no-untyped-call]
            client.close()  # type: ignore[no-untyped-call]
