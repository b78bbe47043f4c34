"""Process lifetime of `optcmp run`: workers die with their driver (SIGKILL or SIGTERM),
also while they are still starting; SIGTERM and Ctrl-C stop a run cleanly with one line;
only the holder of the study lock stores shards."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from optcmp.runner import GroupSummary, GroupTask, LocalExecutor, run_study
from optcmp.runner._group import FailureKind, GroupFailure, run_group
from optcmp.runner._lifetime import LOCK_FILE, check_lock, claim_lock
from optcmp.runner._pool import WorkerPool
from optcmp.study import StudySpec
from optcmp_data import ArchiveIOError, open_archive
from optcmp_data._io import list_shards
from tests.train.archives import same_study, worker_processes

ROOT = Path(__file__).resolve().parents[2]
STUDY = """
workloads = ["digits_mlp", "noisy_quadratic"]
optimizers = ["sgd", "adam"]
trials = 4
seed = 11
step_budget = 150
eval_interval = 10
group_size = 2
"""
GROUPS = 2 * 2 * 2


def _study(tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(STUDY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    tmp = tmp_path_factory.mktemp("whole")
    study = _study(tmp)
    run_study(StudySpec.from_toml(study), tmp / "out", study_file=study)
    return open_archive(tmp / "out")


def _live_processes() -> dict[int, list[str]]:
    """pid -> the fields of /proc/PID/stat after the command name (state, parent pid,
    process group, session, ...) of every live (non-zombie) process."""
    live = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            live[int(entry)] = fields
    return live


def _children() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process."""
    return {pid: int(fields[1]) for pid, fields in _live_processes().items()}


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    return pids & set(_children())


def _popen_run(study: Path, out: Path, *, stderr: int | None) -> subprocess.Popen[bytes]:
    """`optcmp run STUDY --out OUT --workers 2` from the source tree, in a session of its own."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["data", "analysis", "cli", "."])}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "optcmp_cli",
            "run",
            str(study),
            "--out",
            str(out),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"]
)
def test_killing_the_driver_of_two_workers_leaves_no_process_and_resumes_identically(
    tmp_path: Path, signum: signal.Signals, uninterrupted: xr.Dataset
) -> None:
    study, out = _study(tmp_path), tmp_path / "out"
    proc = _popen_run(study, out, stderr=subprocess.PIPE)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _descendants(proc.pid)
            if out.is_dir() and list_shards(out):
                break
            time.sleep(0.02)
        workers |= _descendants(proc.pid)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        stopped = time.monotonic()
        while _alive(workers) and time.monotonic() < stopped + 5:
            time.sleep(0.05)
        left = _alive(workers)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _alive(workers):  # only our own processes, and only if the test failed
            os.kill(pid, signal.SIGKILL)
    assert len(workers) >= 2, "the run must have had its worker processes"
    assert not left, f"processes outlived their driver: {sorted(left)}"
    stored_at_kill = len(list_shards(out))
    assert 1 <= stored_at_kill < GROUPS, "the kill must land mid-run"
    if signum != signal.SIGKILL:
        assert proc.returncode == 128 + signum
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert f"interrupted by {signum.name}" in lines[0]
        assert "run the same command again to resume" in lines[0]
        assert not list(out.glob(".*.tmp")), "temp files are removed"
    else:
        assert proc.returncode == -signal.SIGKILL
    time.sleep(1.0)
    assert len(list_shards(out)) == stored_at_kill, "nothing stores shards after the kill"

    spec = StudySpec.from_toml(study)
    resumed = run_study(spec, out, executor=LocalExecutor(2), study_file=study)
    assert resumed.stored_before == 2 * stored_at_kill
    assert len(list_shards(out)) == GROUPS
    assert same_study(open_archive(out), uninterrupted)


def _one_trial_group() -> tuple[StudySpec, GroupTask]:
    """A study of one sgd trial of 4 steps on noisy_quadratic and its one group."""
    spec = StudySpec.from_mapping(
        {
            "workloads": ["noisy_quadratic"],
            "optimizers": ["sgd"],
            "trials": 1,
            "step_budget": 4,
            "eval_interval": 2,
        }
    )
    return spec, GroupTask("noisy_quadratic", "sgd", (0,))


def test_a_shard_is_stored_only_while_its_driver_holds_the_lock(tmp_path: Path) -> None:
    spec, task = _one_trial_group()
    lock = tmp_path / LOCK_FILE
    with open(lock, "a+", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        token = claim_lock(held)
        check_lock(tmp_path, token)  # held by the token's driver: fine
        with pytest.raises(ArchiveIOError, match="another run owns"):
            run_group(spec, task, str(tmp_path), "test", lock_token="someone-else")
        summary = run_group(spec, task, str(tmp_path), "test", lock_token=token)
        assert Path(summary.shard).exists()
        Path(summary.shard).unlink()
    # The driver is gone (lock released): a stale worker stores nothing.
    with pytest.raises(ArchiveIOError, match="driver of this run is gone"):
        run_group(spec, task, str(tmp_path), "test", lock_token=token)
    assert not list_shards(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_worker_dies_with_its_driver_while_it_starts(tmp_path: Path) -> None:
    # A driver starts a worker and is SIGKILLed at once: the worker, still starting Python
    # or importing torch, follows within a second.
    script = (
        "import os, pickle, sys, time\n"
        "from optcmp.runner._lifetime import start_worker\n"
        "from optcmp.runner._pool import _write\n"
        "process, tasks, results = start_worker()\n"
        "_write(tasks, pickle.dumps({'sys_path': sys.path, 'device': None}))\n"
        "print(process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "data"), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    worker = int(proc.stdout.readline())
    assert _alive({worker})
    proc.kill()
    proc.wait()
    proc.stdout.close()
    deadline = time.monotonic() + 1.0
    while _alive({worker}) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive({worker}):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its driver by more than a second")


def _fated(task: GroupTask) -> GroupSummary:
    """A job whose trial number decides its fate: 1 exits, 2 hangs, others return."""
    if task.trials[0] == 1:
        os._exit(7)
    if task.trials[0] == 2:
        time.sleep(600)
    return GroupSummary(task=task, trials=1, diverged=0, seconds=0.0, shard=str(os.getpid()))


def test_the_pool_reports_a_dead_and_a_stopped_worker_and_goes_on() -> None:
    tasks = [GroupTask("w", "o", (i,)) for i in range(6)]
    outcomes = list(
        WorkerPool([None, None]).run(_fated, tasks, timeout=3.0, skip=lambda t: t.trials == (5,))
    )
    by_trial = {o.task.trials[0]: o for o in outcomes}
    assert sorted(by_trial) == [0, 1, 2, 3, 4], "every task but the skipped one, once"
    assert by_trial[1] == GroupFailure(tasks[1], FailureKind.DIED, "exit code 7")
    assert by_trial[2] == GroupFailure(tasks[2], FailureKind.TIMED_OUT, "3 s")
    done = [by_trial[t] for t in (0, 3, 4)]
    assert all(isinstance(o, GroupSummary) for o in done)
    # The groups after the failures ran in fresh worker processes, all gone now.
    pids = {int(o.shard) for o in done if isinstance(o, GroupSummary)}
    assert not _alive(pids)


# --- issue 20, item 7: from the first instruction ------------------------------------------

LONG_STUDY = """
workloads = ["digits_mlp"]
optimizers = ["sgd", "adam"]
trials = 8
seed = 4
step_budget = 4000
eval_interval = 100
group_size = 2
"""


def _session(sid: int) -> set[int]:
    """Live (non-zombie) processes of session `sid` (a driver started in a new session
    and everything it started)."""
    return {pid for pid, fields in _live_processes().items() if int(fields[3]) == sid}


def _start_run(tmp_path: Path, stderr: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    study = tmp_path / "study.toml"
    study.write_text(LONG_STUDY, encoding="utf-8")
    return _popen_run(study, tmp_path / "out", stderr=stderr)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "delay", [1.0, 2.0, 4.0, 8.0, None], ids=["1s", "2s", "4s", "8s", "starting"]
)
def test_sigkill_of_the_driver_leaves_no_process_one_second_later(
    tmp_path: Path, delay: float | None
) -> None:
    """The issue's kill test: `optcmp run --workers 2`, SIGKILL to the driver `delay`
    seconds after start (importing, starting workers, training), nothing left 1 s later;
    `None`: 0.3 s after the first worker process appeared (it is importing torch)."""
    proc = _start_run(tmp_path)
    seen: set[int] = set()
    try:
        started = time.monotonic()
        deadline = started + (delay if delay is not None else 300)
        while time.monotonic() < deadline:
            seen |= _session(proc.pid)
            if delay is None and seen - {proc.pid}:
                time.sleep(0.3)
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run must still be going when it is killed"
        seen |= _session(proc.pid)
        at = time.monotonic() - started
        proc.kill()
        proc.wait()
        time.sleep(1.0)
        left = _session(proc.pid)
    finally:
        for pid in _session(proc.pid):  # only this test's processes, only if it failed
            os.kill(pid, signal.SIGKILL)
    print(
        f"SIGKILL {at:.1f} s after start: {len(seen - {proc.pid})} process(es) besides the "
        f"driver had started (workers, git), {len(left)} process(es) left 1 s later"
    )
    assert not left, f"processes outlived their driver by 1 s: {sorted(left)}"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("after", [0.0, 1.0])
def test_ctrl_c_while_workers_start_is_one_line(tmp_path: Path, after: float) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) `after` seconds after the
    first worker process appears, while the workers import torch: the driver's one line,
    exit code 130, no worker traceback, no process left."""
    proc = _start_run(tmp_path, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not _descendants(proc.pid) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before its workers started"
            time.sleep(0.01)
        time.sleep(after)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        time.sleep(1.0)
        left = _session(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("interrupted by SIGINT"), lines
    assert not left


@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_a_dask_task_of_a_driver_without_the_lock_stores_nothing(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    spec, task = _one_trial_group()
    with open(tmp_path / LOCK_FILE, "a+", encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        token = claim_lock(held)
    # The driver that issued `token` is gone (its lock is released); its task still runs.
    cluster = worker_processes(1)
    try:
        with distributed.Client(cluster.scheduler_address) as client:
            future = client.submit(
                run_group, spec, task, str(tmp_path), "test", lock_token=token, pure=False
            )
            with pytest.raises(ArchiveIOError, match="driver of this run is gone"):
                future.result(timeout=120)
    finally:
        cluster.close()
    assert not list_shards(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
