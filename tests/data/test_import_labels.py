"""The label rule the Optuna and MLflow importers share: which value names a trial's
optimizer and workload, and the one-line messages (with the words of each tracker) when
one is missing."""

from __future__ import annotations

import pytest

from optcmp_data import ConfigError, DataFormatError
from optcmp_data.importers._common import BadInputs, LabelRule

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
