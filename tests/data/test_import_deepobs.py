"""The DeepOBS importer on small trees in both formats (every quirk of the published
archives), its errors, and on the real deepobs-baselines archive when it is present."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from optcmp_data import DataFormatError, write_archive
from optcmp_data._schema import validate
from optcmp_data.importers import import_deepobs
from tests.data.archive_trees import SHARED_ARCHIVES, write_deepobs

LEVELS_12 = (("results", "oneshot", "constant"), ("results", "large_budget", "constant"))


def test_deepobs_11_mapping(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path, fmt="1.1")
    result = import_deepobs(tmp_path)
    ds = result.dataset
    validate(ds)
    assert result.warnings == ()
    assert result.files_read == 2 * 3 * (4 + 3)
    assert sorted(ds["workload"].values.tolist()) == sorted(facts.problems)
    assert sorted(ds["optimizer"].values.tolist()) == sorted(facts.optimizers)
    family = dict(
        zip(ds["optimizer"].values.tolist(), ds["optimizer_family"].values.tolist(), strict=True)
    )
    assert family == {
        "GradientDescentOptimizer": "sgd",
        "MomentumOptimizer": "momentum",
        "MyOptimizer": "",
    }
    assert ds["seed"].values.tolist() == [42, *facts.rerun_seeds]
    assert ds.attrs["selection_repeats"] == "seed=42"
    assert set(ds["selection_split"].values.tolist()) == {"test"}
    assert "test split" in ds.attrs["caveats"]
    for problem, metric in facts.problems.items():
        w = ds.sel(workload=problem)
        assert str(w["metric_name"].values) == metric
        assert str(w["metric_direction"].values) == ("max" if metric == "accuracy" else "min")
        assert float(w["test_target"].values) == facts.targets[problem]
        assert int(w["step_budget"].values) == facts.num_epochs
    # trials in order of learning rate; the stored value is the exact seed-42 float
    lr = ds["hparams"].sel(hparam="learning_rate", workload="toy_mlp", optimizer="MyOptimizer")
    assert lr.values.tolist() == list(facts.lrs)
    mom = ds["hparams"].sel(hparam="momentum", optimizer="MomentumOptimizer")
    assert (mom.values == 0.99).all()
    assert np.isnan(ds["hparams"].sel(hparam="momentum", optimizer="MyOptimizer").values).all()
    # booleans are hyperparameters 0/1 (NaN where an optimizer lacks one)
    nesterov = ds["hparams"].sel(hparam="use_nesterov")
    assert (nesterov.sel(optimizer="MomentumOptimizer").values == 0.0).all()
    assert np.isnan(nesterov.sel(optimizer="MyOptimizer").values).all()
    assert (
        str(ds["space_scale"].sel(hparam="use_nesterov", optimizer="MomentumOptimizer")[0].values)
        == "fixed"
    )
    # 1.1's lr_sched_epochs/factors are null in every file: no schedule
    assert (ds["training_params"].values == "").all()
    assert "mode" not in ds["hparam"].values  # strings neither
    # the chosen setting holds 4 seeds, the others only seed 42 (the rest "missing")
    status = ds["status"].sel(workload="toy_mlp", optimizer="GradientDescentOptimizer")
    chosen = facts.lrs.index(facts.chosen[("toy_mlp", "GradientDescentOptimizer")])
    present = (status != "missing").sum("seed").values
    assert present.tolist() == [4 if t == chosen else 1 for t in range(len(facts.lrs))]
    # bare NaN losses mark the largest learning rate as diverged
    diverged = ds["status"].sel(seed=42).values == "diverged"
    last = len(facts.lrs) - 1
    assert diverged[:, :, last].all()
    assert not diverged[:, :, :last].any()
    # steps are epoch indices; no times
    run = ds.sel(workload="toy_quadratic", optimizer="MyOptimizer", trial=0, seed=42)
    assert run["step"].values[: facts.num_epochs + 1].tolist() == list(range(facts.num_epochs + 1))
    assert np.isnan(ds["time"].values).all()
    # loss-only problems use the test loss as their metric
    np.testing.assert_array_equal(run["test_metric"].values, run["test_loss"].values)


def test_deepobs_11_matches_the_files(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path, fmt="1.1")
    obj = json.loads(facts.first_file.read_text())
    ds = import_deepobs(tmp_path).dataset
    problem = obj["testproblem"]
    trial = facts.lrs.index(obj["learning_rate"])
    run = ds.sel(workload=problem, optimizer=obj["optimizer"], trial=trial, seed=42)
    n = len(obj["train_losses"])
    np.testing.assert_array_equal(run["train_loss"].values[:n], obj["train_losses"])
    np.testing.assert_array_equal(run["test_loss"].values[:n], obj["test_losses"])
    np.testing.assert_array_equal(run["train_metric"].values[:n], obj["train_accuracies"])
    np.testing.assert_array_equal(run["test_metric"].values[:n], obj["test_accuracies"])
    assert np.isnan(run["valid_metric"].values).all()


def test_deepobs_12_mapping(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path, fmt="1.2", levels=LEVELS_12)
    ds = import_deepobs(tmp_path).dataset
    assert set(ds["selection_split"].values.tolist()) == {"valid"}
    # the budget level differs between runs and joins the optimizer label; the constant
    # levels ("results", the schedule) do not
    labels = {f"{o}-{b}" for o in facts.optimizers for b in ("oneshot", "large_budget")}
    assert set(ds["optimizer"].values.tolist()) == labels
    assert set(facts.chosen) == {(p, o) for p in facts.problems for o in labels}
    assert np.isfinite(ds["valid_metric"].sel(eval=0).where(ds["status"] != "missing")).any()
    # the epoch-0 fill of diverged runs is detected and restored to NaN
    last = len(facts.lrs) - 1
    status = ds["status"].sel(seed=42)
    assert (status.isel(trial=last) == "diverged").all()
    assert (status.isel(trial=slice(0, last)) == "completed").all()
    run = ds.sel(trial=last, seed=42).isel(workload=0, optimizer=0)
    for var in ("train_loss", "valid_loss", "test_loss", "valid_metric"):
        values = run[var].values[: facts.num_epochs + 1]
        assert np.isfinite(values[:2]).all()
        assert np.isnan(values[2:]).all()
    assert "filled with epoch-0 values" in ds.attrs["caveats"]
    assert ds.attrs["selection_repeats"] == "seed=42"
    lr = ds["hparams"].sel(hparam="learning_rate").isel(workload=0, optimizer=0)
    assert lr.values.tolist() == list(facts.lrs)


def test_targets_file_optional_and_explicit(tmp_path: Path) -> None:
    write_deepobs(tmp_path)
    (tmp_path / "convergence_performance.json").unlink()
    ds = import_deepobs(tmp_path).dataset
    assert np.isnan(ds["test_target"].values).all()
    other = tmp_path.parent / f"{tmp_path.name}-targets.json"
    other.write_text(json.dumps({"toy_mlp": 0.25}))
    ds = import_deepobs(tmp_path, targets=other).dataset
    assert float(ds["test_target"].sel(workload="toy_mlp")) == 0.25
    assert math.isnan(float(ds["test_target"].sel(workload="toy_quadratic")))


def test_a_json_file_cut_short_is_named(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path)
    text = facts.first_file.read_text()
    facts.first_file.write_text(text[: len(text) // 2])
    with pytest.raises(DataFormatError, match=facts.first_file.name) as err:
        import_deepobs(tmp_path)
    assert "\n" not in str(err.value)
    result = import_deepobs(tmp_path, skip_bad=True)
    assert result.skipped == 1
    assert facts.first_file.name in result.warnings[0]
    assert result.files_read == 2 * 3 * (4 + 3) - 1


def test_empty_folder_and_foreign_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="empty folder"):
        import_deepobs(empty)
    other = tmp_path / "other" / "a" / "b" / "c"
    other.mkdir(parents=True)
    (other / "eval_measurements.csv").write_text("global_step,score\n1,2\n")
    with pytest.raises(DataFormatError, match="no DeepOBS run files"):
        import_deepobs(tmp_path / "other")
    with pytest.raises(DataFormatError, match="not a directory"):
        import_deepobs(tmp_path / "missing")


def test_a_run_that_is_not_deepobs_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "p" / "o" / "s"
    folder.mkdir(parents=True)
    bad = folder / "random_seed__42__x.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(
        DataFormatError, match=re.escape("random_seed__42__x.json: not a DeepOBS run")
    ):
        import_deepobs(tmp_path)
    with pytest.raises(DataFormatError, match="none of its 1 run files"):
        import_deepobs(tmp_path, skip_bad=True)


def test_mixed_formats_are_rejected(tmp_path: Path) -> None:
    write_deepobs(tmp_path / "a", fmt="1.1")
    write_deepobs(tmp_path / "b", fmt="1.2")
    with pytest.raises(DataFormatError, match=re.escape("mixes DeepOBS 1.1 and 1.2")):
        import_deepobs(tmp_path)


def test_import_is_deterministic(tmp_path: Path) -> None:
    write_deepobs(tmp_path)
    a = import_deepobs(tmp_path).dataset
    b = import_deepobs(tmp_path).dataset
    for name in ("status", "hparams", "test_metric", "step"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_written_archive_round_trips(tmp_path: Path) -> None:
    from optcmp_data import open_archive

    write_deepobs(tmp_path / "tree")
    ds = import_deepobs(tmp_path / "tree").dataset
    out = write_archive(ds, tmp_path / "deepobs.nc")
    back = open_archive(out)
    assert back.attrs["selection_repeats"] == "seed=42"
    assert back.attrs["importer"] == "deepobs"
    np.testing.assert_array_equal(back["test_metric"].values, ds["test_metric"].values)


def test_deepobs_12_accepts_torch_lr_name(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path, fmt="1.2")
    for path in tmp_path.rglob("random_seed__*.json"):
        obj = json.loads(path.read_text())
        hp = obj["optimizer_hyperparams"]
        obj["optimizer_hyperparams"] = {"lr": hp.pop("learning_rate"), **hp}
        path.write_text(json.dumps(obj))
    ds = import_deepobs(tmp_path).dataset
    lr = ds["hparams"].sel(hparam="learning_rate").isel(workload=0, optimizer=0)
    assert lr.values.tolist() == list(facts.lrs)
    assert "lr" not in ds["hparam"].values


def test_deepobs_12_keeps_batch_size_l2_reg_budget_and_schedule(tmp_path: Path) -> None:
    facts = write_deepobs(tmp_path, fmt="1.2", levels=LEVELS_12)
    ds = import_deepobs(tmp_path).dataset
    assert (ds["batch_size"].values == 32).all()  # every run logs batch_size 32
    assert np.isnan(ds["l2_reg"].values).all()  # l2_reg is null in these files
    for o in facts.optimizers:
        for budget in ("oneshot", "large_budget"):
            label = f"{o}-{budget}"
            assert str(ds["budget"].sel(optimizer=label).values) == budget
            assert str(ds["schedule"].sel(optimizer=label).values) == "constant"


@pytest.mark.parametrize("depth", ["problem", "optimizer", "setting"])
def test_deepobs_12_accepts_every_level_of_the_tree(tmp_path: Path, depth: str) -> None:
    """results/oneshot/cosine/<problem>[/<optimizer>[/<setting>]] import the runs below
    them with the same values as the whole tree, and keep budget and schedule."""
    write_deepobs(tmp_path, fmt="1.2", levels=(("results", "oneshot", "cosine"),))
    whole = import_deepobs(tmp_path).dataset
    problem_dir = tmp_path / "results" / "oneshot" / "cosine" / "toy_quadratic"
    src = {
        "problem": problem_dir,
        "optimizer": problem_dir / "MomentumOptimizer",
        "setting": next(iter(sorted((problem_dir / "MomentumOptimizer").iterdir()))),
    }[depth]
    part = import_deepobs(src).dataset
    assert list(part["workload"].values) == ["toy_quadratic"]
    assert str(part["budget"].values[0]) == "oneshot"
    assert str(part["schedule"].values[0]) == "cosine"
    opt = "MomentumOptimizer"
    assert opt in part["optimizer"].values
    for t in part["trial"].values:
        cell = part["hparams"].sel(workload="toy_quadratic", optimizer=opt, trial=t)
        lr = float(cell.sel(hparam="learning_rate"))
        full = whole.sel(workload="toy_quadratic", optimizer=opt)
        match = int(np.flatnonzero(full["hparams"].sel(hparam="learning_rate").values == lr)[0])
        for seed in part["seed"].values:
            mine = part["test_loss"].sel(
                workload="toy_quadratic", optimizer=opt, trial=t, seed=seed
            )
            theirs = full["test_loss"].isel(trial=match).sel(seed=seed)
            n = mine.sizes["eval"]
            assert np.array_equal(mine.values, theirs.values[:n], equal_nan=True)


def test_deepobs_12_keeps_schedules_booleans_and_describes_the_space(tmp_path: Path) -> None:
    """training_params (schedule lists) and boolean hyperparameters are kept; the space
    is the observed learning-rate range (log), one-value hyperparameters fixed and tuned
    ones (momentum here) their observed range on a linear scale."""
    facts = write_deepobs(tmp_path, fmt="1.2")
    schedule = {"lr_sched_epochs": [2, 4], "lr_sched_factors": [1.0, 0.1, 0.01]}
    momenta = {}
    for path in sorted(tmp_path.rglob("random_seed__*.json")):
        obj = json.loads(path.read_text())
        if obj["optimizer_name"] != "MomentumOptimizer":
            continue
        lr = obj["optimizer_hyperparams"]["learning_rate"]
        index = min(range(len(facts.lrs)), key=lambda i: abs(facts.lrs[i] - lr))
        momenta[index] = (0.5, 0.9, 0.99, 0.999)[index]
        obj["optimizer_hyperparams"].update(momentum=momenta[index], use_locking=False)
        if obj["testproblem"] == "toy_mlp":
            obj["training_params"] = schedule
        path.write_text(json.dumps(obj))
    ds = import_deepobs(tmp_path).dataset
    validate(ds)
    cell = ds.sel(workload="toy_mlp", optimizer="MomentumOptimizer")
    assert json.loads(str(cell["training_params"].values)) == schedule
    other = ds.sel(workload="toy_quadratic", optimizer="MomentumOptimizer")
    assert str(other["training_params"].values) == ""  # nulls only: no schedule
    assert (cell["hparams"].sel(hparam="use_locking").values == 0.0).all()
    assert cell["hparams"].sel(hparam="momentum").values.tolist() == [
        momenta[i] for i in range(len(facts.lrs))
    ]
    scale = {str(h): str(cell["space_scale"].sel(hparam=h).values) for h in ds["hparam"].values}
    assert scale["learning_rate"] == "log"
    assert scale["momentum"] == "linear"
    assert scale["use_locking"] == "fixed"
    assert scale["use_nesterov"] == "fixed"
    assert float(cell["space_low"].sel(hparam="momentum")) == min(momenta.values())
    assert float(cell["space_high"].sel(hparam="momentum")) == max(momenta.values())
    assert "not stored" not in ds.attrs["caveats"]
    # the coordinate survives a write and re-open
    out = tmp_path.parent / f"{tmp_path.name}.nc"
    write_archive(ds, out)
    from optcmp_data import open_archive

    back = open_archive(out)
    assert back["training_params"].values.tolist() == ds["training_params"].values.tolist()


def test_settings_with_different_schedules_list_them(tmp_path: Path) -> None:
    write_deepobs(tmp_path, fmt="1.2")
    for i, path in enumerate(sorted(tmp_path.rglob("random_seed__42__*.json"))):
        obj = json.loads(path.read_text())
        obj["training_params"] = {"lr_sched_epochs": [3], "lr_sched_factors": [1.0, 0.5]}
        if i % 2:
            obj["training_params"] = {"lr_sched_epochs": None, "lr_sched_factors": None}
        path.write_text(json.dumps(obj))
    ds = import_deepobs(tmp_path).dataset
    values = [json.loads(str(v)) for v in ds["training_params"].values.ravel()]
    assert all(isinstance(v, list) for v in values)
    assert all({} in v for v in values)


_BASELINES = SHARED_ARCHIVES / "deepobs-baselines"


@pytest.mark.skipif(
    not _BASELINES.is_dir(), reason=f"published archive not present at {_BASELINES}"
)
def test_real_baselines_booleans_schedules_and_space() -> None:
    """On the published baselines: MomentumOptimizer's `use_nesterov: false` is stored as
    0, the null schedules as no training_params, and the space is the observed learning-
    rate range (log) with every other hyperparameter fixed, as the files hold one value."""
    files = sorted(_BASELINES.glob("*/*/*/random_seed__*.json"))
    raw = [json.loads(f.read_text()) for f in files[:: max(1, len(files) // 60)]]
    ds = import_deepobs(_BASELINES).dataset
    validate(ds)
    for obj in raw:
        hp = obj["hyperparams"] or {}
        for name, value in hp.items():
            if isinstance(value, bool):
                stored = ds["hparams"].sel(
                    workload=obj["testproblem"], optimizer=obj["optimizer"], hparam=name
                )
                assert set(np.unique(stored.values[np.isfinite(stored.values)])) == {float(value)}
        assert obj["lr_sched_epochs"] is None
    assert (ds["training_params"].values == "").all()
    scales = ds["space_scale"].where(ds["space_scale"] != "none")
    for h in ds["hparam"].values:
        found = {str(v) for v in np.unique(scales.sel(hparam=h).values.astype(str))} - {"nan"}
        assert found == ({"log"} if h == "learning_rate" else {"fixed"}), h
