"""Budget-curve speed: our vectorised bootstrap against a straightforward per-draw loop.

Dependency rule: numpy, optcmp_data and optcmp_analysis (a benchmark, not a unit test; run
it directly: `python benchmarks/analysis_speed.py [--loop-cells N]`).

Data: a synthetic archive of 8 workloads x 6 optimizers x 100 trials (10% diverged), the
budgets k = 1, 2, 4, ..., 64, 100 and B = 10,000 bootstrap draws per cell and budget.

- ours: `budget_curve` end to end (per-trial scores, bootstrap, both closed forms, exact
  percentiles, summaries), median of three runs.
- loop: the textbook procedure on the same per-trial scores: for every cell, budget and
  draw, `rng.integers` k trial indices, take the usable one with the best score (lowest
  index on ties), record its test value; then mean, median and 5-95% band per cell and
  budget. It is timed on the first `--loop-cells` cells and scaled linearly to all 48
  (the work per cell is the same), which the output says.

Both results are printed side by side for one cell as a check that they estimate the same
thing. The last line is `RESULT speedup=<x> seconds=<s>`; targets: >= 50x, < 2 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from optcmp_analysis import budget_curve, default_budgets, trial_scores
from optcmp_data.testing import synthetic_archive

N_BOOT = 10_000


def loop_budget_curve(
    score: np.ndarray, usable: np.ndarray, test: np.ndarray, budgets: tuple[int, ...], seed: int
) -> np.ndarray:
    """Per-draw Python loop for (cells, N) arrays -> (cells, K, 4): mean, median, lo, hi."""
    rng = np.random.default_rng(seed)
    cells, n = score.shape
    out = np.full((cells, len(budgets), 4), np.nan)
    for c in range(cells):
        for k_i, k in enumerate(budgets):
            picked = []
            for _ in range(N_BOOT):
                idx = rng.integers(0, n, size=k)
                best, best_score = -1, np.inf
                for i in idx:
                    if usable[c, i] and (
                        score[c, i] < best_score or (score[c, i] == best_score and i < best)
                    ):
                        best, best_score = int(i), float(score[c, i])
                if best >= 0:
                    picked.append(test[c, best])
            if picked:
                values = np.asarray(picked)
                out[c, k_i] = [
                    values.mean(),
                    np.quantile(values, 0.5, method="inverted_cdf"),
                    np.quantile(values, 0.05, method="inverted_cdf"),
                    np.quantile(values, 0.95, method="inverted_cdf"),
                ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--loop-cells", type=int, default=2, help="cells the per-draw loop is timed on"
    )
    args = parser.parse_args()

    ds = synthetic_archive(workloads=8, n_trials=100, n_evals=4, diverged_fraction=0.1, seed=0)
    budgets = default_budgets(100)
    n_cells = ds.sizes["workload"] * ds.sizes["optimizer"]
    print(
        f"archive: {ds.sizes['workload']} workloads x {ds.sizes['optimizer']} optimizers x "
        f"{ds.sizes['trial']} trials; budgets {budgets}; B = {N_BOOT}"
    )

    times = []
    curve = None
    for seed in range(3):
        start = time.perf_counter()
        curve = budget_curve(ds, budgets=budgets, n_boot=N_BOOT, rng=np.random.default_rng(seed))
        times.append(time.perf_counter() - start)
    assert curve is not None
    ours = statistics.median(times)
    print(
        f"ours: budget_curve, all {n_cells} cells: {ours:.3f} s (median of 3: "
        + ", ".join(f"{t:.3f}" for t in times)
        + ")"
    )

    scores = trial_scores(ds).data.transpose("workload", "optimizer", "trial", ...)
    n = ds.sizes["trial"]
    score = scores["score"].values.reshape(-1, n)
    usable = scores["usable"].values.reshape(-1, n)
    test = scores["test_value"].values.reshape(-1, n)
    m = max(1, min(args.loop_cells, n_cells))
    start = time.perf_counter()
    loop = loop_budget_curve(score[:m], usable[:m], test[:m], budgets, seed=1)
    loop_part = time.perf_counter() - start
    loop_all = loop_part * n_cells / m
    print(
        f"loop: per-draw Python loop timed on {m} of {n_cells} cells: {loop_part:.2f} s, "
        f"scaled linearly to all cells: {loop_all:.1f} s (estimated, not run in full)"
    )

    cell = curve.data.isel(workload=0, optimizer=0).sel(target="test")
    print("check, cell 0 (test metric):  k   mean(ours) mean(loop) | median(ours) median(loop)")
    for k_i, k in enumerate(budgets):
        print(
            f"  {k:>4} {float(cell['mean'].values[k_i]):10.5f} {loop[0, k_i, 0]:10.5f} | "
            f"{float(cell['median'].values[k_i]):10.5f} {loop[0, k_i, 1]:10.5f}"
        )
    speedup = loop_all / ours
    print(f"speedup {speedup:.0f}x (target >= 50x); ours {ours:.3f} s (target < 2 s)")
    print(f"RESULT speedup={speedup:.1f} seconds={ours:.3f}")


if __name__ == "__main__":
    main()
