"""Process lifetime of a run: workers die with their driver, signals stop a run cleanly,
and only the holder of the study lock stores shards.

Dependency rule: the standard library and optcmp_data only (no torch).

- `start_worker` starts a local worker process as `python -c <_boot.py> DRIVER_PID ...`
  with SIGINT blocked. Its first instructions, before any import beyond the standard
  library, ignore SIGINT (a Ctrl-C in a terminal reaches the whole process group, and
  the driver decides; a SIGINT that arrived during Python's own start-up is discarded),
  ask the Linux kernel for SIGKILL when the driver dies (``prctl(PR_SET_PDEATHSIG)``),
  exit if the driver is already gone, and start a watchdog thread that exits the worker
  once its parent is no longer the driver (0.2 s period; other systems). So a worker
  still importing torch dies with its driver too.
- `stop_on_signals` turns SIGTERM and SIGINT in the driver into `StudyInterrupted`, which
  unwinds the run: running groups are killed, finished shards stay, temp files go.
- The driver writes a token into the flock-ed lock file (`claim_lock`); every shard
  write checks, just before its atomic rename, that the lock is still held and carries
  the job's token (`check_lock`). A worker that outlived its driver (a remote Dask
  worker, say) therefore never stores a shard, and neither does one whose driver was
  replaced by a new run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

from optcmp_data import ArchiveIOError, OptcmpError

__all__ = [
    "LOCK_FILE",
    "StudyInterrupted",
    "check_lock",
    "claim_lock",
    "start_worker",
    "stop_on_signals",
]

LOCK_FILE: Final = ".optcmp.lock"


class StudyInterrupted(OptcmpError):  # noqa: N818 - it names what happened, not an error
    """The driver got SIGTERM or SIGINT; finished shards are kept (an OptcmpError, so the
    CLI's progress bar leaves nothing behind; `optcmp run` exits with `exit_code`)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        #: Trials stored and in the study when the run stopped (set by `run_study`).
        self.stored: int | None = None
        self.total: int | None = None
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by this signal (128 + its number)."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise `StudyInterrupted` in the main thread
    (outside the main thread signals cannot be handled, and the block changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: types.FrameType | None) -> None:
        # Later signals during the unwinding are ignored: the cleanup must finish.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise StudyInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


_BOOT: Final = Path(__file__).with_name("_boot.py")


def start_worker() -> tuple[subprocess.Popen[bytes], int, int]:
    """Start a local worker process (see the module docstring); returns it, the write end
    of its task pipe and the read end of its result pipe (`_pool` speaks over them)."""
    task_read, task_write = os.pipe()
    result_read, result_write = os.pipe()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _BOOT.read_text(encoding="utf-8"),
                str(os.getpid()),
                str(task_read),
                str(result_write),
            ],
            stdin=subprocess.DEVNULL,
            pass_fds=(task_read, result_write),
        )
    except BaseException:
        for fd in (task_write, result_read):
            os.close(fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise
    finally:
        for fd in (task_read, result_write):
            os.close(fd)
    try:
        # A SIGINT that came meanwhile is delivered to the driver now.
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    except BaseException:
        process.kill()
        process.wait()
        for fd in (task_write, result_read):
            os.close(fd)
        raise
    return process, task_write, result_read


def claim_lock(handle: IO[str]) -> str:
    """Write a fresh owner token into the lock file held (flock-ed) through `handle`."""
    token = uuid.uuid4().hex
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"token": token, "pid": os.getpid(), "host": socket.gethostname()}))
    handle.flush()
    return token


def check_lock(study_dir: str | os.PathLike[str], token: str) -> None:
    """Raise ArchiveIOError unless the study lock is held by the run that issued `token`."""
    path = Path(study_dir) / LOCK_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            try:
                owner = json.loads(handle.read() or "{}")
            except ValueError:
                owner = {}
            if not isinstance(owner, dict) or owner.get("token") != token:
                raise ArchiveIOError(
                    f"{path}: another run owns this study directory now; shard not stored"
                )
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # held exclusively: the driver that wrote `token` is alive
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError as err:
        raise ArchiveIOError(f"{path}: cannot check the study lock ({err.strerror})") from None
    raise ArchiveIOError(f"{path}: the driver of this run is gone; shard not stored")
