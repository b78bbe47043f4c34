"""`optcmp report`: every analysis in one Markdown report with figures and a results.json;
byte-identical for the same seed; the archive's caveats shown; protocol comparisons;
errors are one line and exit code 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from optcmp_cli._analyses import group_sections
from optcmp_cli.app import app
from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive
from tests.cli.helpers import error_line

runner = CliRunner()
N_BOOT = "100"
SECTIONS = (
    "## Findings",
    "## Caveats",
    "## Archive",
    "## Selected trials",
    "## Budget sensitivity",
    "## Rankings",
    "## Across workloads",
    "## Time-to-target profiles",
    "## Inclusion consistency",
    "## Steps to target",
    "## Boundary check",
    "## Learning curves",
)


def small_archive(**kwargs: object) -> xr.Dataset:
    options: dict[str, object] = dict(
        workloads=2,
        optimizers=("sgd", "momentum", "adam"),
        n_trials=12,
        n_evals=5,
        diverged_fraction=0.1,
        seed=11,
    )
    options.update(kwargs)
    return synthetic_archive(**options)  # type: ignore[arg-type]


def two_protocols() -> xr.Dataset:
    """One archive holding a full protocol and a learning-rate-only one (its own optimizer
    names, momentum held fixed)."""
    ds = small_archive(
        workloads=1,
        optimizers=("sgd", "momentum", "sgd_lr", "momentum_lr"),
        families={"sgd": "sgd", "momentum": "momentum", "sgd_lr": "sgd", "momentum_lr": "momentum"},
    )
    lr_only = np.isin(ds["optimizer"].values, ["sgd_lr", "momentum_lr"])
    woh = ("workload", "optimizer", "hparam")
    ds["space_name"] = (
        ("workload", "optimizer"),
        np.where(lr_only[None, :], "lr-only", "choi2019").repeat(ds.sizes["workload"], axis=0),
    )
    fixed = lr_only[None, :, None] & (ds["hparam"].values == "momentum")[None, None, :]
    scale = ds["space_scale"].transpose(*woh).values.astype(str)
    ds["space_scale"] = (woh, np.where(fixed, "fixed", scale))
    for var in ("space_low", "space_high"):
        ds[var] = (woh, np.where(fixed, 0.9, ds[var].transpose(*woh).values))
    return ds


@pytest.fixture(scope="module")
def report_archive_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "study.nc"
    write_archive(small_archive(selection_split="test"), path)
    return path


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, report_archive_path: Path) -> Path:
    out = tmp_path_factory.mktemp("out") / "report"
    result = runner.invoke(
        app,
        ["report", str(report_archive_path), "--out", str(out), "--seed", "3", "--n-boot", N_BOOT],
    )
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.md'}" in result.stdout
    return out


def test_help_has_example() -> None:
    result = runner.invoke(app, ["report", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_report_has_every_section_and_embeds_existing_figures(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    positions = [md.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    embedded = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert {"figures/budget.png", "figures/rank.png", "figures/curves.png"} <= set(embedded)
    assert {"figures/aggregate.png", "figures/profiles.png"} <= set(embedded)
    assert {"figures/boundary-w0.png", "figures/boundary-w1.png"} <= set(embedded)
    for rel in embedded:
        assert (report_dir / rel).read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (report_dir / "figures").iterdir()) == sorted(
        Path(e).name for e in embedded
    )
    assert "| workload | optimizer | trial |" in md  # a Markdown table


def test_report_shows_the_archives_caveats(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    caveats = md[md.index("## Caveats") : md.index("## Selected trials")]
    assert "selection uses the test split" in caveats
    results = json.loads((report_dir / "results.json").read_text())
    assert any("test split" in c for c in results["caveats"])


def test_results_json_holds_every_record(report_dir: Path) -> None:
    results = json.loads((report_dir / "results.json").read_text())
    # Every analysis of a protocol group has records (its views, the curves, are figures).
    keys = [a.report_key for a in group_sections() if a.shows is None]
    assert keys[0] == "selection"
    for key in keys:
        assert results[key], key
    assert results["report"]["seed"] == 3
    assert results["report"]["archive"] == "study.nc"
    assert results["skipped"] == {}
    assert len(results["selection"]) == 2 * 3
    assert {r["optimizer"] for r in results["rank"]} == {"sgd", "momentum", "adam"}
    assert results["report"]["figures"] == sorted(
        results["report"]["figures"], key=results["report"]["figures"].index
    )


def test_same_seed_same_bytes_other_seed_differs(
    report_archive_path: Path, report_dir: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    other = tmp_path / "other"
    base = ["report", str(report_archive_path), "--n-boot", N_BOOT]
    result = runner.invoke(app, [*base, "--out", str(again), "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # --json: only JSON on stdout
    assert set(payload) == {"report", "results", "html", "figures"}
    assert payload["html"] is None  # Markdown only unless --format html
    assert Path(payload["report"]) == again / "report.md"
    assert Path(payload["results"]) == again / "results.json"
    assert all(Path(f).exists() for f in payload["figures"])
    assert runner.invoke(app, [*base, "--out", str(other), "--seed", "4"]).exit_code == 0
    for name in ("report.md", "results.json"):
        assert (again / name).read_bytes() == (report_dir / name).read_bytes()
    first = json.loads((report_dir / "results.json").read_text())
    changed = json.loads((other / "results.json").read_text())
    assert first["budget"] != changed["budget"]
    assert first["selection"] == changed["selection"]  # selection involves no randomness


def test_compare_adds_protocol_comparison(report_archive_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "wide.nc"
    write_archive(small_archive(selection_split="test", seed=12, planted={"sgd": 0.05}), other)
    # The compared archive holds both workloads; the comparison covers the shared ones.
    out = tmp_path / "r"
    result = runner.invoke(
        app,
        [
            *("report", str(report_archive_path), "--out", str(out)),
            *("--compare", str(other), "--n-boot", "50"),
        ],
    )
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert "## Protocol comparison: study.nc vs wide.nc" in md
    assert (
        "![tuned results under study.nc vs wide.nc](figures/protocol-study.nc-vs-wide.nc.png)" in md
    )
    assert (out / "figures" / "protocol-study.nc-vs-wide.nc.png").exists()
    results = json.loads((out / "results.json").read_text())
    cells = [r for r in results["protocol"] if r["record"] == "cell"]
    assert len(cells) == 2 * 3
    assert results["report"]["compare"] == "wide.nc"


def test_two_protocols_in_one_archive(tmp_path: Path) -> None:
    path = tmp_path / "both.nc"
    write_archive(two_protocols(), path)
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", str(path), "--out", str(out), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    # The restricted protocol comes first, each is analysed on its own, then compared.
    assert md.index("## Rankings (protocol lr-only)") < md.index("## Rankings (protocol choi2019)")
    assert "## Protocol comparison: lr-only vs choi2019" in md
    results = json.loads((out / "results.json").read_text())
    assert results["report"]["protocols"] == ["lr-only", "choi2019"]
    by_protocol: dict[str, set[str]] = {r["protocol"]: set() for r in results["rank"]}
    for r in results["rank"]:
        by_protocol[r["protocol"]].add(r["optimizer"])
    assert by_protocol == {"lr-only": {"sgd_lr", "momentum_lr"}, "choi2019": {"sgd", "momentum"}}
    assert (out / "figures" / "budget-lr-only.png").exists()
    # Momentum held at 0.9 cannot express SGD: that pair is not included, with its reason,
    # and is not tested; the full protocol's pair is tested.
    inclusion = md[md.index("## Inclusion consistency (protocol lr-only)") :]
    assert "Not included as stored (not tested):" in inclusion
    assert (
        "sgd_lr ⊆ momentum_lr (w0): momentum fixed at 0.9 in momentum_lr's space; "
        "sgd_lr needs momentum = 0" in inclusion
    )
    verdicts = {(r["special"], r["general"]): r["verdict"] for r in results["inclusion"]}
    assert verdicts[("sgd_lr", "momentum_lr")] == "not_included"
    assert verdicts[("sgd", "momentum")] != "not_included"


def test_inclusion_section_states_its_estimate_family_and_margin(report_dir: Path) -> None:
    md = (report_dir / "report.md").read_text()
    section = md[md.index("## Inclusion consistency") : md.index("## Steps to target")]
    results = json.loads((report_dir / "results.json").read_text())
    n_tests = results["inclusion"][0]["holm_family"]
    assert n_tests == len(results["inclusion"]) == 3 * 2 * 2  # pairs x workloads x rules
    assert f"one family of {n_tests} tests" in section
    assert f"its own family of the same {n_tests}" in section
    assert "given that it has a result" in section
    assert "bootstrap-t" in section
    assert "permutation" not in section
    assert "Margins in each metric's units" in section
    for r in results["inclusion"]:
        assert r["verdict_text"].startswith(r["verdict"].replace("_", " "))
        assert f"at k = {r['k']} of" in r["verdict_text"] or r["verdict"] == "not_included"
        assert r["margin"] > 0
        assert f"{r['k']} of {min(r['n_special'], r['n_general'])}" in section


def test_an_analysis_that_cannot_run_is_reported_not_hidden(tmp_path: Path) -> None:
    path = tmp_path / "custom.nc"
    write_archive(
        small_archive(
            workloads=1, optimizers=("mine", "yours"), families={"mine": "", "yours": ""}
        ),
        path,
    )
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", str(path), "--out", str(out), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    assert "warning: inclusion: no inclusion pair" in result.stderr
    md = (out / "report.md").read_text()
    assert "_Not available: no inclusion pair" in md
    assert "inclusion" in json.loads((out / "results.json").read_text())["skipped"]


def test_missing_archive(tmp_path: Path) -> None:
    line = error_line(["report", str(tmp_path / "nope.nc"), "--out", str(tmp_path / "r")])
    assert "no such file" in line


def test_out_is_a_file(report_archive_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    line = error_line(["report", str(report_archive_path), "--out", str(target)])
    assert "not a directory" in line


def test_no_usable_trial(tmp_path: Path) -> None:
    path = tmp_path / "diverged.nc"
    write_archive(small_archive(diverged_fraction=1.0), path)
    line = error_line(["report", str(path), "--out", str(tmp_path / "r")])
    assert "no usable trial" in line
    assert str(path) in line


def test_compare_missing(report_archive_path: Path, tmp_path: Path) -> None:
    line = error_line(
        [
            *("report", str(report_archive_path), "--out", str(tmp_path / "r")),
            *("--compare", str(tmp_path / "nope.nc")),
        ]
    )
    assert "no such file" in line


def test_one_empty_workload_keeps_every_section_for_the_others(tmp_path: Path) -> None:
    ds = small_archive(workloads=3)
    ds["status"].loc[{"workload": "w1"}] = "diverged"
    path = tmp_path / "empty.nc"
    write_archive(ds, path)
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", str(path), "--out", str(out), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    for key in ("budget", "rank", "aggregate", "profiles"):
        assert key not in results["skipped"], results["skipped"]
        assert results[key], key
    ranks = [r for r in results["rank"] if r["workload"] == "w1"]
    assert all(r["rank"] is None and r["p_best"] == 0.0 for r in ranks)
    assert all(r["no_result"] == 1.0 for r in ranks)
    md = (out / "report.md").read_text()
    assert "w1 have no usable trial" in md


def test_html_is_self_contained_and_escapes_labels(tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script>_*x*"
    ds = small_archive(workloads=1, optimizers=("sgd", hostile), families={hostile: "adam"})
    path = tmp_path / "hostile.nc"
    write_archive(ds, path)
    out = tmp_path / "r"
    result = runner.invoke(
        app,
        ["report", str(path), "--out", str(out), "--n-boot", "50", "--format", "html"],
    )
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;_*x*" in page
    assert page.count("<img ") == len(list((out / "figures").glob("*.png")))
    assert 'src="figures/' not in page  # every figure embedded as a data URI
    assert "data:image/png;base64," in page
    assert "<nav>" in page
    assert 'href="#s0"' in page
    md = (out / "report.md").read_text()
    assert md.index("## Findings") < md.index("## Caveats") < md.index("## Archive")


def test_incomplete_study_gets_one_caveat_naming_what_is_missing(tmp_path: Path) -> None:
    ds = small_archive(workloads=2, diverged_fraction=0.0).copy(deep=True)
    ds.attrs["source"] = "optcmp run"  # a study of ours: every trial is planned
    status = ds["status"].values
    status[0, 1, 9:] = "missing"  # momentum on w0: 3 of 12 trials not run yet
    status[1, :, :] = "missing"  # w1: nothing run at all
    ds["status"] = (ds["status"].dims, status)
    gone = (status == "missing")[..., None]
    ds["step"] = ds["step"].where(~gone, -1)
    for var in ("train_loss", "valid_metric", "test_metric", "time"):
        if var in ds:
            ds[var] = ds[var].where(~gone)
    path = tmp_path / "partial.nc"
    write_archive(ds, path)
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", str(path), "--out", str(out), "--n-boot", "50"])
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    assert md.count("is an incomplete study") == 1
    assert "momentum on w0 (3)" in md
    # The empty workload is named once and left out; the others keep every section.
    assert "w1 have no usable trial" in md
    assert "_Not available" not in md
