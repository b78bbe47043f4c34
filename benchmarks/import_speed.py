"""Import and scoring speed on the published archives, against a plain reading loop.

Dependency rule: optcmp_data, optcmp_analysis and the standard library (a benchmark, not a
unit test; run it directly: `python benchmarks/import_speed.py [ARCHIVES_DIR]`, default
../shared/archives next to the repository).

(a) DeepOBS: `import_deepobs` over the whole deepobs-baselines tree (an archive in
    memory, validated) against the floor, a plain loop that `json.loads` the same run
    files. Targets: <= 3 s and <= 3x the floor.
(b) AlgoPerf: `import_algoperf` of the external_tuning logs against a plain loop reading
    the same eval_measurements.csv files (csv module) and hparams.json files. Targets:
    <= 10 s and <= 3x the floor.
(c) Scoring: `algoperf_score` on the imported external-tuning archive. Target < 1 s.
    Opening the written archive from disk is timed too (printed, not a target).
(d) Peak memory: the process's maximum resident set size. Target < 2 GB.
(e) Tables (`--table`, no published archives needed): a synthetic tidy table of
    `--table-trials` trials x `--table-evals` evaluations (default 10^5 x 100 = 10^7
    rows) written as CSV (and Parquet with pyarrow), then `import_table` against pandas
    (and pyarrow) reading the same file (rows per second), writing the archive, and
    `optcmp analyze budget` on it. Import and analysis each run in a child process whose
    peak RSS (VmHWM, its own) is compared with the archive's in-memory size (target <= 2x).

Floors and imports alternate in rounds; each figure is the median of its rounds. Writing
the archive (atomic netCDF4) is printed separately. The last line is
`RESULT deepobs_s=<a> algoperf_s=<b> score_s=<c> peak_mb=<d>`.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from optcmp_analysis import algoperf_score
from optcmp_data import open_archive, write_archive
from optcmp_data.importers import import_algoperf, import_deepobs

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "archives"


def _deepobs_floor(root: Path) -> Callable[[], object]:
    files = sorted(root.glob("*/*/*/random_seed__*.json"))

    def run() -> object:
        return [json.loads(p.read_text()) for p in files]

    return run


def _algoperf_floor(logs: Path) -> Callable[[], object]:
    csvs = sorted(logs.glob("*/study_*/*/trial_*/eval_measurements.csv"))
    hps = sorted(logs.glob("*/study_*/*/trial_*/hparams.json"))

    def run() -> object:
        tables = []
        for p in csvs:
            with p.open(newline="") as handle:
                tables.append(list(csv.reader(handle)))
        return tables, [json.loads(p.read_text()) for p in hps]

    return run


def _rounds(fns: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


_PEAK = """
def _peak():
    # VmHWM: this process's own peak RSS (reset by exec; ru_maxrss is not, so a child
    # of a large parent would report the parent's size)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""
_CHILD_ANALYZE = (
    _PEAK
    + """
import resource, runpy, sys
sys.argv = ["optcmp", *sys.argv[1:]]
try:
    runpy.run_module("optcmp_cli", run_name="__main__")
except SystemExit:
    pass
print(_peak(), file=sys.stderr)
"""
)
_CHILD_BASE = (
    _PEAK
    + """
import optcmp_analysis, optcmp_cli.app, optcmp_data.importers, pandas, xarray
print(_peak())
"""
)

_CHILD_IMPORT = (
    _PEAK
    + """
import sys, time
from optcmp_data import write_archive
from optcmp_data.importers import import_table
start = time.perf_counter()
ds = import_table(sys.argv[1]).dataset
took = time.perf_counter() - start
start = time.perf_counter()
write_archive(ds, sys.argv[2])
wrote = time.perf_counter() - start
print(took, wrote, ds.nbytes, _peak())
"""
)


def write_synthetic_table(path: Path, n_trials: int, n_evals: int) -> int:
    """A tidy table in optcmp's own shape (with its sidecar): 2 workloads x 5 optimizers,
    n_trials trials in all, n_evals evaluations each. Returns the number of rows."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    workloads, optimizers = ["wa", "wb"], ["adam", "momentum", "nadam", "rmsprop", "sgd"]
    per_cell = max(1, n_trials // (len(workloads) * len(optimizers)))
    n_runs = per_cell * len(workloads) * len(optimizers)
    run = np.repeat(np.arange(n_runs), n_evals)
    cell, trial = np.divmod(run, per_cell)
    w, o = np.divmod(cell, len(optimizers))
    ev = np.tile(np.arange(n_evals), n_runs)
    lr = 10 ** rng.uniform(-4, 0, n_runs)
    final = 0.1 + 0.05 * np.abs(rng.normal(size=n_runs))
    shape = np.exp(-4.0 * ev / max(n_evals - 1, 1))
    valid = final[run] + (0.9 - final[run]) * shape
    frame = pd.DataFrame(
        {
            "workload": pd.Categorical.from_codes(w, categories=workloads),
            "optimizer": pd.Categorical.from_codes(o, categories=optimizers),
            "trial": trial,
            "trial_seed": run,
            "status": pd.Categorical.from_codes(np.zeros(len(run), dtype=int), ["completed"]),
            "step": ev * 10,
            "time": ev * 0.5,
            "train_loss": valid * 2 + rng.normal(0, 0.01, len(run)),
            "train_metric": np.nan,
            "valid_loss": valid * 2,
            "valid_metric": valid,
            "test_loss": valid * 2 + 0.01,
            "test_metric": valid + rng.normal(0, 0.01, len(run)),
            "hp.learning_rate": lr[run],
        }
    )
    space = [{"name": "learning_rate", "low": 1e-4, "high": 1.0, "scale": "log"}]
    facts = {
        "optcmp_table": 1,
        "repeat_dims": [],
        "workloads": {
            name: {
                "metric_name": "error_rate",
                "direction": "min",
                "valid_target": None,
                "test_target": None,
                "step_budget": (n_evals - 1) * 10,
                "selection_split": "valid",
            }
            for name in workloads
        },
        "optimizers": {name: name for name in optimizers},
        "hparams": ["learning_rate"],
        "spaces": [
            {"workload": a, "optimizer": b, "name": "synthetic", "dims": space}
            for a in workloads
            for b in optimizers
        ],
        "taxonomy": {"inclusion": []},
        "extra": {},
        "attrs": {"schema_version": 1, "torch_version": "", "caveats": ""},
    }
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    path.with_name(path.name + ".meta.json").write_text(json.dumps(facts))
    return len(frame)


def _table_benchmark(n_trials: int, n_evals: int, n_boot: int) -> None:
    import os
    import subprocess

    import pandas as pd

    try:
        import pyarrow.csv as pa_csv
    except ImportError:
        pa_csv = None
    formats = ["csv"] + (["parquet"] if pa_csv is not None else [])
    base = float(
        subprocess.run(
            [sys.executable, "-c", _CHILD_BASE], capture_output=True, text=True, check=True
        ).stdout
    )
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            table = Path(tmp) / f"synthetic.{fmt}"
            start = time.perf_counter()
            rows = write_synthetic_table(table, n_trials, n_evals)
            made = time.perf_counter() - start
            mb = table.stat().st_size / 2**20
            floors: dict[str, float] = {}
            start = time.perf_counter()
            if fmt == "csv":
                pd.read_csv(table)
            else:
                pd.read_parquet(table)
            floors["pandas"] = time.perf_counter() - start
            if pa_csv is not None:
                import pyarrow.parquet as pq

                start = time.perf_counter()
                pa_csv.read_csv(table) if fmt == "csv" else pq.read_table(table)
                floors["pyarrow"] = time.perf_counter() - start
            archive = Path(tmp) / f"synthetic-{fmt}.nc"
            out = subprocess.run(
                [sys.executable, "-c", _CHILD_IMPORT, str(table), str(archive)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            took, wrote, nbytes, peak = (float(x) for x in out.stdout.split())
            import_rate = rows / took
            import_ratio = peak / nbytes
            floor_text = ", ".join(
                f"{name} read {secs:.2f} s ({rows / secs:,.0f} rows/s)"
                for name, secs in floors.items()
            )
            print(
                f"table {fmt} ({rows:,} rows, {mb:.0f} MB, written in {made:.1f} s): "
                f"import_table {took:.2f} s ({rows / took:,.0f} rows/s); {floor_text}; "
                f"write archive {wrote:.2f} s; archive in memory {nbytes / 2**20:.0f} MB, "
                f"import peak RSS {peak / 2**20:.0f} MB = {peak / nbytes:.2f}x "
                f"({(peak - base) / nbytes:.2f}x above the {base / 2**20:.0f} MB of the "
                "interpreter and its imports)"
            )
        start = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD_ANALYZE,
                "analyze",
                "budget",
                str(archive),
                "--n-boot",
                str(n_boot),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        took = time.perf_counter() - start
        peak = float(out.stderr.strip().splitlines()[-1])
        print(
            f"optcmp analyze budget (open + {n_boot} bootstrap draws): {took:.2f} s, peak RSS "
            f"{peak / 2**20:.0f} MB = {peak / nbytes:.2f}x the archive; interpreter with "
            f"its imports alone {base / 2**20:.0f} MB"
        )
        print(
            f"RESULT table_rows={rows} table_import_rows_per_s={import_rate:.0f} "
            f"table_import_peak_ratio={import_ratio:.2f} analyze_peak_ratio={peak / nbytes:.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--table", action="store_true", help="Run only (e), the table part.")
    parser.add_argument("--table-trials", type=int, default=100_000)
    parser.add_argument("--table-evals", type=int, default=100)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    if args.table:
        _table_benchmark(args.table_trials, args.table_evals, args.n_boot)
        return 0
    deepobs = args.archives / "deepobs-baselines"
    algoperf = args.archives / "algoperf-v05"
    if not deepobs.is_dir() or not algoperf.is_dir():
        print(f"published archives not found under {args.archives}", file=sys.stderr)
        return 1

    d = _rounds(
        {
            "floor": _deepobs_floor(deepobs),
            "import": lambda: import_deepobs(deepobs),
        },
        args.rounds,
    )
    print(
        f"deepobs-baselines: json loop {d['floor']:.3f} s, import {d['import']:.3f} s, "
        f"ratio {d['import'] / d['floor']:.2f} (targets <= 3 s, <= 3x)"
    )
    a = _rounds(
        {
            "floor": _algoperf_floor(algoperf / "logs" / "external_tuning"),
            "import": lambda: import_algoperf(algoperf, ruleset="external_tuning"),
        },
        args.rounds,
    )
    print(
        f"algoperf-v05 external_tuning: csv/json loop {a['floor']:.3f} s, import "
        f"{a['import']:.3f} s, ratio {a['import'] / a['floor']:.2f} (targets <= 10 s, <= 3x)"
    )
    archive = import_algoperf(algoperf, ruleset="external_tuning").dataset
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "external.nc"
        start = time.perf_counter()
        write_archive(archive, path)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        reopened = open_archive(path)
        open_s = time.perf_counter() - start
    s = _rounds({"score": lambda: algoperf_score(reopened)}, max(args.rounds, 5))
    print(
        f"scoring: algoperf_score {s['score']:.3f} s (target < 1 s); write archive "
        f"{write_s:.3f} s, open archive {open_s:.3f} s ({path.name}, not targets)"
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak memory (max RSS) {peak_mb:.0f} MB (target < 2048 MB)")
    print(
        f"RESULT deepobs_s={d['import']:.3f} algoperf_s={a['import']:.3f} "
        f"score_s={s['score']:.3f} peak_mb={peak_mb:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
