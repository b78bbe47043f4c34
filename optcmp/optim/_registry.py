"""The registry of batched rules: one implementation per registered optimizer family.

Dependency rule: torch and optcmp_data only.

`register_rule(rule)` (re-exported as `optcmp.register_rule`) is the one way in: the
built-in rules register through it at import, plug-ins the same way. A rule is any object
with the batched interface of `optcmp.optim.Rule`:

    rule.family                      # an optcmp_data.Family (registered here if new)
    rule.name, rule.hparam_names     # family name; hyperparameters besides learning_rate
    rule.init(params) -> state       # params: list of [K, *shape] tensors
    rule.update(grads, state, hparams, lr, step) -> (updates, state)   # pure
    rule.apply_(params, grads, state, hparams, lr, step)               # in place

Subclassing `Rule` (write `_coefficients` and `_kernel`) gives the batched, chunked
machinery for free; any other object with these methods works too. `check_rule` runs a
rule once on a tiny problem and says in one line what is wrong with it (wrong-shaped
updates, a non-finite result, a missing method), so a bad plug-in fails before any trial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Protocol, runtime_checkable

import torch
from torch import Tensor

from optcmp.optim._rules import BUILTIN_RULES, State
from optcmp_data import FAMILY_SPECS, ConfigError, Family, get_family, register_family

__all__ = ["RULES", "BatchedRule", "check_rule", "get_rule", "register_rule"]


@runtime_checkable
class BatchedRule(Protocol):
    """What the runner needs of a rule (see the module docstring)."""

    family: Family

    @property
    def name(self) -> str: ...

    @property
    def hparam_names(self) -> tuple[str, ...]: ...

    def init(self, params: Sequence[Tensor]) -> State: ...

    def update(
        self,
        grads: Sequence[Tensor],
        state: State,
        hparams: Mapping[str, Tensor],
        lr: Tensor,
        step: int,
        params: Sequence[Tensor] | None = None,
    ) -> tuple[list[Tensor], State]: ...

    def apply_(
        self,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        state: State,
        hparams: Mapping[str, Tensor],
        lr: Tensor,
        step: int,
    ) -> None: ...


_RULES: dict[str, Any] = {}

#: Rule of every registered family with an implementation, by name (a live view).
RULES: Final[Mapping[str, Any]] = MappingProxyType(_RULES)

_METHODS: Final = ("init", "update", "apply_")


def _describe(obj: object) -> str:
    kind = type(obj).__name__
    return f"a {kind}" if not isinstance(obj, type) else f"class {obj.__qualname__}"


def register_rule(rule: Any, *, check: bool = True) -> Any:
    """Register `rule` as the implementation of `rule.family` (registering that family if
    it is new). ConfigError naming the rule and the problem if it is not a batched rule,
    its family's declaration is bad or taken, its hyperparameters are not its family's, or
    (with `check`) one step on a tiny problem goes wrong. Returns `rule`."""
    family = getattr(rule, "family", None)
    if not isinstance(family, Family):
        raise ConfigError(
            f"{_describe(rule)} is not a batched rule: it has no `family` "
            "(an optcmp_data.Family describing its hyperparameters)"
        )
    missing = [m for m in _METHODS if not callable(getattr(rule, m, None))]
    if missing:
        raise ConfigError(
            f"optimizer {family.name}: {_describe(rule)} is not a batched rule; it lacks "
            f"{', '.join(missing)}"
        )
    register_family(family)
    registered = get_family(family.name)
    if registered != family:  # pragma: no cover - register_family raised already
        raise ConfigError(f"optimizer {family.name}: another family of that name is registered")
    old = _RULES.get(family.name)
    if old is not None and old is not rule:
        if type(old) is type(rule):
            return old
        raise ConfigError(
            f"optimizer {family.name} ({family.source}) collides with the registered rule "
            f"of that name ({type(old).__module__}.{type(old).__qualname__})"
        )
    names = tuple(getattr(rule, "hparam_names", ()))
    own = set(family.hparam_names) - {"learning_rate"}
    if set(names) != own:
        raise ConfigError(
            f"optimizer {family.name}: the rule's hyperparameters {sorted(names)} are not its "
            f"family's {sorted(own)}"
        )
    if check:
        check_rule(rule)
    _RULES[family.name] = rule
    return rule


def check_rule(rule: Any, *, k: int = 2) -> None:
    """Run `rule` for two steps on tiny parameters with its family's defaults (float32, CPU)
    and raise ConfigError naming it if anything is off: an exception, updates of the wrong
    number, shape or dtype, or non-finite values."""
    family: Family = rule.family
    owner = f"optimizer {family.name}"
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(k, 3, 2, generator=gen), torch.randn(k, 4, generator=gen)]
    defaults = family.defaults()
    hparams = {
        n: torch.full((k,), defaults[n]) for n in family.hparam_names if n != "learning_rate"
    }
    lr = torch.full((k,), defaults["learning_rate"])
    try:
        state = rule.init(params)
        for step in range(2):
            grads = [torch.randn(p.shape, generator=gen) for p in params]
            updates, state = rule.update(grads, state, hparams, lr, step)
            if len(updates) != len(params):
                raise ConfigError(
                    f"{owner}: update returned {len(updates)} updates for {len(params)} parameters"
                )
            for i, (u, p) in enumerate(zip(updates, params, strict=True)):
                if not isinstance(u, Tensor) or u.shape != p.shape or u.dtype != p.dtype:
                    got = (
                        f"{u.dtype} of shape {tuple(u.shape)}"
                        if isinstance(u, Tensor)
                        else type(u).__name__
                    )
                    raise ConfigError(
                        f"{owner}: update {i} is {got}; it must match its parameter "
                        f"({p.dtype} of shape {tuple(p.shape)})"
                    )
                if not bool(torch.isfinite(u).all()):
                    raise ConfigError(f"{owner}: update {i} is not finite at the defaults")
            before = [p.clone() for p in params]
            rule.apply_(params, grads, state, hparams, lr, step + 2)
            for i, (p, b) in enumerate(zip(params, before, strict=True)):
                if p.shape != b.shape or not bool(torch.isfinite(p).all()):
                    raise ConfigError(f"{owner}: apply_ left parameter {i} misshapen or non-finite")
    except ConfigError:
        raise
    except Exception as err:  # a plug-in's own bug: one line naming it
        raise ConfigError(
            f"{owner}: the rule failed on a tiny test problem: {type(err).__name__}: {err}"
        ) from None


def get_rule(name: str) -> Any:
    """The rule of family `name`; ConfigError suggesting the closest valid name otherwise.

    Plug-ins installed as packages (entry points) are discovered on first use.
    """
    if name not in _RULES:
        from optcmp._plugins import discover

        discover()
    rule = _RULES.get(name)
    if rule is None:
        family = get_family(name)  # raises with the closest name for unknown names
        raise ConfigError(f"optimizer {family.name}: no batched rule is registered for it")
    return rule


for _cls in BUILTIN_RULES:
    register_rule(_cls(), check=False)
del _cls
assert set(_RULES) == set(FAMILY_SPECS)  # every built-in family has its rule
