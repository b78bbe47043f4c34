"""Tidy tables in and out: export then import gives the same archive (a property over
synthetic archives, and the published archives when present); tables shaped like
experiment-tracker exports through a mapping; missing facts and bad rows as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optcmp_data import ConfigError, DataFormatError, Status
from optcmp_data.importers import (
    export_table,
    import_algoperf,
    import_deepobs,
    import_table,
    sidecar_path,
)
from optcmp_data.importers._infer import infer_mapping
from optcmp_data.importers._table import IMPORT_ATTRS, archive_to_frame, escape_text, unescape_text
from optcmp_data.testing import synthetic_archive
from tests.data.archive_trees import SHARED_ARCHIVES


def assert_same_archive(a: xr.Dataset, b: xr.Dataset) -> None:
    """Identical data, coordinates and attributes, except the attributes that describe
    the import itself (source, command, created, version, commit)."""
    a, b = a.copy(), b.copy()
    for key in IMPORT_ATTRS:
        a.attrs.pop(key, None)
        b.attrs.pop(key, None)
    xr.testing.assert_identical(a, b)


def _round_trip(ds: xr.Dataset, out: Path) -> xr.Dataset:
    export_table(ds, out)
    return import_table(out).dataset


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    workloads=st.integers(1, 3),
    n_trials=st.integers(1, 5),
    n_evals=st.integers(1, 6),
    ragged=st.booleans(),
    diverged=st.sampled_from([0.0, 0.3]),
    incomplete=st.sampled_from([0.0, 0.3]),
    repeats=st.sampled_from([{}, {"seed": 2}, {"study": 3}, {"seed": 2, "study": 2}]),
    direction=st.sampled_from(["min", "max"]),
    optimizers=st.sampled_from([("sgd",), ("sgd", "adam"), ("momentum", "nadam", "mine")]),
    seed=st.integers(0, 1000),
)
def test_export_then_import_is_identical(
    tmp_path: Path,
    workloads: int,
    n_trials: int,
    n_evals: int,
    ragged: bool,
    diverged: float,
    incomplete: float,
    repeats: dict[str, int],
    direction: str,
    optimizers: tuple[str, ...],
    seed: int,
) -> None:
    ds = synthetic_archive(
        workloads=workloads,
        optimizers=optimizers,
        n_trials=n_trials,
        n_evals=max(n_evals, 2) if ragged else n_evals,
        ragged=ragged,
        diverged_fraction=diverged,
        incomplete_fraction=incomplete,
        repeats=repeats,
        direction=direction,
        seed=seed,
    )
    assert_same_archive(ds, _round_trip(ds, tmp_path / f"t{seed}.csv"))


def test_rows_are_evaluations_and_runs_without_any_keep_one_row(tmp_path: Path) -> None:
    ds = synthetic_archive(optimizers=("sgd",), n_trials=3, n_evals=4, repeats={"seed": 2})
    ds["status"] = ds["status"].astype("U10")
    for cell, status in (
        ({"trial": 1, "seed": 0}, Status.INCOMPLETE),
        ({"trial": 2, "seed": 1}, Status.MISSING),
    ):
        # a run stored without evaluations, and a run that does not exist
        ds["step"][cell] = -1
        ds["status"][cell] = status.value
        for name in (
            "time",
            "train_loss",
            "valid_loss",
            "valid_metric",
            "test_loss",
            "test_metric",
        ):
            ds[name][cell] = np.nan
    ds["trial_seed"][{"trial": 2, "seed": 1}] = -1
    frame = archive_to_frame(ds)
    assert len(frame) == 3 * 2 * 4 - 4 - 4 + 1
    empty = frame[frame["step"].isna()]
    assert len(empty) == 1
    assert list(empty[["trial", "seed", "status"]].iloc[0]) == [1, 0, "incomplete"]
    assert [c for c in frame.columns if c.startswith("hp.")] == ["hp.learning_rate"]
    assert_same_archive(ds, _round_trip(ds, tmp_path / "t.csv"))


def test_parquet_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    ds = synthetic_archive(optimizers=("sgd", "adam"), ragged=True, repeats={"study": 2})
    assert_same_archive(ds, _round_trip(ds, tmp_path / "t.parquet"))


_DEEPOBS = SHARED_ARCHIVES / "deepobs-baselines"
_V05 = SHARED_ARCHIVES / "algoperf-v05"
_V06 = SHARED_ARCHIVES / "algoperf-v06"


@pytest.mark.slow
@pytest.mark.skipif(not _DEEPOBS.is_dir(), reason=f"published archive not present at {_DEEPOBS}")
def test_round_trip_of_the_deepobs_import(tmp_path: Path) -> None:
    ds = import_deepobs(_DEEPOBS).dataset
    assert_same_archive(ds, _round_trip(ds, tmp_path / "deepobs.csv"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("root", "ruleset"),
    [(_V05, "external_tuning"), (_V05, "self_tuning"), (_V06, "external_tuning")],
)
def test_round_trip_of_the_algoperf_imports(tmp_path: Path, root: Path, ruleset: str) -> None:
    if not root.is_dir():
        pytest.skip(f"published archive not present at {root}")
    ds = import_algoperf(root, ruleset=ruleset).dataset
    back = _round_trip(ds, tmp_path / "algoperf.csv")
    assert_same_archive(ds, back)
    assert list(back["framework"].dims) == ["workload", "optimizer"]


# --- tables of other tools ----------------------------------------------------------------

WANDB_MAPPING = """
[columns]
optimizer = "config.optimizer"
trial = "Name"
status = "State"
valid_metric = "{metric}"
{extra}

[values]
workload = "cifar10_resnet"

[hparams]
prefix = "config."

[status_map]
finished = "completed"
crashed = "diverged"
killed = "incomplete"

[workload]
metric_name = "accuracy"
direction = "max"
step_budget = 500

[space]
name = "sweep"
lr = {{low = 1e-4, high = 1.0, scale = "log"}}
"""


def _wandb_runs(rng: np.random.Generator) -> pd.DataFrame:
    names = [f"run-{c}" for c in "qwertyuiop"]
    return pd.DataFrame(
        {
            "Name": names,
            "State": ["finished"] * 8 + ["crashed", "killed"],
            "config.optimizer": ["adam", "sgd"] * 5,
            "config.lr": 10 ** rng.uniform(-4, 0, 10),
            "summary.val_acc": rng.uniform(0.5, 0.9, 10),
            "summary._runtime": rng.uniform(100, 200, 10),
        }
    )


def test_wandb_runs_table_one_row_per_run(tmp_path: Path) -> None:
    runs = _wandb_runs(np.random.default_rng(0))
    table = tmp_path / "wandb_export.csv"
    runs.to_csv(table, index=False)
    mapping = tmp_path / "wandb.toml"
    mapping.write_text(
        WANDB_MAPPING.format(metric="summary.val_acc", extra='time = "summary._runtime"'),
        encoding="utf-8",
    )
    result = import_table(table, mapping=mapping)
    ds = result.dataset
    assert list(ds["optimizer"].values) == ["adam", "sgd"]
    assert list(ds["workload"].values) == ["cifar10_resnet"]
    assert list(ds["hparam"].values) == ["lr"]
    assert str(ds["metric_direction"].values[0]) == "max"
    # Run names are numbered 0.. in sorted order; every value lands in its run's cell.
    ids = sorted(runs["Name"])
    for _, row in runs.iterrows():
        cell = ds.sel(workload="cifar10_resnet", optimizer=row["config.optimizer"])
        cell = cell.sel(trial=ids.index(row["Name"]))
        assert int(cell["step"].values[0]) == 500
        assert float(cell["valid_metric"].values[0]) == row["summary.val_acc"]
        assert float(cell["time"].values[0]) == row["summary._runtime"]
        assert float(cell["hparams"].sel(hparam="lr")) == row["config.lr"]
        expected = {"finished": "completed", "crashed": "diverged", "killed": "incomplete"}
        assert str(cell["status"].values) == expected[row["State"]]
    assert float(ds["space_high"].sel(hparam="lr").values.max()) == 1.0
    assert "not integers" in ds.attrs["caveats"]


def test_wandb_history_table_per_step(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    runs = _wandb_runs(rng)
    rows = []
    for _, run in runs.iterrows():
        for step in (0, 100, 200):
            rows.append(
                {
                    "Name": run["Name"],
                    "State": run["State"],
                    "config.optimizer": run["config.optimizer"],
                    "config.lr": run["config.lr"],
                    "_step": step,
                    "val_acc": run["summary.val_acc"] * (step + 50) / 250,
                    "train/loss": float(rng.uniform(0, 2)),
                }
            )
    table = tmp_path / "history.csv"
    history = pd.DataFrame(rows).sample(frac=1.0, random_state=3)  # any row order
    history.to_csv(table, index=False)
    mapping = tmp_path / "history.toml"
    mapping.write_text(
        WANDB_MAPPING.format(metric="val_acc", extra='step = "_step"\ntrain_loss = "train/loss"'),
        encoding="utf-8",
    )
    ds = import_table(table, mapping=mapping).dataset
    assert ds.sizes["eval"] == 3
    ids = sorted(runs["Name"])
    for (name, step), row in history.set_index(["Name", "_step"]).iterrows():
        cell = ds.sel(optimizer=row["config.optimizer"], trial=ids.index(name)).isel(workload=0)
        steps = list(cell["step"].values)
        assert step in steps
        at = steps.index(step)
        assert float(cell["valid_metric"].values[at]) == row["val_acc"]
        assert float(cell["train_loss"].values[at]) == row["train/loss"]


@pytest.mark.parametrize(
    ("drop", "asks_for"),
    [
        ("direction", "direction"),
        ("metric_name", "metric's name"),
        ("space", "search space"),
    ],
)
def test_missing_facts_are_asked_for(tmp_path: Path, drop: str, asks_for: str) -> None:
    table = tmp_path / "runs.csv"
    _wandb_runs(np.random.default_rng(0)).to_csv(table, index=False)
    text = WANDB_MAPPING.format(metric="summary.val_acc", extra="")
    if drop == "space":
        text = text.split("[space]")[0]
    else:
        text = "\n".join(line for line in text.splitlines() if not line.startswith(drop))
    mapping = tmp_path / "m.toml"
    mapping.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=asks_for) as err:
        import_table(table, mapping=mapping)
    assert "\n" not in str(err.value)


def test_a_table_without_sidecar_or_mapping_is_refused(tmp_path: Path) -> None:
    ds = synthetic_archive(optimizers=("sgd",), n_trials=2)
    table, side = export_table(ds, tmp_path / "t.csv")
    side.unlink()
    with pytest.raises(ConfigError, match="no sidecar"):
        import_table(table)


def _exported(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    ds = synthetic_archive(optimizers=("sgd",), n_trials=3, n_evals=3)
    table, _ = export_table(ds, tmp_path / "t.csv")
    return table, pd.read_csv(table)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.assign(step=f["step"].astype(str).where(f.index != 4, "12.5")), "12.5"),
        (lambda f: f.assign(step=f["step"].where(f.index != 4, -100)), "negative step -100"),
        (lambda f: f.assign(step=f["step"].astype(float).where(f.index != 4, 1e30)), r"1e\+30"),
        (lambda f: f.assign(status=f["status"].where(f.index != 4, "exploded")), "exploded"),
        (lambda f: f.assign(trial=f["trial"].astype(str).where(f.index != 4, "")), "empty"),
        (
            lambda f: f.assign(valid_metric=f["valid_metric"].astype(str).where(f.index != 4, "x")),
            "not a number",
        ),
    ],
)
def test_bad_cells_are_one_line_errors(tmp_path: Path, edit: object, message: str) -> None:
    table, frame = _exported(tmp_path)
    edit(frame).to_csv(table, index=False)  # type: ignore[operator]
    with pytest.raises((DataFormatError, ConfigError), match=message) as err:
        import_table(table)
    assert "\n" not in str(err.value)
    assert str(table) in str(err.value)


def test_skip_bad_skips_the_run_and_counts_it(tmp_path: Path) -> None:
    table, frame = _exported(tmp_path)
    frame.loc[4, "status"] = "exploded"
    frame.to_csv(table, index=False)
    result = import_table(table, skip_bad=True)
    assert result.skipped == 1
    assert "exploded" in result.warnings[0]
    assert int((result.dataset["status"] != "missing").sum()) == 2


def test_duplicated_column_is_refused(tmp_path: Path) -> None:
    table, _ = _exported(tmp_path)
    lines = table.read_text().splitlines()
    lines = [line + ",1" for line in lines]
    lines[0] = lines[0].rsplit(",", 1)[0] + ",valid_metric"
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="'valid_metric' appears twice"):
        import_table(table)


def test_sidecar_is_json_with_the_facts(tmp_path: Path) -> None:
    ds = synthetic_archive(optimizers=("sgd", "adam"), n_trials=2)
    _, side = export_table(ds, tmp_path / "t.csv")
    assert side == sidecar_path(tmp_path / "t.csv")
    facts = json.loads(side.read_text())
    assert facts["workloads"]["w0"]["direction"] == "min"
    assert facts["workloads"]["w0"]["test_target"] is None  # NaN as null
    assert {s["optimizer"] for s in facts["spaces"]} == {"sgd", "adam"}
    assert facts["taxonomy"]["inclusion"]


@pytest.mark.parametrize("which", ["sidecar", "mapping", "mapping-not-utf8"])
def test_hostile_sidecar_and_mapping_files(tmp_path: Path, which: str) -> None:
    ds = synthetic_archive(optimizers=("sgd",), n_trials=2)
    table, side = export_table(ds, tmp_path / "t.csv")
    mapping = None
    if which == "sidecar":
        side.write_text("[" * 100_000 + "]" * 100_000)
    else:
        side.unlink()
        mapping = tmp_path / "m.toml"
        if which == "mapping":
            mapping.write_text("a = " + "[" * 100_000 + "]" * 100_000)
        else:
            mapping.write_bytes(b"[workload]\nmetric_name = '\xff\xfe'\n")
    with pytest.raises((DataFormatError, ConfigError)) as err:
        import_table(table, mapping=mapping)
    assert "\n" not in str(err.value)
    assert str(side if which == "sidecar" else mapping) in str(err.value)


# --- tables as they come: one row per run, no id, repeated configurations (issue 21) ------


def optimizer_sweep_table(rng: np.random.Generator) -> pd.DataFrame:
    """A table of the shape of a public optimizer comparison (written here, not copied):
    one row per run, columns lr, batch size, num iteration, duration, train/test loss and
    accuracy; optimizers sgd, adagrad, adam and lbfgs with unequal numbers of settings;
    no run id; some configurations run two or three times."""
    rows = []
    grid = {
        "sgd": [(lr, bs) for lr in (0.01, 0.03, 0.1, 0.3) for bs in (32, 128)],
        "adagrad": [(0.01, 64), (0.1, 64), (0.05, 128)],
        "adam": [(0.001, 64), (0.0003, 64)],
        "lbfgs": [(1.0, 512)],
    }
    for opt, points in grid.items():
        for lr, bs in points:
            for iters in (500, 1000):
                runs = 1 + int(rng.integers(0, 3))
                for _ in range(runs):
                    acc = float(np.clip(0.6 + 0.3 * rng.random(), 0, 1))
                    rows.append(
                        {
                            "optimizer": opt,
                            "lr": lr,
                            "batch size": bs,
                            "num iteration": iters,
                            "duration": round(float(rng.uniform(10, 90)), 3),
                            "train loss": round(float(rng.uniform(0.05, 1.5)), 6),
                            "train accuracy": round(min(acc + 0.05, 1.0), 6),
                            "test loss": round(float(rng.uniform(0.1, 1.8)), 6),
                            "test accuracy": round(acc, 6),
                        }
                    )
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    return frame


SWEEP_MAPPING = """
trial = "setting"        # each distinct (lr, batch size) is a trial
[columns]
step = "num iteration"
time = "duration"
train_loss = "train loss"
train_metric = "train accuracy"
test_loss = "test loss"
test_metric = "test accuracy"
[values]
workload = "mnist_mlp"
[repeats]
seed = "repeated rows"   # a configuration run again is another seed of its setting
[hparams]
columns = {lr = "lr", batch_size = "batch size"}
[workload]
metric_name = "accuracy"
direction = "max"
selection_split = "test"
step_budget = 1000
[space]
name = "grid"
lr = {low = 0.0001, high = 1.0, scale = "log"}
batch_size = {low = 32, high = 512, scale = "log"}
"""


def _sweep(tmp_path: Path, mapping: str = SWEEP_MAPPING) -> tuple[Path, Path, pd.DataFrame]:
    frame = optimizer_sweep_table(np.random.default_rng(5))
    table = tmp_path / "results.csv"
    frame.to_csv(table, index=False)
    path = tmp_path / "sweep.toml"
    path.write_text(mapping, encoding="utf-8")
    return table, path, frame


def test_settings_as_trials_and_repeated_rows_as_seeds(tmp_path: Path) -> None:
    table, mapping, frame = _sweep(tmp_path)
    ds = import_table(table, mapping=mapping).dataset
    assert list(ds["optimizer"].values) == ["adagrad", "adam", "lbfgs", "sgd"]
    assert "seed" in ds.dims
    settings = frame.groupby("optimizer")[["lr", "batch size"]].apply(
        lambda g: len(g.drop_duplicates())
    )
    for opt, n in settings.items():
        stored = ds["status"].sel(optimizer=opt).isel(workload=0) != "missing"
        assert int(stored.any("seed").sum()) == n
    # Every row lands in its setting's cell: the k-th repeat of a (setting, step) is seed k.
    seen: dict[tuple[str, float, int, int], int] = {}
    for _, row in frame.iterrows():
        key = (row["optimizer"], row["lr"], row["batch size"], row["num iteration"])
        k = seen.get(key, 0)
        seen[key] = k + 1
        cell = ds.isel(workload=0).sel(optimizer=row["optimizer"], seed=k)
        hp = cell["hparams"].transpose("trial", "hparam").values
        trial = [
            t
            for t in range(ds.sizes["trial"])
            if hp[t, 0] == row["batch size"] and hp[t, 1] == row["lr"]
        ]
        assert len(trial) == 1
        run = cell.isel(trial=trial[0])
        steps = list(run["step"].values)
        at = steps.index(row["num iteration"])
        assert float(run["test_metric"].values[at]) == row["test accuracy"]
        assert float(run["time"].values[at]) == row["duration"]
    assert str(ds["selection_split"].values[0]) == "test"
    assert "distinct hyperparameter settings" in ds.attrs["caveats"]


def test_each_row_a_trial(tmp_path: Path) -> None:
    text = SWEEP_MAPPING.replace('trial = "setting"', 'trial = "row"').replace(
        'seed = "repeated rows"', ""
    )
    table, mapping, frame = _sweep(tmp_path, text)
    ds = import_table(table, mapping=mapping).dataset
    assert "seed" not in ds.dims
    counts = frame["optimizer"].value_counts()
    for opt, n in counts.items():
        stored = ds["status"].sel(optimizer=opt).isel(workload=0) != "missing"
        assert int(stored.sum()) == n
    # Row order within an optimizer numbers its trials.
    sgd = frame[frame["optimizer"] == "sgd"].reset_index(drop=True)
    cell = ds.isel(workload=0).sel(optimizer="sgd")
    for t, row in sgd.iterrows():
        assert float(cell["test_metric"].sel(trial=t).values[0]) == row["test accuracy"]


def test_repeated_settings_without_repeats_name_every_way_out(tmp_path: Path) -> None:
    text = SWEEP_MAPPING.replace('seed = "repeated rows"', "")
    table, mapping, _ = _sweep(tmp_path, text)
    with pytest.raises(DataFormatError, match="appears twice") as err:
        import_table(table, mapping=mapping)
    message = str(err.value)
    assert "[repeats] seed" in message
    assert "repeated rows" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("drop", "ways"),
    [
        ("[values]\nworkload", ["[columns] workload", "[values] workload"]),
        ('trial = "setting"', ["[columns] trial", 'trial = "row"', 'trial = "setting"']),
    ],
)
def test_a_missing_column_names_every_way_to_give_it(
    tmp_path: Path, drop: str, ways: list[str]
) -> None:
    text = SWEEP_MAPPING.replace(drop, "# removed" if drop.startswith("trial") else "[values]\n#")
    table, mapping, _ = _sweep(tmp_path, text)
    with pytest.raises(DataFormatError) as err:
        import_table(table, mapping=mapping)
    for way in ways:
        assert way in str(err.value)


def test_inferred_draft_mapping_imports_the_table_as_it_is(tmp_path: Path) -> None:
    table, _, frame = _sweep(tmp_path)
    draft = infer_mapping(table)
    assert 'trial = "setting"' in draft
    assert 'seed = "repeated rows"' in draft
    assert 'optimizer = "optimizer"' in draft
    assert 'step = "num iteration"' in draft
    for line in (
        'test_metric = "test accuracy"',
        'train_loss = "train loss"',
        'batch_size = "batch size"',
        'lr = "lr"',
        'direction = "max"',
        'selection_split = "test"',
    ):
        assert line in draft
    path = tmp_path / "draft.toml"
    path.write_text(draft, encoding="utf-8")
    ds = import_table(table, mapping=path).dataset
    assert sorted(map(str, ds["optimizer"].values)) == sorted(frame["optimizer"].unique())
    assert int((ds["step"] >= 0).sum()) == len(frame)


# --- the same values from CSV and Parquet; spreadsheet-safe exports (issue 20) -----------

NAN_MAPPING = """
[columns]
trial = "run"
step = "step"
valid_metric = "acc"
[values]
workload = "w"
[hparams]
prefix = "hp."
[workload]
metric_name = "accuracy"
direction = "max"
[space]
name = "s"
lr = {low = 0.001, high = 1.0, scale = "log"}
"""


def test_nan_and_inf_mean_the_same_in_csv_and_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    acc = [0.5, np.nan, 0.7, 0.6, np.inf, 0.8, 0.2, None, 0.9]
    frame = pd.DataFrame(
        {
            "optimizer": ["sgd"] * 9,
            "run": np.repeat([0, 1, 2], 3),
            "step": [0, 10, 20] * 3,
            "hp.lr": np.repeat([0.01, 0.1, 0.5], 3),
        }
    )
    csv_table = tmp_path / "t.csv"
    text = frame.assign(acc=["0.5", "nan", "0.7", "0.6", "inf", "0.8", "0.2", "", "0.9"])
    text.to_csv(csv_table, index=False)
    parquet_table = tmp_path / "t.parquet"
    arrow = pa.Table.from_pandas(frame).append_column(
        "acc", pa.array(acc, type=pa.float64(), from_pandas=False)
    )
    pq.write_table(arrow, parquet_table)
    mapping = tmp_path / "m.toml"
    mapping.write_text(NAN_MAPPING, encoding="utf-8")
    from_csv = import_table(csv_table, mapping=mapping).dataset
    from_parquet = import_table(parquet_table, mapping=mapping).dataset
    assert_same_archive(from_csv.drop_attrs(), from_parquet.drop_attrs())
    status = [str(s) for s in from_csv["status"].values.ravel()]
    # nan and inf written out mark a diverged run; an empty cell is a value not recorded.
    assert status == ["diverged", "diverged", "completed"]
    values = from_csv["valid_metric"].values.reshape(3, 3)
    assert np.isnan(values[0, 1])
    assert np.isposinf(values[1, 1])
    assert np.isnan(values[2, 1])


HOSTILE_LABELS = (
    '=HYPERLINK("http://evil","x")',
    "+1+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3",
    "\tTAB",
    "\rCR",
    "'quoted",
    "esc\x1b[31mred",
    "back\\slash\\x41",
    "plain",
)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_neutralises_text_cells_and_import_undoes_it(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    ds = synthetic_archive(optimizers=HOSTILE_LABELS, n_trials=2, n_evals=2)
    ds = ds.assign_coords(
        hparams=ds["hparams"].where(ds["hparams"].isnull(), -ds["hparams"])
    )  # negative numbers are numbers, not text cells
    table, side = export_table(ds, tmp_path / f"t.{fmt}")
    assert json.loads(side.read_text())["text_cells"] == "escaped-1"
    frame = pd.read_csv(table) if fmt == "csv" else pd.read_parquet(table)
    for label in map(str, frame["optimizer"].unique()):
        assert not label.startswith(("=", "+", "-", "@", "\t", "\r")), label
        assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in label), label
    assert '\'=HYPERLINK("http://evil","x")' in set(frame["optimizer"])
    assert "\\x09TAB" in set(frame["optimizer"])
    assert (frame["hp.learning_rate"] < 0).all()
    if fmt == "csv":
        raw = table.read_text(encoding="utf-8")
        assert "\x1b" not in raw
        assert "\r" not in raw.replace("\r\n", "\n")
        assert ",-0." in raw  # a negative hyperparameter is written as a number
    assert_same_archive(ds, import_table(table).dataset)


@given(text=st.text(max_size=30))
def test_escaped_text_cells_are_inert_and_undone_exactly(text: str) -> None:
    cell = escape_text(text)
    assert unescape_text(cell) == text
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in cell)


def test_large_seeds_are_kept_exactly(tmp_path: Path) -> None:
    ds = synthetic_archive(optimizers=("sgd",), n_trials=2, n_evals=2)
    ds["trial_seed"] = ds["trial_seed"] * 0 + (2**62 + 1)
    assert_same_archive(ds, _round_trip(ds, tmp_path / "t.csv"))
