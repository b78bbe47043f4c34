"""The runner's grouped-layer fast path (stacked Flatten / Linear / ReLU models trained as
grouped matmuls) gives the curves of the vmap path, and only models that offer it use it."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from optcmp.runner._grouped import _GroupedLayers
from optcmp.workloads import Workload, get_workload
from optcmp.workloads._models import MLP
from optcmp_data import CURVE_VARS, Status
from tests.train.groups import CPU, cpu_splits, stable_trials, train_on_cpu

# Data seed 3, linear decay, 30 steps evaluated every 10.
_train = functools.partial(train_on_cpu, data_seed=3)


@pytest.mark.parametrize("optimizer", ["momentum", "adam", "rmsprop"])
def test_grouped_path_equals_vmap_path(optimizer: str) -> None:
    workload = get_workload("digits_mlp")
    hparams, seeds = stable_trials(optimizer, 4, seed=5), [11, 12, 13, 14]
    fast = _train(workload, optimizer, hparams, seeds, grouped_layers=True)
    vmapped = _train(workload, optimizer, hparams, seeds, grouped_layers=False)
    assert fast.status == vmapped.status == (Status.COMPLETED,) * 4
    for name in ("train_loss", "valid_loss", "test_loss"):
        np.testing.assert_allclose(fast.curves[name], vmapped.curves[name], rtol=1e-5)
    for name in ("train_metric", "valid_metric", "test_metric"):
        # Error rates: a logit moved across a decision boundary by rounding changes one count.
        np.testing.assert_allclose(fast.curves[name], vmapped.curves[name], atol=1.5 / 300)


def test_grouped_path_contains_divergence_like_the_vmap_path() -> None:
    workload = get_workload("digits_mlp")
    stable = stable_trials("sgd", 2, seed=5)
    hparams = [stable[0], {"learning_rate": 1e6}, stable[1]]
    fast = _train(workload, "sgd", hparams, [1, 2, 3], grouped_layers=True)
    vmapped = _train(workload, "sgd", hparams, [1, 2, 3], grouped_layers=False)
    assert fast.status == vmapped.status == (Status.COMPLETED, Status.DIVERGED, Status.COMPLETED)
    for name in CURVE_VARS:
        np.testing.assert_array_equal(np.isnan(fast.curves[name]), np.isnan(vmapped.curves[name]))
        kept = fast.curves[name][[0, 2]]
        np.testing.assert_allclose(kept, vmapped.curves[name][[0, 2]], rtol=1e-5, atol=1.5 / 300)


def test_grouped_path_is_bit_identical_across_runs() -> None:
    workload = get_workload("digits_mlp")
    hparams = stable_trials("nadam", 3, seed=5)
    a = _train(workload, "nadam", hparams, [7, 8, 9], grouped_layers=True)
    b = _train(workload, "nadam", hparams, [7, 8, 9], grouped_layers=True)
    for name in CURVE_VARS:
        np.testing.assert_array_equal(a.curves[name], b.curves[name])


def test_only_models_with_a_sequential_view_are_grouped() -> None:
    mlp, cnn = get_workload("digits_mlp"), get_workload("digits_cnn")
    x_flat = cpu_splits(mlp)
    assert _GroupedLayers.of(mlp, mlp.build_model(0), x_flat.train.inputs) is not None
    x_image = cnn.load(None, device=CPU).train.inputs
    assert _GroupedLayers.of(cnn, cnn.build_model(0), x_image) is None

    class Partial(nn.Module):
        """A view that leaves a parameter out must not be grouped."""

        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(64, 8), nn.Linear(8, 10)

        def as_sequential(self) -> nn.Sequential:
            return nn.Sequential(self.a)

    assert _GroupedLayers.of(mlp, Partial(), x_flat.train.inputs) is None


def test_sequential_view_and_trial_losses_equal_the_plain_forms() -> None:
    workload = get_workload("digits_mlp")
    model = workload.build_model(4)
    assert isinstance(model, MLP)
    x = torch.randn(50, 8, 8)
    with torch.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), model.as_sequential()(x).numpy())
    outputs = torch.randn(5, 10, 50).transpose(1, 2)  # the runner's feature-major memory
    targets = torch.randint(0, 10, (50,))
    default = Workload.trial_losses(workload, outputs, targets)
    torch.testing.assert_close(workload.trial_losses(outputs, targets), default, rtol=1e-6, atol=0)
    got, grad = workload.trial_loss_grads(outputs, targets)
    want, want_grad = Workload.trial_loss_grads(workload, outputs, targets)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(
        workload.trial_metrics(outputs, targets),
        Workload.trial_metrics(workload, outputs, targets),
        rtol=0,
        atol=0,
    )


def test_grouped_gradients_equal_autograd_through_vmap() -> None:
    workload = get_workload("digits_mlp")
    models = [workload.build_model(s) for s in (1, 2, 3)]
    names = [n for n, _ in models[0].named_parameters()]
    params = [torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in names]
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    grouped = _GroupedLayers.of(workload, models[0], x)
    assert grouped is not None
    with torch.no_grad():
        out, saved = grouped.forward(params, x)
    got_losses, d_out = grouped.loss_grads(out, y)
    grads = [torch.zeros_like(p) for p in params]
    grouped.backward(params, saved, d_out, grads)

    leaves = [p.clone().requires_grad_(True) for p in params]

    def loss_one(ps: dict[str, torch.Tensor]) -> torch.Tensor:
        return workload.loss(torch.func.functional_call(models[0], ps, (x,)), y)

    losses = torch.func.vmap(loss_one)(dict(zip(names, leaves, strict=True)))
    expected = torch.autograd.grad(losses.sum(), leaves)
    torch.testing.assert_close(got_losses, losses.detach(), rtol=1e-6, atol=0)
    for name, got, want in zip(names, grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7, msg=name)
