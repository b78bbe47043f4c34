"""Archives made with a plug-in explain themselves: analysis, report and info work where
the plug-in is not installed (torch-free; the archive is built with ArchiveBuilder)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import (
    FAMILY_SPECS,
    Inclusion,
    Taxonomy,
    archive_plugins,
    default_taxonomy,
    open_archive,
    write_archive,
)
from optcmp_data.testing import synthetic_archive

runner = CliRunner()

LION = {
    "source": "optcmp-lion-example 0.1.0",
    "family": {
        "name": "lion",
        "title": "Lion",
        "update_rule": "c = beta1 m + (1-beta1) g; theta -= lr (sign(c) + lambda theta); ...",
        "source": "optcmp-lion-example 0.1.0",
        "hparams": [
            {"name": "learning_rate", "symbol": "eta", "default": 1e-4, "valid": "[0, inf)"},
            {"name": "beta1", "symbol": "beta1", "default": 0.9, "valid": "[0, 1)"},
        ],
    },
}


def _archive(tmp_path: Path) -> Path:
    taxonomy = Taxonomy((*default_taxonomy().relations, Inclusion("sgd", "lion", "declared")))
    ds = synthetic_archive(
        optimizers=["sgd", "momentum", "adam", "lion"],
        families={"sgd": "sgd", "momentum": "momentum", "adam": "adam", "lion": "lion"},
        plugins={"lion": LION},
        taxonomy=taxonomy,
        planted={"lion": -0.02},
        seed=3,
    )
    path = tmp_path / "with_plugin.nc"
    write_archive(ds, path)
    return path


def test_provenance_is_stored_and_read_back(tmp_path: Path) -> None:
    assert "lion" not in FAMILY_SPECS  # the plug-in is not installed here
    archive = open_archive(_archive(tmp_path))
    assert archive_plugins(archive.attrs) == {"lion": LION}
    lion = archive.sel(optimizer="lion")
    assert str(lion["optimizer_family"].values) == "lion"
    assert "learning_rate" in [str(h) for h in archive["hparam"].values]
    assert str(lion["space_scale"].sel(workload="w0", hparam="learning_rate").values) == "log"


def test_analysis_and_report_work_without_the_plugin(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    best = runner.invoke(app, ["analyze", "best", str(path), "--json"])
    assert best.exit_code == 0, best.output
    assert "lion" in best.stdout
    inclusion = runner.invoke(
        app, ["analyze", "inclusion", str(path), "--n-test-boot", "50", "--json"]
    )
    assert inclusion.exit_code == 0, inclusion.output
    # The archive's own relation sgd ⊆ lion is tested (whatever the payload's layout).
    assert '"general": "lion"' in json.dumps(json.loads(inclusion.stdout))
    report = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    assert "lion" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    info = runner.invoke(app, ["info", str(path)])
    assert info.exit_code == 0, info.output
