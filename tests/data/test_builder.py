"""The builder: records in any order give the same archive; mistakes are caught early."""

from __future__ import annotations

import numpy as np
import pytest

from optcmp_data import (
    ArchiveBuilder,
    Curves,
    SchemaError,
    SpaceDim,
    SpaceRecord,
    Status,
    TrialRecord,
    WorkloadInfo,
)


def _builder() -> ArchiveBuilder:
    b = ArchiveBuilder(source="test", command="pytest")
    b.add_workload(WorkloadInfo("w", "error_rate", "min", valid_target=0.1, step_budget=10))
    b.add_optimizer("adam", "adam")
    b.add_optimizer("sgd", "sgd")
    b.add_space("w", "sgd", SpaceRecord("s", (SpaceDim("learning_rate", 1e-3, 1.0, "log"),)))
    return b


def _trial(opt: str, t: int, n: int = 3) -> TrialRecord:
    return TrialRecord(
        workload="w",
        optimizer=opt,
        trial=t,
        status=Status.COMPLETED,
        hparams={"learning_rate": 0.1 * (t + 1)},
        curves=Curves(step=np.arange(n) * 5, valid_metric=np.linspace(1, 0.2, n)),
        seed=t,
    )


def test_order_of_records_does_not_matter() -> None:
    a, b = _builder(), _builder()
    trials = [_trial("sgd", 0), _trial("adam", 1, n=2), _trial("sgd", 2)]
    for t in trials:
        a.add_trial(t)
    for t in reversed(trials):
        b.add_trial(t)
    ds_a, ds_b = a.build(), b.build()
    ds_b.attrs["created"] = ds_a.attrs["created"]
    assert ds_a.identical(ds_b)
    assert ds_a.sizes["eval"] == 3
    # The shorter trial is padded: step -1 and NaN past its end.
    assert ds_a["step"].sel(workload="w", optimizer="adam", trial=1).values.tolist() == [0, 5, -1]
    assert ds_a["status"].sel(workload="w", optimizer="adam", trial=0).item() == "missing"
    assert np.isnan(ds_a["hparams"].sel(optimizer="adam", trial=0)).all()


def test_duplicates_and_undeclared_names_rejected() -> None:
    b = _builder()
    b.add_trial(_trial("sgd", 0))
    with pytest.raises(SchemaError, match="added twice"):
        b.add_trial(_trial("sgd", 0))
    with pytest.raises(SchemaError, match="undeclared optimizer"):
        b.add_trial(_trial("lion", 1))
    with pytest.raises(SchemaError, match="different facts"):
        b.add_workload(WorkloadInfo("w", "accuracy", "max"))
    with pytest.raises(SchemaError, match="families"):
        b.add_optimizer("sgd", "momentum")


def test_curve_lengths_checked() -> None:
    with pytest.raises(SchemaError, match="valid_metric has 2 values but step has 3"):
        Curves(step=[0, 1, 2], valid_metric=[0.1, 0.2])


def test_repeat_axes_required_on_every_trial() -> None:
    b = ArchiveBuilder(source="t", repeat_dims=("seed",))
    b.add_workload(WorkloadInfo("w", "loss", "min"))
    b.add_optimizer("sgd", "sgd")
    with pytest.raises(SchemaError, match="repeat"):
        b.add_trial(_trial("sgd", 0))
    with pytest.raises(SchemaError, match="repeat axis"):
        ArchiveBuilder(source="t", repeat_dims=("epoch",))
