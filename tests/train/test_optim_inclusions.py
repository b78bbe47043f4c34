"""Inclusions, numerically, driven by the taxonomy data: one test per declared relation.

For each relation special ⊆ general with a hyperparameter map, `check_inclusion` (the
machinery of `optcmp optimizers check-inclusion`) trains a small MLP for 200 steps with a
fixed data order with both rules; the general one, with the hyperparameters and
step-dependent learning rate the map prescribes, must reproduce the trajectory: bit for
bit where the map is exact with an unchanged learning rate, to 1e-10 where exact up to
rounding, and to 1e-4 relative where the relation is a limit. Adding a relation to the
taxonomy adds a test here; a deliberately wrong relation must fail.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optcmp.optim import Schedule, check_inclusion, get_rule, scheduled_lr
from optcmp.optim._inclusion import general_hparams, general_lr
from optcmp_data import FAMILY_SPECS, HparamMap, Inclusion, LrScaling, default_taxonomy

STEPS = 200
RELATIONS = [r for r in default_taxonomy().relations if r.hparam_map is not None]


def mlp_params(seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    return [p.detach().clone().unsqueeze(0) for p in net.parameters()]


def loss_grads(params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    w1, b1, w2, b2 = (p[0].detach().requires_grad_(True) for p in params)
    out = torch.tanh(x @ w1.T + b1) @ w2.T + b2
    loss = nn.functional.cross_entropy(out, y)
    return [g.unsqueeze(0) for g in torch.autograd.grad(loss, [w1, b1, w2, b2])]


def trajectory(
    name: str,
    hparams: dict[str, torch.Tensor],
    lr_at: list[torch.Tensor],
) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(96, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (96,), generator=gen)
    order = torch.randperm(96, generator=gen)  # one fixed data order for both optimizers
    rule = get_rule(name)
    params = mlp_params(5)
    state = rule.init(params)
    out = []
    for t in range(STEPS):
        idx = order[(t * 16) % 96 : (t * 16) % 96 + 16]
        rule.apply_(params, loss_grads(params, x[idx], y[idx]), state, hparams, lr_at[t], t)
        out.append([p.clone() for p in params])
    return out


def special_hparams(name: str) -> dict[str, torch.Tensor]:
    values = FAMILY_SPECS[name].defaults()
    values["learning_rate"] = 0.05
    return {k: torch.tensor([v], dtype=torch.float64) for k, v in values.items()}


@pytest.mark.parametrize(
    "relation", RELATIONS, ids=[f"{r.special}-in-{r.general}" for r in RELATIONS]
)
def test_general_reproduces_special(relation: Inclusion) -> None:
    """The same machinery as `optcmp optimizers check-inclusion` (optcmp.optim._check)."""
    hmap = relation.hparam_map
    assert hmap is not None
    result = check_inclusion(relation, steps=STEPS)
    assert result.moved > 1e-2
    assert result.passed, result
    if hmap.exact and hmap.lr_scaling is LrScaling.IDENTITY:
        assert result.max_deviation == 0.0  # bit for bit
    assert result.tol == (1e-10 if hmap.exact else 1e-4)


def test_a_wrong_declared_relation_fails_with_its_deviation() -> None:
    """Momentum ⊆ RMSProp declared with an unscaled learning rate: RMSProp with rho = 1
    divides by sqrt(1 + eps), so the trajectories separate and the check must say so."""
    wrong = Inclusion(
        "momentum",
        "rmsprop",
        "rho = 1 without the learning-rate factor (wrong)",
        HparamMap(
            same=(("momentum", "momentum"),), fixed=(("rho", 1.0),), free=(("epsilon", 0.5),)
        ),
    )
    result = check_inclusion(wrong, steps=50)
    assert not result.passed
    assert result.max_deviation > 1e-3


def test_check_on_a_workload() -> None:
    (relation,) = [r for r in RELATIONS if (r.special, r.general) == ("adam", "adamw")]
    result = check_inclusion(relation, steps=20, workload="digits_mlp")
    assert result.passed
    assert result.max_deviation == 0.0
    assert result.moved > 1e-3


def test_rmsprop_inclusion_is_only_approximate_under_decay() -> None:
    """The map's constant_schedule_only flag is needed: with decay the paths separate."""
    (relation,) = [r for r in RELATIONS if (r.special, r.general) == ("momentum", "rmsprop")]
    special = special_hparams("momentum")
    sched = {
        "decay_factor": torch.tensor([0.01], dtype=torch.float64),
        "decay_steps_fraction": torch.tensor([0.5], dtype=torch.float64),
    }
    lr_special = [
        scheduled_lr(Schedule.LINEAR_DECAY, special["learning_rate"], t, STEPS, sched)
        for t in range(STEPS)
    ]
    general = general_hparams(relation, special)
    lr_general = [general_lr(relation, general, lr_special[t], t) for t in range(STEPS)]
    a = trajectory("momentum", special, lr_special)[-1]
    b = trajectory("rmsprop", general, lr_general)[-1]
    rel = max(((pa - pb).norm() / pa.norm()).item() for pa, pb in zip(a, b, strict=True))
    assert rel > 1e-4


def test_tensor_maps_agree_with_the_data_layer_floats() -> None:
    for relation in RELATIONS:
        hmap = relation.hparam_map
        assert hmap is not None
        special = special_hparams(relation.special)
        general = general_hparams(relation, special)
        floats = hmap.general_hparams({k: v.item() for k, v in special.items()})
        assert {k: v.item() for k, v in general.items()} == pytest.approx(floats)
        for t in (0, 1, 7, 150):
            lr = general_lr(relation, general, torch.tensor([2.0], dtype=torch.float64), t)
            assert lr.item() == pytest.approx(2.0 * hmap.lr_factor(floats, t), rel=1e-12)
