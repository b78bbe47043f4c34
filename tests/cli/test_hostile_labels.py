"""Labels and attributes are data: rich markup, mathtext, HTML, Markdown links/images and
control characters in an archive go through info, analyze, score, plot and report
without a crash, shown literally, with nothing active in the output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from optcmp_cli._analyses import figures
from optcmp_cli.app import app
from optcmp_cli.render.escape import html, md, term, visible
from optcmp_data import open_archive, write_archive
from optcmp_data.testing import synthetic_archive

runner = CliRunner()
WORKLOADS = ("bad[/bold]close", "$x^$ <script>alert(1)</script>")
OPTIMIZERS = {
    "[red]baseline": "sgd",
    "baseline": "momentum",
    "![img](http://evil.example/x.png)": "adam",
    "<img src=x onerror=alert(1)>": "nesterov",
    "esc\x1b[31mred\u202e\x07": "rmsprop",
}
CAVEAT = "[link](javascript:alert(1)) <iframe src=x></iframe> $\\alpha$ [/red] ```"
COMMAND = "evil `cmd` | <b>x</b>"
ENV = {"COLUMNS": "400", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = synthetic_archive(
        workloads=WORKLOADS,
        optimizers=tuple(OPTIMIZERS),
        families=OPTIMIZERS,
        n_trials=6,
        n_evals=5,
        seed=3,
    )
    ds.attrs["caveats"] = CAVEAT
    ds.attrs["command"] = COMMAND
    path = tmp_path_factory.mktemp("hostile") / "hostile.nc"
    write_archive(ds, path)
    assert set(open_archive(path)["optimizer"].values) == set(OPTIMIZERS)
    return path


def _plain(output: str) -> str:
    """Terminal output with table borders and line breaks removed (labels may wrap)."""
    return re.sub(r"[\s│┃|]+", "", output)


def _shown_literally(output: str) -> None:
    assert "\x1b" not in output, "a raw escape character reached the terminal"
    assert "\u202e" not in output
    flat = _plain(output)
    for label in ("bad[/bold]close", "[red]baseline", "$x^$<script>alert(1)</script>"):
        assert label in flat, label
    assert "esc\\x1b[31mred\\u202e\\x07" in flat


@pytest.mark.parametrize(
    "args",
    [
        ["info"],
        ["analyze", "best"],
        ["analyze", "budget", "--n-boot", "50", "--budget", "2"],
        ["analyze", "rank", "--n-boot", "50", "--budget", "2"],
        ["analyze", "inclusion", "--n-test-boot", "50", "--budget", "2"],
        ["analyze", "boundary"],
        ["analyze", "targets", "--n-test-boot", "50"],
        ["score"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_terminal_output_shows_labels_literally(archive: Path, args: list[str]) -> None:
    result = runner.invoke(app, [*args, str(archive)], env=ENV)
    assert result.exit_code == 0, result.output
    _shown_literally(result.stdout)


def test_info_shows_caveat_and_command_literally(archive: Path) -> None:
    result = runner.invoke(app, ["info", str(archive)], env=ENV)
    assert result.exit_code == 0, result.output
    assert CAVEAT in result.stdout
    assert COMMAND in result.stdout


# Every figure of one archive (not a hand list: a new analysis's figure is checked too).
@pytest.mark.parametrize("kind", [a.name for a in figures() if not a.takes_compare])
def test_figures_draw_labels_without_mathtext(archive: Path, tmp_path: Path, kind: str) -> None:
    out = tmp_path / f"{kind}.svg"
    result = runner.invoke(
        app, ["plot", kind, str(archive), "--out", str(out), "--n-boot", "50"], env=ENV
    )
    if result.exit_code == 2 and "--n-boot" in result.output:  # kinds without a bootstrap
        result = runner.invoke(app, ["plot", kind, str(archive), "--out", str(out)], env=ENV)
    assert result.exit_code == 0, result.output
    svg = out.read_text(encoding="utf-8")
    assert "<script" not in svg
    assert "onerror" not in svg.replace("onerror=alert(1)&gt;", "")


def test_report_markdown_renders_nothing_active(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(
        app, ["report", str(archive), "--out", str(out), "--n-boot", "50"], env=ENV
    )
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text(encoding="utf-8")
    rendered = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in rendered
    assert "<iframe" not in rendered
    assert "<b>" not in rendered
    assert "javascript:" not in re.findall(r'href="([^"]*)"', rendered).__repr__()
    assert all(src.startswith("figures/") for src in re.findall(r'src="([^"]*)"', rendered))
    assert not re.findall(r"<a ", rendered), "no label may become a link"
    assert "\x1b" not in text
    # Shown literally once rendered (entities decoded by the browser).
    assert "[red]baseline" in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered
    assert "$x^$ &lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "![img](http://evil.example/x.png)" in rendered


# --- the helpers themselves ----------------------------------------------------------------


@given(st.text())
def test_term_prints_any_text_literally(text: str) -> None:
    console = Console(width=10_000, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    table = Table()
    table.add_column("x")
    table.add_row(term(text))
    console.print(f"[bold]{term(text)}[/bold]")
    console.print(table)
    shown = console.export_text()
    assert visible(text).strip() in shown
    console.file.close()


@given(st.text())
def test_markdown_and_html_escapes_leave_no_active_syntax(text: str) -> None:
    rendered = MarkdownIt("commonmark").enable("table").render(f"x {md(text)} y")
    assert "<a " not in rendered
    assert "<img" not in rendered
    assert "<script" not in rendered
    assert "<" not in html(text)
    assert '"' not in html(text)


def test_visible_names_the_hidden_characters() -> None:
    assert visible("a\x1bb\u200bc\n") == "a\\x1bb\\u200bc\\x0a"
    assert visible("plain [text] $x$") == "plain [text] $x$"
