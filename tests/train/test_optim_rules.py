"""The built-in rules against an independent scalar reference written from method.md
Table 1 (and, for AdamW / NAdamW, decoupled weight decay as Loshchilov & Hutter give it).

Each rule runs K trials at once (different hyperparameters per trial) for 200 steps on a
random problem whose gradient depends on the parameters, and every step of every trial
must agree with a plain-numpy loop over that trial to 1e-6 relative (float64), bias
correction steps included.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import torch

import optcmp.optim._rules as rules_module
from optcmp.optim import RULES, Rule, get_rule
from optcmp_data import FAMILY_SPECS, ConfigError

STEPS = 200
Array = npt.NDArray[np.float64]

# --- the reference: one trial, plain numpy, line by line from Table 1 ---------------------


def reference_step(
    name: str,
    theta: Array,
    g: Array,
    state: dict[str, Array],
    hp: dict[str, float],
    eta: float,
    t: int,
) -> Array:
    if name == "sgd":
        return theta - eta * g
    if name == "momentum":
        state["v"] = hp["momentum"] * state["v"] + g
        return theta - eta * state["v"]
    if name == "nesterov":
        state["v"] = hp["momentum"] * state["v"] + g
        return theta - eta * (hp["momentum"] * state["v"] + g)
    if name == "rmsprop":
        rho, gamma, eps = hp["rho"], hp["momentum"], hp["epsilon"]
        state["v"] = rho * state["v"] + (1 - rho) * g**2
        state["m"] = gamma * state["m"] + eta * g / np.sqrt(state["v"] + eps)
        return theta - state["m"]
    beta1, beta2, eps = hp["beta1"], hp["beta2"], hp["epsilon"]
    if name in ("adamw", "nadamw"):
        # Decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW's form): the
        # parameters shrink by eta lambda before the Adam / NAdam step.
        theta = theta * (1 - eta * hp["weight_decay"])
        name = name[:-1]
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g**2
    b = math.sqrt(1 - beta2 ** (t + 1)) / (1 - beta1 ** (t + 1))
    if name == "adam":
        return theta - eta * b * state["m"] / (np.sqrt(state["v"]) + eps)
    assert name == "nadam"
    return theta - eta * b * (beta1 * state["m"] + (1 - beta1) * g) / (np.sqrt(state["v"]) + eps)


def reference_state(name: str, n: int) -> dict[str, Array]:
    # RMSProp's accumulator starts at 1 (TF1); every other buffer at 0.
    return {"v": np.ones(n) if name == "rmsprop" else np.zeros(n), "m": np.zeros(n)}


# --- a random problem -------------------------------------------------------------------


class Problem:
    """grad(theta, t) = A theta + 0.3 sin(theta) + noise_t: nonlinear, stable, step-dependent."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        q = np.linalg.qr(rng.normal(size=(n, n)))[0]
        self.a: Array = q @ np.diag(rng.uniform(0.1, 1.0, n)) @ q.T
        self.noise: Array = rng.normal(scale=0.5, size=(STEPS, n))
        self.theta0: Array = rng.normal(size=n)

    def grad(self, theta: Array, t: int) -> Array:
        out: Array = self.a @ theta + 0.3 * np.sin(theta) + self.noise[t]
        return out


def random_hparams(name: str, rng: np.random.Generator) -> dict[str, float]:
    """Valid values across the ranges a study would search (log-scale where it spans decades)."""

    def log(lo: float, hi: float) -> float:
        return float(10 ** rng.uniform(lo, hi))

    if name == "sgd":
        return {"learning_rate": log(-2.5, -1)}
    if name in ("momentum", "nesterov"):
        return {"learning_rate": log(-3, -1.5), "momentum": 1.0 - log(-2, -0.3)}
    if name == "rmsprop":
        return {
            "learning_rate": log(-3, -1.5),
            "momentum": 1.0 - log(-1.5, 0) if rng.random() < 0.7 else 0.0,
            "rho": 1.0 - log(-3, -0.5),
            "epsilon": log(-10, 0),
        }
    out = {  # adam, nadam, adamw, nadamw
        "learning_rate": log(-3, -1.5),
        "beta1": 1.0 - log(-2, -0.3),
        "beta2": 1.0 - log(-4, -1),
        "epsilon": log(-10, 1),
    }
    if name.endswith("w"):
        out["weight_decay"] = log(-3, 0.5)
    return out


def split(x: torch.Tensor) -> list[torch.Tensor]:
    """Flat [K, 12] -> a [K, 3, 3] matrix and a [K, 3] vector: rules must handle lists."""
    return [x[:, :9].reshape(-1, 3, 3).clone(), x[:, 9:].clone()]


def join(ps: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.reshape(p.shape[0], -1) for p in ps], dim=1)


def run_batched(
    rule: Rule,
    problem: Problem,
    trials: list[dict[str, float]],
    *,
    pure: bool,
    on_step: Callable[[int, torch.Tensor], None],
) -> None:
    k = len(trials)
    params = split(torch.tensor(np.tile(problem.theta0, (k, 1))))
    state = rule.init(params)
    hp = {n: torch.tensor([tr[n] for tr in trials], dtype=torch.float64) for n in trials[0]}
    for t in range(STEPS):
        flat = join(params).numpy()
        grads = split(torch.tensor(np.stack([problem.grad(flat[i], t) for i in range(k)])))
        if pure:
            before = [p.clone() for p in params]
            updates, state = rule.update(grads, state, hp, hp["learning_rate"], t, params)
            assert all(torch.equal(a, b) for a, b in zip(before, params, strict=True))
            params = [p + u for p, u in zip(params, updates, strict=True)]
        else:
            rule.apply_(params, grads, state, hp, hp["learning_rate"], t)
        on_step(t, join(params))


@pytest.mark.parametrize(
    ("k", "pure", "chunk"),
    [(3, False, None), (3, True, None), (3, False, 5), (1, False, None), (1, True, 5)],
    ids=["K3-apply_", "K3-update", "K3-chunked", "K1-apply_", "K1-update"],
)
@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_matches_scalar_reference(
    name: str, k: int, pure: bool, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K = 1 on the CPU takes the scalar-coefficient kernels; K = 3 the broadcast ones."""
    if chunk is not None:
        # Tiny blocks exercise the chunked path (blocks that split rows, ragged ends).
        monkeypatch.setattr(rules_module, "CHUNK_ELEMENTS", chunk)
    rng = np.random.default_rng(sorted(RULES).index(name))
    problem = Problem(12, seed=7)
    trials = [random_hparams(name, rng) for _ in range(k)]
    thetas = [problem.theta0.copy() for _ in trials]
    states = [reference_state(name, 12) for _ in trials]
    worst = [0.0]

    def check(t: int, batched: torch.Tensor) -> None:
        for i, tr in enumerate(trials):
            g = problem.grad(thetas[i], t)
            thetas[i] = reference_step(name, thetas[i], g, states[i], tr, tr["learning_rate"], t)
            got = batched[i].numpy()
            np.testing.assert_allclose(got, thetas[i], rtol=1e-6, atol=1e-9, err_msg=f"step {t}")
            moved = np.abs(thetas[i] - problem.theta0).max()
            worst[0] = max(worst[0], moved)

    run_batched(get_rule(name), problem, trials, pure=pure, on_step=check)
    assert worst[0] > 1e-3  # the parameters really moved, so the comparison has teeth


def test_rmsprop_accumulator_starts_at_one_and_eps_inside_root() -> None:
    rule = get_rule("rmsprop")
    p = [torch.zeros(1, 1, dtype=torch.float64)]
    g = [torch.full((1, 1), 2.0, dtype=torch.float64)]
    state = rule.init(p)
    hp = {
        n: torch.tensor([v], dtype=torch.float64)
        for n, v in {"momentum": 0.0, "rho": 0.5, "epsilon": 1.0}.items()
    }
    rule.apply_(p, g, state, hp, torch.tensor([1.0], dtype=torch.float64), 0)
    # v = 0.5 * 1 + 0.5 * 4 = 2.5; step = 2 / sqrt(2.5 + 1)
    assert state["square_avg"][0].item() == pytest.approx(2.5)
    assert p[0].item() == pytest.approx(-2.0 / math.sqrt(3.5))


def test_adam_eps_before_bias_factor_differs_from_torch() -> None:
    """With a large eps the two placements differ visibly on the first step."""
    rule = get_rule("adam")
    p = [torch.zeros(1, 1, dtype=torch.float64)]
    g = [torch.ones(1, 1, dtype=torch.float64)]
    hp = {
        n: torch.tensor([v], dtype=torch.float64)
        for n, v in {"beta1": 0.9, "beta2": 0.999, "epsilon": 1.0}.items()
    }
    rule.apply_(p, g, rule.init(p), hp, torch.tensor([1.0], dtype=torch.float64), 0)
    b = math.sqrt(1 - 0.999) / (1 - 0.9)
    ours = -b * 0.1 / (math.sqrt(0.001) + 1.0)
    torch_form = -(0.1 / 0.1) / (math.sqrt(0.001) / math.sqrt(0.001) + 1.0)
    assert p[0].item() == pytest.approx(ours, rel=1e-12)
    assert abs(ours - torch_form) > 0.1


def test_non_contiguous_parameters_are_updated_in_place() -> None:
    rule = get_rule("adam")
    base = torch.randn(2, 4, 3, dtype=torch.float64)
    p = base.transpose(1, 2)  # [K=2, 3, 4] view, not contiguous
    g = torch.randn(2, 3, 4, dtype=torch.float64)
    expected = p.clone()
    hp = {
        n: torch.full((2,), v, dtype=torch.float64)
        for n, v in {"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8}.items()
    }
    lr = torch.tensor([0.1, 0.2], dtype=torch.float64)
    upd, _ = rule.update([g], rule.init([expected]), hp, lr, 0)
    rule.apply_([p], [g], rule.init([p]), hp, lr, 0)
    torch.testing.assert_close(base.transpose(1, 2), expected + upd[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("name", sorted(RULES))
def test_zero_learning_rate_leaves_parameters_unchanged(name: str, k: int) -> None:
    rule = get_rule(name)
    p = [torch.randn(k, 4, 3, dtype=torch.float64)]
    before = p[0].clone()
    hp = {n: torch.full((k,), 0.5, dtype=torch.float64) for n in rule.hparam_names}
    state = rule.init(p)
    for t in range(3):
        rule.apply_(p, [torch.randn_like(p[0])], state, hp, torch.zeros(k, dtype=torch.float64), t)
    assert torch.equal(p[0], before)


def test_registry_suggests_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adamx'.*did you mean 'adam"):
        get_rule("adamx")
    with pytest.raises(ConfigError, match=r"did you mean 'nesterov'"):
        get_rule("nesterv")
    assert set(RULES) >= set(FAMILY_SPECS)
    assert {"sgd", "momentum", "nesterov", "rmsprop", "adam", "nadam", "adamw", "nadamw"} <= set(
        RULES
    )


def test_missing_or_misshapen_hparams_name_the_optimizer() -> None:
    rule = get_rule("adam")
    p = [torch.zeros(2, 3)]
    lr = torch.ones(2)
    hp = {"beta1": torch.full((2,), 0.9), "beta2": torch.full((2,), 0.99)}
    with pytest.raises(ConfigError, match=r"optimizer adam: hyperparameter epsilon is missing"):
        rule.apply_(p, p, rule.init(p), hp, lr, 0)
    hp["epsilon"] = torch.full((3,), 1e-8)
    with pytest.raises(ConfigError, match=r"optimizer adam: hyperparameter epsilon must be"):
        rule.apply_(p, p, rule.init(p), hp, lr, 0)
    hp["epsilon"] = torch.full((2,), 1e-8, dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"epsilon must be a torch.float32 tensor"):
        rule.apply_(p, p, rule.init(p), hp, lr, 0)
