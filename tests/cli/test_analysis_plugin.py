"""Adding an analysis touches two files: its analysis module (options, run function,
result; `optcmp_analysis.register`) and its CLI module (help, table, figure, report
section; `optcmp_cli.analyses.register`). Done once here, from two files written to a
temporary folder, and run through `optcmp analyze`, `plot` and `report`.

A built-in analysis is the same two modules without their register calls, plus its
entry in the registry's one list (`ANALYSES` in analysis/optcmp_analysis/_registry.py):
its CLI module is found by its name (`optcmp_cli.analyses.<name>`). Done once here too:
the modules in a temporary folder (the CLI module on the path of optcmp_cli.analyses),
the entry added to `ANALYSES`, nothing else."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import optcmp_analysis._registry as analysis_registry
import optcmp_cli._analyses as cli_registry
import optcmp_cli.analyses
from optcmp_cli._analyze import analyze_app
from optcmp_cli.app import app

runner = CliRunner()

ANALYSIS_MODULE = '''
"""The range of the optimizers' tuned test values on each workload."""

from __future__ import annotations

from typing import Any

import attrs

from optcmp_analysis import Analysis, SelectionRule, meta, register, select_best


@attrs.frozen
class RangeOptions:
    rule: SelectionRule = attrs.field(
        default=SelectionRule.FINAL_VALID, metadata=meta("How the best trial is chosen.")
    )
    scale: float = attrs.field(default=1.0, metadata=meta("Multiply the range by this."))


@attrs.frozen
class TunedRange:
    records: tuple[dict[str, Any], ...]
    caveats: tuple[str, ...] = ()

    def to_json(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records]


def tuned_range(archive: Any, /, *, rule: SelectionRule, scale: float) -> TunedRange:
    selected = select_best(archive, rule=rule).to_json()
    out = []
    for w in sorted({r["workload"] for r in selected}):
        values = [r["test_value"] for r in selected if r["workload"] == w]
        values = [v for v in values if v is not None]
        spread = scale * (max(values) - min(values)) if values else None
        out.append({"workload": w, "range": spread, "n_optimizers": len(values)})
    return TunedRange(tuple(out))


register(
    Analysis(
        "tuned-range",
        "Range of the tuned results",
        "The range of the optimizers' tuned test values on each workload.",
        RangeOptions,
        "range_analysis:tuned_range",
        "range_analysis:TunedRange",
        randomised=False,
    )
)
'''

CLI_MODULE = '''
"""What the CLI shows of the tuned-range analysis."""

from __future__ import annotations

from typing import Any

import range_analysis  # noqa: F401  (registers the analysis)
from optcmp_cli.analyses import Analysis, register

HELP = """The range of the optimizers' tuned test values on each workload.

Example: optcmp analyze tuned-range runs/demo/study --json
"""


def print_table(result: Any, options: Any, archive: Any) -> None:
    for r in result.to_json():
        print(f"range {r['workload']}: {r['range']:.4f} over {r['n_optimizers']} optimizers")


def figure(result: Any, archive: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    records = result.to_json()
    ax.bar([r["workload"] for r in records], [r["range"] for r in records])
    ax.set_ylabel("range of tuned test values")
    return fig


def section(b: Any, result: Any, group: Any) -> None:
    b.draw("tuned-range", result, group, "range of the tuned results")
    b.lines += [f"- {r['workload']}: {r['range']:.4f}" for r in result.to_json()]
    b.lines.append("")
    b.add_records("tuned-range", result.to_json(), group.label)


register(
    Analysis("tuned-range", module_name="range_cli")
)
'''


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The two files of the new analysis, imported as a user's would be; every registry
    as it was afterwards."""
    (tmp_path / "range_analysis.py").write_text(textwrap.dedent(ANALYSIS_MODULE))
    (tmp_path / "range_cli.py").write_text(textwrap.dedent(CLI_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(analysis_registry, "_REGISTERED", [])
    monkeypatch.setattr(cli_registry, "_REGISTERED", [])
    # The built-in commands first, outside the patch: registered inside it, they would leave
    # with it, and `optcmp analyze best` would be gone for the tests that run after this one.
    import optcmp_cli._analyze_app  # noqa: F401

    monkeypatch.setattr(analyze_app, "registered_commands", list(analyze_app.registered_commands))

    __import__("range_cli")
    try:
        yield
    finally:
        for name in ("range_cli", "range_analysis"):
            sys.modules.pop(name, None)


def test_a_new_analysis_runs_in_analyze_plot_and_report(
    registered: None, archive_path: Path, tmp_path: Path
) -> None:
    found = runner.invoke(app, ["analyze", "tuned-range", str(archive_path), "--json"])
    assert found.exit_code == 0, found.output
    records = json.loads(found.stdout)["tuned-range"]
    assert [r["workload"] for r in records] == ["w0", "w1"]
    assert all(r["range"] > 0 and r["n_optimizers"] >= 2 for r in records)

    # Its options come from its options class: --scale doubles the range.
    doubled = runner.invoke(
        app, ["analyze", "tuned-range", str(archive_path), "--json", "--scale", "2"]
    )
    assert doubled.exit_code == 0, doubled.output
    again = json.loads(doubled.stdout)["tuned-range"]
    assert [r["range"] for r in again] == pytest.approx([2 * r["range"] for r in records])

    shown = runner.invoke(app, ["analyze", "tuned-range", str(archive_path)])
    assert shown.exit_code == 0, shown.output
    assert "range w0:" in shown.stdout
    helped = runner.invoke(app, ["analyze", "tuned-range", "--help"])
    assert "--scale" in helped.stdout
    assert "--rule" in helped.stdout
    assert "The range of the optimizers' tuned test values" in helped.stdout

    figure = tmp_path / "range.png"
    plotted = runner.invoke(app, ["plot", "tuned-range", str(archive_path), "--out", str(figure)])
    assert plotted.exit_code == 0, plotted.output
    assert figure.read_bytes().startswith(b"\x89PNG")

    out = tmp_path / "report"
    reported = runner.invoke(
        app, ["report", str(archive_path), "--out", str(out), "--n-boot", "50", "--json"]
    )
    assert reported.exit_code == 0, reported.output
    md = (out / "report.md").read_text()
    assert "## Range of the tuned results" in md
    assert "![range of the tuned results](figures/tuned-range.png)" in md
    assert (out / "figures" / "tuned-range.png").read_bytes().startswith(b"\x89PNG")
    results = json.loads((out / "results.json").read_text())
    assert results["tuned-range"] == records
    assert results["skipped"] == {}


def test_a_taken_name_is_refused(registered: None) -> None:
    from optcmp_data import ConfigError

    with pytest.raises(ConfigError, match="already registered"):
        cli_registry.register(cli_registry.Analysis("tuned-range"))


def _built_in(module_text: str) -> str:
    """A module of the plug-in above as a built-in one called "spread": no register call,
    no import of the analysis module (the registry's entry names it)."""
    text = textwrap.dedent(module_text).replace("tuned-range", "spread")
    text = text.replace("import range_analysis  # noqa: F401  (registers the analysis)\n", "")
    return text[: text.index("\nregister(")] + "\n"


ENTRY = """
from optcmp_analysis import Analysis

from range_analysis import RangeOptions

ENTRY = Analysis(
    "spread",
    "Range of the tuned results",
    "The range of the optimizers' tuned test values on each workload.",
    RangeOptions,
    "range_analysis:tuned_range",
    "range_analysis:TunedRange",
    randomised=False,
)
"""


@pytest.fixture
def built_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The analysis as a built-in one: its two modules (the CLI module `spread.py` in a
    folder on optcmp_cli.analyses' path), its entry appended to the registry's
    `ANALYSES` (here from a third module, standing for the line in _registry.py), and
    `optcmp analyze` built again as at start-up."""
    from optcmp_cli._analyze_app import _add_commands

    modules = tmp_path / "modules"
    cli = tmp_path / "cli"
    modules.mkdir()
    cli.mkdir()
    (modules / "range_analysis.py").write_text(_built_in(ANALYSIS_MODULE))
    (modules / "range_entry.py").write_text(textwrap.dedent(ENTRY))
    (cli / "spread.py").write_text(_built_in(CLI_MODULE))
    monkeypatch.syspath_prepend(str(modules))
    monkeypatch.setattr(optcmp_cli.analyses, "__path__", [*optcmp_cli.analyses.__path__, str(cli)])
    entry = __import__("range_entry").ENTRY
    monkeypatch.setattr(analysis_registry, "ANALYSES", (*analysis_registry.ANALYSES, entry))
    monkeypatch.setattr(analyze_app, "registered_commands", list(analyze_app.registered_commands))
    _add_commands()
    try:
        yield
    finally:
        for name in ("range_analysis", "range_entry", "optcmp_cli.analyses.spread"):
            sys.modules.pop(name, None)


def test_a_built_in_analysis_is_two_modules_and_its_registry_entry(
    built_in: None, archive_path: Path, tmp_path: Path
) -> None:
    found = runner.invoke(app, ["analyze", "spread", str(archive_path), "--json", "--scale", "2"])
    assert found.exit_code == 0, found.output
    assert [r["workload"] for r in json.loads(found.stdout)["spread"]] == ["w0", "w1"]
    assert "spread" in runner.invoke(app, ["analyze", "--help"]).stdout

    figure = tmp_path / "spread.png"
    plotted = runner.invoke(app, ["plot", "spread", str(archive_path), "--out", str(figure)])
    assert plotted.exit_code == 0, plotted.output

    out = tmp_path / "report"
    reported = runner.invoke(
        app, ["report", str(archive_path), "--out", str(out), "--n-boot", "50", "--json"]
    )
    assert reported.exit_code == 0, reported.output
    md = (out / "report.md").read_text()
    # After the built-in analyses of one archive and before their views (the curves).
    assert md.index("## Boundary check") < md.index("## Range of the tuned results")
    assert md.index("## Range of the tuned results") < md.index("## Learning curves")
    assert "spread" in json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("name", ["no-cli", "no.cli", "curves"])
def test_an_analysis_without_a_cli_module_is_not_shown(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered in the analysis layer alone, under any name: a dotted one is no module
    name (looking for `optcmp_cli.analyses.no.cli` must not import `...analyses.no`), and
    `optcmp_cli.analyses.curves` is the module of best's view, not its CLI module."""
    monkeypatch.setattr(analysis_registry, "_REGISTERED", [])
    analysis_registry.register(
        analysis_registry.Analysis(
            name,
            "No CLI",
            "An analysis of the analysis layer alone.",
            analysis_registry.BoundaryOptions,
            "optcmp_analysis._boundary:boundary_check",
            "optcmp_analysis._boundary:BoundaryCheck",
            randomised=False,
        )
    )
    names = [a.name for a in cli_registry.cli_analyses()]
    assert len(names) == len(set(names))
    assert [a.name for a in cli_registry.shown_analyses()] == [
        a.name for a in analysis_registry.ANALYSES
    ]


def test_compare_is_refused_naming_every_analysis_that_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--compare` on an analysis of one archive names the analyses of two archives: the
    built-in protocol comparison and one registered from outside (no hand-written name)."""
    import numpy as np
    import xarray as xr

    from optcmp_analysis import SelectionRule
    from optcmp_data import ConfigError

    monkeypatch.setattr(analysis_registry, "_REGISTERED", [])
    monkeypatch.setattr(cli_registry, "_REGISTERED", [])
    analysis_registry.register(
        analysis_registry.Analysis(
            "twice",
            "Two archives",
            "A second comparison of two archives.",
            analysis_registry.ProtocolOptions,
            "optcmp_analysis._protocol:protocol_sensitivity",
            "optcmp_analysis._protocol:ProtocolComparison",
            second_archive=True,
        )
    )
    # Its CLI module is protocol's (appended directly: no `optcmp analyze twice` needed).
    cli_registry._REGISTERED.append(
        cli_registry.Analysis("twice", module_name="optcmp_cli.analyses.protocol")
    )
    common = cli_registry.Common(
        rng=np.random.default_rng(0),
        rule=SelectionRule.FINAL_VALID,
        n_boot=10,
        compare=("other", xr.Dataset()),
    )
    with pytest.raises(ConfigError) as refused:
        cli_registry.analysis_named("budget").check(common)
    assert str(refused.value) == (
        "--compare applies to plot protocol and plot twice only, not to plot budget"
    )
