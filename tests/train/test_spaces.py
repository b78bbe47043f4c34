"""Search spaces: quasi-random trials that extend, stay in bounds, and reach the archive."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optcmp.spaces import PRESETS, HParamRange, SearchSpace, preset
from optcmp_data import (
    FAMILY_SPECS,
    ArchiveBuilder,
    ConfigError,
    Curves,
    Scale,
    Status,
    TrialRecord,
    WorkloadInfo,
    get_family,
    get_schedule,
)

ALL = [(p, f) for p in PRESETS for f in FAMILY_SPECS]


@given(
    first=st.integers(0, 20),
    more=st.integers(0, 20),
    seed=st.integers(0, 2**31 - 1),
    family=st.sampled_from(list(FAMILY_SPECS)),
)
def test_drawing_in_two_parts_equals_drawing_at_once(
    first: int, more: int, seed: int, family: str
) -> None:
    space = preset("choi2019", family)
    once = space.sample(first + more, seed=seed)
    twice = space.sample(first, seed=seed) + space.sample(more, seed=seed, start=first)
    assert once == twice


@pytest.mark.parametrize(("name", "family"), ALL)
def test_presets_draw_complete_trials_inside_their_bounds(name: str, family: str) -> None:
    space = preset(name, family)
    trials = space.sample(64, seed=7)
    expected = (*get_family(family).hparam_names, *get_schedule(space.schedule).hparam_names)
    fixed = space.fixed_values()
    for trial in trials:
        assert tuple(trial) == expected
        fam = get_family(family)
        fam.validate({k: trial[k] for k in fam.hparam_names})
        get_schedule(space.schedule).complete(trial)
        for r in space.searched:
            assert r.low <= trial[r.name] <= r.high
        for k, v in fixed.items():
            assert trial[k] == v
    assert {r.name for r in space.searched}.isdisjoint(fixed)
    assert set(fixed) | {r.name for r in space.searched} == set(expected)


def test_lr_only_keeps_the_usual_defaults() -> None:
    adam = preset("lr-only", "adam").sample(3, seed=0)
    assert all((t["beta1"], t["beta2"], t["epsilon"]) == (0.9, 0.999, 1e-8) for t in adam)
    assert all(t["momentum"] == 0.9 for t in preset("lr-only", "momentum").sample(3, seed=0))
    assert preset("lr-only", "sgd").schedule.value == "constant"
    assert preset("choi2019", "sgd").schedule.value == "linear_decay"


def test_same_seed_same_trials_other_seed_other_trials() -> None:
    space = preset("choi2019", "adam")
    assert space.sample(8, seed=1) == space.sample(8, seed=1)
    assert space.sample(8, seed=1) != space.sample(8, seed=2)


@pytest.mark.parametrize("seed", range(5))
def test_trials_are_stratified_like_a_halton_sequence(seed: int) -> None:
    # The first dimension uses base 2: 16 points fill all 16 equal bins of the unit
    # interval, which on the log scale means one point per 1/16 of the decades.
    space = SearchSpace("t", "sgd", "constant", (HParamRange("learning_rate", 1e-4, 1.0, "log"),))
    lr = np.array([t["learning_rate"] for t in space.sample(16, seed=seed)])
    u = (np.log(lr) - math.log(1e-4)) / (math.log(1.0) - math.log(1e-4))
    assert len(set(np.floor(u * 16).astype(int))) == 16


@given(u=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20))
def test_scales_map_the_unit_interval_monotonically_onto_the_range(u: list[float]) -> None:
    points = np.sort(np.array(u))
    for r in (
        HParamRange("x", -2.0, 3.0, "linear"),
        HParamRange("x", 1e-6, 1e2, "log"),
        HParamRange("x", 0.0, 0.9999, "one_minus_log"),
    ):
        values = r.from_unit(points)
        assert np.all(np.diff(values) >= -1e-12 * np.abs(values[1:]))
        assert np.all(values >= r.low - 1e-12)
        assert np.all(values <= r.high + 1e-12)
        assert r.from_unit(np.array([0.0]))[0] == pytest.approx(r.low, abs=1e-12)
        assert r.from_unit(np.array([1.0]))[0] == pytest.approx(r.high, rel=1e-9)


def test_one_minus_log_is_log_uniform_in_one_minus_x() -> None:
    r = HParamRange("momentum", 0.0, 0.999, "one_minus_log")
    mid = r.from_unit(np.array([0.5]))[0]
    assert 1 - mid == pytest.approx(math.sqrt(1.0 * 0.001))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("learning_rate", 1.0, 1.0, "log"), "must be below high"),
        (("learning_rate", 2.0, 1.0, "linear"), "must be below high"),
        (("learning_rate", 0.0, 1.0, "log"), "log scale needs bounds > 0"),
        (("momentum", 0.5, 1.0, "one_minus_log"), "bounds < 1"),
        (("learning_rate", 1e-3, math.inf, "log"), "finite"),
        (("learning_rate", 1e-3, 1.0, "logg"), "did you mean 'log'"),
    ],
)
def test_bad_ranges_are_config_errors(args: tuple[str, float, float, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        HParamRange(*args)


def test_hyperparameters_the_optimizer_lacks_are_named_with_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"sgd .* no hyperparameter 'momentum'"):
        SearchSpace("s", "sgd", "constant", (HParamRange("momentum", 0.0, 0.9, "linear"),))
    with pytest.raises(ConfigError, match="did you mean 'beta1'"):
        SearchSpace("s", "adam", "constant", (), {"betta1": 0.9})
    with pytest.raises(ConfigError, match="decay_factor"):
        SearchSpace("s", "adam", "constant", (), {"decay_factor": 0.1})
    with pytest.raises(ConfigError, match="given twice"):
        SearchSpace(
            "s", "adam", "constant", (HParamRange("beta1", 0.0, 0.9, "linear"),), {"beta1": 0.9}
        )
    with pytest.raises(ConfigError, match="outside its valid range"):
        SearchSpace("s", "adam", "constant", (), {"beta2": 1.5})
    with pytest.raises(ConfigError, match="unknown optimizer 'adamx'"):
        preset("choi2019", "adamx")
    with pytest.raises(ConfigError, match="did you mean 'lr-only'"):
        preset("lr_only", "adam")


def test_spaces_without_searched_dims_repeat_their_fixed_values() -> None:
    space = SearchSpace("f", "momentum", "constant", (), {"learning_rate": 0.1})
    assert space.sample(3, seed=0) == [{"learning_rate": 0.1, "momentum": 0.9}] * 3


@pytest.mark.parametrize(("name", "family"), ALL)
def test_space_records_are_valid_in_an_archive(name: str, family: str) -> None:
    space = preset(name, family)
    record = space.to_record()
    assert record.name == f"{name}[{space.schedule.value}]"
    assert [d.name for d in record.dims] == list(space.names)
    for d in record.dims:
        if d.scale is Scale.FIXED:
            assert d.low == d.high
    builder = ArchiveBuilder(source="test")
    builder.add_workload(WorkloadInfo("w", "error_rate", "min"))
    builder.add_optimizer(family, family)
    builder.add_space("w", family, record)
    for i, hp in enumerate(space.sample(4, seed=0)):
        builder.add_trial(TrialRecord("w", family, i, Status.COMPLETED, hp, Curves([0])))
    ds = builder.build()
    searched = {r.name: r.scale.value for r in space.searched}
    scales = ds["space_scale"].sel(workload="w", optimizer=family)
    for hparam in space.names:
        assert scales.sel(hparam=hparam).item() == searched.get(hparam, "fixed")
