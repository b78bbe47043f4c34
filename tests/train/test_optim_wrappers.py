"""The torch.optim wrappers: agreement with torch.optim where the parameterisations
coincide, agreement with the batched rules elsewhere, and validation errors."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from optcmp.optim import (
    RULES,
    PaperAdam,
    PaperMomentum,
    PaperNAdam,
    PaperNesterov,
    PaperOptimizer,
    PaperRMSProp,
    PaperSGD,
)
from optcmp_data import FAMILY_SPECS, ConfigError

STEPS = 200
WRAPPERS: dict[str, type[PaperOptimizer]] = {
    "sgd": PaperSGD,
    "momentum": PaperMomentum,
    "nesterov": PaperNesterov,
    "rmsprop": PaperRMSProp,
    "adam": PaperAdam,
    "nadam": PaperNAdam,
}


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int = STEPS) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    for t in range(steps):
        idx = torch.arange(t * 8, t * 8 + 8) % 64  # fixed data order
        opt.zero_grad()
        loss = ((model(x[idx]) - y[idx]) ** 2).mean()
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


TORCH_PAIRS: list[
    tuple[str, Callable[[Any], torch.optim.Optimizer], Callable[[Any], torch.optim.Optimizer]]
] = [
    ("sgd", lambda ps: PaperSGD(ps, lr=0.05), lambda ps: torch.optim.SGD(ps, lr=0.05)),
    (
        "momentum",
        lambda ps: PaperMomentum(ps, lr=0.02, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9, dampening=0),
    ),
    (
        "nesterov",
        lambda ps: PaperNesterov(ps, lr=0.02, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9, dampening=0, nesterov=True),
    ),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), TORCH_PAIRS, ids=[p[0] for p in TORCH_PAIRS])
def test_matches_torch_optim_where_rules_coincide(
    name: str,
    ours: Callable[[Any], torch.optim.Optimizer],
    theirs: Callable[[Any], torch.optim.Optimizer],
) -> None:
    m1, m2 = make_model(0), make_model(0)
    a = train(m1, ours(m1.parameters()))
    b = train(m2, theirs(m2.parameters()))
    start = [p.detach() for p in make_model(0).parameters()]
    for pa, pb, p0 in zip(a, b, start, strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-9)
        assert not torch.allclose(pa, p0)


def test_adam_differs_from_torch_adam_by_eps_placement() -> None:
    """Same moments, different eps placement: visible for a large eps, early in training."""
    m1, m2 = make_model(0), make_model(0)
    a = train(m1, PaperAdam(m1.parameters(), lr=0.01, epsilon=1.0), steps=3)
    b = train(m2, torch.optim.Adam(m2.parameters(), lr=0.01, eps=1.0), steps=3)
    assert max((pa - pb).abs().max().item() for pa, pb in zip(a, b, strict=True)) > 1e-4


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_wrapper_equals_batched_rule(name: str) -> None:
    """The wrapper is the rule with K = 1; the rule is tested against the scalar reference."""
    model = make_model(1)
    family = FAMILY_SPECS[name]
    values = family.defaults()
    values["learning_rate"] = 0.01
    kwargs = {("lr" if k == "learning_rate" else k): v for k, v in values.items()}
    got = train(model, WRAPPERS[name](model.parameters(), **kwargs), steps=20)

    ref = make_model(1)
    rule = RULES[name]
    params = [p.detach().clone().unsqueeze(0) for p in ref.parameters()]
    state = rule.init(params)
    hp = {k: torch.tensor([v], dtype=torch.float64) for k, v in values.items()}
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    for t in range(20):
        idx = torch.arange(t * 8, t * 8 + 8) % 64
        with torch.no_grad():
            for p, q in zip(ref.parameters(), params, strict=True):
                p.copy_(q[0])
        ref.zero_grad()
        ((ref(x[idx]) - y[idx]) ** 2).mean().backward()
        grads = [p.grad.unsqueeze(0) for p in ref.parameters() if p.grad is not None]
        rule.apply_(params, grads, state, hp, hp["learning_rate"], t)
    for a, b in zip(got, params, strict=True):
        torch.testing.assert_close(a, b[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_wrapper_signature_defaults_are_the_family_defaults(name: str) -> None:
    sig = inspect.signature(WRAPPERS[name])
    defaults = {
        ("learning_rate" if k == "lr" else k): v.default
        for k, v in sig.parameters.items()
        if k != "params"
    }
    assert defaults == FAMILY_SPECS[name].defaults()


def test_wrapper_works_with_torch_lr_scheduler_and_state_dict() -> None:
    model = make_model(2)
    opt = PaperAdam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train(model, opt, steps=2)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)
    saved = opt.state_dict()
    assert all(s["step"] == 2 for s in saved["state"].values())
    opt2 = PaperAdam(make_model(2).parameters(), lr=0.01)
    opt2.load_state_dict(saved)
    assert opt2.state_dict()["state"][0]["step"] == 2


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda ps: PaperSGD(ps, lr=-0.1), r"optimizer sgd: hyperparameter learning_rate = -0\.1"),
        (
            lambda ps: PaperMomentum(ps, momentum=1.0),
            r"optimizer momentum: hyperparameter momentum = 1\.0",
        ),
        (lambda ps: PaperAdam(ps, beta1=-0.1), r"optimizer adam: hyperparameter beta1 = -0\.1"),
        (
            lambda ps: PaperAdam(ps, beta2=1.0),
            r"optimizer adam: hyperparameter beta2 = 1\.0 .*\[0, 1\)",
        ),
        (lambda ps: PaperNAdam(ps, epsilon=0.0), r"optimizer nadam: hyperparameter epsilon = 0\.0"),
        (
            lambda ps: PaperRMSProp(ps, rho=1.5),
            r"optimizer rmsprop: hyperparameter rho = 1\.5 .*\[0, 1\]",
        ),
        (
            lambda ps: PaperRMSProp(ps, epsilon=float("nan")),
            r"rmsprop: hyperparameter epsilon = nan",
        ),
    ],
)
def test_bad_hyperparameters_raise_config_error(
    make: Callable[[Any], torch.optim.Optimizer], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        make(make_model(0).parameters())


def test_rho_one_is_valid_for_rmsprop() -> None:
    PaperRMSProp(make_model(0).parameters(), rho=1.0)


def test_bad_lr_set_after_construction_is_caught_at_step() -> None:
    model = make_model(0)
    opt = PaperSGD(model.parameters(), lr=0.1)
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ConfigError, match=r"learning_rate = -1\.0"):
        train(model, opt, steps=1)


def test_unknown_keyword_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"no hyperparameter 'beta_1'.*did you mean 'beta1'"):
        PaperOptimizer.__init__(
            PaperAdam.__new__(PaperAdam), make_model(0).parameters(), beta_1=0.9
        )
