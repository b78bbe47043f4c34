"""Import commands come from the importers' registry: an importer registered here (its
reader, help and options declared in this file only) gets `optcmp import NAME` with its
options, defaults, errors and --help, and nothing else in the tree changes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optcmp_cli import app
from optcmp_data import (
    ArchiveBuilder,
    ConfigError,
    Curves,
    DataFormatError,
    SpaceDim,
    SpaceRecord,
    Status,
    TrialRecord,
    WorkloadInfo,
    open_archive,
)
from optcmp_data.importers import (
    IMPORTERS,
    Importer,
    ImportOption,
    ImportResult,
    OptionKind,
    register_importer,
)

runner = CliRunner()
_ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
CALLS: list[dict[str, object]] = []


def read_sweep(
    src: Path,
    /,
    *,
    direction: str = "min",
    workload: str | None = None,
    scale: float = 1.0,
    limit: int | None = None,
    notes: dict[str, str],
    skip_bad: bool = False,
    command: str | None = None,
) -> ImportResult:
    """A toy format: one line per trial, `optimizer learning_rate loss`."""
    CALLS.append({"src": src, "direction": direction, "workload": workload, "notes": notes})
    CALLS[-1].update(scale=scale, limit=limit)
    lines = [line.split() for line in src.read_text().splitlines() if line.strip()][:limit]
    for number, fields in enumerate(lines, start=1):
        if len(fields) != 3:
            raise DataFormatError(f"{src}: line {number} has {len(fields)} fields, expected 3")
    wl = workload or src.stem
    builder = ArchiveBuilder(source=f"sweep file {src}", command=command)
    builder.add_workload(WorkloadInfo(wl, "loss", direction, step_budget=1))
    for opt in sorted({f[0] for f in lines}):
        builder.add_optimizer(opt, "")
        rates = [float(f[1]) for f in lines if f[0] == opt]
        low, high = min(rates), max(rates)
        space = SpaceDim("learning_rate", low, high, "log" if low < high else "fixed")
        builder.add_space(wl, opt, SpaceRecord("observed", (space,)))
    counters: dict[str, int] = {}
    for opt, rate, loss in lines:
        trial = counters.get(opt, 0)
        counters[opt] = trial + 1
        curves = Curves(step=np.array([1]), valid_metric=np.array([scale * float(loss)]))
        record = TrialRecord(
            wl, opt, trial, Status.COMPLETED, {"learning_rate": float(rate)}, curves
        )
        builder.add_trial(record)
    for name, text in sorted(notes.items()):
        builder.add_caveat(f"{name}: {text}")
    return ImportResult(dataset=builder.build(), warnings=(), files_read=1)


SWEEP = Importer(
    "sweep",
    read_sweep,
    "toy sweep files",
    help="Import a sweep file: one line per trial.\n\n"
    "Example: optcmp import sweep s.txt --out s.nc",
    options=(
        ImportOption(
            "src", OptionKind.PATH, "Sweep file.", required=True, argument=True, positional=True
        ),
        ImportOption(
            "direction",
            OptionKind.CHOICE,
            "Which way the loss is better.",
            default="min",
            choices=("min", "max"),
        ),
        ImportOption("workload", OptionKind.TEXT, "Workload label (default: the file's stem)."),
        ImportOption("scale", OptionKind.FLOAT, "Factor applied to the losses.", default=1.0),
        ImportOption("limit", OptionKind.INT, "Lines to read (default: all)."),
        ImportOption("notes", OptionKind.PAIRS, "NAME=TEXT caveats to record; repeatable."),
    ),
)


@pytest.fixture
def sweep() -> Iterator[Importer]:
    CALLS.clear()
    register_importer(SWEEP)
    try:
        yield SWEEP
    finally:
        del IMPORTERS[SWEEP.name]


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=_ENV)
    return result.exit_code, result.stdout, result.stderr


def _sweep_file(tmp_path: Path) -> Path:
    src = tmp_path / "lr-sweep.txt"
    src.write_text("adam 0.001 0.5\nadam 0.01 0.4\nsgd 0.1 0.7\n")
    return src


def test_a_registered_importer_gets_its_command(sweep: Importer, tmp_path: Path) -> None:
    src, out = _sweep_file(tmp_path), tmp_path / "s.nc"
    code, stdout, stderr = _run("import", "sweep", str(src), "--out", str(out))
    assert code == 0, stderr
    assert f"wrote {out}: 1 workloads, 2 optimizers, 1 files read" in stdout
    called = {"src": src, "direction": "min", "workload": None, "notes": {}, "scale": 1.0}
    assert [{**called, "limit": None}] == CALLS
    ds = open_archive(out)
    assert list(ds["workload"].values) == ["lr-sweep"]
    # The command line as run (CliRunner leaves the test runner's own argv in place).
    assert ds.attrs["command"].split()[0] == "optcmp"

    out2 = tmp_path / "s2.nc"
    code, stdout, stderr = _run(
        "import", "sweep", str(src), "--out", str(out2), "--direction", "max",
        "--workload", "w", "--notes", "origin=lab", "--notes", "by = me", "--json",
        "--scale", "2", "--limit", "2",
    )  # fmt: skip
    assert code == 0, stderr
    assert CALLS[-1] == {
        "src": src,
        "direction": "max",
        "workload": "w",
        "notes": {"origin": "lab", "by": "me"},
        "scale": 2.0,
        "limit": 2,
    }
    summary = json.loads(stdout)["import"]
    assert summary["workloads"] == ["w"]
    assert "origin: lab" in summary["caveats"]
    ds2 = open_archive(out2)
    assert ds2["metric_direction"].values.tolist() == ["max"]
    assert list(ds2["optimizer"].values) == ["adam"]  # --limit 2: the two adam lines
    assert float(ds2["valid_metric"].sel(optimizer="adam", trial=0).max()) == 1.0  # 2 x 0.5


def test_a_registered_importer_is_listed_with_its_help(sweep: Importer) -> None:
    code, stdout, _ = _run("import", "--help")
    assert code == 0
    assert "sweep     Import a sweep file: one line per trial." in stdout
    code, stdout, _ = _run("import", "sweep", "--help")
    assert code == 0
    for text in (
        "Usage: optcmp import sweep [OPTIONS] {src}",
        "src <path>  Sweep file.  [required]",
        "--out <path>",
        "--direction <min|max>",
        "[default: min]",
        "--workload <str>",
        "--scale <float>",
        "[default: 1.0]",
        "--limit <int>",
        "--notes <list[str]>",
        "--skip-bad",
        "--json",
        "Example: optcmp import sweep s.txt --out s.nc",
    ):
        assert text in stdout, text
    assert "--infer" not in stdout  # no draft declared


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--direction", "up"], "'up' is not one of 'min', 'max'"),
        (["--notes", "nothing"], "--notes 'nothing': expected NAME=KEY"),
        (["--scale", "inf"], "--scale inf: must be a finite number"),
        (["--limit", "2.5"], "Invalid value for '--limit'"),
        ([], "Missing option '--out'"),
    ],
)
def test_option_errors_exit_2_and_call_nothing(
    sweep: Importer, tmp_path: Path, args: list[str], needle: str
) -> None:
    src = _sweep_file(tmp_path)
    out = [] if not args else ["--out", str(tmp_path / "o.nc")]
    code, _, stderr = _run("import", "sweep", str(src), *out, *args)
    assert code == 2
    assert needle in stderr
    if needle.startswith("--"):  # our own errors (typer's usage errors come with Usage:)
        assert stderr.count("\n") == 1
    assert not (tmp_path / "o.nc").exists()
    assert CALLS == []


def test_reader_errors_are_one_line_and_write_nothing(sweep: Importer, tmp_path: Path) -> None:
    src = tmp_path / "bad.txt"
    src.write_text("adam 0.1 0.5\nsgd 0.1\n")
    code, stdout, stderr = _run("import", "sweep", str(src), "--out", str(tmp_path / "o.nc"))
    assert code == 2
    assert stderr.strip() == f"error: {src}: line 2 has 2 fields, expected 3"
    assert stdout == ""
    assert not (tmp_path / "o.nc").exists()


def test_unregistered_importer_leaves_no_command(tmp_path: Path) -> None:
    assert "sweep" not in IMPORTERS
    code, _, stderr = _run("import", "sweep", str(_sweep_file(tmp_path)), "--out", "x.nc")
    assert code == 2
    assert "No such command 'sweep'" in stderr


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: register_importer(SWEEP), "already registered"),
        (lambda: Importer("Bad-Name", read_sweep, "x"), "expected lower-case"),
        (lambda: ImportOption("out", OptionKind.PATH, "x"), "reserved"),
        (lambda: ImportOption("n", OptionKind.TEXT, "x", required=True, default="a"), "no default"),
        (lambda: ImportOption("n", OptionKind.CHOICE, "x", default="c", choices=("a",)), "not one"),
        (lambda: ImportOption("n", OptionKind.TEXT, "x", choices=("a",)), "CHOICE only"),
        (lambda: ImportOption("n", OptionKind.PATH, "x", argument=True), "must be required"),
        (lambda: ImportOption("n", OptionKind.FLAG, "x", default=True), "off unless given"),
        (lambda: ImportOption("n", OptionKind.INT, "x", default=1.5), "not an integer"),
        (lambda: ImportOption("n", OptionKind.FLOAT, "x", default="1"), "not a number"),
        (
            lambda: Importer(
                "twice", read_sweep, "x", options=(SWEEP.options[1], SWEEP.options[1])
            ),
            "declared twice",
        ),
    ],
)
def test_declarations_are_checked(sweep: Importer, make: object, needle: str) -> None:
    assert callable(make)
    with pytest.raises(ConfigError, match=needle):
        make()


def test_building_the_commands_imports_no_importer(tmp_path: Path) -> None:
    """`optcmp import NAME --help` reads the registry only: no importer module (and with
    them numpy, pandas, xarray, optuna, mlflow) is imported to build a command."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from optcmp_cli import app\n"
        "from optcmp_data.importers import IMPORTERS\n"
        "for name in IMPORTERS:\n"
        "    assert CliRunner().invoke(app, ['import', name, '--help']).exit_code == 0\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('optcmp_data.importers.')\n"
        "                or m.split('.')[0] in ('optuna', 'mlflow', 'numpy', 'pandas', 'xarray'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "['optcmp_data.importers._registry']"
