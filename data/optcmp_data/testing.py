"""Synthetic archives with controllable properties, for the other layers' tests.

Dependency rule: numpy and this package only. Every archive is built through
`ArchiveBuilder`, so it is valid by construction and exercises the same path as the
runner and the importers.

Generative model (per workload w, optimizer o, trial t): a latent true final error
`mu + planted[o] + spread * |z|`, z ~ N(0, 1), so the best trials of an optimizer
approach `mu + planted[o]`; validation and test metrics add independent noise of size
`noise`. Curves decay exponentially from 1 to that final value. Larger is worse for
direction "min"; for direction "max" the metric reported is 1 - error.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_data._builder import (
    ArchiveBuilder,
    Curves,
    SpaceDim,
    SpaceRecord,
    TrialRecord,
    WorkloadInfo,
)
from optcmp_data._families import PAPER_FAMILIES
from optcmp_data._schema import Direction, Scale, Split, Status
from optcmp_data._taxonomy import Taxonomy

__all__ = ["synthetic_archive"]

_EPS_FAMILIES = frozenset({"rmsprop", "adam", "nadam"})
_MOMENTUM_FAMILIES = frozenset({"momentum", "nesterov", "rmsprop", "adam", "nadam"})


def _space(family: str | None) -> tuple[SpaceDim, ...]:
    """The searched hyperparameters of an optimizer of `family` (learning rate for all)."""
    dims = [SpaceDim("learning_rate", 1e-4, 1.0, Scale.LOG)]
    if family in _MOMENTUM_FAMILIES:
        dims.append(SpaceDim("momentum", 0.0, 0.999, Scale.ONE_MINUS_LOG))
    if family in _EPS_FAMILIES:
        dims.append(SpaceDim("epsilon", 1e-10, 1e2, Scale.LOG))
    return tuple(dims)


def synthetic_archive(
    *,
    workloads: int | Sequence[str] = 1,
    optimizers: Sequence[str] = PAPER_FAMILIES,
    families: Mapping[str, str] | None = None,
    n_trials: int = 16,
    n_evals: int = 8,
    ragged: bool = False,
    diverged_fraction: float = 0.0,
    incomplete_fraction: float = 0.0,
    planted: Mapping[str, float] | None = None,
    mu: float = 0.1,
    spread: float = 0.05,
    noise: float = 0.01,
    direction: Direction | str = Direction.MIN,
    selection_split: Split | str = Split.VALID,
    repeats: Mapping[str, int] | None = None,
    step_budget: int = 1000,
    taxonomy: Taxonomy | None = None,
    plugins: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """A valid archive drawn from the model in the module docstring.

    `planted[o]` shifts optimizer o's true errors (positive: worse). `ragged` gives each
    trial its own number of evaluations and its own steps. `repeats` maps repeat axes
    ("seed", "study") to their sizes. `plugins[o]` is stored as optimizer o's plug-in
    provenance record (`ArchiveBuilder.add_plugin`).
    """
    rng = np.random.default_rng(seed)
    names = [f"w{i}" for i in range(workloads)] if isinstance(workloads, int) else list(workloads)
    direction = Direction(direction)
    planted = dict(planted or {})
    families = (
        dict(families)
        if families is not None
        else {o: o if o in PAPER_FAMILIES else "" for o in optimizers}
    )
    repeats = dict(repeats or {})
    builder = _builder(
        names,
        optimizers,
        families,
        repeats=repeats,
        valid_target=mu + spread if direction is Direction.MIN else 1 - mu - spread,
        direction=direction,
        selection_split=Split(selection_split),
        step_budget=step_budget,
        taxonomy=taxonomy,
        plugins=plugins or {},
    )
    model = _CurveModel(
        n_evals, ragged, diverged_fraction, incomplete_fraction, noise, direction, step_budget
    )
    repeat_grid = [
        dict(zip(repeats, combo, strict=True))
        for combo in itertools.product(*(range(size) for size in repeats.values()))
    ]
    for w in names:
        for o in optimizers:
            dims_names = {d.name for d in _space(families.get(o))}
            for t in range(n_trials):
                hp = _hparams(rng, dims_names)
                true_err = mu + planted.get(o, 0.0) + spread * abs(rng.normal())
                for rep in repeat_grid:
                    builder.add_trial(_trial(rng, w, o, t, rep, hp, true_err, model))
    return builder.build()


def _builder(
    names: Sequence[str],
    optimizers: Sequence[str],
    families: Mapping[str, str],
    *,
    repeats: Mapping[str, int],
    valid_target: float,
    direction: Direction,
    selection_split: Split,
    step_budget: int,
    taxonomy: Taxonomy | None,
    plugins: Mapping[str, Mapping[str, Any]],
) -> ArchiveBuilder:
    """A builder holding the workloads, plug-in records, optimizers and spaces (no trials)."""
    builder = ArchiveBuilder(
        source="optcmp_data.testing.synthetic_archive",
        command="synthetic_archive",
        taxonomy=taxonomy,
        repeat_dims=tuple(repeats),
    )
    if selection_split is Split.TEST:
        builder.add_caveat("selection uses the test split: the archive has no validation split")
    for w in names:
        builder.add_workload(
            WorkloadInfo(
                name=w,
                metric_name="error_rate" if direction is Direction.MIN else "accuracy",
                direction=direction,
                valid_target=valid_target,
                test_target=np.nan,
                step_budget=step_budget,
                selection_split=selection_split,
            )
        )
    for o, record in plugins.items():
        builder.add_plugin(o, record)
    for o in optimizers:
        builder.add_optimizer(o, families.get(o, ""))
        for w in names:
            builder.add_space(w, o, SpaceRecord("synthetic", _space(families.get(o))))
    return builder


def _hparams(rng: np.random.Generator, dims_names: set[str]) -> dict[str, float]:
    """One trial's hyperparameters, drawn log-uniformly within `_space`'s ranges."""
    hp = {"learning_rate": float(10 ** rng.uniform(-4, 0))}
    if "momentum" in dims_names:
        hp["momentum"] = float(1 - 10 ** rng.uniform(-3, 0))
    if "epsilon" in dims_names:
        hp["epsilon"] = float(10 ** rng.uniform(-10, 2))
    return hp


@attrs.frozen
class _CurveModel:
    """How each trial's curves are drawn: `n_evals` evaluations (`ragged`: a number and
    steps of its own), the shares of diverged and incomplete trials, the metrics' noise,
    the direction and the step budget."""

    n_evals: int
    ragged: bool
    diverged_fraction: float
    incomplete_fraction: float
    noise: float
    direction: Direction
    step_budget: int


def _trial(
    rng: np.random.Generator,
    w: str,
    o: str,
    t: int,
    rep: dict[str, int],
    hp: dict[str, float],
    true_err: float,
    model: _CurveModel,
) -> TrialRecord:
    steps = _steps(rng, model)
    n = len(steps)
    progress = steps / model.step_budget
    shape = np.exp(-4.0 * progress)
    final_valid = true_err + model.noise * rng.normal()
    final_test = true_err + model.noise * rng.normal()
    valid = final_valid + (0.9 - final_valid) * shape
    test = final_test + (0.9 - final_test) * shape
    train_loss = (true_err * 2 + 1.5 * shape) * (1 + 0.01 * rng.normal(size=n))
    status = Status.COMPLETED
    u = rng.uniform()
    if u < model.diverged_fraction:
        status = Status.DIVERGED
        cut = int(rng.integers(1, n)) if n > 1 else 0
        for arr in (valid, test, train_loss):
            arr[cut:] = np.nan
    elif u < model.diverged_fraction + model.incomplete_fraction and n > 2:
        status = Status.INCOMPLETE
        keep = int(rng.integers(1, n - 1))
        steps, valid, test, train_loss = steps[:keep], valid[:keep], test[:keep], train_loss[:keep]
    if model.direction is Direction.MAX:
        valid, test = 1 - valid, 1 - test
    return TrialRecord(
        workload=w,
        optimizer=o,
        trial=t,
        status=status,
        hparams=hp,
        seed=int(rng.integers(0, 2**31 - 1)),
        repeat=rep,
        curves=Curves(
            step=steps,
            time=steps * 0.01,
            train_loss=train_loss,
            valid_loss=valid * 2,
            valid_metric=valid,
            test_loss=test * 2,
            test_metric=test,
        ),
    )


def _steps(rng: np.random.Generator, model: _CurveModel) -> npt.NDArray[np.int64]:
    """A trial's evaluation steps: `n_evals` evenly spaced from 0 to the budget, or with
    `ragged` a drawn number of them at drawn steps (0 and the budget included)."""
    n_evals, budget = model.n_evals, model.step_budget
    if not model.ragged:
        return np.linspace(0, budget, n_evals).round().astype(np.int64)
    low = min(n_evals, max(2, n_evals // 2))
    n = int(rng.integers(low, n_evals + 1))
    steps = np.sort(rng.choice(np.arange(1, budget + 1), size=n - 1, replace=False))
    return np.concatenate([[0], steps[:-1], [budget]]) if n > 1 else np.array([budget])
