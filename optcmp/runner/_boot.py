"""The first instructions of a local worker process, run as `python -c SOURCE DRIVER_PID`.

Dependency rule: the standard library only, and nothing imported before the lifetime is
set up: this file is executed as source (`_lifetime.worker_command`), not imported as
part of `optcmp.runner`, whose import loads torch.

In this order, before anything slow:

1. SIGINT is ignored. The driver starts the process with SIGINT blocked, so a Ctrl-C
   that reaches the process group while Python itself starts stays pending and is
   discarded here; a worker never prints a KeyboardInterrupt traceback (the driver
   decides what a Ctrl-C does).
2. On Linux the kernel is asked to SIGKILL this process when the driver dies
   (``prctl(PR_SET_PDEATHSIG)``); if the driver died before that request, the parent is
   no longer the driver and the process exits at once.
3. A watchdog thread exits the process once its parent is no longer the driver (other
   systems; checked every 0.2 s).

Only then are the driver's `sys.path` read from the task pipe and the worker loop
(`optcmp.runner._pool.serve`, which loads torch) imported.
"""

import os
import signal
import sys


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    driver = int(sys.argv[1])
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl: the watchdog alone guards the process
            pass
    if os.getppid() != driver:
        os._exit(1)

    import pickle
    import threading

    threading.Thread(target=_watch, args=(driver,), name="optcmp-watchdog", daemon=True).start()
    tasks, results = int(sys.argv[2]), int(sys.argv[3])
    size = int.from_bytes(_read(tasks, 8), "little")
    setup = pickle.loads(_read(tasks, size))
    sys.path[:] = setup["sys_path"]
    from optcmp.runner._pool import serve

    serve(tasks, results, setup["device"])


def _watch(driver: int) -> None:
    import time

    while os.getppid() == driver:
        time.sleep(0.2)
    os._exit(1)


def _read(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:  # the driver closed the pipe: nothing to do
            os._exit(0)
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    main()
