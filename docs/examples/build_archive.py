"""The complete example of docs/archive-format.md: build, write, open and inspect an archive.

Run: python docs/examples/build_archive.py /tmp/example.nc
"""

from __future__ import annotations

import sys

import numpy as np

from optcmp_data import (
    ArchiveBuilder,
    Curves,
    SpaceDim,
    SpaceRecord,
    Status,
    TrialRecord,
    WorkloadInfo,
    open_archive,
    write_archive,
)

builder = ArchiveBuilder(source="docs example", command="python docs/examples/build_archive.py")
builder.add_workload(
    WorkloadInfo(
        name="digits_mlp",
        metric_name="error_rate",
        direction="min",
        valid_target=0.05,
        step_budget=300,
        selection_split="valid",
    )
)
builder.add_optimizer("sgd", family="sgd")
builder.add_optimizer("momentum", family="momentum")
lr = SpaceDim("learning_rate", 1e-3, 10.0, "log")
builder.add_space("digits_mlp", "sgd", SpaceRecord("choi2019", (lr,)))
builder.add_space(
    "digits_mlp",
    "momentum",
    SpaceRecord("choi2019", (lr, SpaceDim("momentum", 0.0, 0.999, "one_minus_log"))),
)
steps = np.array([0, 100, 200, 300])
builder.add_trial(
    TrialRecord(
        workload="digits_mlp",
        optimizer="sgd",
        trial=0,
        status=Status.COMPLETED,
        hparams={"learning_rate": 0.3},
        seed=11,
        curves=Curves(
            step=steps,
            time=[0.0, 0.4, 0.8, 1.2],
            train_loss=[2.3, 0.5, 0.2, 0.1],
            valid_loss=[2.3, 0.6, 0.3, 0.2],
            valid_metric=[0.9, 0.12, 0.07, 0.05],
            test_loss=[2.3, 0.6, 0.3, 0.25],
            test_metric=[0.9, 0.13, 0.08, 0.06],
        ),
    )
)
builder.add_trial(
    TrialRecord(
        workload="digits_mlp",
        optimizer="momentum",
        trial=0,
        status=Status.DIVERGED,
        hparams={"learning_rate": 8.0, "momentum": 0.99},
        seed=12,
        curves=Curves(
            step=steps[:2],
            time=[0.0, 0.4],
            train_loss=[2.3, np.nan],
            valid_metric=[0.9, np.nan],
        ),
    )
)
ds = builder.build()
path = sys.argv[1] if len(sys.argv) > 1 else "example.nc"
write_archive(ds, path)
print(open_archive(path))
