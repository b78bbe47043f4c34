"""The paper's six optimizer families and the learning-rate schedules, described as data.

Dependency rule: standard library and attrs only (no torch). The simulation layer
(`optcmp.optim`) implements these rules; the CLI (`optcmp optimizers`), search spaces and
analysis read names, defaults and valid ranges from here without importing torch.

Hyperparameter names are the project-wide ones: learning_rate, momentum (the gamma of
Momentum, Nesterov and RMSProp), rho, beta1, beta2, epsilon; schedule parameters
decay_factor, decay_steps_fraction, warmup_steps_fraction.

Valid ranges (decided here, enforced by `Family.validate` and by `optcmp.optim`):
learning_rate >= 0; momentum, beta1, beta2 in [0, 1); rho in [0, 1] — rho = 1 is allowed
because it is how RMSProp includes Momentum (the accumulator then stays at its initial
value 1); epsilon > 0. Every value must be finite.
"""

from __future__ import annotations

import difflib
import enum
import math
from collections.abc import Mapping
from typing import Final

import attrs

from optcmp_data._errors import ConfigError

__all__ = [
    "FAMILY_SPECS",
    "SCHEDULE_SPECS",
    "Family",
    "HyperparamSpec",
    "ScheduleKind",
    "ScheduleSpec",
    "closest_name",
    "get_family",
    "get_schedule",
]


def closest_name(name: str, valid: tuple[str, ...] | list[str]) -> str:
    """A ' (did you mean X?)' suffix naming the closest valid name, or '' if none is close."""
    match = difflib.get_close_matches(name.lower(), list(valid), n=1, cutoff=0.4)
    return f" (did you mean {match[0]!r}?)" if match else ""


@attrs.frozen
class HyperparamSpec:
    """One hyperparameter: its default, valid interval and what it does.

    `low_closed` / `high_closed` say whether the interval's ends are valid values.
    `symbol` is the letter method.md's Table 1 uses (eta_t, gamma, ...).
    """

    name: str
    symbol: str
    default: float
    low: float
    high: float
    low_closed: bool
    high_closed: bool
    description: str

    @property
    def interval(self) -> str:
        """The valid range in interval notation, e.g. '[0, 1)'."""
        left = "[" if self.low_closed else "("
        right = "]" if self.high_closed and math.isfinite(self.high) else ")"
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return f"{left}{self.low:g}, {high}{right}"

    def contains(self, value: float) -> bool:
        """Whether `value` is finite and within the valid interval."""
        if not math.isfinite(value):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def check(self, value: float, *, owner: str) -> None:
        """Raise ConfigError naming `owner` (an optimizer or schedule), this name and the value."""
        if not self.contains(value):
            raise ConfigError(
                f"{owner}: hyperparameter {self.name} = {value!r} is outside its valid range "
                f"{self.interval}"
            )


_LR = HyperparamSpec(
    "learning_rate", "eta_t", 0.01, 0.0, math.inf, True, False, "learning rate (scheduled)"
)
_ADAM_LR = attrs.evolve(_LR, symbol="alpha_t", default=0.001)
_MOMENTUM = HyperparamSpec("momentum", "gamma", 0.9, 0.0, 1.0, True, False, "momentum coefficient")
_RHO = HyperparamSpec(
    "rho",
    "rho",
    0.9,
    0.0,
    1.0,
    True,
    True,
    "decay of the squared-gradient average (1 keeps v = 1)",
)
_BETA1 = HyperparamSpec("beta1", "beta1", 0.9, 0.0, 1.0, True, False, "decay of the first moment")
_BETA2 = HyperparamSpec(
    "beta2", "beta2", 0.999, 0.0, 1.0, True, False, "decay of the second moment"
)
_EPS = HyperparamSpec("epsilon", "eps", 1e-8, 0.0, math.inf, False, False, "stabiliser")


@attrs.frozen
class Family:
    """One optimizer family of method.md Table 1: its hyperparameters and update rule."""

    name: str
    title: str
    hparams: tuple[HyperparamSpec, ...]
    update_rule: str

    @property
    def hparam_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hparams)

    def spec(self, name: str) -> HyperparamSpec:
        """The spec of hyperparameter `name`; ConfigError (with a suggestion) if absent."""
        for h in self.hparams:
            if h.name == name:
                return h
        raise ConfigError(
            f"optimizer {self.name}: no hyperparameter {name!r}; it has "
            f"{', '.join(self.hparam_names)}{closest_name(name, self.hparam_names)}"
        )

    def defaults(self) -> dict[str, float]:
        return {h.name: h.default for h in self.hparams}

    def validate(self, values: Mapping[str, float]) -> None:
        """Check every value this family knows; names it lacks raise ConfigError."""
        for name, value in values.items():
            self.spec(name).check(float(value), owner=f"optimizer {self.name}")

    def complete(self, values: Mapping[str, float]) -> dict[str, float]:
        """`values` validated, with defaults for the hyperparameters not given."""
        self.validate(values)
        out = self.defaults()
        out.update({k: float(v) for k, v in values.items()})
        return out


FAMILY_SPECS: Final[Mapping[str, Family]] = {
    "sgd": Family("sgd", "SGD", (_LR,), "theta -= eta_t g"),
    "momentum": Family(
        "momentum",
        "Momentum",
        (_LR, _MOMENTUM),
        "v0 = 0; v = gamma v + g; theta -= eta_t v",
    ),
    "nesterov": Family(
        "nesterov",
        "Nesterov",
        (_LR, _MOMENTUM),
        "v0 = 0; v = gamma v + g; theta -= eta_t (gamma v + g)",
    ),
    "rmsprop": Family(
        "rmsprop",
        "RMSProp",
        (
            attrs.evolve(_LR, default=0.001),
            attrs.evolve(_MOMENTUM, default=0.0),
            _RHO,
            attrs.evolve(_EPS, default=1e-10),
        ),
        "v0 = 1, m0 = 0; v = rho v + (1-rho) g^2; m = gamma m + eta_t g / sqrt(v + eps); "
        "theta -= m",
    ),
    "adam": Family(
        "adam",
        "Adam",
        (_ADAM_LR, _BETA1, _BETA2, _EPS),
        "m0 = v0 = 0; m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g^2; "
        "b = sqrt(1-beta2^(t+1)) / (1-beta1^(t+1)); theta -= alpha_t b m / (sqrt(v) + eps)",
    ),
    "nadam": Family(
        "nadam",
        "NAdam",
        (_ADAM_LR, _BETA1, _BETA2, _EPS),
        "m, v, b as Adam; theta -= alpha_t b (beta1 m + (1-beta1) g) / (sqrt(v) + eps)",
    ),
}


def get_family(name: str) -> Family:
    """The family called `name`; ConfigError suggesting the closest valid name otherwise."""
    try:
        return FAMILY_SPECS[name]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}; valid: {', '.join(FAMILY_SPECS)}"
            f"{closest_name(name, tuple(FAMILY_SPECS))}"
        ) from None


class ScheduleKind(enum.StrEnum):
    """Learning-rate schedules: the rate at step t is base_lr x a factor of t (see ScheduleSpec)."""

    CONSTANT = "constant"
    LINEAR_DECAY = "linear_decay"
    LINEAR_WARMUP = "linear_warmup"
    COSINE_DECAY = "cosine_decay"


@attrs.frozen
class ScheduleSpec:
    """One schedule: its own hyperparameters and the factor it applies, in words."""

    kind: ScheduleKind
    hparams: tuple[HyperparamSpec, ...]
    formula: str

    @property
    def hparam_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hparams)

    def complete(self, values: Mapping[str, float]) -> dict[str, float]:
        """This schedule's parameters from `values` (defaults where absent), validated.

        Keys that are not this schedule's parameters are ignored, so a whole trial's
        hyperparameters can be passed.
        """
        out: dict[str, float] = {}
        for h in self.hparams:
            value = float(values.get(h.name, h.default))
            h.check(value, owner=f"schedule {self.kind.value}")
            out[h.name] = value
        return out


_DECAY_FACTOR = HyperparamSpec(
    "decay_factor", "f", 0.01, 0.0, 1.0, True, True, "final rate / initial rate"
)
_DECAY_FRACTION = HyperparamSpec(
    "decay_steps_fraction", "d", 1.0, 0.0, 1.0, False, True, "decay length / step budget"
)
_WARMUP_FRACTION = HyperparamSpec(
    "warmup_steps_fraction", "w", 0.05, 0.0, 1.0, False, True, "warmup length / step budget"
)

SCHEDULE_SPECS: Final[Mapping[ScheduleKind, ScheduleSpec]] = {
    ScheduleKind.CONSTANT: ScheduleSpec(ScheduleKind.CONSTANT, (), "lr_t = lr"),
    ScheduleKind.LINEAR_DECAY: ScheduleSpec(
        ScheduleKind.LINEAR_DECAY,
        (_DECAY_FACTOR, _DECAY_FRACTION),
        "T = d x step_budget; lr_t = lr (1 - (1 - f) min(t / T, 1))",
    ),
    ScheduleKind.LINEAR_WARMUP: ScheduleSpec(
        ScheduleKind.LINEAR_WARMUP,
        (_WARMUP_FRACTION,),
        "W = w x step_budget; lr_t = lr min((t + 1) / W, 1)",
    ),
    ScheduleKind.COSINE_DECAY: ScheduleSpec(
        ScheduleKind.COSINE_DECAY,
        (_DECAY_FACTOR, _DECAY_FRACTION),
        "T = d x step_budget; lr_t = lr (f + (1 - f) (1 + cos(pi min(t / T, 1))) / 2)",
    ),
}


def get_schedule(name: str | ScheduleKind) -> ScheduleSpec:
    """The schedule called `name`; ConfigError suggesting the closest valid name otherwise."""
    try:
        return SCHEDULE_SPECS[ScheduleKind(name)]
    except ValueError:
        valid = tuple(k.value for k in ScheduleKind)
        raise ConfigError(
            f"unknown schedule {name!r}; valid: {', '.join(valid)}{closest_name(str(name), valid)}"
        ) from None
