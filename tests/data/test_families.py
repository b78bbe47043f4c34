"""Families, schedules and inclusion maps as torch-free data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optcmp_data import (
    FAMILY_SPECS,
    PAPER_FAMILIES,
    SCHEDULE_SPECS,
    ConfigError,
    HparamMap,
    HyperparamSpec,
    LrScaling,
    ScheduleKind,
    Taxonomy,
    default_taxonomy,
    get_family,
    get_schedule,
)
from optcmp_data.testing import synthetic_archive

PROJECT_NAMES = {"learning_rate", "momentum", "rho", "beta1", "beta2", "epsilon", "weight_decay"}


def test_builtin_families_in_order_with_project_hparam_names() -> None:
    assert tuple(FAMILY_SPECS)[:8] == (
        "sgd",
        "momentum",
        "nesterov",
        "rmsprop",
        "adam",
        "nadam",
        "adamw",
        "nadamw",
    )
    assert tuple(PAPER_FAMILIES) == tuple(FAMILY_SPECS)[:6]
    for family in FAMILY_SPECS.values():
        assert family.hparam_names[0] == "learning_rate"
        assert set(family.hparam_names) <= PROJECT_NAMES
        for h in family.hparams:
            assert h.contains(h.default), (family.name, h.name)
    assert FAMILY_SPECS["adam"].hparam_names == ("learning_rate", "beta1", "beta2", "epsilon")
    assert FAMILY_SPECS["rmsprop"].hparam_names == ("learning_rate", "momentum", "rho", "epsilon")
    assert FAMILY_SPECS["adamw"].hparam_names == (
        "learning_rate",
        "beta1",
        "beta2",
        "epsilon",
        "weight_decay",
    )


def test_update_rules_are_table_1() -> None:
    assert "v0 = 1" in FAMILY_SPECS["rmsprop"].update_rule
    assert "sqrt(v + eps)" in FAMILY_SPECS["rmsprop"].update_rule
    assert "(sqrt(v) + eps)" in FAMILY_SPECS["adam"].update_rule
    assert "b = sqrt(1-beta2^(t+1)) / (1-beta1^(t+1))" in FAMILY_SPECS["adam"].update_rule


@pytest.mark.parametrize(
    ("family", "values", "pattern"),
    [
        ("sgd", {"learning_rate": -1e-3}, r"optimizer sgd: hyperparameter learning_rate = -0\.001"),
        (
            "momentum",
            {"momentum": 1.0},
            r"optimizer momentum: hyperparameter momentum = 1\.0 .*\[0, 1\)",
        ),
        ("nesterov", {"momentum": -0.5}, r"optimizer nesterov: hyperparameter momentum = -0\.5"),
        ("adam", {"beta1": 1.0}, r"optimizer adam: hyperparameter beta1 = 1\.0"),
        ("nadam", {"beta2": 1.5}, r"optimizer nadam: hyperparameter beta2 = 1\.5"),
        ("adam", {"epsilon": 0.0}, r"optimizer adam: hyperparameter epsilon = 0\.0 .*\(0, inf\)"),
        ("rmsprop", {"rho": 1.01}, r"optimizer rmsprop: hyperparameter rho = 1\.01 .*\[0, 1\]"),
        ("rmsprop", {"epsilon": -1.0}, r"optimizer rmsprop: hyperparameter epsilon = -1\.0"),
        ("adam", {"learning_rate": math.inf}, r"learning_rate = inf"),
        ("adam", {"momentum": 0.9}, r"optimizer adam: no hyperparameter 'momentum'"),
        ("adam", {"betas": 0.9}, r"no hyperparameter 'betas'.*did you mean 'beta"),
    ],
)
def test_invalid_values_name_optimizer_hparam_and_value(
    family: str, values: dict[str, float], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        get_family(family).validate(values)


def test_rho_one_and_zero_lr_are_valid() -> None:
    get_family("rmsprop").validate({"rho": 1.0, "learning_rate": 0.0})


def test_complete_fills_defaults() -> None:
    full = get_family("adam").complete({"beta1": 0.5})
    assert full == {"learning_rate": 0.001, "beta1": 0.5, "beta2": 0.999, "epsilon": 1e-8}


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer 'Adam_'.*did you mean 'adam'"):
        get_family("Adam_")
    with pytest.raises(ConfigError, match=r"unknown optimizer 'xyzzy'; valid: sgd, momentum"):
        get_family("xyzzy")
    with pytest.raises(ConfigError, match=r"unknown schedule 'linear'.*did you mean 'linear_"):
        get_schedule("linear")


@given(
    low=st.floats(-10, 10),
    width=st.floats(0.1, 10),
    low_closed=st.booleans(),
    high_closed=st.booleans(),
    x=st.floats(allow_nan=True, allow_infinity=True),
)
def test_contains_matches_interval(
    low: float, width: float, low_closed: bool, high_closed: bool, x: float
) -> None:
    high = low + width
    spec = HyperparamSpec("h", "h", low, low, high, low_closed, high_closed, "")
    inside = math.isfinite(x) and (x >= low if low_closed else x > low)
    inside = inside and (x <= high if high_closed else x < high)
    assert spec.contains(x) == inside
    if not inside:
        with pytest.raises(ConfigError, match=r"opt: hyperparameter h = "):
            spec.check(x, owner="opt")


def test_schedules_are_data() -> None:
    assert set(SCHEDULE_SPECS) == set(ScheduleKind)
    assert SCHEDULE_SPECS[ScheduleKind.CONSTANT].hparams == ()
    decay = get_schedule("linear_decay")
    assert decay.hparam_names == ("decay_factor", "decay_steps_fraction")
    assert decay.complete({"decay_factor": 0.1, "learning_rate": 3.0}) == {
        "decay_factor": 0.1,
        "decay_steps_fraction": 1.0,
    }
    with pytest.raises(
        ConfigError, match=r"schedule linear_decay: hyperparameter decay_factor = 2"
    ):
        decay.complete({"decay_factor": 2.0})


# --- inclusion maps -------------------------------------------------------------------------


def test_every_default_relation_has_a_consistent_map() -> None:
    for rel in default_taxonomy().relations:
        hmap = rel.hparam_map
        assert hmap is not None
        special, general = get_family(rel.special), get_family(rel.general)
        values = hmap.general_hparams(special.defaults())
        # The map sets exactly the general optimizer's non-learning-rate hyperparameters,
        # each to a valid value.
        assert set(values) == set(general.hparam_names) - {"learning_rate"}
        general.validate(values)
        for _, special_name in hmap.same:
            assert special_name in special.hparam_names
        assert hmap.lr_factor(values, 0) > 0


def test_map_kinds() -> None:
    by_pair = {(r.special, r.general): r.hparam_map for r in default_taxonomy().relations}
    assert by_pair[("sgd", "momentum")] == HparamMap(fixed=(("momentum", 0.0),))
    rms = by_pair[("momentum", "rmsprop")]
    assert rms is not None
    assert rms.exact
    assert rms.constant_schedule_only
    adam = by_pair[("momentum", "adam")]
    assert adam is not None
    assert not adam.exact
    assert adam.limit is not None
    assert adam.limit[0] == "epsilon"
    assert adam.limit[1] >= 1e6


@given(
    gamma=st.floats(0.0, 0.999),
    beta2=st.floats(0.0, 0.999),
    eps=st.floats(1e-8, 1e10),
    step=st.integers(0, 10_000),
)
def test_lr_factors_follow_their_formulas(
    gamma: float, beta2: float, eps: float, step: int
) -> None:
    general = {"beta1": gamma, "beta2": beta2, "epsilon": eps}
    assert LrScaling.IDENTITY.factor(general, step) == 1.0
    assert LrScaling.SQRT_ONE_PLUS_EPS.factor(general, step) == pytest.approx(math.sqrt(1 + eps))
    b = math.sqrt(1 - beta2 ** (step + 1)) / (1 - gamma ** (step + 1))
    # Adam's step alpha_t b m / eps with m = (1 - gamma) v_momentum equals eta_t v_momentum.
    alpha = LrScaling.ADAM_BIAS.factor(general, step)
    assert alpha * b * (1 - gamma) / eps == pytest.approx(1.0, rel=1e-12)


def test_taxonomy_with_maps_round_trips_through_json_and_toml(tmp_path: Path) -> None:
    tax = default_taxonomy()
    path = tmp_path / "tax.json"
    path.write_text(json.dumps(tax.to_mapping()))
    assert Taxonomy.from_file(path) == tax

    toml = tmp_path / "tax.toml"
    toml.write_text(
        """
[[inclusion]]
special = "sgd"
general = "adam"
limit = "my words"
[inclusion.map]
free = { beta1 = 0.0, beta2 = 0.9 }
limit = { hparam = "epsilon", value = 1e9 }
lr_scaling = "adam_bias"
""",
        encoding="utf-8",
    )
    (rel,) = Taxonomy.from_file(toml).relations
    assert rel.hparam_map == HparamMap(
        free=(("beta1", 0.0), ("beta2", 0.9)), limit=("epsilon", 1e9), lr_scaling="adam_bias"
    )


@pytest.mark.parametrize(
    ("map_data", "pattern"),
    [
        ({"lr_scaling": "cubic"}, r"inclusion\[0\]\.map: lr_scaling = 'cubic' is not one of"),
        ({"limits": {}}, r"inclusion\[0\]\.map: unknown key 'limits'"),
        ({"limit": {"hparam": "epsilon"}}, r"inclusion\[0\]\.map: malformed"),
        ({"fixed": {"rho": "one"}}, r"inclusion\[0\]\.map: malformed"),
        ({"constant_schedule_only": "yes"}, r"constant_schedule_only must be true or false"),
        ("rho = 1", r"inclusion\[0\]\.map: expected a table"),
    ],
)
def test_bad_maps_are_config_errors(map_data: object, pattern: str) -> None:
    data = {"inclusion": [{"special": "sgd", "general": "momentum", "map": map_data}]}
    with pytest.raises(ConfigError, match=pattern):
        Taxonomy.from_mapping(data, source="t.toml")


def test_archive_taxonomy_keeps_the_default_maps() -> None:
    tax = Taxonomy.from_archive(synthetic_archive(workloads=1, n_trials=2, seed=0))
    assert tax == default_taxonomy()
    assert all(r.hparam_map is not None for r in tax.relations)


def test_restriction_keeps_direct_maps() -> None:
    sub = default_taxonomy().restricted_to(["sgd", "momentum", "adam"])
    maps = {(r.special, r.general): r.hparam_map for r in sub.relations}
    assert maps[("sgd", "momentum")] is not None
    assert maps[("sgd", "adam")] is None  # a chain: no single map declared
