"""torch.optim.Optimizer wrappers around the paper-exact rules, for ordinary training loops.

Dependency rule: torch and optcmp_data only.

    opt = PaperAdam(model.parameters(), lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8)
    loss.backward(); opt.step(); opt.zero_grad()

The learning rate is `lr` in each param group (torch's name, so torch.optim.lr_scheduler
works); the other hyperparameters use the project's names (momentum, rho, beta1, beta2,
epsilon). Each step views every parameter as a batch of one trial ([1, *shape]) and runs
the same `Rule.apply_` the batched runner uses. Values are validated at construction and
whenever a group's values change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from optcmp.optim._registry import RULES
from optcmp.optim._rules import Rule
from optcmp.optim._validation import validate_hparams
from optcmp_data import ConfigError, get_family

__all__ = [
    "PaperAdam",
    "PaperAdamW",
    "PaperMomentum",
    "PaperNAdam",
    "PaperNAdamW",
    "PaperNesterov",
    "PaperOptimizer",
    "PaperRMSProp",
    "PaperSGD",
]


class PaperOptimizer(torch.optim.Optimizer):
    """Base: a torch optimizer running one of the paper's rules (set `family` in subclasses)."""

    family: ClassVar[str]

    def __init__(self, params: Any, **hparams: float) -> None:
        family = get_family(self.family)
        if "lr" not in hparams:
            hparams["lr"] = family.spec("learning_rate").default
        defaults = family.defaults()
        del defaults["learning_rate"]
        for key in hparams:
            if key != "lr" and key not in defaults:
                family.spec(key)  # raises ConfigError with the closest valid name
        defaults.update(hparams)
        self._check(defaults)
        super().__init__(params, defaults)
        self._rule: Rule = RULES[family.name]
        self._checked: dict[int, tuple[float, ...]] = {}
        self._cache: dict[
            tuple[tuple[float, ...], torch.dtype, torch.device],
            tuple[dict[str, Tensor], Tensor],
        ] = {}

    def _check(self, group: dict[str, Any]) -> None:
        named = {("learning_rate" if k == "lr" else k): group[k] for k in self._keys()}
        validate_hparams(self.family, named)

    @classmethod
    def _keys(cls) -> tuple[str, ...]:
        """The group keys of the hyperparameters, learning rate first."""
        return ("lr", *RULES[cls.family].hparam_names)

    def _tensors(
        self, values: tuple[float, ...], dtype: torch.dtype, device: torch.device
    ) -> tuple[dict[str, Tensor], Tensor]:
        """[1]-shaped hyperparameter tensors for `values` (lr first), cached between steps."""
        key = (values, dtype, device)
        if key not in self._cache:
            if len(self._cache) > 64:  # a schedule changes lr every step: keep the cache small
                self._cache.clear()
            column = torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)
            hparams = dict(zip(self._rule.hparam_names, column[1:], strict=True))
            self._cache[key] = (hparams, column[0])
        return self._cache[key]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One step of the rule on every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rule = self._rule
        keys = self._keys()
        for index, group in enumerate(self.param_groups):
            values = tuple(float(group[k]) for k in keys)
            if self._checked.get(index) != values:
                self._check(group)
                self._checked[index] = values
            # Parameters can differ in step count (added later) or dtype: batch those that
            # agree, collecting everything in one pass over the group.
            batches: dict[tuple[int, torch.dtype, torch.device], _Batch] = {}
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise ConfigError(f"optimizer {self.family}: sparse gradients not supported")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    for name, tensors in rule.init([p.unsqueeze(0)]).items():
                        state[name] = tensors[0]
                key = (state["step"], p.dtype, p.device)
                batch = batches.get(key)
                if batch is None:
                    batch = batches[key] = _Batch(rule.state_names)
                batch.add(p, grad, state)
            for (step, dtype, device), batch in batches.items():
                hparams, lr = self._tensors(values, dtype, device)
                rule.apply_(batch.params, batch.grads, batch.buffers, hparams, lr, step)
                for state in batch.states:
                    state["step"] = step + 1
        return loss


class _Batch:
    """Parameters (as [1, *shape] views), gradients and state of one apply_ call."""

    def __init__(self, state_names: tuple[str, ...]) -> None:
        self.params: list[Tensor] = []
        self.grads: list[Tensor] = []
        self.buffers: dict[str, list[Tensor]] = {name: [] for name in state_names}
        self.states: list[dict[str, Any]] = []

    def add(self, p: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        self.params.append(p.unsqueeze(0))
        self.grads.append(grad.unsqueeze(0))
        for name, buffers in self.buffers.items():
            buffers.append(state[name])
        self.states.append(state)


class PaperSGD(PaperOptimizer):
    """SGD of method.md Table 1: theta -= lr g. Args: params, lr."""

    family = "sgd"

    def __init__(self, params: Iterable[Any], lr: float = 0.01) -> None:
        super().__init__(params, lr=lr)


class _MomentumArgs(PaperOptimizer):
    """The constructor of the rules with a learning rate and a momentum."""

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(params, lr=lr, momentum=momentum)


class PaperMomentum(_MomentumArgs):
    """Momentum: v = momentum v + g; theta -= lr v (v0 = 0). Args: params, lr, momentum."""

    family = "momentum"


class PaperNesterov(_MomentumArgs):
    """Nesterov: v = momentum v + g; theta -= lr (momentum v + g). Args: params, lr, momentum."""

    family = "nesterov"


class PaperRMSProp(PaperOptimizer):
    """RMSProp, TensorFlow 1 form: v0 = 1; v = rho v + (1-rho) g^2;
    m = momentum m + lr g / sqrt(v + epsilon); theta -= m."""

    family = "rmsprop"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        momentum: float = 0.0,
        rho: float = 0.9,
        epsilon: float = 1e-10,
    ) -> None:
        super().__init__(params, lr=lr, momentum=momentum, rho=rho, epsilon=epsilon)


class _AdamArgs(PaperOptimizer):
    """The constructor of Adam and NAdam."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, epsilon=epsilon)


class _AdamWArgs(PaperOptimizer):
    """The constructor of AdamW and NAdamW (Adam's with a decoupled weight decay)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(
            params, lr=lr, beta1=beta1, beta2=beta2, epsilon=epsilon, weight_decay=weight_decay
        )


class PaperAdam(_AdamArgs):
    """Adam with epsilon added before the bias factor:
    theta -= lr b m / (sqrt(v) + epsilon), b = sqrt(1-beta2^(t+1)) / (1-beta1^(t+1))."""

    family = "adam"


class PaperNAdam(_AdamArgs):
    """NAdam without a momentum-decay schedule:
    theta -= lr b (beta1 m + (1-beta1) g) / (sqrt(v) + epsilon)."""

    family = "nadam"


class PaperAdamW(_AdamWArgs):
    """AdamW: theta -= lr weight_decay theta, then PaperAdam's step (epsilon before the
    bias factor)."""

    family = "adamw"


class PaperNAdamW(_AdamWArgs):
    """NAdamW (AlgoPerf's baseline form): theta -= lr weight_decay theta, then PaperNAdam's
    step."""

    family = "nadamw"
