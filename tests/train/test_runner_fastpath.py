"""The accelerator-oriented parts of a group's step, on the CPU: results do not depend on
how often the host reads the divergence mask, device-side minibatch indices equal the
host's, channels-last inputs and a compiled vmap path train the same trials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import pytest
import torch

from optcmp.runner import (
    GroupResult,
    GroupTrials,
    TrainOptions,
    data_order,
    train_group,
)
from optcmp.runner._grouped import GroupedPath
from optcmp.runner._train import choose_path
from optcmp.runner._vmap import VmapPath
from optcmp.spaces import SearchSpace
from optcmp.workloads import Workload, get_workload
from optcmp_data import CURVE_VARS, Status
from tests.train.groups import CPU, cpu_splits, stable_trials, train_on_cpu


def _train(
    workload: Workload, hparams: list[dict[str, float]], *, optimizer: str = "sgd", **kw: Any
) -> GroupResult:
    """Trials 1..K of `optimizer` at a constant learning rate, data seed 5, 40 steps
    evaluated every 10 unless given."""
    kw = {"step_budget": 40, **kw}
    return train_on_cpu(
        workload,
        optimizer,
        hparams,
        range(1, len(hparams) + 1),
        data_seed=5,
        schedule="constant",
        **kw,
    )


def _same(a: GroupResult, b: GroupResult) -> None:
    assert a.status == b.status
    for name in CURVE_VARS:
        np.testing.assert_array_equal(a.curves[name], b.curves[name], err_msg=name)


# A trial that diverges in its first steps, one that diverges later, and stable ones.
_QUADRATIC = [{"learning_rate": 0.5}, {"learning_rate": 1e4}, {"learning_rate": 3.5}]


@pytest.mark.parametrize("every", [2, 7, 1000])
def test_divergence_checked_every_few_steps_gives_the_every_step_results(every: int) -> None:
    workload = get_workload("noisy_quadratic")
    each = _train(workload, _QUADRATIC, divergence_check=1, step_budget=60)
    assert each.status == (Status.COMPLETED, Status.DIVERGED, Status.DIVERGED)
    # NaN from the evaluation after the step it diverged: early for one, late for the other.
    assert np.isnan(each.curves["train_loss"][1, 1:]).all()
    late = each.curves["train_loss"][2]
    assert np.isfinite(late[:4]).all()
    assert np.isnan(late[-1])
    _same(each, _train(workload, _QUADRATIC, divergence_check=every, step_budget=60))


@pytest.mark.parametrize("grouped", [True, False])
def test_lazy_divergence_checks_on_both_paths_of_an_mlp(grouped: bool) -> None:
    workload = get_workload("digits_mlp")
    stable = stable_trials("sgd", 2, seed=5)
    hparams = [stable[0], {"learning_rate": 1e6}, stable[1]]
    runs = [
        _train(workload, hparams, divergence_check=every, grouped_layers=grouped)
        for every in (1, 5, 100)
    ]
    assert runs[0].status == (Status.COMPLETED, Status.DIVERGED, Status.COMPLETED)
    for other in runs[1:]:
        _same(runs[0], other)


def test_every_trial_diverging_with_rare_checks_still_gives_every_evaluation() -> None:
    workload = get_workload("noisy_quadratic")
    group = _train(workload, [{"learning_rate": 1e4}] * 2, step_budget=50, divergence_check=30)
    assert group.status == (Status.DIVERGED, Status.DIVERGED)
    assert list(group.step) == [0, 10, 20, 30, 40, 50]
    assert np.isnan(group.curves["valid_loss"][:, 1:]).all()
    assert (np.diff(group.time) >= 0).all()


def test_device_side_indices_equal_the_host_order() -> None:
    host = data_order(100, 32, 3)
    device = data_order(100, 32, 3, device=CPU)
    for _ in range(10):  # three epochs and a bit
        assert torch.equal(next(host), next(device))


def test_channels_last_inputs_train_the_same_trials() -> None:
    workload = get_workload("digits_cnn")
    hparams = [{"learning_rate": 0.05}, {"learning_rate": 0.1}]
    plain = _train(workload, hparams, step_budget=6, eval_interval=3, channels_last=False)
    last = _train(workload, hparams, step_budget=6, eval_interval=3, channels_last=True)
    for name in ("train_loss", "valid_loss", "test_loss"):
        np.testing.assert_allclose(last.curves[name], plain.curves[name], rtol=1e-5)


def test_paths_share_one_interface() -> None:
    mlp, cnn = get_workload("digits_mlp"), get_workload("digits_cnn")
    for workload, grouped, kind in (
        (mlp, True, GroupedPath),
        (mlp, False, VmapPath),
        (cnn, True, VmapPath),
    ):
        models = [workload.build_model(s) for s in (1, 2)]
        names = [n for n, _ in models[0].named_parameters()]
        params = [
            torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in names
        ]
        split = cpu_splits(workload)
        x, y = split.train.inputs[:8], split.train.targets[:8]
        path = choose_path(
            workload, models, names, params, {}, x, device=CPU, grouped_layers=grouped
        )
        assert isinstance(path, kind)
        losses = path.forward(params, x, y)
        grads = path.backward(params, torch.ones(2, dtype=torch.bool))
        assert losses.shape == (2,)
        assert [g.shape for g in grads] == [p.shape for p in params]
        loss, metric = path.evaluate(params, split.valid, 64)
        assert loss.shape == metric.shape == (2,)


@pytest.mark.slow
def test_compiled_vmap_path_constructs_and_trains_the_same_trials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """compile = "default" goes through torch.compile (here with dynamo's eager back end:
    inductor needs a C++ tool chain) and gives the uncompiled curves."""
    real = torch.compile
    modes: list[str | None] = []

    def eager_compile(fn: Callable[..., Any], **kw: Any) -> Any:
        modes.append(kw.get("mode"))
        return real(fn, backend="eager", dynamic=kw.get("dynamic"))

    monkeypatch.setattr(torch, "compile", eager_compile)
    workload = get_workload("noisy_quadratic")
    hparams = [{"learning_rate": 0.5}, {"learning_rate": 0.1}]
    plain = _train(workload, hparams, step_budget=10, eval_interval=5)
    compiled = _train(workload, hparams, step_budget=10, eval_interval=5, compile_mode="default")
    assert modes == ["default", "default"]  # the loss and the evaluation functions
    for name in CURVE_VARS:
        np.testing.assert_allclose(compiled.curves[name], plain.curves[name], rtol=1e-6)


def test_loop_workloads_are_not_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    workload = get_workload("noisy_quadratic")
    workload.spec = attrs.evolve(workload.spec, supports_vmap=False)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled a loop"))
    group = _train(
        workload, [{"learning_rate": 0.5}], step_budget=4, eval_interval=2, compile_mode="default"
    )
    assert group.status == (Status.COMPLETED,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    ("precision", "compile_mode"), [("fp32", "none"), ("bf16", "none"), ("fp32", "reduce-overhead")]
)
def test_a_cuda_group_trains_the_cpu_groups_trials(precision: str, compile_mode: str) -> None:
    """On a GPU (channels-last batches, pinned device-side indices, cuDNN autotuning,
    lazy divergence checks, optionally CUDA graphs) a group gives the CPU's curves up to
    the rounding of its precision."""
    from optcmp.runner import group_settings

    workload = get_workload("digits_cnn")
    on_cpu = cpu_splits(workload)
    cuda = torch.device("cuda")
    hparams = [{"learning_rate": 0.05}, {"learning_rate": 0.1}, {"learning_rate": 1e6}]
    runs = []
    for device, splits in ((CPU, on_cpu), (cuda, on_cpu.to(cuda))):
        with group_settings(device, precision):
            runs.append(
                train_group(
                    workload,
                    splits,
                    GroupTrials(hparams, [1, 2, 3], data_seed=5),
                    space=SearchSpace("test", "momentum", "constant"),
                    device=device,
                    spec=attrs.evolve(
                        workload.spec, step_budget=20, eval_interval=10, batch_size=32
                    ),
                    options=TrainOptions(
                        precision=precision,
                        compile_mode=compile_mode if device.type == "cuda" else "none",
                    ),
                )
            )
    cpu_run, gpu_run = runs
    assert gpu_run.status == cpu_run.status
    rtol = 2e-2 if precision == "bf16" else 1e-3
    for name in ("train_loss", "valid_loss", "test_loss"):
        np.testing.assert_allclose(gpu_run.curves[name][:2], cpu_run.curves[name][:2], rtol=rtol)
