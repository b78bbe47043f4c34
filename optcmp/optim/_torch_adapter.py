"""Any `torch.optim.Optimizer` subclass as a rule of the runner: one instance per trial.

Dependency rule: torch and optcmp_data only.

A study file can name a torch.optim class (`[plugins] adagrad = "torch.optim:Adagrad"`).
Its hyperparameters are the constructor's keyword arguments with a number as default
(torch writes weight_decay=0 as an int): `lr` becomes `learning_rate`, the others keep
their own names; other arguments (betas tuples, flags, None) stay at the constructor's
defaults. Values are passed as floats. Valid ranges are not known for
foreign code, so each is taken as [0, inf) where the default is >= 0 and as the whole
real line otherwise.

How it runs: the runner trains K trials as stacked [K, *shape] parameters; this adapter
gives every trial k its own optimizer instance over the row views p[k] (created on the
first step, with trial k's hyperparameters), sets each view's `.grad` to the gradient row
and calls `step()`, trial by trial. The scheduled learning rate is written into the
instance's param group each step. Nothing is batched across trials, so a trial follows the
same path as a plain `loss.backward(); opt.step()` loop with that optimizer (the test
`tests/train/test_plugins.py` checks agreement to 1e-6); it costs one Python loop over
trials and their parameters per step (docs/extending.md gives the measured slowdown).
There is no pure `update`: torch optimizers only work in place.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from optcmp.optim._rules import State
from optcmp_data import ConfigError, Family, HyperparamSpec

__all__ = ["TorchOptimizerRule", "torch_family"]


def _float_default(param: inspect.Parameter) -> float | None:
    default = param.default
    if isinstance(default, bool) or not isinstance(default, float | int):
        return None
    return float(default)


def torch_family(name: str, cls: type[torch.optim.Optimizer], source: str) -> Family:
    """The family of torch.optim class `cls` registered as `name` (see the module doc)."""
    owner = f"plug-in {name} ({source})"
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{owner}: cannot read the constructor's arguments ({err})") from None
    params = signature.parameters
    if "lr" not in params:
        raise ConfigError(f"{owner}: the constructor has no lr argument")
    lr_default = _float_default(params["lr"])
    if lr_default is None:
        raise ConfigError(f"{owner}: the constructor's lr has no numeric default")
    hparams = [
        HyperparamSpec(
            "learning_rate",
            "lr",
            lr_default,
            0.0,
            math.inf,
            True,
            False,
            "lr of the constructor (scheduled)",
        )
    ]
    for pname, param in params.items():
        if pname in ("self", "params", "lr") or param.kind not in (
            param.POSITIONAL_OR_KEYWORD,
            param.KEYWORD_ONLY,
        ):
            continue
        default = _float_default(param)
        if default is None:
            continue
        low = 0.0 if default >= 0 else -math.inf
        hparams.append(
            HyperparamSpec(
                pname,
                pname,
                default,
                low,
                math.inf,
                math.isfinite(low),
                False,
                f"keyword argument {pname} of {cls.__name__}",
            )
        )
    return Family(
        name,
        f"{cls.__module__}.{cls.__qualname__}",
        tuple(hparams),
        f"torch.optim class {cls.__module__}.{cls.__qualname__}, one instance per trial",
        source=source,
    )


class _TorchState(dict[str, list[Tensor]]):
    """State of the adapter: no stacked buffers (the runner sees an empty mapping); the
    per-trial optimizer instances and their parameter views live as attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.views: list[list[Tensor]] = []
        self.instances: list[torch.optim.Optimizer] = []


class TorchOptimizerRule:
    """A torch.optim class run as one instance per trial (see the module docstring)."""

    def __init__(self, name: str, cls: type[torch.optim.Optimizer], source: str) -> None:
        self.cls = cls
        self.family = torch_family(name, cls, source)

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def hparam_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.family.hparam_names if n != "learning_rate")

    def check(self) -> None:
        """Construct one instance at the defaults and take a step on a tiny parameter;
        ConfigError naming the plug-in if the class refuses."""
        p = torch.zeros(3, requires_grad=True)
        try:
            factory: Any = self.cls
            opt = factory([p], **self._kwargs(self.family.defaults()))
            p.grad = torch.ones(3)
            opt.step()
        except Exception as err:
            raise ConfigError(
                f"plug-in {self.name} ({self.family.source}): the optimizer failed on a tiny "
                f"test problem: {type(err).__name__}: {err}"
            ) from None
        if not bool(torch.isfinite(p).all()):
            raise ConfigError(
                f"plug-in {self.name} ({self.family.source}): one step at the defaults gave "
                "non-finite parameters"
            )

    def _kwargs(self, values: Mapping[str, float]) -> dict[str, Any]:
        return {("lr" if k == "learning_rate" else k): v for k, v in values.items()}

    def init(self, params: Sequence[Tensor]) -> State:
        return _TorchState()

    def update(
        self,
        grads: Sequence[Tensor],
        state: State,
        hparams: Mapping[str, Tensor],
        lr: Tensor,
        step: int,
        params: Sequence[Tensor] | None = None,
    ) -> tuple[list[Tensor], State]:
        raise ConfigError(
            f"optimizer {self.name}: a torch.optim class works in place only (use apply_)"
        )

    def apply_(
        self,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        state: State,
        hparams: Mapping[str, Tensor],
        lr: Tensor,
        step: int,
    ) -> None:
        if not isinstance(state, _TorchState):
            raise ConfigError(f"optimizer {self.name}: state does not come from this rule's init")
        k = lr.shape[0]
        rates = lr.tolist()
        if not state.instances:
            values = {n: hparams[n].tolist() for n in self.hparam_names}
            for i in range(k):
                views = [p[i] for p in params]
                kwargs = self._kwargs({n: v[i] for n, v in values.items()})
                state.views.append(views)
                factory: Any = self.cls  # subclasses take lr; the base class does not
                state.instances.append(factory(views, lr=rates[i], **kwargs))
        with torch.no_grad():
            for i, (views, opt) in enumerate(zip(state.views, state.instances, strict=True)):
                for view, g in zip(views, grads, strict=True):
                    view.grad = g[i]
                for group in opt.param_groups:
                    group["lr"] = rates[i]
                opt.step()
                for view in views:
                    view.grad = None
