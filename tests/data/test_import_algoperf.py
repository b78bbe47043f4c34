"""The AlgoPerf importer on small log trees written by the tests (ragged evaluation
schedules, empty cells, stray folders, trials without measurements), its errors, and on
the real algoperf-v05 logs when present."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from optcmp_data import DataFormatError
from optcmp_data._schema import validate
from optcmp_data.importers import Ruleset, import_algoperf
from tests.data.archive_trees import ALGOPERF_TARGETS, SHARED_ARCHIVES, write_algoperf


def test_external_tuning_mapping(tmp_path: Path) -> None:
    facts = write_algoperf(tmp_path)
    result = import_algoperf(tmp_path)
    ds = result.dataset
    validate(ds)
    assert result.warnings == ()
    assert result.files_read == len(facts.rows)
    assert ds["optimizer"].values.tolist() == list(facts.submissions)
    assert ds["workload"].values.tolist() == ["wa", "wa_variant", "wb"]  # suffix stripped
    assert ds["study"].values.tolist() == [0, 1, 2]
    assert ds["trial"].values.tolist() == [1, 2, 3]
    assert ds.attrs["base_workloads"] == "wa,wb"
    assert ds.attrs["held_out_workloads"] == "wa_variant"
    assert ds.attrs["ruleset"] == "external_tuning"
    for name, info in ALGOPERF_TARGETS["workloads"].items():  # type: ignore[attr-defined]
        w = ds.sel(workload=name)
        assert str(w["metric_name"].values) == info["target_metric_name"]
        assert float(w["valid_target"].values) == info["validation_target_value"]
        assert int(w["step_budget"].values) == info["step_hint"]
    directions = dict(
        zip(ds["workload"].values.tolist(), ds["metric_direction"].values.tolist(), strict=True)
    )
    assert directions == {"wa": "max", "wa_variant": "max", "wb": "min"}
    for (sub, wl, study, trial), rows in facts.rows.items():
        run = ds.sel(optimizer=sub, workload=wl, study=study, trial=trial)
        n = len(rows)
        assert run["step"].values[:n].tolist() == [r[0] for r in rows]
        assert (run["step"].values[n:] == -1).all()
        np.testing.assert_array_equal(run["time"].values[:n], [r[1] for r in rows])
        np.testing.assert_array_equal(run["valid_metric"].values[:n], [r[2] for r in rows])
        assert np.isnan(run["train_loss"].values[0])  # an empty cell is a missing value
        assert str(run["status"].values) == "completed"
    frameworks = ds["framework"].sel(workload="wa").values.tolist()
    assert frameworks == [facts.frameworks[s] for s in facts.submissions]
    assert ds["framework"].sel(workload="wb", optimizer="sub_c").item() == ""
    hp = ds["hparams"].sel(workload="wa", optimizer="sub_a")
    for trial in (1, 2, 3):
        given = facts.hparams[("sub_a", "wa", trial)]
        assert float(hp.sel(trial=trial, hparam="learning_rate")) == given["learning_rate"]
        assert float(hp.sel(trial=trial, hparam="nesterov")) == float(given["nesterov"])
    assert "style" not in ds["hparam"].values  # strings are skipped
    # a trial folder without measurements: incomplete, no evaluations, hparams kept
    for sub, wl, study, trial in facts.no_csv:
        run = ds.sel(optimizer=sub, workload=wl, study=study, trial=trial)
        assert str(run["status"].values) == "incomplete"
        assert (run["step"].values == -1).all()
        assert np.isfinite(run["hparams"].sel(hparam="learning_rate").values)
    # the missing workload of sub_c, and the stray trial folder, leave no runs
    assert (ds["status"].sel(optimizer="sub_c", workload="wb") == "missing").all()
    assert "stray" in ds.attrs["caveats"]


def test_self_tuning_has_one_trial_and_no_hparams(tmp_path: Path) -> None:
    facts = write_algoperf(tmp_path, ruleset="self_tuning")
    ds = import_algoperf(tmp_path, ruleset=Ruleset.SELF_TUNING).dataset
    assert ds["trial"].values.tolist() == [1]
    assert ds.sizes["hparam"] == 0
    assert ds.attrs["ruleset"] == "self_tuning"
    assert int((ds["status"] == "completed").sum()) == len(facts.rows)


def test_ruleset_folder_and_explicit_targets(tmp_path: Path) -> None:
    write_algoperf(tmp_path / "tree")
    targets = tmp_path / "targets.json"
    shutil.move(tmp_path / "tree" / "workload_targets_test.json", targets)
    with pytest.raises(DataFormatError, match="--targets"):
        import_algoperf(tmp_path / "tree")
    a = import_algoperf(tmp_path / "tree", targets=targets).dataset
    ruleset_dir = tmp_path / "tree" / "logs" / "external_tuning"
    b = import_algoperf(ruleset_dir, targets=targets).dataset
    np.testing.assert_array_equal(a["valid_metric"].values, b["valid_metric"].values)
    # without --targets, the file beside logs/ is found from the ruleset folder too
    shutil.copy(targets, tmp_path / "tree" / "workload_targets_test.json")
    c = import_algoperf(ruleset_dir).dataset
    np.testing.assert_array_equal(a["valid_metric"].values, c["valid_metric"].values)
    with pytest.raises(DataFormatError, match="not self_tuning"):
        import_algoperf(ruleset_dir, ruleset="self_tuning")


def test_nan_cells_mark_divergence(tmp_path: Path) -> None:
    facts = write_algoperf(tmp_path)
    key = next(iter(facts.rows))
    sub, wl, study, trial = key
    csv = (
        tmp_path
        / "logs/external_tuning"
        / sub
        / f"study_{study}"
        / f"{wl}_{facts.frameworks[sub]}"
        / f"trial_{trial}"
        / "eval_measurements.csv"
    )
    lines = csv.read_text().splitlines()
    cells = lines[-1].split(",")
    cells[-2] = "nan"  # validation loss written as nan
    lines[-1] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    ds = import_algoperf(tmp_path).dataset
    status = ds["status"].sel(optimizer=sub, workload=wl, study=study, trial=trial)
    assert str(status.values) == "diverged"
    assert int((ds["status"] == "diverged").sum()) == 1


def _csv_of(root: Path, facts_key: tuple[str, str, int, int], framework: str) -> Path:
    sub, wl, study, trial = facts_key
    return (
        root
        / "logs/external_tuning"
        / sub
        / f"study_{study}"
        / f"{wl}_{framework}"
        / f"trial_{trial}"
        / "eval_measurements.csv"
    )


def test_csv_missing_the_target_column(tmp_path: Path) -> None:
    facts = write_algoperf(tmp_path)
    key = next(k for k in facts.rows if k[1] == "wa")
    csv = _csv_of(tmp_path, key, facts.frameworks[key[0]])
    lines = csv.read_text().splitlines()
    lines[0] = lines[0].replace("validation/accuracy", "validation/other")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=re.escape(f"{csv}: missing column")) as err:
        import_algoperf(tmp_path)
    assert "validation/accuracy" in str(err.value)
    result = import_algoperf(tmp_path, skip_bad=True)
    assert result.skipped == 1
    assert str(csv) in result.warnings[0]
    assert result.files_read == len(facts.rows) - 1
    run = result.dataset["status"].sel(
        optimizer=key[0], workload=key[1], study=key[2], trial=key[3]
    )
    assert str(run.values) == "missing"


def test_csv_cut_short(tmp_path: Path) -> None:
    facts = write_algoperf(tmp_path)
    key = next(iter(facts.rows))
    csv = _csv_of(tmp_path, key, facts.frameworks[key[0]])
    text = csv.read_text()
    csv.write_text(text[: len(text) - 12])
    with pytest.raises(DataFormatError, match="cut short"):
        import_algoperf(tmp_path)


def test_bad_hparams_json_is_named(tmp_path: Path) -> None:
    facts = write_algoperf(tmp_path)
    key = next(iter(facts.rows))
    hp = _csv_of(tmp_path, key, facts.frameworks[key[0]]).with_name("hparams.json")
    hp.write_text('{"learning_rate": 0.1,')
    with pytest.raises(DataFormatError, match=re.escape(f"{hp}: not valid JSON")):
        import_algoperf(tmp_path)


def test_empty_and_foreign_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="empty folder"):
        import_algoperf(empty)
    foreign = tmp_path / "foreign" / "x"
    foreign.mkdir(parents=True)
    (foreign / "random_seed__42__t.json").write_text(json.dumps({"train_losses": [1.0]}))
    with pytest.raises(DataFormatError, match="not an AlgoPerf log tree"):
        import_algoperf(tmp_path / "foreign")


def test_unknown_workload_is_reported(tmp_path: Path) -> None:
    write_algoperf(tmp_path)
    src = tmp_path / "logs/external_tuning/sub_a/study_0/wa_jax"
    shutil.copytree(src, src.with_name("wz_jax"))
    with pytest.raises(DataFormatError, match="workload 'wz' is not in"):
        import_algoperf(tmp_path)
    result = import_algoperf(tmp_path, skip_bad=True)
    assert result.skipped == 1
    assert "wz" not in result.dataset["workload"].values


def _real() -> Path:
    return SHARED_ARCHIVES / "algoperf-v05"


@pytest.mark.skipif(not _real().is_dir(), reason=f"published archive not present at {_real()}")
@pytest.mark.parametrize(
    ("ruleset", "n_submissions"), [("external_tuning", 11), ("self_tuning", 6)]
)
def test_real_logs_import(ruleset: str, n_submissions: int) -> None:
    logs = _real() / "logs" / ruleset
    result = import_algoperf(_real(), ruleset=ruleset)
    ds = result.dataset
    assert ds.sizes["optimizer"] == n_submissions
    assert sorted(ds["optimizer"].values.tolist()) == sorted(p.name for p in logs.iterdir())
    csvs = [
        p
        for p in logs.glob("*/study_*/*/trial_*/eval_measurements.csv")
        if p.parent.parent.name.endswith(("_jax", "_pytorch"))
    ]
    assert result.files_read == len(csvs)
    assert not any(w.endswith(("_jax", "_pytorch")) for w in ds["workload"].values.tolist())
