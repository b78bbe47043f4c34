"""What the Optuna and MLflow importers share: the label rule (which value names a trial's
optimizer and workload, and the one-line messages, with the words of each tracker, when
one is missing) and the workload built from a mapping's facts."""

from __future__ import annotations

import math

import pytest

from optcmp_data import ConfigError, DataFormatError
from optcmp_data._builder import ArchiveBuilder
from optcmp_data._schema import Direction, Split
from optcmp_data.importers._common import BadInputs, LabelRule, add_mapped_workload

MLFLOW = "param or tag"


def _labels(rule: LabelRule, *sources: dict[str, object], skip_bad: bool = False) -> object:
    bad = BadInputs(skip_bad=skip_bad)
    got = rule.labels(*sources, item="run r1", default_workload="exp", bad=bad, where="db")
    return got, bad.warnings


def test_optimizer_and_workload_from_the_first_source_that_has_them() -> None:
    rule = LabelRule("optimizer", None, None, MLFLOW)
    assert _labels(rule, {"optimizer": "adam"}, {"optimizer": "sgd"}) == (("exp", "adam"), [])
    assert _labels(rule, {}, {"optimizer": 3}) == (("exp", "3"), [])
    rule = LabelRule("opt", "task", None, MLFLOW)
    assert _labels(rule, {"opt": "adam"}, {"task": "cifar"}) == (("cifar", "adam"), [])
    assert rule.names == {"opt", "task"}
    rule = LabelRule("opt", None, "mnist", MLFLOW)
    assert _labels(rule, {"opt": "adam", "task": "cifar"}) == (("mnist", "adam"), [])
    assert rule.names == {"opt"}


def test_missing_labels_are_one_line_naming_the_option() -> None:
    rule = LabelRule("opt", "task", None, "param or user attribute")
    with pytest.raises(DataFormatError) as err:
        _labels(rule, {"task": "cifar"})
    assert str(err.value) == (
        "db: run r1 has no param or user attribute 'opt' naming its optimizer; choose one "
        "with --optimizer-from"
    )
    with pytest.raises(DataFormatError) as err:
        _labels(rule, {"opt": "adam"})
    assert str(err.value) == "db: run r1 has no param or user attribute 'task' (--workload-from)"
    assert _labels(rule, {"opt": "adam"}, skip_bad=True) == (
        None,
        ["skipped db: run r1 has no param or user attribute 'task' (--workload-from)"],
    )


def test_workload_and_workload_from_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="give --workload or --workload-from, not both"):
        LabelRule("opt", "task", "mnist", MLFLOW)


def test_workload_facts_fill_in_defaults_and_bad_ones_name_the_mapping() -> None:
    builder = ArchiveBuilder(source="test")
    budget = add_mapped_workload(
        builder,
        {"valid_target": 0.25, "selection_split": "test"},
        name="w",
        source="map.toml",
        direction="max",
        metric_name="accuracy",
        step_budget=40,
    )
    assert budget == 40
    info = builder._workloads["w"]
    assert (info.metric_name, info.direction, info.valid_target) == ("accuracy", "max", 0.25)
    assert (info.step_budget, info.selection_split) == (40, Split.TEST)
    assert math.isnan(info.test_target)

    def add(name: str, facts: dict[str, object]) -> int:
        return add_mapped_workload(
            builder,
            facts,
            name=name,
            source="map.toml",
            direction=Direction.MIN,
            metric_name="x",
            step_budget=1,
        )

    assert add("v", {"step_budget": "12", "metric_name": "loss"}) == 12
    assert builder._workloads["v"].metric_name == "loss"
    with pytest.raises(ConfigError, match=r"^map\.toml: workload 'u': .*'often'"):
        add("u", {"selection_split": "often"})
