"""Batched group training: a group of K equals its K trials run one at a time, divergence
is contained to the trial that diverged, and the data order is a seeded function."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from optcmp.runner import (
    GroupTrials,
    data_order,
    deterministic_threads,
    train_group,
)
from optcmp.runner._device import resolve_device
from optcmp.spaces import SearchSpace
from optcmp.workloads import WORKLOADS, get_workload
from optcmp_data import CURVE_VARS, FAMILY_SPECS, ConfigError, Status
from tests.train.groups import CPU, stable_trials, train_on_cpu

# Data seed 7; linear decay, 30 steps evaluated every 10 unless given.
_train = functools.partial(train_on_cpu, data_seed=7)


@pytest.mark.parametrize("optimizer", list(FAMILY_SPECS))
def test_batched_group_equals_trials_one_at_a_time(optimizer: str) -> None:
    workload = get_workload("digits_mlp")
    k = 4
    hparams, seeds = stable_trials(optimizer, k, seed=11), [101 + i for i in range(k)]
    group = _train(workload, optimizer, hparams, seeds)
    assert group.status == (Status.COMPLETED,) * k
    for i in range(k):
        alone = _train(workload, optimizer, [hparams[i]], [seeds[i]])
        np.testing.assert_array_equal(alone.step, group.step)
        for name in ("train_loss", "valid_loss", "test_loss"):
            np.testing.assert_allclose(group.curves[name][i], alone.curves[name][0], rtol=1e-4)
        # Error rates are counts over a few hundred examples: a logit that rounding moves
        # across a decision boundary changes one count, so compare them to one example.
        np.testing.assert_allclose(
            group.curves["valid_metric"][i], alone.curves["valid_metric"][0], atol=1.5 / 300
        )


def test_loop_path_equals_vmap_path() -> None:
    """Workloads that cannot be vmapped train through a per-trial loop with equal results."""
    vmapped = get_workload("digits_mlp")
    looped = get_workload("digits_mlp")
    looped.spec = attrs.evolve(vmapped.spec, supports_vmap=False)
    hparams, seeds = stable_trials("adam", 3, seed=11), [5, 6, 7]
    a = _train(vmapped, "adam", hparams, seeds, grouped_layers=False)
    b = _train(looped, "adam", hparams, seeds, grouped_layers=False)
    for name in CURVE_VARS:
        np.testing.assert_allclose(a.curves[name], b.curves[name], rtol=1e-4, atol=1e-6)


def test_diverged_trial_is_frozen_and_the_others_are_unaffected() -> None:
    workload = get_workload("noisy_quadratic")
    stable = {"learning_rate": 0.5}
    exploding = {"learning_rate": 1e4}  # curvature 1 with lr 1e4: |theta| grows 1e4x a step
    group = _train(
        workload, "sgd", [stable, exploding, stable], [1, 2, 3], schedule="constant", step_budget=60
    )
    assert group.status == (Status.COMPLETED, Status.DIVERGED, Status.COMPLETED)
    diverged = group.curves["train_loss"][1]
    assert np.isfinite(diverged[0])  # step 0 is evaluated before any update
    first_nan = int(np.argmax(np.isnan(diverged)))
    assert first_nan > 0
    for name in CURVE_VARS:
        assert np.isnan(group.curves[name][1, first_nan:]).all()
        assert np.isfinite(group.curves[name][[0, 2]]).all()
    alone = _train(workload, "sgd", [stable], [3], schedule="constant", step_budget=60)
    np.testing.assert_allclose(group.curves["train_loss"][2], alone.curves["train_loss"][0], 1e-5)


def test_every_trial_diverging_still_gives_every_evaluation() -> None:
    workload = get_workload("noisy_quadratic")
    group = _train(
        workload, "sgd", [{"learning_rate": 1e4}] * 2, [1, 2], schedule="constant", step_budget=50
    )
    assert group.status == (Status.DIVERGED, Status.DIVERGED)
    assert list(group.step) == [0, 10, 20, 30, 40, 50]
    assert np.isnan(group.curves["valid_loss"][:, 1:]).all()
    assert (np.diff(group.time) >= 0).all()


def test_evaluation_steps_include_the_budget() -> None:
    group = _train(
        get_workload("noisy_quadratic"),
        "momentum",
        [{"learning_rate": 0.01}],
        [0],
        schedule="constant",
        step_budget=25,
        eval_interval=10,
    )
    assert list(group.step) == [0, 10, 20, 25]
    assert group.time[0] == 0.0
    assert (np.diff(group.time) > 0).all()


def test_same_inputs_give_bit_identical_curves() -> None:
    workload = get_workload("digits_mlp")
    hparams = stable_trials("nadam", 2, seed=11)
    a = _train(workload, "nadam", hparams, [3, 4])
    b = _train(workload, "nadam", hparams, [3, 4])
    for name in CURVE_VARS:
        np.testing.assert_array_equal(a.curves[name], b.curves[name])


@given(
    n=st.integers(1, 50),
    batch=st.integers(1, 60),
    seed=st.integers(0, 2**31 - 1),
)
def test_data_order_is_seeded_and_covers_each_epoch(n: int, batch: int, seed: int) -> None:
    per_epoch = max(1, n // min(batch, n))
    draw = [b for _, b in zip(range(2 * per_epoch), data_order(n, batch, seed), strict=False)]
    again = [b for _, b in zip(range(2 * per_epoch), data_order(n, batch, seed), strict=False)]
    assert all(torch.equal(a, b) for a, b in zip(draw, again, strict=True))
    assert all(len(b) == min(batch, n) for b in draw)
    epoch = torch.cat(draw[:per_epoch])
    assert len(torch.unique(epoch)) == len(epoch)  # no example twice within an epoch
    assert int(epoch.min()) >= 0
    assert int(epoch.max()) < n


def test_cuda_is_refused_when_unavailable() -> None:
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="not supported"):
        resolve_device("tpu")


def test_group_rejects_mismatched_inputs() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        _train(get_workload("noisy_quadratic"), "sgd", [{"learning_rate": 0.1}], [1, 2])


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The workload tests' writer of tiny files in every format (tests/train is on sys.path).
    write_all: Callable[[Path], Path] = importlib.import_module("test_workloads").write_all
    return write_all(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_workload_trains_as_a_batched_group(name: str, tiny_data_dir: Path) -> None:
    workload = get_workload(name)
    splits = workload.load(tiny_data_dir if workload.spec.needs_data_dir else None, device=CPU)
    with deterministic_threads(CPU):
        group = train_group(
            workload,
            splits,
            GroupTrials([{"learning_rate": 1e-3}, {"learning_rate": 3e-3}], [1, 2], data_seed=0),
            space=SearchSpace("test", "adam", "constant"),
            device=CPU,
            spec=attrs.evolve(workload.spec, step_budget=2, eval_interval=1, batch_size=4),
        )
    assert group.status == (Status.COMPLETED, Status.COMPLETED)
    for curve in CURVE_VARS:
        assert np.isfinite(group.curves[curve]).all()
    # Different initialisations and rates: the two trials' curves are not copies.
    assert not np.array_equal(group.curves["train_loss"][0], group.curves["train_loss"][1])
