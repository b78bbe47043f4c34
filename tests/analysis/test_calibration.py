"""Calibration, coverage and power of the inclusion test, by simulation.

The simulation shares no code with the estimator: its own data model (below) draws each
trial's quality from a per-scenario distribution of the special and the general
optimizer, and validation and test values as that quality plus independent N(0, noise^2)
errors; a diverged trial has no values. The true expected best-of-k test value of each
optimizer comes from 200,000 fresh k-trial studies of the same model, and the general
optimizer's test values are shifted so that the true difference delta_k is exactly the one
the row asks for. Then `pair_tests` (the public kernel of `inclusion_consistency`) is run
on every simulated study of the row and the row records:

- false violated: share of studies with p_value < alpha where delta_k <= 0;
- false consistent: share with p_noninferior < alpha where delta_k >= margin (1.5 x);
- coverage: share whose one-sided bounds contain delta_k (lo < delta_k < hi, nominal
  1 - 2 alpha);
- power (shift model): share flagged violated at an effect, next to an oracle z-test that
  knows the estimator's true standard deviation (the SD of the estimate over the row's
  studies under no effect) and rejects when estimate / SD > z_(1 - alpha).

Scenarios (trial quality q; smaller is better): narrow vs wide spread in both orders, a
mixture (a good cluster of 30% in a mostly poor space), a skewed (log-normal) tail, and
10-30% diverged trials. Unadjusted tests, alpha 0.05, at the default budget
(`default_budget`: N / 4) and at smaller budgets. The fast subset runs in the default run;
the full table is `slow` (python -m pytest tests/analysis/test_calibration.py -m slow -s
prints it; docs/method.md quotes it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import norm

from optcmp_analysis._estimator import default_budget, pair_tests

ALPHA = 0.05
N_BOOT = 199
TRUTH_REPS = 200_000
# What a study without a usable trial scores, in truth and estimator alike: the 0.995
# quantile of the scenario's usable test values (both optimizers pooled), about the worst
# result seen in a study of 2 x 16-32 trials, which is what `inclusion_consistency` uses.
WORST_QUANTILE = 0.995

Sampler = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _half_normal(base: float, scale: float) -> Sampler:
    return lambda rng, shape: base + scale * np.abs(rng.normal(size=shape))


def _mixture(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    good = rng.uniform(size=shape) < 0.3
    return np.where(
        good, 0.10 + 0.01 * np.abs(rng.normal(size=shape)), 0.2 + 0.05 * rng.uniform(size=shape)
    )


def _skewed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return 0.1 + 0.02 * rng.lognormal(0.0, 1.0, size=shape)


# name -> (special quality, general quality, diverged share of each)
SCENARIOS: dict[str, tuple[Sampler, Sampler, float]] = {
    "general wider": (_half_normal(0.1, 0.02), _half_normal(0.1, 0.15), 0.0),
    "general narrower": (_half_normal(0.1, 0.15), _half_normal(0.1, 0.02), 0.0),
    "mixture": (_half_normal(0.1, 0.03), _mixture, 0.0),
    "skewed tail": (_half_normal(0.1, 0.05), _skewed, 0.0),
    "10% diverged": (_half_normal(0.1, 0.05), _half_normal(0.1, 0.1), 0.1),
    "30% diverged": (_half_normal(0.1, 0.1), _half_normal(0.1, 0.05), 0.3),
    "shift": (_half_normal(0.1, 0.05), _half_normal(0.1, 0.05), 0.0),
}


def _trials(
    rng: np.random.Generator,
    quality: Sampler,
    diverged: float,
    shape: tuple[int, ...],
    noise: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(validation, test, usable) of trials of the given shape."""
    q = quality(rng, shape)
    valid = q + noise * rng.normal(size=shape)
    test = q + noise * rng.normal(size=shape)
    usable = rng.uniform(size=shape) >= diverged
    return valid, test, usable


def _worst(scenario: str, noise: float) -> float:
    """The fixed score of a study without a usable trial (WORST_QUANTILE)."""
    q_s, q_g, _ = SCENARIOS[scenario]
    rng = np.random.default_rng(0)
    pooled = [_trials(rng, q, 0.0, (TRUTH_REPS,), noise)[1] for q in (q_s, q_g)]
    return float(np.quantile(np.concatenate(pooled), WORST_QUANTILE))


def _true_expected(
    quality: Sampler, diverged: float, k: int, noise: float, worst: float, seed: int
) -> float:
    """E[test value of the best-validated usable trial of k fresh trials]; a study without
    a usable trial scores `worst` (the same fixed value is the estimator's)."""
    rng = np.random.default_rng(seed)
    valid, test, usable = _trials(rng, quality, diverged, (TRUTH_REPS, k), noise)
    score = np.where(usable, valid, np.inf)
    picked = test[np.arange(TRUTH_REPS), np.argmin(score, axis=1)]
    failed = ~usable.any(axis=1)
    return float(np.where(failed, worst, picked).mean())


def _row(
    scenario: str, n: int, k: int, delta: float, noise: float, studies: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(difference, p_value, p_noninferior, lo, hi) over `studies` studies whose true
    delta_k is `delta` (margin: 1.5 x |delta| or 0.01 when delta is 0; below)."""
    q_s, q_g, div = SCENARIOS[scenario]
    worst_value = _worst(scenario, noise)
    shift = (
        _true_expected(q_s, div, k, noise, worst_value, seed=1)
        - _true_expected(q_g, div, k, noise, worst_value, seed=2)
        + delta
    )
    rng = np.random.default_rng(seed)
    vs, ts, us = _trials(rng, q_s, div, (studies, n), noise)
    vg, tg, ug = _trials(rng, q_g, div, (studies, n), noise)
    tg = tg + shift
    worst = np.full(studies, worst_value)
    out = pair_tests(
        vg,
        tg,
        ug,
        np.ones_like(ug),
        vs,
        ts,
        us,
        np.ones_like(us),
        worst,
        budget=k,
        n_boot=N_BOOT,
        alpha=ALPHA,
        margin=_margin(delta),
        seeds=np.stack([np.full(studies, seed), np.arange(studies)], axis=1),
    )
    assert out.tested.all()
    return out.difference, out.p_value, out.p_noninferior, out.lo, out.hi


def _margin(delta: float) -> float:
    """A margin the row's delta_k exceeds (1.5 x delta: false-consistent rows) or 0.01."""
    return delta / 1.5 if delta > 0 else 0.01


def _mc_bound(studies: int, rate: float = ALPHA) -> float:
    return rate + 2 * math.sqrt(rate * (1 - rate) / studies)


def _table(sizes: tuple[int, ...], studies: int, scenarios: list[str]) -> list[dict[str, object]]:
    rows = []
    for scenario in scenarios:
        for n in sizes:
            for k in sorted({default_budget(n, n), max(1, n // 8)}):
                seed = 1000 * n + 10 * k + scenarios.index(scenario)
                equal = _row(scenario, n, k, 0.0, 0.005, studies, seed)
                better = _row(scenario, n, k, -0.005, 0.005, studies, seed + 1)
                worse = _row(scenario, n, k, 0.015, 0.005, studies, seed + 2)
                rows.append(
                    {
                        "scenario": scenario,
                        "N": n,
                        "k": k,
                        "false violated (delta 0)": float(np.mean(equal[1] < ALPHA)),
                        "false violated (delta < 0)": float(np.mean(better[1] < ALPHA)),
                        "false consistent (delta 1.5 margin)": float(np.mean(worse[2] < ALPHA)),
                        "coverage": float(np.mean((equal[3] < 0) & (equal[4] > 0))),
                        "coverage (delta > 0)": float(
                            np.mean((worse[3] < 0.015) & (worse[4] > 0.015))
                        ),
                    }
                )
    return rows


def _print(rows: list[dict[str, object]], studies: int) -> None:
    print(
        f"\ninclusion test, bootstrap-t ({N_BOOT} resamples), alpha {ALPHA} unadjusted, "
        f"noise 0.005, {studies} studies per row; coverage of the {1 - 2 * ALPHA:.0%} interval"
    )
    print(
        "| scenario | N | k | false viol. (δ=0) | false viol. (δ<0) | false cons. "
        "| coverage δ=0 | coverage δ>0 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        vals = list(r.values())
        print(
            "| "
            + " | ".join(str(v) if not isinstance(v, float) else f"{v:.3f}" for v in vals)
            + " |"
        )


# Rows of the slow table (400 studies each, seeded, so reproducible) whose false-violated
# rate exceeds alpha + 2 MC SE (0.072), with the rate measured: reported in docs/method.md
# and asserted below a looser bound, so that they cannot silently get worse. 30% diverged
# trials at k = 4: a study of 4 diverged trials scores the worst value, a rare far atom the
# bootstrap-t does not capture; the mixture at N = 8 has no good trial in 6% of studies.
KNOWN_EXCEEDANCES = {
    ("30% diverged", 16, 4): 0.105,
    ("30% diverged", 32, 4): 0.087,
    ("mixture", 8, 2): 0.075,
    ("skewed tail", 32, 8): 0.072,
}
LOOSE_BOUND = 0.12


def _check(rows: list[dict[str, object]], studies: int) -> None:
    bound = _mc_bound(studies)
    for r in rows:
        known = (r["scenario"], r["N"], r["k"]) in KNOWN_EXCEEDANCES
        for key in (
            "false violated (delta 0)",
            "false violated (delta < 0)",
            "false consistent (delta 1.5 margin)",
        ):
            limit = LOOSE_BOUND if known and key.startswith("false violated") else bound
            assert float(r[key]) <= limit, (r, key, limit)  # type: ignore[arg-type]
        for key in ("coverage", "coverage (delta > 0)"):
            floor = 1 - 2 * ALPHA - (0.06 if known else 0.03)
            assert float(r[key]) >= floor, (r, key)  # type: ignore[arg-type]


def test_calibration_fast_subset() -> None:
    """Spread in both orders at N = 16."""
    studies = 300
    rows = _table((16,), studies, ["general wider", "general narrower"])
    _print(rows, studies)
    _check(rows, studies)


@pytest.mark.slow
def test_calibration_table() -> None:
    studies = 400
    rows = _table((8, 16, 32), studies, list(SCENARIOS))
    _print(rows, studies)
    _check(rows, studies)


def _power(n: int, k: int, noise: float, studies: int, seed: int) -> tuple[float, float, float]:
    """(size, power at effect 0.02, oracle z-test power) on the shift model."""
    null = _row("shift", n, k, 0.0, noise, studies, seed)
    alt = _row("shift", n, k, 0.02, noise, studies, seed + 1)
    sd = float(np.std(null[0]))
    oracle = float(np.mean(alt[0] / sd > norm.ppf(1 - ALPHA)))
    return float(np.mean(null[1] < ALPHA)), float(np.mean(alt[1] < ALPHA)), oracle


@pytest.mark.slow
def test_power_against_an_oracle() -> None:
    """At N = 16, k = N/4 (the default) and k = N/2, two noise levels: the test's power at
    an effect of 0.02 against the z-test that knows the estimator's true SD; the target
    ratio (at the default budget) is >= 0.8."""
    studies = 1000
    print("\npower on the shift model, effect 0.02, alpha 0.05, 1000 studies per row")
    print("| N | k | noise | size | power | oracle | ratio |")
    print("|---|---|---|---|---|---|---|")
    for noise in (0.005, 0.02):
        for k in (4, 8):
            size, power, oracle = _power(16, k, noise, studies, seed=int(noise * 1e4) + k)
            print(
                f"| 16 | {k} | {noise} | {size:.3f} | {power:.3f} | {oracle:.3f} "
                f"| {power / oracle:.2f} |"
            )
            assert size <= _mc_bound(studies)
            if k == default_budget(16, 16):
                assert power / oracle >= 0.8, (noise, power, oracle)
