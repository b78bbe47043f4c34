"""A very wide archive: `optcmp info` and `optcmp analyze best` on 100,000 hyperparameters
against the same commands on a narrow archive of the same trials.

Dependency rule: numpy, xarray, optcmp_data and the CLI (a benchmark, not a unit test; run
it directly: `python benchmarks/wide_archive.py [--hparams N]`).

Data: one workload, two optimizers, four trials each; the wide archive gives every trial
`--hparams` searched hyperparameters (default 100,000, about 22 MB), the narrow one the
synthetic archive's own few. Each command runs in a fresh interpreter (`python -m
optcmp_cli`, as a user would), median of three runs; the narrow archive's time is the
floor a command cannot go below on this machine (interpreter start and imports), so the
ratio says what the width costs even on a loaded machine.

The last line is `RESULT info=<s> best=<s> info_ratio=<x> best_ratio=<x>`; target: info
and best each < 5 s on an idle machine (issue 20 measured `info` > 200 s and `analyze best`
49 s before the tables were summarised).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive


def wide_archive(n_hparams: int) -> xr.Dataset:
    ds = synthetic_archive(workloads=1, optimizers=("sgd", "adam"), n_trials=4, n_evals=3)
    rng = np.random.default_rng(0)
    out = ds.drop_vars([v for v in ds.data_vars if "hparam" in ds[v].dims]).drop_dims("hparam")
    out = out.assign_coords(hparam=[f"h{i:06d}" for i in range(n_hparams)])
    woth = ("workload", "optimizer", "trial", "hparam")
    shape = (*(ds.sizes[d] for d in woth[:3]), n_hparams)
    out["hparams"] = (woth, rng.uniform(0.1, 0.9, shape))
    woh = ("workload", "optimizer", "hparam")
    space = (*shape[:2], n_hparams)
    out["space_low"] = (woh, np.zeros(space))
    out["space_high"] = (woh, np.ones(space))
    out["space_scale"] = (woh, np.full(space, "linear"))
    return out


def _seconds(args: list[str]) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "optcmp_cli", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "100"},
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", type=int, default=100_000)
    n = parser.parse_args().hparams
    with tempfile.TemporaryDirectory() as tmp:
        wide, narrow = Path(tmp) / "wide.nc", Path(tmp) / "narrow.nc"
        write_archive(wide_archive(n), wide)
        write_archive(
            synthetic_archive(workloads=1, optimizers=("sgd", "adam"), n_trials=4, n_evals=3),
            narrow,
        )
        print(f"wide archive: {n} hyperparameters, {wide.stat().st_size / 1e6:.1f} MB")
        result = {}
        for name, command in (("info", ["info"]), ("best", ["analyze", "best"])):
            t_wide = _seconds([*command, str(wide)])
            t_narrow = _seconds([*command, str(narrow)])
            result[name] = (t_wide, t_wide / t_narrow)
            print(
                f"{' '.join(command):13s} wide {t_wide:6.2f} s  narrow {t_narrow:6.2f} s  "
                f"ratio {t_wide / t_narrow:5.2f}"
            )
    print(
        f"RESULT info={result['info'][0]:.2f} best={result['best'][0]:.2f} "
        f"info_ratio={result['info'][1]:.2f} best_ratio={result['best'][1]:.2f}"
    )


if __name__ == "__main__":
    main()
