"""Optuna studies: a small study built in a temporary SQLite file, imported and analysed
(`optcmp analyze best|budget`). Skips where optuna is not installed (the `tests` nox
session installs the optuna extra, so CI runs it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from optcmp_data import ConfigError, DataFormatError, open_archive
from optcmp_data.importers import import_optuna

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: Any) -> float:
    opt = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    lr = trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)
    if opt == "sgd":
        trial.suggest_float("momentum", 0.0, 0.99)
    trial.suggest_categorical("activation", ["relu", "gelu"])
    if trial.number == 5:
        raise RuntimeError("diverged")
    value = 1.0
    for step in (10, 20, 30):
        value = abs(math.log10(lr) + 2) / 4 + 1.0 / step + (0.05 if opt == "sgd" else 0.0)
        trial.report(value, step)
        if trial.number == 3 and step == 20:
            raise optuna.TrialPruned()
    return value - 0.01


def _study(tmp_path: Path, direction: str = "minimize") -> tuple[str, Any]:
    storage = f"sqlite:///{tmp_path / 'hpo.db'}"
    study = optuna.create_study(
        study_name="toy",
        storage=storage,
        direction=direction,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(_objective, n_trials=12, catch=(RuntimeError,))
    return storage, study


def test_trials_params_curves_and_statuses(tmp_path: Path) -> None:
    storage, study = _study(tmp_path)
    ds = import_optuna(storage, "toy").dataset
    assert list(ds["workload"].values) == ["toy"]
    assert list(ds["optimizer"].values) == ["adam", "sgd"]
    assert str(ds["metric_direction"].values[0]) == "min"
    assert int(ds["step_budget"].values[0]) == 30
    assert "activation" not in ds["hparam"].values
    assert "activation" in ds.attrs["caveats"]
    for trial in study.trials:
        opt = trial.params["optimizer"]
        cell = ds.sel(workload="toy", optimizer=opt, trial=trial.number)
        status = str(cell["status"].values)
        expected = {"COMPLETE": "completed", "PRUNED": "incomplete", "FAIL": "diverged"}
        assert status == expected[trial.state.name]
        assert float(cell["hparams"].sel(hparam="learning_rate")) == trial.params["learning_rate"]
        steps = [int(s) for s in cell["step"].values if s >= 0]
        metric = cell["valid_metric"].values[: len(steps)]
        if trial.state.name == "COMPLETE":
            # intermediate values, then the objective at the last step (replacing it)
            assert steps == [10, 20, 30]
            assert float(metric[-1]) == trial.value
            assert float(metric[0]) == trial.intermediate_values[10]
        elif trial.state.name == "PRUNED":
            assert steps == [10, 20]
            assert list(metric) == [trial.intermediate_values[s] for s in steps]
        else:
            assert steps == []
    # spaces from the distributions: log learning rate, momentum for sgd only
    scale = ds["space_scale"].sel(workload="toy")
    assert str(scale.sel(optimizer="sgd", hparam="learning_rate").values) == "log"
    assert str(scale.sel(optimizer="sgd", hparam="momentum").values) == "linear"
    assert str(scale.sel(optimizer="adam", hparam="momentum").values) == "none"
    assert float(ds["space_high"].sel(workload="toy", optimizer="sgd", hparam="momentum")) == 0.99


def test_maximised_study_and_workload_options(tmp_path: Path) -> None:
    storage, _ = _study(tmp_path, direction="maximize")
    ds = import_optuna(storage, "toy", workload="mnist").dataset
    assert str(ds["metric_direction"].values[0]) == "max"
    assert list(ds["workload"].values) == ["mnist"]
    ds = import_optuna(storage, "toy", workload_from="activation").dataset
    assert sorted(ds["workload"].values) == ["gelu", "relu"]
    with pytest.raises(ConfigError, match="not both"):
        import_optuna(storage, "toy", workload="a", workload_from="b")


def test_errors_are_one_line(tmp_path: Path) -> None:
    storage, _ = _study(tmp_path)
    with pytest.raises(DataFormatError, match="no study named 'nope' \\(studies: toy\\)"):
        import_optuna(storage, "nope")
    with pytest.raises(DataFormatError, match="no such SQLite file"):
        import_optuna(f"sqlite:///{tmp_path / 'absent.db'}", "toy")
    assert not (tmp_path / "absent.db").exists()
    with pytest.raises(DataFormatError, match="--optimizer-from"):
        import_optuna(storage, "toy", optimizer_from="optim")
    result = import_optuna(storage, "toy", optimizer_from="activation", skip_bad=False)
    assert sorted(result.dataset["optimizer"].values) == ["gelu", "relu"]


def test_cli_import_then_analyze_best_and_budget(tmp_path: Path) -> None:
    from optcmp_cli import app

    storage, study = _study(tmp_path)
    runner = CliRunner()
    out = tmp_path / "toy.nc"
    result = runner.invoke(
        app, ["import", "optuna", "--storage", storage, "--study", "toy", "--out", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    assert open_archive(out).sizes["trial"] == 12
    best = runner.invoke(app, ["analyze", "best", str(out), "--json"])
    assert best.exit_code == 0, best.stderr
    payload = json.loads(best.stdout)
    records = next(iter(payload.values()))
    by_opt = {r["optimizer"]: r for r in records}
    for opt in ("adam", "sgd"):
        done = [
            t for t in study.trials if t.params["optimizer"] == opt and t.state.name == "COMPLETE"
        ]
        assert math.isclose(by_opt[opt]["selection_value"], min(t.value for t in done))
        assert by_opt[opt]["value"] == by_opt[opt]["selection_value"]  # no separate test
    for extra in ([], ["--with-replacement"]):
        budget = runner.invoke(
            app,
            ["analyze", "budget", str(out), "--json", "--n-boot", "200", "--budget", "8", *extra],
        )
        assert budget.exit_code == 0, budget.stderr
        rows = next(iter(json.loads(budget.stdout).values()))
        for row in rows:
            done = [
                t.value
                for t in study.trials
                if t.params["optimizer"] == row["optimizer"] and t.state.name == "COMPLETE"
            ]
            stored = sum(t.params["optimizer"] == row["optimizer"] for t in study.trials)
            if stored < 8 and not extra:
                # Never resampled past its trials unless asked: no value at k = 8.
                assert row["median"] is None, row
                continue
            # best of 8 draws out of a handful of trials: the median is one of the values
            assert np.isfinite(row["median"])
            assert min(done) <= row["median"] <= max(done)
    bad = runner.invoke(
        app, ["import", "optuna", "--storage", storage, "--study", "x", "--out", str(out)]
    )
    assert bad.exit_code == 2
    assert len(bad.stderr.strip().splitlines()) == 1


def test_text_caveat_names_only_params_not_stored(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'mixed.db'}"
    study = optuna.create_study(study_name="mixed", storage=storage)

    def objective(trial: Any) -> float:
        trial.suggest_categorical("optimizer", ["sgd"])
        trial.suggest_categorical("activation", ["relu", "gelu"])  # text only: not stored
        trial.suggest_categorical("width", ["auto", 64])  # stored where 64
        return float(trial.suggest_float("learning_rate", 1e-3, 1.0, log=True))

    study.enqueue_trial({"width": 64, "activation": "relu"})
    study.enqueue_trial({"width": "auto", "activation": "gelu"})
    study.optimize(objective, n_trials=2)
    ds = import_optuna(storage, "mixed").dataset
    assert "width" in ds["hparam"].values
    assert "activation" not in ds["hparam"].values
    caveats = ds.attrs["caveats"]
    assert "params with text values are not stored: ['activation']" in caveats
    assert "'width' (1 of 2 trials)" in caveats
    assert "not stored: ['activation', 'width']" not in caveats
