"""optcmp.runner: run tuning studies as batched groups of trials, resumably, on local
worker processes or a Dask cluster, and store them as archive shards.

Dependency rule: torch, attrs, optcmp_data and optcmp's optim, workloads and study
modules (`distributed` only inside `DaskExecutor.run`); never optcmp_analysis or
optcmp_cli.

    spec = StudySpec.from_toml("study.toml")
    run = run_study(spec, "runs/demo", executor=LocalExecutor(2), study_file="study.toml")
    archive = optcmp_data.open_archive("runs/demo")

Reproducibility: per-trial seeds (model initialisation) and the per-workload minibatch
order derive from the study seed; on the CPU each group trains with one intra-op thread,
so the same study file and seed give the same archive bit for bit, whichever executor
and however often the run was interrupted and resumed, except for wall time and two
provenance attributes: compare `comparable(a).identical(comparable(b))`.

Modules: `_train` (one group's loop) is written against `_path.GroupPath`, implemented by
`_vmap` (any workload) and `_grouped` (grouped-layer MLPs); `_device` holds the device,
thread and precision set-up; `_placement` which device a worker process was given;
`_pool` the local worker processes, `_boot` their first instructions and `_lifetime`
how runs and workers end.
"""

from optcmp.runner._device import (
    autocast,
    deterministic_threads,
    group_settings,
    synchronize,
    wants_channels_last,
)
from optcmp.runner._executors import DaskExecutor, Executor, LocalExecutor
from optcmp.runner._group import GroupSummary, GroupTask
from optcmp.runner._study import (
    GroupsFailed,
    Progress,
    StudyInterrupted,
    StudyRun,
    comparable,
    run_study,
)
from optcmp.runner._train import GroupResult, GroupTrials, TrainOptions, data_order, train_group

__all__ = [
    "DaskExecutor",
    "Executor",
    "GroupResult",
    "GroupSummary",
    "GroupTask",
    "GroupTrials",
    "GroupsFailed",
    "LocalExecutor",
    "Progress",
    "StudyInterrupted",
    "StudyRun",
    "TrainOptions",
    "autocast",
    "comparable",
    "data_order",
    "deterministic_threads",
    "group_settings",
    "run_study",
    "synchronize",
    "train_group",
    "wants_channels_last",
]
