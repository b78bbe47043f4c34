"""The Dask executor stores the same archive as the local one."""

from __future__ import annotations

from pathlib import Path

import pytest

from optcmp.runner import DaskExecutor, LocalExecutor, run_study
from optcmp.study import StudySpec
from optcmp_data import ConfigError, open_archive
from tests.train.archives import same_study

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
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",
        silence_logs=40,
    )
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
