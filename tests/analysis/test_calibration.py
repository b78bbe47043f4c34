"""Calibration of the inclusion test: false violations under no true difference, and power
against a planted violation of a realistic size.

Each of the 200 synthetic studies is one workload of a 200-workload archive: the
synthetic model draws workloads independently, and random streams are keyed by labels,
so a workload's p-value is the same whether it is analysed alone or inside the big
archive (checked below). With one inclusion pair per workload, Holm's correction of a
one-workload archive is the identity, so the raw p-value decides that archive's verdict.

Measured (n_boot 1000, 20 trials per optimizer, default budget k = 10, 10% diverged
trials, trial spread 0.05, noise 0.01): with no difference 0.5% of the 200 studies flag
a violation (1.0-2.5% over five other seeds); with the general optimizer 4 percentage
points worse (true best error 0.14 against 0.10) 87.5% do (88-92.5% over five other seeds).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from optcmp_analysis import Verdict, inclusion_consistency, restrict
from optcmp_data.testing import synthetic_archive

N_STUDIES = 200
ALPHA = 0.05


def _studies(planted: float, seed: int) -> xr.Dataset:
    return synthetic_archive(
        workloads=N_STUDIES,
        optimizers=("sgd", "momentum"),
        n_trials=20,
        n_evals=2,
        diverged_fraction=0.1,
        planted={"momentum": planted},
        spread=0.05,
        noise=0.01,
        seed=seed,
    )


def _violation_rate(ds: xr.Dataset, seed: int) -> float:
    result = inclusion_consistency(
        ds, n_boot=1000, rng=np.random.default_rng(seed), rules=["final-valid"], alpha=ALPHA
    )
    p = result.data["p_value"].sel(rule="final-valid").values.ravel()
    assert p.size == N_STUDIES
    return float(np.mean(p < ALPHA))


def test_no_true_difference_flags_at_most_five_percent() -> None:
    ds = _studies(0.0, seed=101)
    rate = _violation_rate(ds, seed=5)
    assert rate <= 0.05, rate
    # A study analysed alone gets the same p-value and the verdict it implies.
    whole = inclusion_consistency(
        ds, n_boot=1000, rng=np.random.default_rng(5), rules=["final-valid"]
    ).data
    for w in ("w0", "w17", "w199"):
        alone = inclusion_consistency(
            restrict(ds, workloads=[w]),
            n_boot=1000,
            rng=np.random.default_rng(5),
            rules=["final-valid"],
        ).data
        p_whole = whole["p_value"].sel(workload=w).values
        np.testing.assert_array_equal(alone["p_value"].sel(workload=w).values, p_whole)
        np.testing.assert_array_equal(alone["p_adjusted"].sel(workload=w).values, p_whole)
        flagged = str(alone["verdict"].sel(workload=w).values.item()) == Verdict.VIOLATED
        assert flagged == bool(p_whole.item() < ALPHA)


def test_planted_violation_is_found_in_at_least_eighty_percent() -> None:
    rate = _violation_rate(_studies(0.04, seed=202), seed=6)
    assert rate >= 0.80, rate
