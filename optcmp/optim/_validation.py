"""Checking hyperparameter values and stacking K trials' values into [K] tensors.

Dependency rule: torch and optcmp_data only. The valid ranges are data in
`optcmp_data.FAMILY_SPECS` (see its module docstring: learning_rate >= 0; momentum,
beta1, beta2 in [0, 1); rho in [0, 1], rho = 1 allowed for the RMSProp ⊇ Momentum
inclusion; epsilon > 0; all finite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from optcmp_data import SCHEDULE_SPECS, ConfigError, HyperparamSpec, closest_name, get_family

__all__ = ["batch_hparams", "check_values", "validate_hparams"]


def check_values(spec: HyperparamSpec, value: Tensor | float, *, owner: str) -> None:
    """`spec.check` of a float or of every element of a tensor."""
    values = value.reshape(-1).tolist() if isinstance(value, Tensor) else [float(value)]
    for v in values:
        spec.check(float(v), owner=owner)


def validate_hparams(name: str, hparams: Mapping[str, Tensor | float]) -> None:
    """ConfigError naming optimizer, hyperparameter and value for the first invalid value.

    Every key must be one of the family's hyperparameters (learning_rate included); values
    are floats or tensors (every element is checked).
    """
    family = get_family(name)
    for key, value in hparams.items():
        check_values(family.spec(key), value, owner=f"optimizer {family.name}")


def batch_hparams(
    name: str,
    trials: Sequence[Mapping[str, float]],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """The family's hyperparameters of K trials as [K] tensors (learning_rate included).

    Each trial's mapping may omit hyperparameters (the family default is used, as listed
    by `optcmp optimizers`) and may hold schedule parameters, which are left out; any
    other key raises ConfigError (a misspelt name must not silently become a default).
    Values are validated first.
    """
    family = get_family(name)
    if not trials:
        raise ConfigError(f"optimizer {family.name}: no trials given")
    known = family.hparam_names + tuple(
        {h for spec in SCHEDULE_SPECS.values() for h in spec.hparam_names}
    )
    rows = []
    for trial in trials:
        for key in trial:
            if key not in known:
                raise ConfigError(
                    f"optimizer {family.name}: unknown hyperparameter {key!r}"
                    f"{closest_name(key, known)}"
                )
        own = {k: float(v) for k, v in trial.items() if k in family.hparam_names}
        rows.append(family.complete(own))
    return {
        h: torch.tensor([row[h] for row in rows], dtype=dtype, device=device)
        for h in family.hparam_names
    }
