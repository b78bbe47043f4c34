"""`summarize` (what `optcmp info` shows): with trial ids shared across optimizers (a
table's global run ids), a cell's `missing` runs count only the trials that optimizer
has; with ids numbered per optimizer every trial id is expected of every optimizer."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_data import (
    ArchiveBuilder,
    Curves,
    SpaceDim,
    SpaceRecord,
    Status,
    TrialRecord,
    WorkloadInfo,
    summarize,
)

_OPTS = ("adagrad", "adam", "lbfgs", "sgd")


def _archive(
    owner: Mapping[int, str] | list[tuple[int, str]],
    seeds: dict[int, tuple[int, ...]] | None = None,
) -> xr.Dataset:
    """One workload; trial id t run by optimizer owner[t], or by each optimizer o of the
    pairs (t, o) (with the seeds seeds[t] on a repeat axis when `seeds` is given)."""
    runs = sorted(owner.items() if isinstance(owner, Mapping) else owner)
    b = ArchiveBuilder(source="test", repeat_dims=("seed",) if seeds is not None else ())
    b.add_workload(WorkloadInfo("w", "loss", "min", step_budget=10))
    for opt in sorted({o for _, o in runs}):
        b.add_optimizer(opt)
        b.add_space("w", opt, SpaceRecord("s", (SpaceDim("lr", 1e-3, 1.0, "log"),)))
    for t, opt in runs:
        for seed in seeds[t] if seeds is not None else (-1,):
            b.add_trial(
                TrialRecord(
                    workload="w",
                    optimizer=opt,
                    trial=t,
                    status=Status.COMPLETED,
                    hparams={"lr": 0.01 * (t + 1)},
                    curves=Curves(step=np.array([0, 10]), valid_metric=np.array([1.0, 0.5])),
                    seed=max(seed, 0),
                    repeat={"seed": seed} if seeds is not None else {},
                )
            )
    return b.build()


def _counts(ds: xr.Dataset) -> dict[str, tuple[int, int]]:
    summary = summarize(ds)
    return {c.optimizer: (c.completed, c.missing) for c in summary.cells}


def test_global_ids_count_only_each_optimizers_own_trials() -> None:
    # 18 global run ids, unequal counts: adam 3, lbfgs 2, adagrad 5, sgd 8
    order = ["sgd", "lbfgs", "adam", "sgd", "adagrad", "sgd", "adam", "adagrad", "sgd"]
    order += ["sgd", "adagrad", "lbfgs", "sgd", "adam", "adagrad", "sgd", "adagrad", "sgd"]
    owner = dict(enumerate(order))
    ds = _archive(owner)
    assert ds["trial"].values.tolist() == list(range(18))  # the global ids are the labels
    assert _counts(ds) == {o: (order.count(o), 0) for o in _OPTS}
    summary = summarize(ds)
    assert summary.workloads[0]["trial_ids"] == "global"


def test_global_ids_with_repeats_count_missing_seeds_of_own_trials() -> None:
    owner = {0: "adam", 1: "sgd", 2: "sgd", 3: "adam"}
    seeds = {0: (0, 1), 1: (0, 1), 2: (0,), 3: (0,)}  # trials 2 and 3 lack seed 1
    assert _counts(_archive(owner, seeds)) == {"adam": (3, 1), "sgd": (3, 1)}


def test_ids_numbered_per_optimizer_are_expected_of_every_optimizer() -> None:
    # ids 0..1 used by both optimizers: per-optimizer numbering; sgd lacks trial 2
    built = _archive([(0, "adam"), (1, "adam"), (2, "adam"), (0, "sgd"), (1, "sgd")])
    assert _counts(built) == {"adam": (3, 0), "sgd": (2, 1)}
    assert summarize(built).workloads[0]["trial_ids"] == "per optimizer"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(_OPTS), min_size=2, max_size=20))
def test_any_assignment_of_global_ids_has_no_missing_runs(order: list[str]) -> None:
    # with one optimizer only, ids are its own either way
    ds = _archive(dict(enumerate(order)))
    counts = _counts(ds)
    assert counts == {o: (order.count(o), 0) for o in set(order)}
