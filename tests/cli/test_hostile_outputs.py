"""Hostile cases about the files optcmp writes and reads (issue 20, items 1, 2, 5, 8, 9):
outputs replace only what optcmp wrote and never through a symlink out of the output
folder, and a failed report leaves the previous one whole; inputs are never modified,
also on errors; number options refuse inf and nan and oversized work in one line;
reading something that is not a regular file fails in one line; every file written
follows the umask."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import write_archive
from optcmp_data._io import write_shard
from optcmp_data.importers import export_table
from optcmp_data.testing import synthetic_archive
from tests.cli.helpers import one_line_error
from tests.data.archive_trees import write_algoperf, write_deepobs

runner = CliRunner()
N_BOOT = ["--n-boot", "20"]


def tree_hash(root: Path) -> str:
    """sha1 over every path under `root` (or the file itself), its type, mode and bytes."""
    digest = hashlib.sha1()
    paths = [root] if not root.is_dir() else sorted(root.rglob("*"))
    for path in paths:
        digest.update(os.fsencode(path.relative_to(root) if path != root else path.name))
        if path.is_symlink():
            digest.update(b"L" + os.fsencode(os.readlink(path)))
        elif path.is_file():
            digest.update(b"F%o" % (path.stat().st_mode & 0o7777) + path.read_bytes())
        else:
            digest.update(b"D")
    return digest.hexdigest()


def small(**kwargs: Any) -> xr.Dataset:
    options: dict[str, Any] = dict(
        workloads=2, optimizers=("sgd", "adam"), n_trials=4, n_evals=4, seed=3
    )
    options.update(kwargs)
    return synthetic_archive(**options)


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("archives")
    paths = {
        "good": root / "good.nc",
        "one-workload": root / "one.nc",
        "no usable trial": root / "bad.nc",
        "three workloads": root / "three.nc",
    }
    write_archive(small(), paths["good"])
    write_archive(small(workloads=1), paths["one-workload"])
    write_archive(small(diverged_fraction=1.0), paths["no usable trial"])
    write_archive(small(workloads=3), paths["three workloads"])
    return paths


@pytest.fixture(scope="module")
def first_report(archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first") / "report"
    result = runner.invoke(
        app, ["report", str(archives["good"]), "--out", str(out), "--format", "html", *N_BOOT]
    )
    assert result.exit_code == 0, result.output
    return out


# --- item 1: outputs ----------------------------------------------------------------------


def _rerun_bad(a: dict[str, Path], out: Path, tmp: Path) -> tuple[list[str], Path]:
    # A report that fails after the analyses began: the previous report stays whole.
    return ["report", str(a["no usable trial"]), "--out", str(out), *N_BOOT], out


def _symlinked_figures(a: dict[str, Path], out: Path, tmp: Path) -> tuple[list[str], Path]:
    photos = tmp / "photos"
    photos.mkdir()
    (photos / "holiday.png").write_bytes(b"\x89PNG\r\n\x1a\nholiday")
    fresh = tmp / "fresh"
    fresh.mkdir()
    (fresh / "figures").symlink_to(photos)
    return ["report", str(a["good"]), "--out", str(fresh), *N_BOOT], photos


def _foreign_report_md(a: dict[str, Path], out: Path, tmp: Path) -> tuple[list[str], Path]:
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes\n")
    return ["report", str(a["good"]), "--out", str(mine), *N_BOOT], mine


def _foreign_figure(a: dict[str, Path], out: Path, tmp: Path) -> tuple[list[str], Path]:
    mine = tmp / "mine"
    (mine / "figures").mkdir(parents=True)
    (mine / "figures" / "budget.png").write_bytes(b"\x89PNG\r\n\x1a\nmy own")
    return ["report", str(a["good"]), "--out", str(mine), *N_BOOT], mine


def _plot_over_notes(a: dict[str, Path], out: Path, tmp: Path) -> tuple[list[str], Path]:
    notes = tmp / "notes.png"
    notes.write_text("not an image\n")
    return ["plot", "budget", str(a["good"]), "--out", str(notes), *N_BOOT], notes


def _export_over_csv(a: dict[str, Path], out: Path, tmp: Path) -> tuple[list[str], Path]:
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "runs.csv").write_text("name,value\nmine,1\n")
    return ["export", str(a["good"]), "--out", str(mine / "runs.csv")], mine


OUTPUT_CASES: dict[str, tuple[Callable[..., tuple[list[str], Path]], tuple[str, ...]]] = {
    "failed report over a previous one": (_rerun_bad, ("no usable trial",)),
    "figures/ a symlink out of OUT": (_symlinked_figures, ("symbolic link", "outside")),
    "report.md optcmp did not write": (_foreign_report_md, ("not written by optcmp",)),
    "figures/budget.png optcmp did not write": (_foreign_figure, ("budget.png", "refusing")),
    "plot --out over a text file": (_plot_over_notes, ("not a PNG image", "refusing")),
    "export --out over a table optcmp did not export": (
        _export_over_csv,
        ("not an optcmp export", "refusing"),
    ),
}


@pytest.mark.parametrize("case", sorted(OUTPUT_CASES))
def test_outputs_replace_only_what_optcmp_wrote(
    case: str, archives: dict[str, Path], first_report: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    shutil.copytree(first_report, out, symlinks=True)
    make, fragments = OUTPUT_CASES[case]
    args, guarded = make(archives, out, tmp_path)
    before = tree_hash(guarded)
    one_line_error(runner.invoke(app, args), *fragments)
    assert tree_hash(guarded) == before
    assert not [p for p in guarded.parent.rglob(".optcmp-report-*")], "staging removed"
    if guarded == out:  # the previous report still shows every figure it names
        md = (out / "report.md").read_text()
        for name in json.loads((out / "results.json").read_text())["report"]["figures"]:
            assert f"]({name})" in md
            assert (out / name).is_file()


def test_a_new_report_deletes_only_its_predecessors_files(
    archives: dict[str, Path], first_report: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    shutil.copytree(first_report, out, symlinks=True)
    (out / "figures" / "notes.png").write_bytes(b"mine")
    (out / "notes.txt").write_text("mine")
    assert (out / "figures" / "boundary-w1.png").exists()
    result = runner.invoke(app, ["report", str(archives["one-workload"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "figures" / "boundary-w1.png").exists(), "the old report's figure"
    assert not (out / "report.html").exists(), "the old report's HTML (not asked for now)"
    assert (out / "figures" / "notes.png").read_bytes() == b"mine"
    assert (out / "notes.txt").read_text() == "mine"
    figures = json.loads((out / "results.json").read_text())["report"]["figures"]
    manifest = json.loads((out / ".optcmp-report.json").read_text())["files"]
    assert sorted(manifest) == sorted(["report.md", "results.json", *figures])
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        [*(Path(f).name for f in figures), "notes.png"]
    )


# --- item 2: inputs are read-only ---------------------------------------------------------


def _optuna_db(path: Path) -> str:
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{path}"
    study = optuna.create_study(study_name="toy", storage=storage)

    def objective(trial: Any) -> float:
        trial.suggest_categorical("optimizer", ["sgd", "adam"])
        return float(trial.suggest_float("learning_rate", 1e-3, 1.0, log=True))

    study.optimize(objective, n_trials=4)
    return storage


def _plain_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('mine')")
        conn.commit()


def _table(tmp: Path, suffix: str, *, bad: bool) -> tuple[list[str], Path]:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    folder = tmp / "table"
    folder.mkdir()
    table, _ = export_table(small(), folder / f"runs{suffix}")
    if bad:  # a mapping file that is not TOML: refused after the table is found
        (tmp / "map.toml").write_text("[[[")
        return ["import", "table", str(table), "--mapping", str(tmp / "map.toml")], folder
    return ["import", "table", str(table)], folder


def _deepobs(tmp: Path, *, bad: bool) -> tuple[list[str], Path]:
    root = tmp / "deepobs"
    write_deepobs(root)
    if bad:
        run = sorted(root.rglob("random_seed__*.json"))[0]
        run.write_text("{ not json")
    return ["import", "deepobs", str(root)], root


def _algoperf(tmp: Path, *, bad: bool) -> tuple[list[str], Path]:
    root = tmp / "algoperf"
    write_algoperf(root)
    if bad:
        trial = sorted(root.glob("logs/external_tuning/sub_a/study_0/*/trial_1"))[0]
        (trial / "hparams.json").write_text("[[[")
    return ["import", "algoperf", str(root)], root


def _optuna(tmp: Path, *, bad: bool) -> tuple[list[str], Path]:
    db = tmp / "hpo.db"
    if bad:  # the reproducer: an SQLite file of another program
        _plain_sqlite(db)
        storage = f"sqlite:///{db}"
    else:
        storage = _optuna_db(db)
    return ["import", "optuna", "--storage", storage, "--study", "toy"], db


IMPORTERS: dict[str, Callable[..., tuple[list[str], Path]]] = {
    "deepobs": _deepobs,
    "algoperf": _algoperf,
    "table csv": lambda t, bad: _table(t, ".csv", bad=bad),
    "table parquet": lambda t, bad: _table(t, ".parquet", bad=bad),
    "optuna": _optuna,
}


@pytest.mark.parametrize("bad", [False, True], ids=["imports", "fails"])
@pytest.mark.parametrize("importer", sorted(IMPORTERS))
def test_importers_never_modify_their_input(importer: str, bad: bool, tmp_path: Path) -> None:
    args, source = IMPORTERS[importer](tmp_path, bad=bad)
    before = tree_hash(source)
    out = tmp_path / "out.nc"
    result = runner.invoke(app, [*args, "--out", str(out)])
    if bad:
        one_line_error(result)
        assert not out.exists()
    else:
        assert result.exit_code == 0, result.output
    assert tree_hash(source) == before
    if importer == "optuna" and bad:
        with contextlib.closing(sqlite3.connect(source)) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        assert tables == ["notes"]


# --- item 5: number options ---------------------------------------------------------------


def _float_options() -> list[tuple[str, str]]:
    """(command path, option) of every option of a float type, from the command tree."""
    import importlib
    import typing

    import typer

    from optcmp_cli.app import COMMANDS

    found = []
    for name, (module, attr) in COMMANDS.items():
        target = getattr(importlib.import_module(f"optcmp_cli.{module}"), attr)
        if isinstance(target, typer.Typer):
            commands = [
                (f"{name} {c.name}", c.callback) for c in target.registered_commands if c.callback
            ]
        else:
            commands = [(name, target)]
        for path, fn in commands:
            hints = typing.get_type_hints(getattr(fn, "__wrapped__", fn), include_extras=True)
            for hint in hints.values():
                if "float" not in str(typing.get_args(hint)[:1]):
                    continue
                for meta in getattr(hint, "__metadata__", ()):
                    given = [getattr(meta, "default", None), *(getattr(meta, "param_decls", ()))]
                    decls = [d for d in given if isinstance(d, str) and d[:2] == "--"]
                    if decls:
                        found.append((path, decls[0]))
    return sorted(found)


FLOAT_OPTIONS = _float_options()


def _required(command: str, tmp: Path, archive: Path) -> list[str]:
    """The arguments a command needs to get as far as its options."""
    head = command.split()
    if head[0] in ("analyze", "report", "plot", "plan", "score", "info"):
        extra = ["budget"] if head[0] == "plot" else []
        out = ["--out", str(tmp / "o.png")] if head[0] in ("plot", "report") else []
        return [*head, *extra, str(archive), *out]
    if head[0] == "run":
        return ["run", str(tmp / "study.toml"), "--out", str(tmp / "runs")]
    if head[0] == "optimizers":
        return [*head, "sgd", "momentum"]
    return head


def test_every_float_option_is_found() -> None:
    # The list the next test walks is read from the commands; it holds the known ones.
    assert ("run", "--memory-limit") in FLOAT_OPTIONS
    assert ("analyze aggregate", "--confidence") in FLOAT_OPTIONS
    assert len(FLOAT_OPTIONS) >= 10


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize(("command", "option"), FLOAT_OPTIONS)
def test_number_options_refuse_inf_and_nan(
    command: str, option: str, value: str, archives: dict[str, Path], tmp_path: Path
) -> None:
    args = [*_required(command, tmp_path, archives["good"]), option, value]
    one_line_error(runner.invoke(app, args), f"{option} {value}", "finite")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        # With intervals (3 workloads, k = n/2): a bootstrap that cannot fit.
        (
            ["analyze", "aggregate", "--budget", "2", "--n-boot", "1000000000"],
            ("1000000000 draws", "--n-boot"),
        ),
        (["analyze", "targets", "--n-targets", "1000000000"], ("targets", "--n-targets")),
    ],
    ids=["aggregate --n-boot 1e9", "targets --n-targets 1e9"],
)
def test_size_options_go_through_the_memory_estimate(
    args: list[str], fragments: tuple[str, ...], archives: dict[str, Path]
) -> None:
    result = runner.invoke(app, [*args[:2], str(archives["three workloads"]), *args[2:]])
    one_line_error(result, "GiB", "limit", *fragments)


# --- item 8: not a regular file; very wide archives -----------------------------------------


@contextlib.contextmanager
def _no_hang(seconds: int) -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _special(kind: str, tmp: Path, name: str) -> Path:
    if kind == "device":
        return Path(os.devnull)
    path = tmp / name
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
        (path / "inside.txt").write_text("x")
    return path


READERS: dict[str, tuple[str, Callable[[Path, Path], list[str]]]] = {
    "info": ("x.nc", lambda p, t: ["info", str(p)]),
    "analyze best": ("x.nc", lambda p, t: ["analyze", "best", str(p)]),
    "report": ("x.nc", lambda p, t: ["report", str(p), "--out", str(t / "r")]),
    "import table": ("x.csv", lambda p, t: ["import", "table", str(p), "--out", str(t / "o.nc")]),
    "run (study file)": ("s.toml", lambda p, t: ["run", str(p), "--out", str(t / "runs")]),
}


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_reading_what_is_not_a_regular_file_is_one_line(
    reader: str, kind: str, tmp_path: Path
) -> None:
    name, make_args = READERS[reader]
    if reader.startswith("run"):
        # Without torch `optcmp run` stops first at its own one line (tests_notorch);
        # the study-file case runs in the session that has torch.
        pytest.importorskip("torch")
    if kind == "directory" and reader in ("info", "analyze best", "report"):
        kind = "directory of no shards"  # a directory is a study, holding no shards here
    path = _special("directory" if kind.startswith("directory") else kind, tmp_path, name)
    with _no_hang(60):
        result = runner.invoke(app, make_args(path, tmp_path))
    expected = {
        "fifo": "FIFO",
        "device": "device",
        "directory": "directory",
        "directory of no shards": "no shards",
    }
    one_line_error(result, str(path), expected[kind])


def wide_archive(n_hparams: int) -> xr.Dataset:
    """Two optimizers with `n_hparams` searched hyperparameters each."""
    ds = small(workloads=1)
    rng = np.random.default_rng(0)
    hp_vars = [v for v in ds.data_vars if "hparam" in ds[v].dims]
    out = ds.drop_vars(hp_vars).drop_dims("hparam")
    out = out.assign_coords(hparam=[f"h{i:06d}" for i in range(n_hparams)])
    woth = ("workload", "optimizer", "trial", "hparam")
    out["hparams"] = (
        woth,
        rng.uniform(0.1, 0.9, (*(ds.sizes[d] for d in woth[:3]), n_hparams)),
    )
    woh = ("workload", "optimizer", "hparam")
    shape = (ds.sizes["workload"], ds.sizes["optimizer"], n_hparams)
    out["space_low"] = (woh, np.zeros(shape))
    out["space_high"] = (woh, np.ones(shape))
    out["space_scale"] = (woh, np.full(shape, "linear"))
    return out


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        (["info"], "... and 3940 more rows (2000 hyperparameters in all)"),
        (["analyze", "best"], "... 1988 more (--json)"),
    ],
    ids=["info", "analyze best"],
)
def test_a_very_wide_archive_is_summarised(
    command: list[str], summary: str, tmp_path: Path
) -> None:
    path = tmp_path / "wide.nc"
    write_archive(wide_archive(2000), path)
    result = runner.invoke(app, [*command, str(path)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert summary in result.stdout
    assert result.stdout.count("h00") < 130
    full = runner.invoke(app, [*command, str(path), "--json"])
    assert full.exit_code == 0
    assert "h001999" in full.stdout


# --- item 9: file modes follow the umask ----------------------------------------------------


def _write_archive(tmp: Path) -> list[Path]:
    return [write_archive(small(workloads=1), tmp / "a.nc")]


def _write_shard(tmp: Path) -> list[Path]:
    return [write_shard(small(workloads=1), tmp / "study", "g0")]


def _export(tmp: Path) -> list[Path]:
    return list(export_table(small(workloads=1), tmp / "runs.csv"))


def _import(tmp: Path) -> list[Path]:
    table, _ = export_table(small(workloads=1), tmp / "runs.csv")
    result = runner.invoke(app, ["import", "table", str(table), "--out", str(tmp / "i.nc")])
    assert result.exit_code == 0, result.output
    return [tmp / "i.nc"]


def _plot(tmp: Path) -> list[Path]:
    write_archive(small(workloads=1), tmp / "a.nc")
    result = runner.invoke(app, ["plot", "rank", str(tmp / "a.nc"), "--out", str(tmp / "r.svg")])
    assert result.exit_code == 0, result.output
    return [tmp / "r.svg"]


def _report(tmp: Path) -> list[Path]:
    write_archive(small(workloads=1), tmp / "a.nc")
    out = tmp / "rep"
    result = runner.invoke(
        app, ["report", str(tmp / "a.nc"), "--out", str(out), "--format", "html", *N_BOOT]
    )
    assert result.exit_code == 0, result.output
    return [p for p in out.rglob("*") if p.is_file()]


def _study_record(tmp: Path) -> list[Path]:
    pytest.importorskip("torch")
    from optcmp.runner._study import _prepare
    from optcmp.study import StudySpec

    study = tmp / "study.toml"
    study.write_text(
        'name = "modes"\nworkloads = ["digits_mlp"]\noptimizers = ["sgd"]\ntrials = 2\n'
        'seed = 0\nspace = "choi2019"\n'
    )
    out = tmp / "runs"
    out.mkdir()
    _prepare(StudySpec.from_toml(study), out, 2, study)
    return [p for p in out.iterdir() if p.is_file() and not p.name.startswith(".optcmp.lock")]


WRITERS: dict[str, Callable[[Path], list[Path]]] = {
    "write_archive": _write_archive,
    "write_shard": _write_shard,
    "export csv + sidecar": _export,
    "import table": _import,
    "plot": _plot,
    "report": _report,
    "study record": _study_record,
}


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_written_files_follow_the_umask(writer: str, umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        written = WRITERS[writer](tmp_path)
    finally:
        os.umask(old)
    assert written
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_the_boundary_figure_of_a_very_wide_archive_stays_small() -> None:
    from optcmp_analysis import boundary_check
    from optcmp_cli._plots import _BOUNDARY_PANELS, boundary_figure

    check = boundary_check(wide_archive(2000))
    fig = boundary_figure(check)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 2 * _BOUNDARY_PANELS  # two optimizers, one row each
    assert any("more not drawn" in t.get_text() for t in fig.texts)
