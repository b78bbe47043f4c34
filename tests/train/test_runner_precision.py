"""Precision settings: bf16 autocast trains float32 parameters to within a stated tolerance
of fp32, tf32 is fp32 on the CPU, and the study file and archive carry the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from optcmp.runner import (
    GroupResult,
    LocalExecutor,
    run_study,
)
from optcmp.runner._device import autocast, group_settings
from optcmp.runner._train import choose_path
from optcmp.runner._vmap import VmapPath
from optcmp.study import PRECISIONS, StudySpec
from optcmp.workloads import get_workload
from optcmp_data import ConfigError, Status, open_archive
from tests.train.groups import CPU, stable_trials, train_on_cpu

# The documented effect of bf16 (docs/running.md): on digits_mlp with Momentum, 60 steps,
# loss curves within 1% (relative) of fp32 and error rates within 2 validation examples.
LOSS_RTOL = 0.01
METRIC_ATOL = 2 / 300


def _train(precision: str, optimizer: str = "momentum", **kw: Any) -> GroupResult:
    return train_on_cpu(
        get_workload("digits_mlp"),
        optimizer,
        stable_trials(optimizer, 4, seed=11),
        [1, 2, 3, 4],
        data_seed=7,
        step_budget=60,
        eval_interval=20,
        precision=precision,
        **kw,
    )


def test_bf16_trials_agree_with_fp32_to_the_stated_tolerance() -> None:
    fp32, bf16 = _train("fp32"), _train("bf16")
    assert fp32.status == bf16.status == (Status.COMPLETED,) * 4
    for name in ("train_loss", "valid_loss", "test_loss"):
        np.testing.assert_allclose(bf16.curves[name], fp32.curves[name], rtol=LOSS_RTOL)
    for name in ("train_metric", "valid_metric", "test_metric"):
        np.testing.assert_allclose(bf16.curves[name], fp32.curves[name], atol=METRIC_ATOL)
    # bf16 really ran: after training, the curves are not fp32's bit for bit ...
    assert not np.array_equal(bf16.curves["train_loss"][:, 1:], fp32.curves["train_loss"][:, 1:])
    # ... and step 0 (the same float32 parameters, evaluated in bf16) differs by rounding only.
    np.testing.assert_allclose(
        bf16.curves["valid_loss"][:, 0], fp32.curves["valid_loss"][:, 0], 3e-3
    )


def test_tf32_is_fp32_on_the_cpu() -> None:
    a, b = _train("fp32", "adam"), _train("tf32", "adam")
    for name in a.curves:
        np.testing.assert_array_equal(a.curves[name], b.curves[name])


def test_bf16_keeps_float32_parameters_gradients_and_state() -> None:
    workload = get_workload("digits_mlp")
    models = [workload.build_model(s) for s in (1, 2)]
    names = [n for n, _ in models[0].named_parameters()]
    params = [torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in names]
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    # bf16 always takes the vmap path (the grouped layers compute in float32 only).
    path = choose_path(
        workload, models, names, params, {}, x, device=CPU, grouped_layers=True, precision="bf16"
    )
    assert isinstance(path, VmapPath)
    losses = path.forward(params, x, y)
    grads = path.backward(params, torch.ones(2, dtype=torch.bool))
    assert all(g.dtype == torch.float32 for g in grads)
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in params)
    # The forward pass ran in bf16: its logits carry bf16 rounding.
    with autocast(CPU, "bf16"):
        logits = models[0](x)
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(losses).all()


def test_group_settings_restore_threads_and_reject_unknown_precisions() -> None:
    before = torch.get_num_threads()
    with group_settings(CPU, "bf16"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="precision 'fp16'"), group_settings(CPU, "fp16"):
        pass
    with pytest.raises(ConfigError, match="precision"):
        _train("fp8")


STUDY = """
workloads = ["noisy_quadratic"]
optimizers = ["sgd"]
trials = 2
step_budget = 10
eval_interval = 5
"""


def test_precision_is_a_study_setting_recorded_in_the_archive(tmp_path: Path) -> None:
    assert PRECISIONS[0] == "fp32"
    plain = StudySpec.from_mapping(
        {"workloads": ["noisy_quadratic"], "optimizers": ["sgd"], "trials": 1}
    )
    assert plain.precision == "fp32"
    assert "precision" not in plain.to_json()  # study directories of earlier versions resume
    path = tmp_path / "bf16.toml"
    path.write_text(STUDY + 'precision = "bf16"\n', encoding="utf-8")
    spec = StudySpec.from_toml(path)
    assert spec.precision == "bf16"
    assert spec.to_json()["precision"] == "bf16"
    run_study(spec, tmp_path / "out", executor=LocalExecutor(1))
    assert open_archive(tmp_path / "out").attrs["precision"] == "bf16"
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY + 'precision = "half"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: key 'precision': expected one of fp32"):
        StudySpec.from_toml(bad)
