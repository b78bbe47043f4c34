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
- `LocalExecutor(devices=["cuda:0", "cuda:1"])` places one worker process on each device
  (with more workers than devices, the list is cycled), see `_placement`;
- `DaskExecutor(address)` submits each group as a task to an existing Dask distributed
  cluster; its workers must see the study directory (a shared file system).
  `DaskExecutor(address, resources={"GPU": 1})` runs each group on a worker that
  declared that resource (`dask worker ... --resources GPU=1`), one group per GPU at a time.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import multiprocessing.queues
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from optcmp.runner._group import GroupSummary, GroupTask
from optcmp.runner._lifetime import worker_init
from optcmp.runner._placement import placed_on, take_device
from optcmp_data import ConfigError

__all__ = ["DaskExecutor", "Executor", "Job", "LocalExecutor"]

Job = Callable[[GroupTask], GroupSummary]


class Executor(Protocol):
    """Runs `job` on every task, yielding summaries in completion order."""

    def run(self, job: Job, tasks: Sequence[GroupTask]) -> Iterator[GroupSummary]: ...

    def describe(self) -> str: ...


class LocalExecutor:
    """This machine: in-process for one worker, else N spawned worker processes."""

    def __init__(self, workers: int | None = None, devices: Sequence[str] = ()) -> None:
        workers = workers if workers is not None else max(1, len(devices))
        if workers < 1:
            raise ConfigError(f"--workers {workers}: need at least one worker")
        self.workers = workers
        self.devices = tuple(devices)

    def describe(self) -> str:
        where = f" on {', '.join(self.devices)}" if self.devices else ""
        return f"local, {self.workers} worker{'s' if self.workers > 1 else ''}{where}"

    def placement(self, n_workers: int) -> list[str]:
        """The device of each of `n_workers` worker processes (the list cycled)."""
        return [self.devices[i % len(self.devices)] for i in range(n_workers)]

    def run(self, job: Job, tasks: Sequence[GroupTask]) -> Iterator[GroupSummary]:
        if self.workers == 1 or len(tasks) <= 1:
            with placed_on(self.devices[0] if self.devices else None):
                for task in tasks:
                    yield job(task)
            return
        context = multiprocessing.get_context("spawn")
        n_workers = min(self.workers, len(tasks))
        slots: multiprocessing.queues.Queue[str] | None = None
        if self.devices:
            slots = context.Queue()
            for device in self.placement(n_workers):
                slots.put(device)
        pool = cf.ProcessPoolExecutor(
            max_workers=n_workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), slots),
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


def _init_worker(driver_pid: int, slots: multiprocessing.queues.Queue[str] | None) -> None:
    """A spawned worker: die with the driver, then take a device slot if placed."""
    worker_init(driver_pid)
    if slots is not None:
        take_device(slots)


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

    def __init__(self, address: str, resources: Mapping[str, float] | None = None) -> None:
        if not address:
            raise ConfigError("--scheduler: empty address")
        self.address = address
        self.resources = dict(resources) if resources else None

    def describe(self) -> str:
        needs = ""
        if self.resources:
            needs = ", each group on a worker with " + ", ".join(
                f"{k}={v:g}" for k, v in self.resources.items()
            )
        return f"dask scheduler {self.address}{needs}"

    def _check_resources(self, workers: Mapping[str, Mapping[str, object]]) -> None:
        """ConfigError unless some worker declares `resources` (else tasks wait forever)."""
        if not self.resources:
            return
        for info in workers.values():
            has = info.get("resources") or {}
            assert isinstance(has, Mapping)
            if all(float(has.get(k, 0)) >= v for k, v in self.resources.items()):
                return
        wanted = " ".join(f"{k}={v:g}" for k, v in self.resources.items())
        raise ConfigError(
            f"--scheduler {self.address}: no worker declares the resources {wanted}; "
            f"start each GPU's worker with `dask worker ... --resources {wanted}`"
        )

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
            if self.resources:
                self._check_resources(client.scheduler_info()["workers"])
            futures = [
                client.submit(job, task, pure=False, resources=self.resources) for task in tasks
            ]
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
