"""Analysis speed: our vectorised budget curve and inclusion test against straightforward
per-draw loops.

Dependency rule: numpy, optcmp_data and optcmp_analysis (a benchmark, not a unit test; run
it directly: `python benchmarks/analysis_speed.py [--loop-cells N]`).

Data: a synthetic archive of 8 workloads x 6 optimizers x 100 trials (10% diverged), the
budgets k = 1, 2, 4, ..., 64, 100 and B = 10,000 bootstrap draws per cell and budget.

- ours: `budget_curve` end to end (per-trial scores, bootstrap, both closed forms, exact
  percentiles, summaries) plus `inclusion_consistency` under the paper's rule (final-valid)
  at its default budget k = N / 4 = 25: the expected best-of-k estimator (given a result)
  of every optimizer in each of the 8 inclusion pairs x 8 workloads, its jackknife standard
  error,
  the bootstrap-t tests (1999 resamples; violated and non-inferior), the intervals and
  both Holm corrections; median of three runs of the two together.
- loop: the textbook procedures on the same per-trial scores. Budget: for every cell,
  budget and draw, `rng.integers` k trial indices, take the usable one with the best score
  (lowest index on ties), record its test value; then mean, median and 5-95% band per cell
  and budget. Inclusion: for every pair and workload, each optimizer's expected best-of-k
  from B draws of k trials without replacement (`rng.choice`; draws without a usable trial
  left out), and a bootstrap-t p-value
  from 1999 resamples, each resample's U-statistics and leave-one-out jackknife variances
  recomputed by loops over the trials (no interval or non-inferiority test: the loop does
  less than ours). Both are timed on the first `--loop-cells` cells
  (pair cells for the inclusion loop) and scaled linearly to all cells (the work per cell
  is the same), which the output says.

Both results are printed side by side for one cell as a check that they estimate the same
thing. The last line is `RESULT speedup=<x> seconds=<s>` for the two analyses together;
targets: >= 50x, < 2 s.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from optcmp_analysis import (
    budget_curve,
    default_budget,
    default_budgets,
    inclusion_consistency,
    trial_scores,
)
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


N_RESAMPLES = 1999


def _best_of(score: np.ndarray, usable: np.ndarray, test: np.ndarray, idx: np.ndarray) -> float:
    """Test value of the usable trial with the best score among `idx` (the mean of the
    tied ones on ties); NaN if none is usable."""
    best_score, tied = np.inf, []
    for i in idx:
        if usable[i]:
            if score[i] < best_score:
                best_score, tied = float(score[i]), [float(test[i])]
            elif score[i] == best_score:
                tied.append(float(test[i]))
    return sum(tied) / len(tied) if tied else float("nan")


def _u_statistic(trials: list[tuple[float, bool]], k: int) -> float:
    """The without-replacement best-of-k estimate given a result of (value, usable) trials
    sorted best first: the U-statistic of value x usable over that of usable, by the
    textbook weights C(n - j - 1, k - 1) / C(n, k), one term at a time (NaN: no usable)."""
    n = len(trials)
    w = [math.comb(n - j - 1, k - 1) / math.comb(n, k) for j in range(n)]
    num = sum(wj * v for wj, (v, ok) in zip(w, trials, strict=True) if ok)
    den = sum(wj for wj, (_, ok) in zip(w, trials, strict=True) if ok)
    return num / den if den > 0 else float("nan")


def _jackknife(trials: list[tuple[float, bool]], k: int) -> float:
    """Leave-one-out jackknife variance of `_u_statistic`, recomputing it N times."""
    n = len(trials)
    loo = [_u_statistic(trials[:i] + trials[i + 1 :], k) for i in range(n)]
    mean = sum(loo) / n
    return (n - 1) / n * sum((x - mean) ** 2 for x in loo)


def _sorted_trials(
    score: np.ndarray, usable: np.ndarray, test: np.ndarray
) -> list[tuple[float, bool]]:
    keyed = sorted(
        (float(score[i]) if usable[i] else math.inf, float(test[i]) if usable[i] else 0.0)
        for i in range(len(score))
    )
    return [(v, math.isfinite(sc)) for sc, v in keyed]


def loop_inclusion(
    pairs: list[tuple[int, int]],
    score: np.ndarray,
    usable: np.ndarray,
    test: np.ndarray,
    k: int,
    seed: int,
) -> np.ndarray:
    """Per pair cell (general, special rows): [E_k general, E_k special, p-value]. E_k: the
    mean over N_BOOT random k-trial studies that have a usable trial; p-value: a bootstrap-t
    test with N_RESAMPLES resamples of each optimizer's trials, each resample's estimates
    and jackknife variances recomputed by the textbook loops (resamples without a variance
    estimate left out)."""
    rng = np.random.default_rng(seed)
    out = np.full((len(pairs), 3), np.nan)
    n = score.shape[1]
    for c, (g, s) in enumerate(pairs):
        estimates = []
        for row in (g, s):
            values = []
            for _ in range(N_BOOT):
                v = _best_of(score[row], usable[row], test[row], rng.choice(n, k, replace=False))
                if not np.isnan(v):
                    values.append(v)
            estimates.append(float(np.mean(values)))
        tg = _sorted_trials(score[g], usable[g], test[g])
        ts = _sorted_trials(score[s], usable[s], test[s])
        diff = _u_statistic(tg, k) - _u_statistic(ts, k)
        t_obs = diff / math.sqrt(_jackknife(tg, k) + _jackknife(ts, k))
        r = [((n - j) / n) ** k - ((n - j - 1) / n) ** k for j in range(n)]
        theta = sum(rj * v for rj, (v, ok) in zip(r, tg, strict=True) if ok) / sum(
            rj for rj, (_, ok) in zip(r, tg, strict=True) if ok
        ) - sum(rj * v for rj, (v, ok) in zip(r, ts, strict=True) if ok) / sum(
            rj for rj, (_, ok) in zip(r, ts, strict=True) if ok
        )
        count = drawn = 0
        for _ in range(N_RESAMPLES):
            ag = [tg[int(i)] for i in np.sort(rng.integers(0, n, size=n))]
            as_ = [ts[int(i)] for i in np.sort(rng.integers(0, n, size=n))]
            d = _u_statistic(ag, k) - _u_statistic(as_, k)
            se = math.sqrt(_jackknife(ag, k) + _jackknife(as_, k))
            if se > 0:  # NaN (too few usable trials) and 0 give no statistic
                drawn += 1
                count += (d - theta) / se >= t_obs
        out[c] = [estimates[0], estimates[1], (1 + count) / (1 + drawn)]
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

    times, times_budget, times_incl = [], [], []
    curve = None
    incl = None
    for seed in range(3):
        start = time.perf_counter()
        curve = budget_curve(ds, budgets=budgets, n_boot=N_BOOT, rng=np.random.default_rng(seed))
        middle = time.perf_counter()
        incl = inclusion_consistency(ds, rng=np.random.default_rng(seed), rules=["final-valid"])
        end = time.perf_counter()
        times.append(end - start)
        times_budget.append(middle - start)
        times_incl.append(end - middle)
    assert curve is not None
    assert incl is not None
    ours = statistics.median(times)
    n_pair_cells = incl.n_tests
    print(
        f"ours: budget_curve + inclusion_consistency, all {n_cells} cells and "
        f"{n_pair_cells} pair cells: {ours:.3f} s (median of 3: "
        + ", ".join(f"{t:.3f}" for t in times)
        + f"; budget {statistics.median(times_budget):.3f} s, inclusion "
        f"{statistics.median(times_incl):.3f} s)"
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
    loop_budget = loop_part * n_cells / m
    print(
        f"loop: budget, per-draw Python loop timed on {m} of {n_cells} cells: {loop_part:.2f} "
        f"s, scaled linearly to all cells: {loop_budget:.1f} s (estimated, not run in full)"
    )
    names = [str(o) for o in ds["optimizer"].values]
    d = incl.data.sel(rule="final-valid")
    n_o = len(names)
    pair_rows = [
        (w * n_o + names.index(str(g)), w * n_o + names.index(str(sp)))
        for w in range(ds.sizes["workload"])
        for sp, g in zip(d["special"].values, d["general"].values, strict=True)
    ]
    mp = max(1, min(args.loop_cells, len(pair_rows)))
    start = time.perf_counter()
    k = default_budget(n, n)
    loop_inc = loop_inclusion(pair_rows[:mp], score, usable, test, k=k, seed=2)
    loop_part = time.perf_counter() - start
    loop_incl = loop_part * len(pair_rows) / mp
    print(
        f"loop: inclusion, per-draw and per-split Python loops timed on {mp} of "
        f"{len(pair_rows)} pair cells: {loop_part:.2f} s, scaled linearly to all: "
        f"{loop_incl:.1f} s (estimated, not run in full)"
    )
    loop_all = loop_budget + loop_incl

    cell = curve.data.isel(workload=0, optimizer=0).sel(target="test")
    print("check, cell 0 (test metric):  k   mean(ours) mean(loop) | median(ours) median(loop)")
    for k_i, k in enumerate(budgets):
        print(
            f"  {k:>4} {float(cell['mean'].values[k_i]):10.5f} {loop[0, k_i, 0]:10.5f} | "
            f"{float(cell['median'].values[k_i]):10.5f} {loop[0, k_i, 1]:10.5f}"
        )
    first = d.isel(workload=0, pair=0)
    print(
        "check, pair cell 0 (oriented test metric): E_k general, E_k special, p-value\n"
        f"  ours {float(first['general_expected']):.5f} {float(first['special_expected']):.5f} "
        f"{float(first['p_value']):.4f} (k = {int(first['k'])}, bootstrap-t)\n"
        f"  loop {loop_inc[0, 0]:.5f} {loop_inc[0, 1]:.5f} {loop_inc[0, 2]:.4f} "
        f"({N_RESAMPLES} resamples, another stream)"
    )
    speedup = loop_all / ours
    print(f"speedup {speedup:.0f}x (target >= 50x); ours {ours:.3f} s (target < 2 s)")
    print(f"RESULT speedup={speedup:.1f} seconds={ours:.3f}")


if __name__ == "__main__":
    main()
