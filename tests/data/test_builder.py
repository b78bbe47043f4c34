"""The builder: records in any order give the same archive; mistakes are caught early."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optcmp_data import (
    ArchiveBuilder,
    ArchiveIOError,
    Curves,
    SchemaError,
    SpaceDim,
    SpaceRecord,
    Status,
    TrialRecord,
    WorkloadInfo,
    git_commit,
    open_archive,
)
from optcmp_data._io import list_shards


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


def test_provenance_is_given_to_the_builder() -> None:
    b = ArchiveBuilder(source="test", command="pytest", git_commit="abc", precision="bf16")
    b.add_workload(WorkloadInfo("w", "error_rate", "min"))
    b.add_optimizer("sgd", "sgd")
    b.add_trial(_trial("sgd", 0))
    ds = b.build()
    assert (ds.attrs["git_commit"], ds.attrs["precision"]) == ("abc", "bf16")
    # Without them: this process's commit, and no precision (only `optcmp run` sets it).
    plain = _builder()
    plain.add_trial(_trial("sgd", 0))
    ds = plain.build()
    assert ds.attrs["git_commit"] == git_commit()
    assert "precision" not in ds.attrs


def test_a_group_is_written_as_one_shard_named_after_its_trials(tmp_path: Path) -> None:
    b = ArchiveBuilder(source="test", command="pytest")
    b.add_workload(WorkloadInfo("w", "error_rate", "min"))
    b.add_optimizer("sgd", "sgd")
    for t in (17, 3, 9):
        b.add_trial(_trial("sgd", t))
    path = b.write_shard(tmp_path / "study")
    assert path.name == "w--sgd--00003-00017.nc"
    assert ArchiveBuilder.shard_name("w", "sgd", (3, 9, 17)) == path.stem
    assert list_shards(tmp_path / "study") == [path]
    assert open_archive(path)["trial"].values.tolist() == [3, 9, 17]
    before = path.read_bytes()
    with pytest.raises(ArchiveIOError, match="shard exists already; refusing to store"):
        b.write_shard(tmp_path / "study")
    assert path.read_bytes() == before


def test_a_shard_holds_one_group() -> None:
    b = _builder()  # two optimizers
    b.add_trial(_trial("sgd", 0))
    with pytest.raises(SchemaError, match="one workload and one optimizer"):
        b.write_shard("unused")
