"""MLflow experiments: a small sweep of two optimizers logged with mlflow itself into a
file store (mlruns/) and a SQLite store, imported, analysed (`optcmp analyze best`,
`optcmp report`) and round-tripped through `optcmp export`; the stores are hashed before
and after every import, failed ones included. Skips where mlflow is not installed (the
`tests` nox session installs the mlflow extra, so CI runs it)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from typer.testing import CliRunner

from optcmp_data import ConfigError, DataFormatError, open_archive
from optcmp_data._schema import validate
from optcmp_data.importers import import_mlflow

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    mlflow_tracking = pytest.importorskip("mlflow.tracking")

STEPS = (0, 10, 20, 30)
LRS = {"sgd": (0.01, 0.1, 1.0), "adam": (1e-4, 1e-3, 1e-2)}


@attrs.frozen
class Sweep:
    uri: str
    path: Path
    # run id -> (optimizer, params as logged, status, valid history, test history)
    runs: dict[str, tuple[str, dict[str, str], str, list[float], list[float]]]


def _valid(opt: str, lr: float, i: int) -> list[float]:
    best = 0.01 if opt == "sgd" else 1e-3
    end = 0.1 + abs(math.log10(lr / best)) / 4 + (0.02 if opt == "sgd" else 0.0)
    return [end + (1.0 - end) * math.exp(-s / 10) + 0.001 * i for s in STEPS]


def _log_sweep(uri: str, path: Path) -> Sweep:
    """Three learning rates per optimizer (sgd with momentum, adam with beta1), seed 0,
    a text param; adam's largest rate diverges (NaN); one sgd run FAILED after two
    evaluations; one run is still RUNNING (left out by the importer)."""
    client = mlflow_tracking.MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("sweep")
    client.create_experiment("other")  # an empty second experiment
    runs: dict[str, tuple[str, dict[str, str], str, list[float], list[float]]] = {}
    i = 0
    for opt, lrs in LRS.items():
        for lr in lrs:
            run = client.create_run(exp, start_time=1_700_000_000_000 + 1000 * i)
            rid = run.info.run_id
            params = {"optimizer": opt, "lr": str(lr), "seed": "0", "scheduler": "cosine"}
            params["momentum" if opt == "sgd" else "beta1"] = "0.9"
            params["nesterov" if opt == "sgd" else "amsgrad"] = "True" if opt == "sgd" else "False"
            for k, v in params.items():
                client.log_param(rid, k, v)
            valid = _valid(opt, lr, i)
            test = [v + 0.05 for v in valid]
            status = "FINISHED"
            if opt == "adam" and lr == lrs[-1]:
                valid = [valid[0], math.nan, math.nan, math.nan]
                test = [test[0], math.nan, math.nan, math.nan]
            if opt == "sgd" and lr == lrs[0]:
                valid, test, status = valid[:2], test[:2], "FAILED"
            for j, (val, tst) in enumerate(zip(valid, test, strict=False)):
                stamp = 1_700_000_000_000 + 1000 * i + 500 * (j + 1)
                client.log_metric(rid, "val_loss", val, timestamp=stamp, step=STEPS[j])
                client.log_metric(rid, "test_loss", tst, timestamp=stamp, step=STEPS[j])
            for j in range(len(valid)):
                train = 2.0 / (STEPS[j] + 1) + 0.01 * i
                client.log_metric(rid, "loss", train, timestamp=1_700_000_000_000, step=STEPS[j])
            client.log_metric(rid, "lr_now", lr, step=0)
            client.set_terminated(rid, status)
            runs[rid] = (opt, params, status, valid, test)
            i += 1
    running = client.create_run(exp)
    client.log_param(running.info.run_id, "optimizer", "sgd")
    client.log_metric(running.info.run_id, "val_loss", 0.5, step=0)
    return Sweep(uri=uri, path=path, runs=runs)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Sweep]:
    """The same sweep in a file store and a SQLite store (created once per module)."""
    root = tmp_path_factory.mktemp("mlflow")
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            files = _log_sweep((root / "mlruns").as_uri(), root / "mlruns")
            db = root / "mlflow.db"
            sqlite = _log_sweep(f"sqlite:///{db}", db)
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old
    return {"file": files, "sqlite": sqlite}


def _digest(path: Path) -> str:
    """A hash of a file, or of every path, mode and content under a folder."""
    h = hashlib.sha256()
    paths = [path] if path.is_file() else sorted(path.rglob("*"))
    for p in paths:
        h.update(str(p.relative_to(path.parent)).encode())
        h.update(oct(p.stat().st_mode).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(params=["file", "sqlite"])
def sweep(request: pytest.FixtureRequest, stores: dict[str, Sweep]) -> Iterator[Sweep]:
    store = stores[str(request.param)]
    before = _digest(store.path)
    siblings = sorted(p.name for p in store.path.parent.iterdir())
    yield store
    assert _digest(store.path) == before, "the import changed the MLflow store"
    assert sorted(p.name for p in store.path.parent.iterdir()) == siblings


def _import(sweep: Sweep, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "experiment": "sweep",
        "valid_metric": "val_loss",
        "test_metric": "test_loss",
        "direction": "min",
    }
    args.update(kw)
    return import_mlflow(sweep.uri, **args)


def test_runs_params_curves_and_statuses(sweep: Sweep) -> None:
    result = _import(sweep)
    ds = result.dataset
    validate(ds)
    assert result.files_read == 1  # one store
    assert ds["workload"].values.tolist() == ["sweep"]
    assert ds["optimizer"].values.tolist() == ["adam", "sgd"]
    assert str(ds["metric_name"].values[0]) == "loss"  # val_loss without "val_"
    assert int(ds["step_budget"].values[0]) == STEPS[-1]
    assert "running or scheduled" in ds.attrs["caveats"]
    assert "scheduler" in ds.attrs["caveats"]  # the text param, named
    assert "scheduler" not in ds["hparam"].values
    assert "seed" not in ds["hparam"].values
    run_ids = json.loads(ds.attrs["mlflow_run_ids"])["sweep"]
    assert sorted(rid for ids in run_ids.values() for rid in ids) == sorted(sweep.runs)
    for rid, (opt, params, status, valid, test) in sweep.runs.items():
        cell = ds.sel(workload="sweep", optimizer=opt, trial=run_ids[opt].index(rid))
        lr = float(params["lr"])
        assert float(cell["hparams"].sel(hparam="lr")) == lr
        flag = "nesterov" if opt == "sgd" else "amsgrad"
        assert float(cell["hparams"].sel(hparam=flag)) == (params[flag] == "True")
        assert int(cell["trial_seed"]) == 0
        n = len(valid)
        assert cell["step"].values[:n].tolist() == list(STEPS[:n])
        assert (cell["step"].values[n:] == -1).all()
        np.testing.assert_array_equal(cell["valid_metric"].values[:n], valid)
        np.testing.assert_array_equal(cell["test_metric"].values[:n], test)
        times = cell["time"].values[:n]
        np.testing.assert_allclose(times, 0.5 * np.arange(1, n + 1))
        expected = (
            "diverged"
            if any(math.isnan(v) for v in valid)
            else {"FINISHED": "completed", "FAILED": "incomplete"}[status]
        )
        assert str(cell["status"].values) == expected
    # the params of one optimizer only are NaN for the other
    assert np.isnan(ds["hparams"].sel(optimizer="adam", hparam="momentum").values).all()
    # spaces: the observed ranges (lr spans 100x: log; one momentum value: fixed)
    space = ds.sel(workload="sweep", optimizer="sgd")
    assert str(space["space_name"].values) == "mlflow-observed"
    assert str(space["space_scale"].sel(hparam="lr").values) == "log"
    assert float(space["space_low"].sel(hparam="lr")) == min(LRS["sgd"])
    assert float(space["space_high"].sel(hparam="lr")) == max(LRS["sgd"])
    assert str(space["space_scale"].sel(hparam="momentum").values) == "fixed"
    assert str(space["space_scale"].sel(hparam="beta1").values) == "none"


def test_both_stores_give_the_same_archive(stores: dict[str, Sweep]) -> None:
    a = _import(stores["file"]).dataset
    b = _import(stores["sqlite"]).dataset
    for var in ("valid_metric", "test_metric", "step", "status", "time"):
        np.testing.assert_array_equal(a[var].values, b[var].values)
    np.testing.assert_array_equal(a["hparams"].values, b["hparams"].values)


def test_mapping_file_gives_facts_and_families(sweep: Sweep, tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        '[workload]\ndirection = "min"\nmetric_name = "loss"\nvalid_target = 0.2\n'
        'step_budget = 40\n[families]\nsgd = "momentum"\nadam = "adam"\n'
    )
    ds = _import(sweep, direction=None, mapping=mapping, workload="toy").dataset
    assert ds["workload"].values.tolist() == ["toy"]
    assert str(ds["metric_name"].values[0]) == "loss"
    assert float(ds["valid_target"].values[0]) == 0.2
    assert int(ds["step_budget"].values[0]) == 40
    fam = dict(zip(ds["optimizer"].values, ds["optimizer_family"].values, strict=True))
    assert fam == {"adam": "adam", "sgd": "momentum"}


def test_bad_input_is_one_line_and_the_store_is_untouched(sweep: Sweep) -> None:
    with pytest.raises(DataFormatError, match=r"no experiment named 'nope' \(experiments: "):
        _import(sweep, experiment="nope")
    # "other" holds no runs, so the sweep is found without --experiment
    assert _import(sweep, experiment=None).dataset.attrs["mlflow_experiment"] == "sweep"
    with pytest.raises(ConfigError, match="direction of metric 'val_loss' is not given"):
        _import(sweep, direction=None)
    with pytest.raises(DataFormatError, match=r"logged no metric 'acc'.*val_loss"):
        _import(sweep, valid_metric="acc")
    with pytest.raises(DataFormatError, match=r"has no param or tag 'opt'.*--optimizer-from"):
        _import(sweep, optimizer_from="opt")
    with pytest.raises(DataFormatError, match="no finished, failed or killed run"):
        _import(sweep, optimizer_from="opt", skip_bad=True)
    skipped = _import(sweep, valid_metric="test_loss", workload_from="lr", skip_bad=True)
    assert skipped.skipped == 0
    distinct = {str(lr) for lrs in LRS.values() for lr in lrs}
    assert sorted(skipped.dataset["workload"].values.tolist()) == sorted(distinct)


def test_missing_and_foreign_stores(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such SQLite file"):
        import_mlflow(f"sqlite:///{tmp_path / 'none.db'}", valid_metric="v", direction="min")
    assert not (tmp_path / "none.db").exists()
    other = tmp_path / "other.db"
    other.write_bytes(b"not a database at all" * 10)
    before = _digest(other)
    with pytest.raises(DataFormatError, match="not a readable SQLite database"):
        import_mlflow(f"sqlite:///{other}", valid_metric="v", direction="min")
    assert _digest(other) == before
    with pytest.raises(DataFormatError, match="not a directory"):
        import_mlflow(str(tmp_path / "mlruns"), valid_metric="v", direction="min")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no experiment folder"):
        import_mlflow((tmp_path / "empty").as_uri(), valid_metric="v", direction="min")
    assert not any((tmp_path / "empty").iterdir())


@pytest.mark.slow
def test_cli_import_analyse_report_and_export_round_trip(
    sweep: Sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optcmp_cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    out = tmp_path / "sweep.nc"
    args = ["import", "mlflow", "--tracking-uri", sweep.uri, "--experiment", "sweep"]
    args += ["--valid-metric", "val_loss", "--test-metric", "test_loss", "--direction", "min"]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 workloads, 2 optimizers" in res.output
    best = runner.invoke(app, ["analyze", "best", str(out)])
    assert best.exit_code == 0, best.output
    assert "adam" in best.output
    assert "sgd" in best.output
    report = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    table = tmp_path / "sweep.csv"
    exp = runner.invoke(app, ["export", str(out), "--out", str(table)])
    assert exp.exit_code == 0, exp.output
    back = tmp_path / "back.nc"
    imp = runner.invoke(app, ["import", "table", str(table), "--out", str(back)])
    assert imp.exit_code == 0, imp.output
    a, b = open_archive(out), open_archive(back)
    for var in ("valid_metric", "test_metric", "step", "status", "time", "trial_seed"):
        np.testing.assert_array_equal(a[var].values, b[var].values)
    np.testing.assert_array_equal(a["hparams"].values, b["hparams"].values)
    assert a.attrs["mlflow_run_ids"] == b.attrs["mlflow_run_ids"]
    for var in ("space_low", "space_high", "space_scale", "metric_direction"):
        np.testing.assert_array_equal(a[var].values, b[var].values)
    bad_pair = runner.invoke(
        app, [*args, "--series", "train_loss", "--out", str(tmp_path / "x.nc")]
    )
    assert bad_pair.exit_code == 2
    assert "expected NAME=KEY" in bad_pair.output
    bad = runner.invoke(app, [*args[:-2], "--out", str(tmp_path / "x.nc")])
    assert bad.exit_code == 2
    assert "direction" in bad.output
    assert "Traceback" not in bad.output
    assert not (tmp_path / "x.nc").exists()


def test_the_snapshot_is_removed(
    sweep: Sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _import(sweep)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataFormatError):
        _import(sweep, valid_metric="acc")
    assert list(tmp_path.iterdir()) == []


def test_series_option_fills_further_curves(sweep: Sweep) -> None:
    ds = _import(sweep, series={"train_loss": "loss", "valid_loss": "val_loss"}).dataset
    assert "train_loss is the MLflow metric 'loss'" in ds.attrs["caveats"]
    run_ids = json.loads(ds.attrs["mlflow_run_ids"])["sweep"]
    for rid, (opt, _, _, valid, _) in sweep.runs.items():
        cell = ds.sel(workload="sweep", optimizer=opt, trial=run_ids[opt].index(rid))
        i = list(sweep.runs).index(rid)
        n = len(valid)
        expected = [2.0 / (s + 1) + 0.01 * i for s in STEPS[:n]]
        np.testing.assert_allclose(cell["train_loss"].values[:n], expected, rtol=1e-12)
        np.testing.assert_array_equal(cell["valid_loss"].values[:n], valid)
    assert np.isnan(ds["train_metric"].values).all()
    with pytest.raises(ConfigError, match=re.escape("--series valid_metric=...: not one of")):
        _import(sweep, series={"valid_metric": "loss"})
