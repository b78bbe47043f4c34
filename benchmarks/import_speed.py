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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archives", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
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
