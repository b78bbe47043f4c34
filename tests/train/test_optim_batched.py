"""K trials in one batched call equal K separate single-trial runs, for every rule and
schedule (float32, as the runner trains; 1e-5 relative), and the schedules follow their
formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import optcmp.optim._rules as rules_module
from optcmp.optim import (
    RULES,
    Schedule,
    batch_hparams,
    get_rule,
    scheduled_lr,
    validate_hparams,
    validate_schedule,
)
from optcmp.optim._schedules import schedule_factor
from optcmp_data import ConfigError

K = 4
STEPS = 60
BUDGET = 50  # shorter than STEPS, so every schedule also runs past its end

TRIAL_VALUES: dict[str, list[dict[str, float]]] = {
    "sgd": [{"learning_rate": v} for v in (0.01, 0.03, 0.005, 0.02)],
    "momentum": [
        {"learning_rate": 0.01 * (i + 1), "momentum": m}
        for i, m in enumerate((0.0, 0.5, 0.9, 0.99))
    ],
    "nesterov": [
        {"learning_rate": 0.01 * (i + 1), "momentum": m}
        for i, m in enumerate((0.0, 0.5, 0.9, 0.99))
    ],
    "rmsprop": [
        {"learning_rate": 0.003 * (i + 1), "momentum": m, "rho": r, "epsilon": e}
        for i, (m, r, e) in enumerate(
            ((0.0, 0.9, 1e-10), (0.5, 0.99, 1e-3), (0.9, 1.0, 1.0), (0.0, 0.0, 1e-6))
        )
    ],
    "adam": [
        {"learning_rate": 0.003 * (i + 1), "beta1": b1, "beta2": b2, "epsilon": e}
        for i, (b1, b2, e) in enumerate(
            ((0.9, 0.999, 1e-8), (0.0, 0.9, 1e-3), (0.99, 0.99, 1.0), (0.5, 0.0, 10.0))
        )
    ],
}
TRIAL_VALUES["nadam"] = TRIAL_VALUES["adam"]
TRIAL_VALUES["adamw"] = [
    {**v, "weight_decay": wd}
    for v, wd in zip(TRIAL_VALUES["adam"], (0.0, 0.01, 0.3, 2.0), strict=True)
]
TRIAL_VALUES["nadamw"] = TRIAL_VALUES["adamw"]
SCHEDULE_VALUES = [
    {"decay_factor": f, "decay_steps_fraction": d, "warmup_steps_fraction": w}
    for f, d, w in ((0.1, 0.5, 0.1), (0.0, 1.0, 0.3), (1.0, 0.2, 1.0), (0.5, 0.75, 0.02))
]


def target(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """A nonlinear gradient field, the same function of each trial's own parameters."""
    return [torch.sin(3 * p) + 0.5 * p for p in params]


def run(
    name: str, kind: Schedule, trials: range, params0: list[torch.Tensor]
) -> list[torch.Tensor]:
    rule = get_rule(name)
    idx = list(trials)
    params = [p[idx].clone() for p in params0]
    hp = batch_hparams(name, [TRIAL_VALUES[name][i] for i in idx])
    sched = {k: torch.tensor([SCHEDULE_VALUES[i][k] for i in idx]) for k in SCHEDULE_VALUES[0]}
    state = rule.init(params)
    for t in range(STEPS):
        lr = scheduled_lr(kind, hp["learning_rate"], t, BUDGET, sched)
        rule.apply_(params, target(params), state, hp, lr, t)
    return params


@pytest.mark.parametrize("kind", list(Schedule))
@pytest.mark.parametrize("name", sorted(RULES))
def test_batched_equals_separate(
    name: str, kind: Schedule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small blocks so that the batched call is chunked while the single runs are not.
    monkeypatch.setattr(rules_module, "CHUNK_ELEMENTS", 64)
    gen = torch.Generator().manual_seed(0)
    params0 = [torch.randn(K, 7, 5, generator=gen), torch.randn(K, 5, generator=gen)]
    batched = run(name, kind, range(K), params0)
    for i in range(K):
        single = run(name, kind, range(i, i + 1), params0)
        for b, s, p0 in zip(batched, single, params0, strict=True):
            np.testing.assert_allclose(b[i].numpy(), s[0].numpy(), rtol=1e-5, atol=1e-6)
            assert not torch.allclose(s[0], p0[i])


def scalar_factor(kind: Schedule, t: int, budget: int, f: float, d: float, w: float) -> float:
    if kind is Schedule.CONSTANT:
        return 1.0
    if kind is Schedule.LINEAR_WARMUP:
        return min((t + 1) / (w * budget), 1.0)
    progress = min(t / (d * budget), 1.0)
    if kind is Schedule.LINEAR_DECAY:
        return 1.0 - (1.0 - f) * progress
    return f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * progress))


@given(
    kind=st.sampled_from(list(Schedule)),
    t=st.integers(0, 300),
    budget=st.integers(1, 250),
    f=st.floats(0.0, 1.0),
    d=st.floats(0.01, 1.0),
    w=st.floats(0.01, 1.0),
)
def test_schedules_follow_their_formulas(
    kind: Schedule, t: int, budget: int, f: float, d: float, w: float
) -> None:
    params = {
        "decay_factor": torch.tensor([f, 0.5], dtype=torch.float64),
        "decay_steps_fraction": torch.tensor([d, 0.5], dtype=torch.float64),
        "warmup_steps_fraction": torch.tensor([w, 0.5], dtype=torch.float64),
    }
    base = torch.tensor([0.1, 2.0], dtype=torch.float64)
    got = scheduled_lr(kind, base, t, budget, params)
    assert got[0].item() == pytest.approx(0.1 * scalar_factor(kind, t, budget, f, d, w), rel=1e-12)
    assert got[1].item() == pytest.approx(
        2.0 * scalar_factor(kind, t, budget, 0.5, 0.5, 0.5), rel=1e-12
    )
    factor = schedule_factor(kind, t, budget, params, like=base)
    assert bool(((factor >= 0) & (factor <= 1)).all())


def test_linear_decay_reaches_the_factor_and_stays() -> None:
    params = {"decay_factor": torch.tensor([0.1]), "decay_steps_fraction": torch.tensor([0.5])}
    lrs = [
        scheduled_lr("linear_decay", torch.tensor([1.0]), t, 100, params).item() for t in range(100)
    ]
    assert lrs[0] == 1.0
    assert lrs[50] == pytest.approx(0.1)
    assert lrs[99] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_schedule_errors_name_schedule_and_parameter() -> None:
    with pytest.raises(
        ConfigError, match=r"schedule linear_decay: parameter decay_factor is missing"
    ):
        scheduled_lr("linear_decay", torch.ones(2), 0, 10, {"decay_steps_fraction": torch.ones(2)})
    with pytest.raises(
        ConfigError, match=r"unknown schedule 'cosine'.*did you mean 'cosine_decay'"
    ):
        scheduled_lr("cosine", torch.ones(2), 0, 10, {})
    with pytest.raises(
        ConfigError, match=r"schedule linear_warmup: hyperparameter warmup_steps_fraction = 0\.0"
    ):
        validate_schedule("linear_warmup", {"warmup_steps_fraction": torch.tensor([0.5, 0.0])})
    with pytest.raises(ConfigError, match=r"step_budget = 0"):
        scheduled_lr("constant", torch.ones(2), 0, 0, {})


def test_batch_hparams_fills_defaults_validates_and_rejects_typos() -> None:
    hp = batch_hparams("adam", [{"learning_rate": 0.1}, {"beta1": 0.5, "decay_factor": 0.1}])
    assert hp["learning_rate"].tolist() == pytest.approx([0.1, 0.001])
    assert hp["beta1"].tolist() == pytest.approx([0.9, 0.5])
    assert set(hp) == {"learning_rate", "beta1", "beta2", "epsilon"}
    with pytest.raises(
        ConfigError, match=r"optimizer adam: unknown hyperparameter 'beta_2'.*'beta2'"
    ):
        batch_hparams("adam", [{"beta_2": 0.9}])
    with pytest.raises(ConfigError, match=r"optimizer adam: hyperparameter epsilon = -1\.0"):
        batch_hparams("adam", [{"epsilon": -1.0}])
    with pytest.raises(ConfigError, match=r"optimizer momentum: hyperparameter momentum = 1\.0"):
        validate_hparams("momentum", {"momentum": torch.tensor([0.9, 1.0])})
    with pytest.raises(ConfigError, match=r"unknown optimizer 'rmsprob'.*did you mean 'rmsprop'"):
        validate_hparams("rmsprob", {})
