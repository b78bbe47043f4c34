"""A rule registered from Python (`optcmp.register_rule`, docs/extending.md section 1)
lives only in the process that registered it: its groups run in that process with one
local worker, and with several workers (fresh processes that cannot see it) the run
refuses in one line before any group starts, saying how to make it loadable."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import optcmp
from optcmp import Family, HyperparamSpec, Rule, SearchRange
from optcmp.runner import LocalExecutor, run_study
from optcmp_data import FAMILY_SPECS, ConfigError, open_archive


class _SignDescent(Rule):
    family = Family(
        "py_registered_sign",
        "Sign descent",
        (HyperparamSpec("learning_rate", "eta_t", 1e-3, 0.0, math.inf, True, False, "step"),),
        "theta -= eta_t sign(g)",
        presets={"lr-only": (SearchRange("learning_rate", 1e-4, 1e-2, "log"),)},
    )

    def _coefficients(self, h: Any, lr: Any, step: Any) -> dict[str, Any]:
        return {"neg_lr": -lr}

    def _kernel(self, p: Any, g: Any, bufs: Any, c: Any) -> None:
        direction = list(torch._foreach_sign(g))
        torch._foreach_mul_(direction, c["neg_lr"])
        torch._foreach_add_(p, direction)


@pytest.fixture(scope="module")
def spec() -> optcmp.StudySpec:
    if "py_registered_sign" not in FAMILY_SPECS:
        optcmp.register_rule(_SignDescent())
    return optcmp.StudySpec.from_mapping(
        {
            "workloads": ["noisy_quadratic"],
            "optimizers": ["sgd", "py_registered_sign"],
            "trials": 2,
            "step_budget": 20,
            "eval_interval": 10,
            "space": "lr-only",
            "seed": 3,
        }
    )


def test_a_python_registered_rule_runs_in_this_process(
    spec: optcmp.StudySpec, tmp_path: Path
) -> None:
    run_study(spec, tmp_path / "runs")
    archive = open_archive(tmp_path / "runs")
    assert sorted(archive["optimizer"].values) == ["py_registered_sign", "sgd"]
    loss = archive["valid_loss"].sel(optimizer="py_registered_sign").values
    assert (loss[..., -1] != loss[..., 0]).all()


@pytest.mark.parametrize(
    ("workers", "timeout"), [(2, None), (1, 60.0)], ids=["two workers", "group time limit"]
)
def test_worker_processes_refuse_a_python_registered_rule_in_one_line(
    spec: optcmp.StudySpec, tmp_path: Path, workers: int, timeout: float | None
) -> None:
    with pytest.raises(ConfigError) as err:
        run_study(spec, tmp_path / "runs", executor=LocalExecutor(workers), group_timeout=timeout)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("optimizer py_registered_sign: registered from Python")
    assert "[plugins]" in message
    assert not list((tmp_path / "runs").glob("**/*.nc"))
