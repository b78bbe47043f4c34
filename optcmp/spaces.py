"""Search spaces and quasi-random trials (method.md section 3).

Dependency rule: numpy, scipy, attrs and optcmp_data only (no torch), so listing spaces is
cheap. Hyperparameter names, defaults and valid ranges come from `optcmp_data`'s family
and schedule data.

A `SearchSpace` belongs to one optimizer family and one learning-rate schedule. Each
hyperparameter of the family and of the schedule is either searched (`HParamRange`: low,
high and a scale) or fixed (a value; unlisted ones are fixed at the family's default).
Bounds are natural values: momentum in [0, 0.999] on the `one_minus_log` scale means
1 - momentum is searched log-uniformly in [0.001, 1].

Trials are points of a scrambled Halton sequence (scipy.stats.qmc) seeded explicitly;
trial i is always the i-th point of that sequence, so `sample(16, seed=s)` followed by
`sample(16, seed=s, start=16)` equals `sample(32, seed=s)`: a study can be extended.

Presets (`preset(name, family)`); each family declares its own ranges for each preset
(`optcmp_data.Family.presets`), the preset adds its schedule:
- `choi2019`: learning rate, 1-momentum, 1-beta1, 1-beta2, 1-rho on log scales, epsilon
  over many decades, and the linear-decay schedule's decay_factor and
  decay_steps_fraction (in the spirit of Choi et al. 2019, Appendix D).
- `lr-only`: learning rate only, constant schedule, everything else at the usual
  defaults (momentum 0.9, Adam 0.9/0.999/1e-8, AdamW weight decay 0.01); the protocol
  of Wilson et al. 2017.
- `deepobs`: learning rate only over [1e-5, 1e2], constant schedule, momentum 0.99
  (Schneider et al. 2019).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt
from scipy.stats import qmc

from optcmp_data import (
    ConfigError,
    Family,
    Scale,
    ScheduleKind,
    ScheduleSpec,
    SpaceDim,
    SpaceRecord,
    closest_name,
    get_family,
    get_schedule,
)

__all__ = [
    "PRESETS",
    "SEARCHED_SCALES",
    "HParamRange",
    "SearchSpace",
    "preset",
]

#: Scales a searched hyperparameter may use.
SEARCHED_SCALES: Final = (Scale.LINEAR, Scale.LOG, Scale.ONE_MINUS_LOG)


def _scale(value: Scale | str) -> Scale:
    try:
        scale = Scale(value)
    except ValueError:
        scale = None
    if scale not in SEARCHED_SCALES:
        valid = tuple(s.value for s in SEARCHED_SCALES)
        raise ConfigError(
            f"scale {value!r} is not a search scale; valid: {', '.join(valid)}"
            f"{closest_name(str(value), valid)}"
        )
    assert scale is not None
    return scale


@attrs.frozen
class HParamRange:
    """One searched hyperparameter: natural bounds `low` < `high` and a scale."""

    name: str
    low: float = attrs.field(converter=float)
    high: float = attrs.field(converter=float)
    scale: Scale = attrs.field(converter=_scale)

    def __attrs_post_init__(self) -> None:
        where = f"hyperparameter {self.name}"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ConfigError(f"{where}: bounds must be finite (low={self.low}, high={self.high})")
        if self.low >= self.high:
            raise ConfigError(f"{where}: low = {self.low:g} must be below high = {self.high:g}")
        if self.scale is Scale.LOG and self.low <= 0:
            raise ConfigError(f"{where}: log scale needs bounds > 0 (low = {self.low:g})")
        if self.scale is Scale.ONE_MINUS_LOG and self.high >= 1:
            raise ConfigError(
                f"{where}: one_minus_log scale needs bounds < 1 so 1 - x > 0 (high = {self.high:g})"
            )

    def from_unit(self, u: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Map points of [0, 1) to values (u = 0 gives `low`)."""
        if self.scale is Scale.LINEAR:
            return self.low + u * (self.high - self.low)
        if self.scale is Scale.LOG:
            lo, hi = math.log(self.low), math.log(self.high)
            return np.exp(lo + u * (hi - lo))
        lo, hi = math.log1p(-self.low), math.log1p(-self.high)
        return -np.expm1(lo + u * (hi - lo))

    def to_space_dim(self) -> SpaceDim:
        return SpaceDim(self.name, self.low, self.high, self.scale)


def _fixed_items(
    value: Mapping[str, float] | tuple[tuple[str, float], ...],
) -> tuple[tuple[str, float], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), float(v)) for k, v in items))


@attrs.frozen
class SearchSpace:
    """A named search space for one optimizer family under one schedule.

    Construction validates everything: each name must be a hyperparameter of the family
    or of the schedule (ConfigError naming the closest valid one otherwise), fixed values
    and range bounds must lie in the valid ranges, and no name is both searched and fixed.
    """

    name: str
    family: str
    schedule: ScheduleKind = attrs.field(converter=ScheduleKind)
    searched: tuple[HParamRange, ...] = ()
    fixed: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_fixed_items)

    def __attrs_post_init__(self) -> None:
        fam = get_family(self.family)
        sched = get_schedule(self.schedule)
        if sched.kind not in fam.schedules:
            raise ConfigError(
                f"space {self.name!r} for {self.family}: schedule {sched.kind.value} is not "
                f"one it accepts ({', '.join(k.value for k in fam.schedules)})"
            )
        valid = self.valid_names(fam, sched)
        seen: set[str] = set()
        owner = f"space {self.name!r} for {self.family}"
        for name in [r.name for r in self.searched] + [k for k, _ in self.fixed]:
            if name not in valid:
                raise ConfigError(
                    f"{owner}: {self.family} with schedule {sched.kind.value} has no "
                    f"hyperparameter {name!r}; it has {', '.join(valid)}{closest_name(name, valid)}"
                )
            if name in seen:
                raise ConfigError(f"{owner}: hyperparameter {name!r} is given twice")
            seen.add(name)
        specs = {h.name: h for h in (*fam.hparams, *sched.hparams)}
        for r in self.searched:
            for bound in (r.low, r.high):
                if not specs[r.name].contains(bound):
                    raise ConfigError(
                        f"{owner}: hyperparameter {r.name}: bound {bound:g} is outside its "
                        f"valid range {specs[r.name].interval}"
                    )
        for name, value in self.fixed:
            specs[name].check(value, owner=owner)

    @staticmethod
    def valid_names(fam: Family, sched: ScheduleSpec) -> tuple[str, ...]:
        return (*fam.hparam_names, *sched.hparam_names)

    @property
    def names(self) -> tuple[str, ...]:
        """Every hyperparameter of the trials: the family's, then the schedule's."""
        return self.valid_names(get_family(self.family), get_schedule(self.schedule))

    def fixed_values(self) -> dict[str, float]:
        """Values of every hyperparameter that is not searched (explicit or default)."""
        fam, sched = get_family(self.family), get_schedule(self.schedule)
        values = {**fam.defaults(), **{h.name: h.default for h in sched.hparams}}
        values.update(dict(self.fixed))
        searched = {r.name for r in self.searched}
        return {k: v for k, v in values.items() if k not in searched}

    def sample(self, n: int, *, seed: int, start: int = 0) -> list[dict[str, float]]:
        """Trials start .. start+n-1 of the seeded scrambled Halton sequence, as name -> value.

        Every trial holds all of `names`; the same seed always gives the same sequence.
        """
        if n < 0 or start < 0:
            raise ConfigError(f"space {self.name!r}: cannot draw {n} trials from index {start}")
        fixed = self.fixed_values()
        if not self.searched:
            return [dict(fixed) for _ in range(n)]
        engine = qmc.Halton(d=len(self.searched), scramble=True, rng=seed)
        if start:
            engine.fast_forward(start)
        points = engine.random(n) if n else np.empty((0, len(self.searched)))
        columns = {r.name: r.from_unit(points[:, i]) for i, r in enumerate(self.searched)}
        order = self.names
        return [
            {k: float(columns[k][j]) if k in columns else fixed[k] for k in order} for j in range(n)
        ]

    def to_record(self) -> SpaceRecord:
        """The archive's record: searched ranges plus fixed values (scale `fixed`, low = high).

        The record's name carries the schedule, e.g. `choi2019[linear_decay]`.
        """
        dims = [r.to_space_dim() for r in self.searched]
        dims += [SpaceDim(k, v, v, Scale.FIXED) for k, v in self.fixed_values().items()]
        order = {k: i for i, k in enumerate(self.names)}
        dims.sort(key=lambda d: order[d.name])
        return SpaceRecord(f"{self.name}[{self.schedule.value}]", tuple(dims))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "schedule": self.schedule.value,
            "searched": [
                {"name": r.name, "low": r.low, "high": r.high, "scale": r.scale.value}
                for r in self.searched
            ],
            "fixed": self.fixed_values(),
        }


# --- presets -----------------------------------------------------------------------------

_L = Scale.LOG

# Choi et al. 2019 search 1-gamma, 1-beta1, 1-beta2 on log scales and let epsilon range
# over many decades: with large epsilon Adam behaves like momentum, so the learning-rate
# range of the adaptive methods must be wide enough to compensate (method.md section 2).
# Each family declares its own ranges per preset (`Family.presets`, in optcmp_data); the
# preset adds its schedule and, for choi2019, the schedule's searched parameters.
_CHOI_SCHEDULE: Final = (
    HParamRange("decay_factor", 1e-3, 0.1, _L),
    HParamRange("decay_steps_fraction", 0.5, 1.0, Scale.LINEAR),
)
_SCHEDULES: Final = {
    "choi2019": ScheduleKind.LINEAR_DECAY,
    "lr-only": ScheduleKind.CONSTANT,
    "deepobs": ScheduleKind.CONSTANT,
}
_SCHEDULE_RANGES: Final[Mapping[str, tuple[HParamRange, ...]]] = {"choi2019": _CHOI_SCHEDULE}


def _from_family(name: str, family: str) -> SearchSpace:
    fam = get_family(family)
    declared = fam.presets.get(name)
    if declared is None:
        raise ConfigError(
            f"optimizer {family} declares no {name!r} search space (it has "
            f"{', '.join(fam.presets) or 'none'}); give a [spaces.{family}] table"
        )
    searched = tuple(
        HParamRange(r.name, r.low, r.high, r.scale) for r in declared if r.scale != "fixed"
    )
    fixed = {r.name: r.low for r in declared if r.scale == "fixed"}
    return SearchSpace(
        name, family, _SCHEDULES[name], (*searched, *_SCHEDULE_RANGES.get(name, ())), fixed
    )


#: Names of the preset spaces.
PRESETS: Final = tuple(_SCHEDULES)


def preset(name: str, family: str) -> SearchSpace:
    """The preset space `name` for optimizer `family`; ConfigError naming the closest valid."""
    get_family(family)
    if name not in _SCHEDULES:
        raise ConfigError(
            f"unknown search-space preset {name!r}; valid: {', '.join(PRESETS)}"
            f"{closest_name(name, PRESETS)}"
        )
    return _from_family(name, family)
