"""Several devices: the study's `devices` list, one local worker placed on each device,
Dask workers that declare a GPU resource."""

from __future__ import annotations

from pathlib import Path

import pytest

from optcmp.runner import DaskExecutor, GroupSummary, GroupTask, LocalExecutor, run_study
from optcmp.runner._placement import assigned_device
from optcmp.study import StudySpec
from optcmp_data import ConfigError, open_archive
from tests.train.archives import same_study, worker_processes

STUDY = """
workloads = ["noisy_quadratic", "digits_mlp"]
optimizers = ["sgd"]
trials = 4
seed = 3
step_budget = 10
eval_interval = 5
group_size = 2
"""


def _spec(extra: str = "") -> StudySpec:
    import tomllib

    return StudySpec.from_mapping(tomllib.loads(STUDY + extra), source="s.toml")


def test_devices_list_in_the_study_file() -> None:
    spec = _spec('devices = ["cpu", "cpu"]\n')
    assert spec.devices == ("cpu", "cpu")
    assert spec.device == "cpu"
    assert spec.run_devices() == ("cpu", "cpu")
    assert "devices" not in spec.to_json()  # placement, like --workers, is not identity
    assert _spec().run_devices() == ("cpu",)
    gpus = _spec('devices = ["cuda:0", "cuda:1"]\n')
    assert gpus.device == "cuda"
    assert gpus.to_json()["device"] == "cuda"
    for bad, message in (
        ('devices = ["cpu", "cuda:0"]\n', "mixes device kinds"),
        ("devices = []\n", "non-empty list"),
        ('devices = "cuda:0"\n', "non-empty list"),
        ('devices = ["tpu:0"]\n', "non-empty list"),
        ('device = "cpu"\ndevices = ["cpu"]\n', "either 'device' or 'devices'"),
    ):
        with pytest.raises(ConfigError, match=f"s.toml: key 'devices': .*{message}"):
            _spec(bad)


def test_local_executor_places_one_worker_per_device() -> None:
    executor = LocalExecutor(devices=["cuda:0", "cuda:1"])
    assert executor.workers == 2
    assert executor.placement(2) == ["cuda:0", "cuda:1"]
    assert executor.describe() == "local, 2 workers on cuda:0, cuda:1"
    assert LocalExecutor(3, devices=["cuda:0", "cuda:1"]).placement(3) == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
    ]
    assert LocalExecutor().workers == 1


def _where(task: GroupTask) -> GroupSummary:
    """A job that reports the device its process was placed on (in `shard`)."""
    return GroupSummary(task=task, trials=1, diverged=0, seconds=0.0, shard=str(assigned_device()))


def test_worker_processes_and_in_process_placement() -> None:
    tasks = [GroupTask("w", "o", (0,)), GroupTask("w", "o", (1,))]
    # Worker processes: slot i on device i (the first tasks go to slots in order).
    placed = list(LocalExecutor(2, devices=["cuda:3", "cuda:4"]).run(_where, tasks))
    assert {s.task.trials: s.shard for s in placed if isinstance(s, GroupSummary)} == {
        (0,): "cuda:3",
        (1,): "cuda:4",
    }
    assert assigned_device() is None
    seen: list[str | None] = []

    def job(task: GroupTask) -> GroupSummary:
        seen.append(assigned_device())
        return GroupSummary(task=task, trials=1, diverged=0, seconds=0.0, shard="")

    list(LocalExecutor(1, devices=["cuda:5", "cuda:6"]).run(job, tasks))
    assert seen == ["cuda:5", "cuda:5"]  # in-process: the first device
    assert assigned_device() is None


@pytest.mark.slow
def test_a_study_spread_over_two_devices_equals_one_device(tmp_path: Path) -> None:
    """devices = ["cpu", "cpu"]: two spawned workers, each placed on one entry."""
    one = _spec()
    two = _spec('devices = ["cpu", "cpu"]\n')
    run_study(one, tmp_path / "one")
    run = run_study(two, tmp_path / "two")  # default executor: one worker per device
    assert run.executor == "local, 2 workers on cpu, cpu"
    assert run.trials_run == 8
    assert same_study(open_archive(tmp_path / "one"), open_archive(tmp_path / "two"))
    # The same study directory resumes whichever devices the groups ran on.
    again = run_study(two, tmp_path / "one")
    assert again.trials_run == 0


def test_dask_resources_must_be_declared_by_some_worker() -> None:
    executor = DaskExecutor("tcp://x:1", resources={"GPU": 1})
    assert executor.describe() == "dask scheduler tcp://x:1, each group on a worker with GPU=1"
    executor._check_resources({"a": {"resources": {"GPU": 1}}, "b": {}})
    with pytest.raises(ConfigError, match="--resources GPU=1"):
        executor._check_resources({"a": {"resources": {}}, "b": {"resources": {"CPU": 4}}})
    DaskExecutor("tcp://x:1")._check_resources({})  # no resources asked: nothing to check


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_dask_workers_that_own_a_gpu_resource_run_the_groups(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    spec = _spec()
    run_study(spec, tmp_path / "local")
    cluster = worker_processes(2, resources={"GPU": 1})
    try:
        executor = DaskExecutor(cluster.scheduler_address, resources={"GPU": 1})
        run = run_study(spec, tmp_path / "dask", executor=executor)
        with pytest.raises(ConfigError, match="no worker declares"):
            run_study(
                spec,
                tmp_path / "never",
                executor=DaskExecutor(cluster.scheduler_address, resources={"GPU": 2}),
            )
    finally:
        cluster.close()
    assert run.trials_run == 8
    assert same_study(open_archive(tmp_path / "local"), open_archive(tmp_path / "dask"))
