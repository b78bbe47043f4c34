"""The Dask executor stores the same archive as the local one; a plug-in raising on a
Dask worker fails its own groups only; Dask refuses a group time limit."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from optcmp.runner import DaskExecutor, GroupsFailed, LocalExecutor, run_study
from optcmp.study import StudySpec
from optcmp_data import ConfigError, open_archive
from optcmp_data._io import list_shards
from tests.train.archives import same_study, worker_processes

distributed = pytest.importorskip("distributed")

STUDY = """
workloads = ["digits_mlp", "noisy_quadratic"]
optimizers = ["momentum", "rmsprop"]
trials = 3
seed = 9
step_budget = 20
eval_interval = 10
group_size = 2
"""


# The one warning a LocalCluster was seen to emit here: when its HTTP port is taken (other
# clusters on the machine), distributed retries another port and leaks the first socket.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_dask_local_cluster_equals_the_local_executor(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text(STUDY, encoding="utf-8")
    spec = StudySpec.from_toml(study)
    run_study(spec, tmp_path / "local", executor=LocalExecutor(1))
    cluster = worker_processes(2)
    try:
        run = run_study(spec, tmp_path / "dask", executor=DaskExecutor(cluster.scheduler_address))
    finally:
        cluster.close()
    assert run.trials_run == 12
    assert run.executor.startswith("dask")
    local = open_archive(tmp_path / "local")
    dask = open_archive(tmp_path / "dask")
    assert same_study(local, dask)


def test_an_empty_scheduler_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--scheduler"):
        DaskExecutor("")
    with pytest.raises(ConfigError, match="--workers"):
        LocalExecutor(0)


def test_a_dask_run_refuses_a_group_time_limit(tmp_path: Path) -> None:
    spec = StudySpec.from_mapping(
        {**tomllib.loads(STUDY), "group_timeout": 60}, source="study.toml"
    )
    with pytest.raises(ConfigError, match="a Dask cluster cannot stop a running group"):
        run_study(spec, tmp_path / "out", executor=DaskExecutor("tcp://127.0.0.1:1"))
    with pytest.raises(ConfigError, match="a Dask cluster cannot stop a running group"):
        run_study(
            spec, tmp_path / "out", executor=DaskExecutor("tcp://127.0.0.1:1"), group_timeout=5
        )


BOOM = """
import torch


class Boom(torch.optim.Adagrad):
    def step(self, closure=None):
        if sum(p.numel() for g in self.param_groups for p in g["params"]) > 3:
            raise RuntimeError("boom in training")
        return super().step(closure)
"""


@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_a_plugin_raising_on_dask_fails_its_groups_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name no other test registers: plug-ins stay registered for the whole process.
    (tmp_path / "i20_boom.py").write_text(BOOM, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = StudySpec.from_mapping(
        {
            "workloads": ["noisy_quadratic"],
            "optimizers": ["dask_boom", "sgd"],
            "trials": 4,
            "group_size": 2,
            "step_budget": 10,
            "eval_interval": 5,
            "plugins": {"dask_boom": "i20_boom:Boom"},
            "spaces": {"dask_boom": {"learning_rate": {"low": 1e-3, "high": 0.1, "scale": "log"}}},
        },
        source="study.toml",
    )
    # Threads in this process: the plug-in's exception is what is tested, not a process.
    cluster = distributed.LocalCluster(
        n_workers=1, processes=False, threads_per_worker=1, dashboard_address=":0"
    )
    try:
        with pytest.raises(GroupsFailed) as failed:
            run_study(spec, tmp_path / "out", executor=DaskExecutor(cluster.scheduler_address))
    finally:
        cluster.close()
    (line,) = failed.value.lines
    assert line.startswith("plug-in optimizer dask_boom (i20_boom:Boom) raised while training")
    assert "boom in training (group noisy_quadratic/dask_boom trials" in line
    assert "4 of 8 trials stored" in line
    assert sorted(p.name.split("--")[1] for p in list_shards(tmp_path / "out")) == ["sgd", "sgd"]
