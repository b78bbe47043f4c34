"""Inclusion relations between optimizer families, as data.

Dependency rule: standard library, numpy, xarray, attrs. Analysis reads the relations
from an archive (or a user's file) through this module and never needs training code.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import xarray as xr

from optcmp_data._errors import ConfigError

__all__ = ["FAMILIES", "Inclusion", "Taxonomy", "default_taxonomy"]

# The paper's six update rules (method.md, Table 1), by family name.
FAMILIES = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "nadam")


@attrs.frozen
class Inclusion:
    """`special` is included in `general`: general reproduces special by a choice or limit of
    its hyperparameters, described in words by `limit`."""

    special: str
    general: str
    limit: str = ""


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
        limits = {(r.special, r.general): r.limit for r in self.relations}
        return Taxonomy(
            tuple(
                Inclusion(s, g, limits.get((s, g), "through a chain of inclusions"))
                for s, g in self.pairs(transitive=True)
                if s in keep and g in keep
            )
        )

    # --- data forms -------------------------------------------------------------------

    def to_variables(self) -> dict[str, xr.DataArray]:
        """The archive's `inclusion_special` / `inclusion_general` variables (dim `relation`)."""
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
        defaults = {(r.special, r.general): r.limit for r in default_taxonomy().relations}
        return cls(
            tuple(
                Inclusion(s, g, defaults.get((s, g), ""))
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
            relations.append(Inclusion(special, general, limit))
        try:
            return cls(tuple(relations))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Taxonomy:
        """From a TOML (`[[inclusion]]` tables) or JSON file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{path}: cannot read taxonomy file ({err.strerror})") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(
                f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {err}"
            ) from None
        return cls.from_mapping(data, source=str(path))


def default_taxonomy() -> Taxonomy:
    """The paper's relations: SGD ⊆ Momentum ⊆ {RMSProp, Adam}; SGD ⊆ Nesterov ⊆ NAdam."""
    return Taxonomy(
        (
            Inclusion("sgd", "momentum", "gamma = 0 (exact)"),
            Inclusion("sgd", "nesterov", "gamma = 0 (exact)"),
            Inclusion(
                "momentum",
                "rmsprop",
                "rho = 1 keeps v = 1: Momentum with eta / sqrt(1 + eps) "
                "(exact for constant schedules)",
            ),
            Inclusion(
                "momentum",
                "adam",
                "beta1 = gamma, alpha_t = eta_t eps / ((1 - gamma) b_t), eps -> inf",
            ),
            Inclusion(
                "nesterov",
                "nadam",
                "beta1 = gamma, alpha_t = eta_t eps / ((1 - gamma) b_t), eps -> inf",
            ),
        )
    )
