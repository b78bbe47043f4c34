"""Local worker processes that a group may kill: the driver's side (`WorkerPool`) and the
worker's loop (`serve`).

Dependency rule: the standard library, attrs and the runner's own modules (the worker
loop loads torch through the job it runs).

Each worker is a fresh `python -c` process started by `_lifetime.start_worker` (its
first instructions tie it to the driver, see `_boot`), with two pipes: the driver sends
it the driver's `sys.path` and its device, then one pickled `(job, task)` at a time; the
worker answers "started" when the job begins and then its result or its exception. The
driver therefore always knows which group each worker runs, so

- a worker that dies while it runs a group (a plug-in that calls `os.abort()`,
  segfaults or `os._exit()`s) becomes a `GroupFailure` naming the group and the signal
  or exit code, and the slot gets a fresh worker for the next group; a worker that dies
  before it could start its group (it cannot import optcmp, say) stops the run;
- a group running longer than `timeout` seconds (counted from "started": the plug-in's
  import, the data loading and the training) has its worker SIGKILLed and becomes a
  `GroupFailure`;
- a `PluginError` raised by the job becomes a `GroupFailure` too; any other exception
  stops the run (raised in the driver, with the worker's traceback as its cause).

Whatever stops the run (an exception, an interrupt, the consumer closing the generator)
kills the workers; after a complete run they exit when their task pipe closes.
"""

from __future__ import annotations

import collections
import os
import pickle
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from optcmp._plugins import PluginError
from optcmp.runner._group import FailureKind, GroupFailure, GroupSummary, GroupTask
from optcmp.runner._lifetime import start_worker
from optcmp.runner._placement import placed_on
from optcmp_data import OptcmpError

__all__ = ["WorkerPool", "exit_status", "serve"]

Job = Callable[[GroupTask], GroupSummary]

#: Longest wait between two checks of the workers (deaths whose pipe stays open, timeouts).
_POLL_SECONDS: Final = 0.5
#: How long finished workers get to exit on their own before they are killed.
_EXIT_SECONDS: Final = 10.0


# --- framing: 8-byte little-endian length, then a pickle -----------------------------------


def _write(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(8, "little") + data)
    while view:
        view = view[os.write(fd, view) :]


def _read(fd: int, n: int) -> bytes | None:
    """`n` bytes from `fd`, or None at end of file."""
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_message(fd: int) -> bytes | None:
    head = _read(fd, 8)
    if head is None:
        return None
    return _read(fd, int.from_bytes(head, "little"))


# --- the worker's side ----------------------------------------------------------------------


class RemoteTraceback(Exception):  # noqa: N818 - a traceback, not an error
    """The traceback of an exception raised in a worker (the cause of the one re-raised)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


def _portable(err: BaseException) -> bytes:
    """`err` pickled with its traceback text; a RuntimeError naming it if it cannot be."""
    text = "".join(traceback.format_exception(err))
    try:
        data = pickle.dumps((err, text))
        pickle.loads(data)
    except Exception:
        data = pickle.dumps((RuntimeError(f"{type(err).__name__}: {err}"), text))
    return data


def serve(tasks: int, results: int, device: str | None) -> None:
    """A worker's loop: run each `(job, task)` read from fd `tasks`, answer on `results`;
    return when the driver closes `tasks`."""
    with placed_on(device):
        while (message := _read_message(tasks)) is not None:
            try:
                job, task = pickle.loads(message)
                _write(results, pickle.dumps(("started", None)))
                answer = pickle.dumps(("done", job(task)))
            except BaseException as err:  # the driver decides; the worker only reports
                answer = pickle.dumps(("raised", _portable(err)))
            _write(results, answer)


# --- the driver's side ----------------------------------------------------------------------


def exit_status(returncode: int) -> str:
    """'SIGABRT' for a process killed by a signal, else 'exit code N'."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class _Worker:
    def __init__(self, device: str | None) -> None:
        self.process, self.tasks, self.results = start_worker()
        self.task: GroupTask | None = None
        self.started: float | None = None
        try:
            _write(self.tasks, pickle.dumps({"sys_path": list(sys.path), "device": device}))
        except BrokenPipeError:
            pass  # it died at once: its group's turn reports it
        except BaseException:  # an interrupt: this worker is not in the pool yet
            self.stop(kill=True)
            raise

    def give(self, job: Job, task: GroupTask) -> None:
        self.task, self.started = task, None
        _write(self.tasks, pickle.dumps((job, task)))

    def stop(self, *, kill: bool) -> int:
        """End the process (SIGKILL, or closing its task pipe) and return its exit code."""
        os.close(self.tasks)
        if kill:
            self.process.kill()
        try:
            code = self.process.wait(timeout=None if kill else _EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        os.close(self.results)
        return code


class WorkerPool:
    """`len(devices)` worker slots, each started when it first gets a group and started
    afresh after its worker died or was stopped; entry i is slot i's device (None: the
    study's)."""

    def __init__(self, devices: Sequence[str | None]) -> None:
        self.devices = list(devices)

    def run(
        self,
        job: Job,
        tasks: Sequence[GroupTask],
        *,
        timeout: float | None = None,
        skip: Callable[[GroupTask], bool] = lambda task: False,
    ) -> Iterator[GroupSummary | GroupFailure]:
        """Run `job` on each task not skipped, yielding results as they come; `skip` is
        asked just before a task would start."""
        pending = collections.deque(tasks)
        slots: list[_Worker | None] = [None] * len(self.devices)
        finished = False
        try:
            while True:
                for i, worker in enumerate(slots):
                    if worker is not None and worker.task is not None:
                        continue
                    while pending and skip(pending[0]):
                        pending.popleft()
                    if not pending:
                        break
                    if worker is None:
                        worker = slots[i] = _Worker(self.devices[i])
                    task = pending.popleft()
                    try:
                        worker.give(job, task)
                    except BrokenPipeError:  # died before its first group: checked below
                        worker.task = task
                busy = [w for w in slots if w is not None and w.task is not None]
                if not busy:
                    break
                yield from self._wait(busy, slots, timeout)
            finished = True
        finally:
            for worker in slots:
                if worker is not None:
                    worker.stop(kill=not finished)

    def _wait(
        self, busy: list[_Worker], slots: list[_Worker | None], timeout: float | None
    ) -> Iterator[GroupSummary | GroupFailure]:
        now = time.monotonic()
        wait = _POLL_SECONDS
        if timeout is not None:
            for w in busy:
                if w.started is not None:
                    wait = min(wait, max(0.0, w.started + timeout - now))
        ready, _, _ = select.select([w.results for w in busy], [], [], wait)
        now = time.monotonic()
        for w in busy:
            assert w.task is not None
            if w.results in ready:
                message = _read_message(w.results)
                if message is not None:
                    yield from self._answer(w, pickle.loads(message))
                    continue
            elif w.process.poll() is None:
                if timeout is not None and w.started is not None and now - w.started >= timeout:
                    task = w.task
                    slots[slots.index(w)] = None
                    w.stop(kill=True)
                    yield GroupFailure(task, FailureKind.TIMED_OUT, f"{timeout:g} s")
                continue
            elif select.select([w.results], [], [], 0)[0]:
                continue  # exited after answering: read the answer next time
            task = w.task
            slots[slots.index(w)] = None
            status = exit_status(w.stop(kill=True))
            if w.started is None:  # not the group's doing: the worker could not start
                raise OptcmpError(
                    f"a worker process ended ({status}) before it could start "
                    f"{task.describe()}; its own output above says why"
                )
            yield GroupFailure(task, FailureKind.DIED, status)

    @staticmethod
    def _answer(w: _Worker, answer: tuple[str, Any]) -> Iterator[GroupSummary | GroupFailure]:
        kind, value = answer
        if kind == "started":
            w.started = time.monotonic()
            return
        task, w.task = w.task, None
        assert task is not None
        if kind == "done":
            yield value
            return
        err, text = pickle.loads(value)
        if isinstance(err, PluginError):
            yield GroupFailure(task, FailureKind.RAISED, str(err))
            return
        err.__cause__ = RemoteTraceback(text)
        raise err
