"""Whether an inclusion pair is an inclusion *as stored*: can the general optimizer's stored
search space reach the hyperparameters (or limit) that turn it into the special one?

Dependency rule: numpy, xarray and optcmp_data only.

The taxonomy's `HparamMap` of each relation says which general hyperparameters the special
optimizer needs (`fixed` values, values `same` as the special's own, a `limit` going to
+inf). For a pair reached through a chain (SGD ⊆ Momentum ⊆ Adam) the maps are composed:
Adam's beta1 = Momentum's momentum = 0. What a stored space can reach, per (workload,
optimizer, hyperparameter): its interval [low, high] for scales linear / log /
one_minus_log, the single value for `fixed`, and for `none` (not searched) the range of
the values its trials recorded, if any; otherwise the value is unknown and the requirement
is not checked (a caveat says so). Learning rates are never checked (the maps rescale them
through `lr_scaling`). Tolerances:

- a required value v is reachable when it lies within `VALUE_TOLERANCE` (1e-3) of the
  reachable interval (so 1 - rho searched down to 1e-4 reaches rho = 1);
- a `same` requirement needs the special optimizer's own interval inside the general's
  (with the same tolerance);
- a limit hyperparameter must reach `LIMIT_THRESHOLDS[name]` (epsilon: 100, where Adam's
  update differs from Momentum's by a relative sqrt(v)/epsilon <= 1% for gradient RMS <= 1);
  a limit not listed there must reach the map's own large value.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np
import xarray as xr

from optcmp_data import HparamMap, Taxonomy

__all__ = ["LIMIT_THRESHOLDS", "VALUE_TOLERANCE", "pair_reasons"]

VALUE_TOLERANCE = 1e-3
LIMIT_THRESHOLDS = {"epsilon": 100.0}

# Resolved requirement on one general hyperparameter.
_Req = tuple[str, float | str]  # ("fixed", v) | ("special", name) | ("limit", t) | ("free", "")


def _chain(taxonomy: Taxonomy, special: str, general: str) -> list[HparamMap | None] | None:
    """The maps along a shortest chain of direct relations special ⊆ ... ⊆ general (special
    side first); None when no chain exists."""
    direct = {(r.special, r.general): r.hparam_map for r in taxonomy.relations}
    queue: deque[tuple[str, list[HparamMap | None]]] = deque([(special, [])])
    seen = {special}
    while queue:
        fam, maps = queue.popleft()
        if fam == general:
            return maps
        for (s, g), m in direct.items():
            if s == fam and g not in seen:
                seen.add(g)
                queue.append((g, [*maps, m]))
    return None


def _resolve(maps: Sequence[HparamMap], level: int, name: str) -> _Req:
    """What family `level` (1 = the first family above the special one) needs of its
    hyperparameter `name`, through the maps below it."""
    m = maps[level - 1]
    fixed = dict(m.fixed)
    same = dict(m.same)
    if name in fixed:
        return ("fixed", float(fixed[name]))
    if m.limit is not None and m.limit[0] == name:
        return ("limit", LIMIT_THRESHOLDS.get(name, m.limit[1]))
    if name in same:
        below = same[name]
        return ("special", below) if level == 1 else _resolve(maps, level - 1, below)
    return ("free", "")


def _reachable(archive: xr.Dataset, w: int, o: int, name: str) -> tuple[float, float] | None:
    """[low, high] an optimizer's stored space (or its recorded trials) reaches for `name`;
    None where unknown."""
    hparams = [str(h) for h in archive["hparam"].values]
    if name not in hparams:
        return None
    at = {"workload": w, "optimizer": o, "hparam": hparams.index(name)}
    scale = str(archive["space_scale"].isel(at).item())
    low = float(archive["space_low"].isel(at).item())
    high = float(archive["space_high"].isel(at).item())
    if scale != "none" and math.isfinite(low) and math.isfinite(high):
        return (low, high)
    values = np.asarray(archive["hparams"].isel(at).values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size:
        return (float(values.min()), float(values.max()))
    return None


def _describe(archive: xr.Dataset, w: int, o: int, name: str, reach: tuple[float, float]) -> str:
    hparams = [str(h) for h in archive["hparam"].values]
    scale = str(
        archive["space_scale"].isel(workload=w, optimizer=o, hparam=hparams.index(name)).item()
    )
    owner = str(archive["optimizer"].values[o])
    if reach[0] == reach[1]:
        how = "fixed at" if scale != "none" else "always"
        return f"{name} {how} {reach[0]:g} in {owner}'s space"
    return f"{name} in [{reach[0]:g}, {reach[1]:g}] in {owner}'s space"


def pair_reasons(
    archive: xr.Dataset,
    pairs: Sequence[tuple[str, str, str, str]],
    taxonomy: Taxonomy,
) -> tuple[list[list[str]], list[str]]:
    """For every pair (special, general, special family, general family) and workload: ""
    when the stored spaces contain the inclusion (or it cannot be checked), else a plain
    reason. Returns (reasons[pair][workload], caveats)."""
    names = [str(o) for o in archive["optimizer"].values]
    n_w = archive.sizes["workload"]
    reasons: list[list[str]] = []
    caveats: list[str] = []
    for special, general, fam_s, fam_g in pairs:
        row = [""] * n_w
        chain = _chain(taxonomy, fam_s, fam_g)
        if chain is None or any(m is None for m in chain):
            caveats.append(
                f"{special} ⊆ {general}: the taxonomy gives no hyperparameter map for this "
                "relation, so the stored search spaces were not checked"
            )
            reasons.append(row)
            continue
        maps: list[HparamMap] = [m for m in chain if m is not None]
        top = maps[-1]
        wanted = [*dict(top.fixed), *dict(top.same)]
        if top.limit is not None:
            wanted.append(top.limit[0])
        o_g, o_s = names.index(general), names.index(special)
        for w in range(n_w):
            problems: list[str] = []
            for name in dict.fromkeys(wanted):
                kind, target = _resolve(maps, len(maps), name)
                reach = _reachable(archive, w, o_g, name)
                if kind == "free":
                    continue
                if reach is None:
                    note = (
                        f"{special} ⊆ {general}: {name} of {general} is not stored, so "
                        "whether its space contains the inclusion was not checked"
                    )
                    if note not in caveats:
                        caveats.append(note)
                    continue
                lo, hi = reach[0] - VALUE_TOLERANCE, reach[1] + VALUE_TOLERANCE
                if kind == "fixed":
                    v = float(target)
                    if not lo <= v <= hi:
                        problems.append(
                            f"{_describe(archive, w, o_g, name, reach)}; "
                            f"{special} needs {name} = {v:g}"
                        )
                elif kind == "limit":
                    t = float(target)
                    if not reach[1] >= t * (1 - 1e-9):
                        problems.append(
                            f"{_describe(archive, w, o_g, name, reach)}; {special} needs "
                            f"{name} -> inf (at least {t:g} reachable)"
                        )
                else:
                    own = _reachable(archive, w, o_s, str(target))
                    if own is None:
                        continue
                    if not (lo <= own[0] and own[1] <= hi):
                        own_text = _describe(archive, w, o_s, str(target), own)
                        problems.append(
                            f"{_describe(archive, w, o_g, name, reach)}; {special} needs "
                            f"{name} = its {target} ({own_text})"
                        )
            row[w] = "; ".join(problems)
        reasons.append(row)
    return reasons, caveats
