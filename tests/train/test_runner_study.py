"""Studies into study directories: reproducible archives, resumption after SIGKILL without
running or storing a trial twice, refusal of a changed study, executors that agree."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from optcmp.runner import GroupSummary, LocalExecutor, comparable, run_study
from optcmp.runner._group import TIME_CAVEAT
from optcmp.runner._study import plan_groups
from optcmp.study import StudySpec
from optcmp_data import ArchiveIOError, ConfigError, Status, open_archive
from optcmp_data._io import list_shards
from tests.train.archives import same_study

TINY = """
workloads = ["digits_mlp", "noisy_quadratic"]
optimizers = ["sgd", "adam"]
trials = {trials}
seed = 5
step_budget = {budget}
eval_interval = 10
group_size = 2
"""


def _study(tmp_path: Path, *, trials: int = 3, budget: int = 20, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(trials=trials, budget=budget), encoding="utf-8")
    return path


def _run(study: Path, out: Path, workers: int = 1) -> xr.Dataset:
    spec = StudySpec.from_toml(study)
    run_study(spec, out, executor=LocalExecutor(workers), study_file=study)
    return open_archive(out)


def test_a_study_run_twice_gives_identical_archives(tmp_path: Path) -> None:
    study = _study(tmp_path)
    a = _run(study, tmp_path / "a")
    b = _run(study, tmp_path / "b")
    assert same_study(a, b)
    # What `comparable` leaves out is really there, and really not reproducible data.
    assert np.isfinite(a["time"].values[a["step"].values >= 0]).all()
    assert TIME_CAVEAT in a.attrs["caveats"]
    assert a.sizes["trial"] == 3
    assert set(a["status"].values.ravel()) <= {Status.COMPLETED, Status.DIVERGED}
    # Provenance and per-trial facts the archive must carry.
    assert a.attrs["torch_version"]
    assert (a["trial_seed"].values >= 0).all()
    assert (a["step_budget"].values == 20).all()
    assert set(a["selection_split"].values) == {"valid"}
    assert set(a["space_name"].values.ravel()) == {"choi2019[linear_decay]"}
    lr = a["hparams"].sel(hparam="learning_rate").values
    assert np.isfinite(lr).all()
    assert np.isnan(a["hparams"].sel(optimizer="sgd", hparam="beta1").values).all()
    # The study directory keeps the study file it was started with.
    assert (tmp_path / "a" / "study.toml").read_text() == study.read_text()


def test_plan_groups_uses_fixed_slots_and_skips_stored_trials(tmp_path: Path) -> None:
    spec = StudySpec.from_toml(_study(tmp_path, trials=5))
    tasks = plan_groups(spec, 2)
    per_cell = [t.trials for t in tasks if (t.workload, t.optimizer) == ("digits_mlp", "sgd")]
    assert per_cell == [(0, 1), (2, 3), (4,)]
    assert len(tasks) == 2 * 2 * 3
    stored = {("digits_mlp", "sgd", 0), ("digits_mlp", "sgd", 3), ("digits_mlp", "sgd", 4)}
    again = plan_groups(spec, 2, stored)
    per_cell = [t.trials for t in again if (t.workload, t.optimizer) == ("digits_mlp", "sgd")]
    assert per_cell == [(1,), (2,)]
    names = [t.shard_name for t in tasks]
    assert len(set(names)) == len(names)


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    study = _study(tmp_path, trials=4, budget=150)
    out = tmp_path / "killed"
    total_groups = 2 * 2 * 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["data", "analysis", "cli", "."])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "optcmp_cli", "run", str(study), "--out", str(out), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and list_shards(out):
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    stored_at_kill = len(list_shards(out))
    assert 1 <= stored_at_kill < total_groups, "the kill must land mid-run"

    spec = StudySpec.from_toml(study)
    done: list[GroupSummary] = []

    class Record:
        def start(self, *, total: int, done: int, groups: int) -> None:
            assert (total, done) == (16, 2 * stored_at_kill)
            assert groups == total_groups - stored_at_kill

        def group_done(self, summary: GroupSummary) -> None:
            done.append(summary)

    resumed = run_study(spec, out, study_file=study, progress=Record())
    assert resumed.stored_before == 2 * stored_at_kill
    assert resumed.trials_run == 16 - 2 * stored_at_kill
    assert len(list_shards(out)) == total_groups
    assert not list(out.glob(".*.tmp"))
    again = run_study(spec, out, study_file=study)
    assert again.trials_run == 0  # a finished study runs nothing more

    uninterrupted = _run(study, tmp_path / "whole")
    assert same_study(open_archive(out), uninterrupted)


def test_resuming_with_a_changed_study_is_refused(tmp_path: Path) -> None:
    study = _study(tmp_path, trials=2, budget=10)
    out = tmp_path / "out"
    _run(study, out)
    changed = _study(tmp_path, trials=2, budget=20, name="changed")
    with pytest.raises(ConfigError, match="'step_budget'"):
        run_study(StudySpec.from_toml(changed), out)
    with pytest.raises(ConfigError, match="'group_size'"):
        run_study(StudySpec.from_toml(study), out, group_size=1)
    shrunk = _study(tmp_path, trials=1, budget=10, name="shrunk")
    with pytest.raises(ConfigError, match="cannot shrink"):
        run_study(StudySpec.from_toml(shrunk), out)


def test_raising_trials_extends_a_study(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _run(_study(tmp_path, trials=2, budget=10), out)
    extended_spec = StudySpec.from_toml(_study(tmp_path, trials=4, budget=10, name="more"))
    run = run_study(extended_spec, out)
    assert (run.stored_before, run.trials_run) == (8, 8)
    extended = open_archive(out)
    assert extended.sizes["trial"] == 4
    head = comparable(extended).isel(trial=slice(0, 2))
    for name in ("hparams", "train_loss", "valid_metric", "trial_seed", "status"):
        xr.testing.assert_identical(head[name], comparable(first)[name])
    # Old trials filled whole groups of 2, so the extension ran in the groups a study of 4
    # from the start would have used, and stores exactly what that study stores.
    whole = _run(_study(tmp_path, trials=4, budget=10, name="four"), tmp_path / "four")
    assert same_study(extended, whole)


def test_local_worker_processes_give_the_same_archive(tmp_path: Path) -> None:
    study = _study(tmp_path, trials=2, budget=10)
    one = _run(study, tmp_path / "one", workers=1)
    two = _run(study, tmp_path / "two", workers=2)
    assert same_study(one, two)


def test_a_locked_study_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".optcmp.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ArchiveIOError, match="another optcmp run"):
            run_study(StudySpec.from_toml(_study(tmp_path, trials=1, budget=10)), out)


def test_shards_without_a_study_record_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(_study(tmp_path, trials=1, budget=10), out)
    (out / "study.json").unlink()
    with pytest.raises(ConfigError, match=r"no study\.json"):
        run_study(StudySpec.from_toml(_study(tmp_path, trials=1, budget=10)), out)
