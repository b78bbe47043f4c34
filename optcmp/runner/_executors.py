"""Executors: where the groups of a study run.

Dependency rule: the standard library, plus `distributed` (imported only by
`DaskExecutor`); torch only through the runner's modules.

Every executor runs the same picklable job (`functools.partial` of `run_group`) on each
`GroupTask` and yields, as groups finish, a `GroupSummary` or a `GroupFailure` (a group
whose plug-in raised, whose worker died or that ran past `timeout`; the run goes on).
`skip(task)` is asked before a task starts: the driver skips the groups of a plug-in
that failed already. Results reach the archive only through the shards the job writes,
so which executor ran a group does not change the archive:

- `LocalExecutor(workers=1)` runs groups one after another in this process, unless
  `isolate` is asked (a study with a plug-in or a group time limit): then in one worker
  process, so that a plug-in cannot take the driver down;
- `LocalExecutor(workers=N)` runs them in N worker processes (`_pool`: fresh
  interpreters, not forks of a process that has initialised torch's thread pools); the
  workers die with the driver from their first instruction (`_lifetime`) and are killed
  when the run stops; a worker that dies or is stopped is replaced for the next group;
- `LocalExecutor(devices=["cuda:0", "cuda:1"])` places one worker process on each device
  (with more workers than devices, the list is cycled), see `_placement`;
- `DaskExecutor(address)` submits each group as a task to an existing Dask distributed
  cluster; its workers must see the study directory (a shared file system).
  `DaskExecutor(address, resources={"GPU": 1})` runs each group on a worker that
  declared that resource (`dask worker ... --resources GPU=1`), one group per GPU at a time.
  Dask cannot stop a running task, so it refuses a time limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from optcmp._plugins import PluginError
from optcmp.runner._group import FailureKind, GroupFailure, GroupSummary, GroupTask
from optcmp.runner._placement import placed_on
from optcmp.runner._pool import WorkerPool
from optcmp_data import ConfigError

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["DaskExecutor", "Executor", "Job", "LocalExecutor", "Outcome"]

Job = Callable[[GroupTask], GroupSummary]
Outcome = GroupSummary | GroupFailure


def _never(task: GroupTask) -> bool:
    return False


class Executor(Protocol):
    """Runs `job` on every task `skip` lets start, yielding outcomes in completion order;
    `timeout`: seconds a group may run; `isolate`: never in the driver's process."""

    def run(
        self,
        job: Job,
        tasks: Sequence[GroupTask],
        *,
        timeout: float | None = None,
        isolate: bool = False,
        skip: Callable[[GroupTask], bool] = _never,
    ) -> Iterator[Outcome]: ...

    def describe(self) -> str: ...


class LocalExecutor:
    """This machine: in-process for one worker, else N worker processes."""

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

    def run(
        self,
        job: Job,
        tasks: Sequence[GroupTask],
        *,
        timeout: float | None = None,
        isolate: bool = False,
        skip: Callable[[GroupTask], bool] = _never,
    ) -> Iterator[Outcome]:
        if not isolate and timeout is None and (self.workers == 1 or len(tasks) <= 1):
            with placed_on(self.devices[0] if self.devices else None):
                for task in tasks:
                    if skip(task):
                        continue
                    try:
                        summary = job(task)
                    except PluginError as err:
                        yield GroupFailure(task, FailureKind.RAISED, str(err))
                        continue
                    yield summary
            return
        n_workers = max(1, min(self.workers, len(tasks)))
        devices = self.placement(n_workers) if self.devices else [None] * n_workers
        yield from WorkerPool(devices).run(job, tasks, timeout=timeout, skip=skip)


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

    def run(
        self,
        job: Job,
        tasks: Sequence[GroupTask],
        *,
        timeout: float | None = None,
        isolate: bool = False,
        skip: Callable[[GroupTask], bool] = _never,
    ) -> Iterator[Outcome]:
        if timeout is not None:
            raise ConfigError(
                f"group time limit {timeout:g} s: a Dask cluster cannot stop a running "
                "group; run without --scheduler, or with --group-timeout 0 (no limit)"
            )
        client = self._connect()
        futures = []
        finished = False
        try:
            if self.resources:
                self._check_resources(client.scheduler_info()["workers"])
            futures = [
                client.submit(job, task, pure=False, resources=self.resources) for task in tasks
            ]
            yield from _dask_outcomes(client, futures, tasks, skip)
            finished = True
        finally:
            # Interrupted or failed: queued groups are cancelled; groups already running on
            # workers cannot be stopped by Dask, but their shards are refused once this
            # driver no longer holds the study lock (see `_lifetime.check_lock`).
            if not finished and futures:
                with contextlib.suppress(Exception):
                    client.cancel(futures)  # type: ignore[no-untyped-call]
            client.close()  # type: ignore[no-untyped-call]

    def _connect(self) -> Client:
        """A client of the scheduler; ConfigError when it cannot be reached."""
        from distributed import Client

        try:
            return Client(self.address, timeout="30s")  # type: ignore[no-untyped-call]
        except OSError as err:
            raise ConfigError(
                f"--scheduler {self.address}: cannot connect to the Dask scheduler ({err})"
            ) from None


def _dask_outcomes(
    client: Client,
    futures: Sequence[Future[GroupSummary]],
    tasks: Sequence[GroupTask],
    skip: Callable[[GroupTask], bool],
) -> Iterator[Outcome]:
    """Each group's summary, or its failure (its plug-in raised, or Dask gave up on its
    worker), as the futures finish; a failure cancels the queued groups that `skip`."""
    from distributed import KilledWorker, as_completed

    of_future = {f.key: t for f, t in zip(futures, tasks, strict=True)}
    for future in as_completed(futures):  # type: ignore[no-untyped-call]
        if future.cancelled():
            continue
        task = of_future[future.key]
        try:
            summary: GroupSummary = future.result()
        except PluginError as err:
            yield GroupFailure(task, FailureKind.RAISED, str(err))
        except KilledWorker:
            yield GroupFailure(task, FailureKind.DIED, "KilledWorker: Dask gave up on it")
        else:
            yield summary
            continue
        # A failed plug-in's queued groups are not run.
        queued = [
            f
            for f in futures
            if not f.done()  # type: ignore[no-untyped-call]
            and skip(of_future[f.key])
        ]
        if queued:
            client.cancel(queued)  # type: ignore[no-untyped-call]
