"""`optcmp demo`: a real (small) study of all six optimizers on teacher_mlp, then its report;
rerunning continues instead of repeating trials; mistakes are one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import PAPER_FAMILIES, open_archive

runner = CliRunner()


def test_help_has_example() -> None:
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "--protocol" in result.output


def test_demo_runs_both_protocols_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--trials", "2", "--protocol", "lr-only", "--workers", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "report:" in result.stdout
    for space in ("choi2019", "lr-only"):
        archive = open_archive(out / f"study-{space}")
        assert sorted(archive["optimizer"].values.tolist()) == sorted(PAPER_FAMILIES)
        assert archive.sizes["trial"] == 2
        assert set(archive["space_name"].values.ravel().tolist()) <= {
            f"{space}[linear_decay]",
            f"{space}[constant]",
        }
        assert (archive["status"].values != "missing").all()
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "Protocol comparison: choi2019 vs lr-only" in report
    results = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    assert results["report"]["compare"] == "lr-only"
    assert (out / "report" / "figures" / "budget.png").stat().st_size > 0
    assert report.startswith("# optcmp demo: six optimizers on teacher_mlp")
    assert report.index("## Findings") < report.index("## Protocol comparison")
    page = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page

    # Running again finds every trial stored: nothing is trained twice.
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "choi2019: 0 trials run" in again.stdout


def test_out_that_is_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a directory")
    result = runner.invoke(app, ["demo", "--out", str(target), "--trials", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "is not a directory" in lines[0]
