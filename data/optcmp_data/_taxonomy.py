"""Inclusion relations between optimizer families, as data.

Dependency rule: standard library, numpy, xarray, attrs. Analysis reads the relations
from an archive (or a user's file) through this module and never needs training code.
numpy and xarray are imported where an archive's variables are built, so the CLI can
declare its taxonomy options (and answer --help) without them.
"""

from __future__ import annotations

import enum
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from optcmp_data._errors import ConfigError
from optcmp_data._fs import read_config_text

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "HparamMap",
    "Inclusion",
    "LrScaling",
    "Taxonomy",
    "default_taxonomy",
    "register_relation",
    "taxonomy_labels",
]


class LrScaling(enum.StrEnum):
    """How the general optimizer's learning rate at step t follows from the special one's.

    With eta_t the special optimizer's (scheduled) rate, the general one uses
    eta_t x factor_t, where factor_t is:

    - IDENTITY: 1.
    - SQRT_ONE_PLUS_EPS: sqrt(1 + eps), eps the general optimizer's epsilon (RMSProp with
      rho = 1 divides by sqrt(v + eps) = sqrt(1 + eps)).
    - ADAM_BIAS: eps / ((1 - beta1) b_t) with b_t = sqrt(1 - beta2^(t+1)) / (1 - beta1^(t+1)),
      t counted from 0 (cancels Adam's bias factor and the (1 - beta1) of its first moment).
    """

    IDENTITY = "identity"
    SQRT_ONE_PLUS_EPS = "sqrt_one_plus_eps"
    ADAM_BIAS = "adam_bias"

    def factor(self, general: Mapping[str, float], step: int) -> float:
        """factor_t for the general optimizer's hyperparameters `general` at `step`."""
        if self is LrScaling.IDENTITY:
            return 1.0
        eps = general["epsilon"]
        if self is LrScaling.SQRT_ONE_PLUS_EPS:
            return math.sqrt(1.0 + eps)
        beta1, beta2 = general["beta1"], general["beta2"]
        bias = math.sqrt(1.0 - beta2 ** (step + 1)) / (1.0 - beta1 ** (step + 1))
        return eps / ((1.0 - beta1) * bias)


def _pairs(value: Any) -> tuple[tuple[str, Any], ...]:
    if isinstance(value, Mapping):
        return tuple(value.items())
    return tuple((str(k), v) for k, v in value)


def _limit(value: Any) -> tuple[str, float] | None:
    return None if value is None else (str(value[0]), float(value[1]))


@attrs.frozen
class HparamMap:
    """The choice (or limit) of the general optimizer's hyperparameters that reproduces the
    special one, as data.

    - `same`: (general name, special name): the general hyperparameter takes the special
      one's value (e.g. Adam's beta1 = Momentum's momentum).
    - `fixed`: (general name, value): required values (e.g. momentum = 0, rho = 1).
    - `free`: (general name, example): any valid value works; the example is what a
      numerical check uses (e.g. Adam's beta2).
    - `limit`: (general name, large value) or None: the relation holds as that
      hyperparameter goes to +inf; the large finite value is the one to use numerically.
    - `lr_scaling`: the general learning rate is the special one's times a factor of the
      step and of the general hyperparameters (see LrScaling).
    - `constant_schedule_only`: exact only for a constant schedule (RMSProp folds eta_t into
      its momentum buffer, so a decaying rate weights past gradients differently).

    Learning rates are never listed in `same`/`fixed`: `lr_scaling` covers them.
    """

    same: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    fixed: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_pairs)
    free: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_pairs)
    limit: tuple[str, float] | None = attrs.field(default=None, converter=_limit)
    lr_scaling: LrScaling = attrs.field(default=LrScaling.IDENTITY, converter=LrScaling)
    constant_schedule_only: bool = False

    @property
    def exact(self) -> bool:
        """Whether the general optimizer reproduces the special one exactly (no limit)."""
        return self.limit is None

    def general_hparams(self, special: Mapping[str, float]) -> dict[str, float]:
        """The general optimizer's hyperparameters (without learning rate) for `special`'s."""
        out: dict[str, float] = {}
        for general_name, special_name in self.same:
            if special_name not in special:
                raise ConfigError(
                    f"inclusion map: the special optimizer's {special_name!r} is not given"
                )
            out[general_name] = float(special[special_name])
        out.update({k: float(v) for k, v in self.fixed})
        out.update({k: float(v) for k, v in self.free})
        if self.limit is not None:
            out[self.limit[0]] = self.limit[1]
        return out

    def lr_factor(self, general: Mapping[str, float], step: int) -> float:
        """The factor multiplying the special optimizer's eta_t at `step` (t from 0)."""
        return self.lr_scaling.factor(general, step)

    def describe(self) -> str:
        """One line, e.g. 'beta1 = momentum, beta2 free (0.999), epsilon -> inf (1e+08), ...'."""
        parts = [f"{g} = {s}" for g, s in self.same]
        parts += [f"{g} = {v:g}" for g, v in self.fixed]
        parts += [f"{g} free (e.g. {v:g})" for g, v in self.free]
        if self.limit is not None:
            parts.append(f"{self.limit[0]} -> inf (use {self.limit[1]:g})")
        lr = {
            LrScaling.IDENTITY: "lr = lr",
            LrScaling.SQRT_ONE_PLUS_EPS: "lr = eta_t sqrt(1 + eps)",
            LrScaling.ADAM_BIAS: "alpha_t = eta_t eps / ((1 - beta1) b_t)",
        }[self.lr_scaling]
        parts.append(lr)
        if self.constant_schedule_only:
            parts.append("exact for constant schedules only")
        return ", ".join(parts)

    def to_mapping(self) -> dict[str, Any]:
        """JSON/TOML-ready form; `from_mapping` reads it back."""
        out: dict[str, Any] = {
            "same": dict(self.same),
            "fixed": dict(self.fixed),
            "free": dict(self.free),
            "lr_scaling": self.lr_scaling.value,
            "constant_schedule_only": self.constant_schedule_only,
        }
        if self.limit is not None:
            out["limit"] = {"hparam": self.limit[0], "value": self.limit[1]}
        return out

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<map>") -> HparamMap:
        """From `to_mapping`'s form; ConfigError naming `source` and the key on bad input."""
        known = {"same", "fixed", "free", "limit", "lr_scaling", "constant_schedule_only"}
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key {key!r}; valid: {', '.join(sorted(known))}"
                )
        try:
            same = {str(k): str(v) for k, v in dict(data.get("same", {})).items()}
            fixed = {str(k): float(v) for k, v in dict(data.get("fixed", {})).items()}
            free = {str(k): float(v) for k, v in dict(data.get("free", {})).items()}
            limit_data = data.get("limit")
            limit = (
                None
                if limit_data is None
                else (str(limit_data["hparam"]), float(limit_data["value"]))
            )
        except (TypeError, ValueError, KeyError) as err:
            raise ConfigError(f"{source}: malformed hyperparameter map ({err})") from None
        scaling = data.get("lr_scaling", LrScaling.IDENTITY.value)
        try:
            lr_scaling = LrScaling(scaling)
        except ValueError:
            valid = ", ".join(s.value for s in LrScaling)
            raise ConfigError(f"{source}: lr_scaling = {scaling!r} is not one of {valid}") from None
        constant_only = data.get("constant_schedule_only", False)
        if not isinstance(constant_only, bool):
            raise ConfigError(f"{source}: constant_schedule_only must be true or false")
        return cls(same, fixed, free, limit, lr_scaling, constant_only)


@attrs.frozen
class Inclusion:
    """`special` is included in `general`: general reproduces special by a choice or limit of
    its hyperparameters, described in words by `limit` and as data by `hparam_map` (None
    for relations declared without one)."""

    special: str
    general: str
    limit: str = ""
    hparam_map: HparamMap | None = None


@attrs.frozen
class Taxonomy:
    """A set of declared inclusion relations between optimizer families."""

    relations: tuple[Inclusion, ...]

    def __attrs_post_init__(self) -> None:
        seen: set[tuple[str, str]] = set()
        for rel in self.relations:
            if rel.special == rel.general:
                raise ConfigError(f"taxonomy: relation {rel.special} ⊆ {rel.general} is reflexive")
            key = (rel.special, rel.general)
            if key in seen:
                raise ConfigError(
                    f"taxonomy: relation {rel.special} ⊆ {rel.general} is declared twice"
                )
            seen.add(key)
        closure = self._closure_pairs()
        for special, general in closure:
            if (general, special) in closure:
                raise ConfigError(
                    f"taxonomy: {special} ⊆ {general} and {general} ⊆ {special} form a cycle"
                )

    def _closure_pairs(self) -> set[tuple[str, str]]:
        pairs = {(r.special, r.general) for r in self.relations}
        changed = True
        while changed:
            changed = False
            for a, b in list(pairs):
                for c, d in list(pairs):
                    if b == c and (a, d) not in pairs:
                        pairs.add((a, d))
                        changed = True
        return pairs

    def pairs(self, *, transitive: bool = True) -> tuple[tuple[str, str], ...]:
        """(special, general) pairs, sorted; with `transitive`, the closure of the relations."""
        if transitive:
            return tuple(sorted(self._closure_pairs()))
        return tuple(sorted((r.special, r.general) for r in self.relations))

    def optimizer_pairs(self, archive: xr.Dataset) -> tuple[tuple[str, str, str, str], ...]:
        """(special optimizer, general optimizer, special label, general label) for every
        pair of an archive's optimizers whose taxonomy labels (`taxonomy_labels`) form an
        inclusion of the closure; in the taxonomy's order, then the archive's."""
        names = [str(o) for o in archive["optimizer"].values]
        labels = taxonomy_labels(archive)
        return tuple(
            (s, g, ls, lg)
            for special, general in self.pairs(transitive=True)
            for s, ls in zip(names, labels, strict=True)
            if ls == special
            for g, lg in zip(names, labels, strict=True)
            if lg == general
        )

    def includes(self, general: str, special: str) -> bool:
        """Whether `special` ⊆ `general`, directly or through a chain."""
        return (special, general) in self._closure_pairs()

    @property
    def families(self) -> tuple[str, ...]:
        names = {r.special for r in self.relations} | {r.general for r in self.relations}
        return tuple(sorted(names))

    def restricted_to(self, families: Iterable[str]) -> Taxonomy:
        """Relations whose two ends are both among `families` (closure taken first)."""
        keep = set(families)
        direct = {(r.special, r.general): r for r in self.relations}
        return Taxonomy(
            tuple(
                direct.get((s, g), Inclusion(s, g, "through a chain of inclusions"))
                for s, g in self.pairs(transitive=True)
                if s in keep and g in keep
            )
        )

    # --- data forms -------------------------------------------------------------------

    def to_variables(self) -> dict[str, xr.DataArray]:
        """The archive's `inclusion_special` / `inclusion_general` variables (dim `relation`)."""
        import numpy as np
        import xarray as xr

        special = np.array([r.special for r in self.relations], dtype=str)
        general = np.array([r.general for r in self.relations], dtype=str)
        return {
            "inclusion_special": xr.DataArray(special, dims="relation"),
            "inclusion_general": xr.DataArray(general, dims="relation"),
        }

    @classmethod
    def from_archive(cls, ds: xr.Dataset) -> Taxonomy:
        """The relations an archive declares (its own, or the default it was written with)."""
        special = ds["inclusion_special"].values.astype(str)
        general = ds["inclusion_general"].values.astype(str)
        defaults = {(r.special, r.general): r for r in default_taxonomy().relations}
        return cls(
            tuple(
                defaults.get((s, g), Inclusion(s, g, ""))
                for s, g in zip(special, general, strict=True)
            )
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<taxonomy>") -> Taxonomy:
        """From `{"inclusion": [{"special": ..., "general": ..., "limit": ...}, ...]}`."""
        items = data.get("inclusion")
        if not isinstance(items, list):
            raise ConfigError(f"{source}: key 'inclusion': expected a list of relations")
        relations = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ConfigError(
                    f"{source}: inclusion[{i}]: expected a table with special, general"
                )
            special, general = item.get("special"), item.get("general")
            if (
                not isinstance(special, str)
                or not isinstance(general, str)
                or not special
                or not general
            ):
                raise ConfigError(
                    f"{source}: inclusion[{i}]: 'special' and 'general' must be non-empty strings"
                )
            limit = item.get("limit", "")
            if not isinstance(limit, str):
                raise ConfigError(f"{source}: inclusion[{i}].limit: expected a string")
            map_data = item.get("map")
            if map_data is not None and not isinstance(map_data, Mapping):
                raise ConfigError(f"{source}: inclusion[{i}].map: expected a table")
            hparam_map = (
                None
                if map_data is None
                else HparamMap.from_mapping(map_data, source=f"{source}: inclusion[{i}].map")
            )
            relations.append(Inclusion(special, general, limit, hparam_map))
        try:
            return cls(tuple(relations))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    def to_mapping(self) -> dict[str, Any]:
        """`{"inclusion": [...]}` as `from_mapping` reads it (JSON-ready)."""
        items: list[dict[str, Any]] = []
        for r in self.relations:
            item: dict[str, Any] = {"special": r.special, "general": r.general, "limit": r.limit}
            if r.hparam_map is not None:
                item["map"] = r.hparam_map.to_mapping()
            items.append(item)
        return {"inclusion": items}

    @classmethod
    def from_file(cls, path: str | Path) -> Taxonomy:
        """From a TOML (`[[inclusion]]` tables) or JSON file."""
        path = Path(path)
        text = read_config_text(path, "taxonomy file")
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(
                f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {err}"
            ) from None
        return cls.from_mapping(data, source=str(path))


# The large epsilon used when checking the Adam/NAdam limits numerically: the relative
# difference from Momentum/Nesterov is about sqrt(v) / eps, far below 1e-4 for usual gradients.
_LARGE_EPS = 1e8


def taxonomy_labels(archive: xr.Dataset) -> tuple[str, ...]:
    """The label under which each optimizer of an archive takes part in a taxonomy: its
    `optimizer_family`, or its own name where the family is empty (e.g. imported AlgoPerf
    submissions), so a user's taxonomy file can relate such optimizers by name."""
    return tuple(
        str(family) or str(name)
        for name, family in zip(
            archive["optimizer"].values, archive["optimizer_family"].values, strict=True
        )
    )


_RELATIONS: list[Inclusion] = []


def register_relation(relation: Inclusion) -> Inclusion:
    """Declare `relation` (special ⊆ general) for the default taxonomy (the one public way
    in; the built-in relations below use it too). Registering an equal relation again is a
    no-op; a second, different declaration of the same pair, or one that would make a cycle,
    raises ConfigError."""
    if relation in _RELATIONS:
        return relation
    Taxonomy((*_RELATIONS, relation))  # validates: no duplicate pair, no cycle
    _RELATIONS.append(relation)
    return relation


def default_taxonomy() -> Taxonomy:
    """The registered relations: the paper's SGD ⊆ Momentum ⊆ {RMSProp, Adam},
    SGD ⊆ Nesterov ⊆ NAdam, Adam ⊆ AdamW, NAdam ⊆ NAdamW, then any plug-in's."""
    return Taxonomy(tuple(_RELATIONS))


def _register_builtin_relations() -> None:
    adam_map = HparamMap(
        same=(("beta1", "momentum"),),
        free=(("beta2", 0.999),),
        limit=("epsilon", _LARGE_EPS),
        lr_scaling=LrScaling.ADAM_BIAS,
    )
    decoupled = HparamMap(
        same=(("beta1", "beta1"), ("beta2", "beta2"), ("epsilon", "epsilon")),
        fixed=(("weight_decay", 0.0),),
    )
    for relation in (
        Inclusion("sgd", "momentum", "gamma = 0 (exact)", HparamMap(fixed=(("momentum", 0.0),))),
        Inclusion("sgd", "nesterov", "gamma = 0 (exact)", HparamMap(fixed=(("momentum", 0.0),))),
        Inclusion(
            "momentum",
            "rmsprop",
            "rho = 1 keeps v = 1: Momentum with eta / sqrt(1 + eps) (exact for constant schedules)",
            HparamMap(
                same=(("momentum", "momentum"),),
                fixed=(("rho", 1.0),),
                free=(("epsilon", 0.5),),
                lr_scaling=LrScaling.SQRT_ONE_PLUS_EPS,
                constant_schedule_only=True,
            ),
        ),
        Inclusion(
            "momentum",
            "adam",
            "beta1 = gamma, alpha_t = eta_t eps / ((1 - gamma) b_t), eps -> inf",
            adam_map,
        ),
        Inclusion(
            "nesterov",
            "nadam",
            "beta1 = gamma, alpha_t = eta_t eps / ((1 - gamma) b_t), eps -> inf",
            adam_map,
        ),
        Inclusion("adam", "adamw", "weight_decay = 0 (exact)", decoupled),
        Inclusion("nadam", "nadamw", "weight_decay = 0 (exact)", decoupled),
    ):
        register_relation(relation)


_register_builtin_relations()
