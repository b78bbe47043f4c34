"""The registry of optimizer families and the learning-rate schedules, described as data.

Dependency rule: standard library and attrs only (no torch). The simulation layer
(`optcmp.optim`) implements these rules; the CLI (`optcmp optimizers`), search spaces and
analysis read names, defaults and valid ranges from here without importing torch.

Families are declared once, with `register_family` (re-exported as
`optcmp.register_family`): the built-ins at the end of this module (the paper's six,
AdamW and NAdamW) and plug-ins alike. `FAMILY_SPECS` (every family, by name) and
`PAPER_FAMILIES` are live views of the registry, so no list of names can go stale.

Hyperparameter names are the project-wide ones: learning_rate, momentum (the gamma of
Momentum, Nesterov and RMSProp), rho, beta1, beta2, epsilon, weight_decay; schedule
parameters decay_factor, decay_steps_fraction, warmup_steps_fraction.

Valid ranges (decided here, enforced by `Family.validate` and by `optcmp.optim`):
learning_rate >= 0; momentum, beta1, beta2 in [0, 1); rho in [0, 1] — rho = 1 is allowed
because it is how RMSProp includes Momentum (the accumulator then stays at its initial
value 1); epsilon > 0; weight_decay >= 0. Every value must be finite.
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, overload

import attrs

from optcmp_data._errors import ConfigError

__all__ = [
    "FAMILY_SPECS",
    "PAPER_FAMILIES",
    "SCHEDULE_SPECS",
    "Family",
    "HyperparamSpec",
    "ScheduleKind",
    "ScheduleSpec",
    "SearchRange",
    "closest_name",
    "get_family",
    "get_schedule",
    "register_family",
]


def closest_name(name: str, valid: tuple[str, ...] | list[str]) -> str:
    """A ' (did you mean X?)' suffix naming the closest valid name, or '' if none is close."""
    match = difflib.get_close_matches(name.lower(), list(valid), n=1, cutoff=0.4)
    return f" (did you mean {match[0]!r}?)" if match else ""


class ScheduleKind(enum.StrEnum):
    """Learning-rate schedules: the rate at step t is base_lr x a factor of t (see ScheduleSpec)."""

    CONSTANT = "constant"
    LINEAR_DECAY = "linear_decay"
    LINEAR_WARMUP = "linear_warmup"
    COSINE_DECAY = "cosine_decay"


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


_PRESET_SCALES: Final = ("linear", "log", "one_minus_log", "fixed")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@attrs.frozen
class SearchRange:
    """A default searched range of one hyperparameter in a preset: natural bounds and a
    scale (linear, log or one_minus_log; see `optcmp.spaces`), or a value the preset fixes
    (scale "fixed", low = high)."""

    name: str
    low: float
    high: float
    scale: str = "log"


def _presets(
    value: Mapping[str, tuple[SearchRange, ...]],
) -> Mapping[str, tuple[SearchRange, ...]]:
    return MappingProxyType({str(k): tuple(v) for k, v in value.items()})


@attrs.frozen
class Family:
    """One optimizer family: its hyperparameters, update rule (in words) and search defaults.

    - `hparams`: learning_rate first (every family has one; schedules scale it).
    - `presets`: preset name (choi2019, lr-only, deepobs) -> the searched ranges of that
      preset; hyperparameters a preset does not list stay at their defaults. A family
      without an entry for a preset cannot use it (a study must give `[spaces.NAME]`).
    - `schedules`: the learning-rate schedules it accepts (default: all).
    - `paper`: one of the six rules of Choi et al. 2019 (method.md Table 1).
    - `source`: who provides it ("optcmp" for built-ins; for a plug-in its distribution
      and version, or its module:attribute, filled in when it is loaded).
    """

    name: str
    title: str
    hparams: tuple[HyperparamSpec, ...]
    update_rule: str
    presets: Mapping[str, tuple[SearchRange, ...]] = attrs.field(
        factory=dict, converter=_presets, eq=False
    )
    schedules: tuple[ScheduleKind, ...] = tuple(ScheduleKind)
    paper: bool = False
    source: str = ""

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

    def check_declaration(self) -> None:
        """ConfigError naming the family and the problem if its declaration is inconsistent:
        a bad name, no leading learning_rate, a repeated hyperparameter, a default outside
        its own valid range, or a preset range outside it."""
        owner = f"optimizer {self.name!r}"
        if not _NAME.match(self.name):
            raise ConfigError(f"{owner}: names are lower-case letters, digits and _")
        if not self.hparams or self.hparams[0].name != "learning_rate":
            raise ConfigError(f"{owner}: the first hyperparameter must be learning_rate")
        if len(set(self.hparam_names)) != len(self.hparams):
            raise ConfigError(f"{owner}: a hyperparameter is declared twice")
        for h in self.hparams:
            if not h.contains(h.default):
                raise ConfigError(
                    f"{owner}: hyperparameter {h.name} default {h.default!r} is outside its "
                    f"own valid range {h.interval}"
                )
        for preset, ranges in self.presets.items():
            for r in ranges:
                spec = self.spec(r.name)
                if r.scale not in _PRESET_SCALES:
                    raise ConfigError(
                        f"{owner}: preset {preset}: {r.name} has scale {r.scale!r}; "
                        f"valid: {', '.join(_PRESET_SCALES)}"
                    )
                ordered = r.low == r.high if r.scale == "fixed" else r.low < r.high
                if not (spec.contains(r.low) and spec.contains(r.high) and ordered):
                    raise ConfigError(
                        f"{owner}: preset {preset}: range [{r.low:g}, {r.high:g}] of {r.name} "
                        f"is empty or outside its valid range {spec.interval}"
                    )

    def to_mapping(self) -> dict[str, Any]:
        """JSON-ready description (stored in archives made with a plug-in)."""
        return {
            "name": self.name,
            "title": self.title,
            "update_rule": self.update_rule,
            "source": self.source,
            "hparams": [
                {
                    "name": h.name,
                    "symbol": h.symbol,
                    "default": h.default,
                    "valid": h.interval,
                    "description": h.description,
                }
                for h in self.hparams
            ],
        }


# --- the registry -------------------------------------------------------------------------

_REGISTRY: dict[str, Family] = {}

#: Every registered family by name (built-ins first, then plug-ins in registration order).
#: A live, read-only view: registrations show up in it.
FAMILY_SPECS: Final[Mapping[str, Family]] = MappingProxyType(_REGISTRY)


class _Names(Sequence[str]):
    """The names of the registered families, in order; a live read-only sequence (supports
    `in`, `index`, iteration and `len`), so lists of names never go stale."""

    def __init__(self, predicate: Callable[[Family], bool]) -> None:
        self._predicate = predicate

    def _names(self) -> tuple[str, ...]:
        return tuple(n for n, f in _REGISTRY.items() if self._predicate(f))

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(self._names())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._names())


#: Names of the six families of Choi et al. 2019 (method.md Table 1).
PAPER_FAMILIES: Final[Sequence[str]] = _Names(lambda f: f.paper)


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Add `family` to the registry (the one public way in, used by the built-ins too).

    ConfigError naming the family when its declaration is inconsistent
    (`Family.check_declaration`) or its name is taken (unless `replace`, which never
    replaces a built-in). Registering an equal family again is a no-op.
    """
    family.check_declaration()
    old = _REGISTRY.get(family.name)
    if old is not None and old != family and (not replace or old.source == "optcmp"):
        raise ConfigError(
            f"optimizer {family.name!r} ({family.source}) collides with the "
            f"{'built-in' if old.source == 'optcmp' else 'registered'} optimizer of that "
            f"name ({old.source})"
        )
    _REGISTRY[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The family called `name`; ConfigError suggesting the closest valid name otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown optimizer {name!r}; valid: {', '.join(_REGISTRY)}"
            f"{closest_name(name, tuple(_REGISTRY))}"
        ) from None


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


# --- the built-in families, registered like any plug-in ------------------------------

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

_WEIGHT_DECAY = HyperparamSpec(
    "weight_decay",
    "lambda",
    0.01,
    0.0,
    math.inf,
    True,
    False,
    "decoupled weight decay: theta shrinks by alpha_t lambda theta each step",
)


def _builtin_presets(
    lr_choi: tuple[float, float],
    lr_only: tuple[float, float],
    others: tuple[HyperparamSpec, ...],
    deepobs_fixed: tuple[SearchRange, ...] = (),
) -> dict[str, tuple[SearchRange, ...]]:
    """The three presets of a built-in family (method.md section 3; optcmp.spaces)."""
    choi_other = {
        "momentum": SearchRange("momentum", 0.0, 0.999, "one_minus_log"),
        "beta1": SearchRange("beta1", 0.0, 0.999, "one_minus_log"),
        "beta2": SearchRange("beta2", 0.0, 0.9999, "one_minus_log"),
        "rho": SearchRange("rho", 0.0, 0.9999, "one_minus_log"),
        "epsilon": SearchRange("epsilon", 1e-10, 1e2, "log"),
        "weight_decay": SearchRange("weight_decay", 1e-5, 1.0, "log"),
    }
    return {
        "choi2019": (
            SearchRange("learning_rate", *lr_choi),
            *(choi_other[h.name] for h in others),
        ),
        "lr-only": (SearchRange("learning_rate", *lr_only),),
        "deepobs": (SearchRange("learning_rate", 1e-5, 1e2), *deepobs_fixed),
    }


_DEEPOBS_MOMENTUM = (SearchRange("momentum", 0.99, 0.99, "fixed"),)
_RMSPROP_HP = (
    attrs.evolve(_MOMENTUM, default=0.0),
    _RHO,
    attrs.evolve(_EPS, default=1e-10),
)
_ADAM_RULE = (
    "m0 = v0 = 0; m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g^2; "
    "b = sqrt(1-beta2^(t+1)) / (1-beta1^(t+1)); theta -= alpha_t b m / (sqrt(v) + eps)"
)
_NADAM_RULE = "m, v, b as Adam; theta -= alpha_t b (beta1 m + (1-beta1) g) / (sqrt(v) + eps)"

for _family in (
    Family(
        "sgd",
        "SGD",
        (_LR,),
        "theta -= eta_t g",
        _builtin_presets((1e-3, 10.0), (1e-3, 10.0), ()),
        paper=True,
        source="optcmp",
    ),
    Family(
        "momentum",
        "Momentum",
        (_LR, _MOMENTUM),
        "v0 = 0; v = gamma v + g; theta -= eta_t v",
        _builtin_presets((1e-4, 1.0), (1e-4, 1.0), (_MOMENTUM,), _DEEPOBS_MOMENTUM),
        paper=True,
        source="optcmp",
    ),
    Family(
        "nesterov",
        "Nesterov",
        (_LR, _MOMENTUM),
        "v0 = 0; v = gamma v + g; theta -= eta_t (gamma v + g)",
        _builtin_presets((1e-4, 1.0), (1e-4, 1.0), (_MOMENTUM,), _DEEPOBS_MOMENTUM),
        paper=True,
        source="optcmp",
    ),
    Family(
        "rmsprop",
        "RMSProp",
        (attrs.evolve(_LR, default=0.001), *_RMSPROP_HP),
        "v0 = 1, m0 = 0; v = rho v + (1-rho) g^2; m = gamma m + eta_t g / sqrt(v + eps); "
        "theta -= m",
        _builtin_presets((1e-5, 1.0), (1e-5, 1.0), _RMSPROP_HP),
        paper=True,
        source="optcmp",
    ),
    Family(
        "adam",
        "Adam",
        (_ADAM_LR, _BETA1, _BETA2, _EPS),
        _ADAM_RULE,
        _builtin_presets((1e-5, 10.0), (1e-5, 1.0), (_BETA1, _BETA2, _EPS)),
        paper=True,
        source="optcmp",
    ),
    Family(
        "nadam",
        "NAdam",
        (_ADAM_LR, _BETA1, _BETA2, _EPS),
        _NADAM_RULE,
        _builtin_presets((1e-5, 10.0), (1e-5, 1.0), (_BETA1, _BETA2, _EPS)),
        paper=True,
        source="optcmp",
    ),
    Family(
        "adamw",
        "AdamW",
        (_ADAM_LR, _BETA1, _BETA2, _EPS, _WEIGHT_DECAY),
        "Adam with decoupled weight decay (Loshchilov & Hutter 2019): "
        "theta -= alpha_t lambda theta + alpha_t b m / (sqrt(v) + eps)",
        _builtin_presets((1e-5, 10.0), (1e-5, 1.0), (_BETA1, _BETA2, _EPS, _WEIGHT_DECAY)),
        source="optcmp",
    ),
    Family(
        "nadamw",
        "NAdamW",
        (_ADAM_LR, _BETA1, _BETA2, _EPS, _WEIGHT_DECAY),
        "NAdam with decoupled weight decay (AlgoPerf's baseline): "
        "theta -= alpha_t lambda theta + alpha_t b (beta1 m + (1-beta1) g) / (sqrt(v) + eps)",
        _builtin_presets((1e-5, 10.0), (1e-5, 1.0), (_BETA1, _BETA2, _EPS, _WEIGHT_DECAY)),
        source="optcmp",
    ),
):
    register_family(_family)
del _family
