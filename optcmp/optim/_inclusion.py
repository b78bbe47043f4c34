"""Inclusion maps in tensor form: the general optimizer's settings that reproduce a special one.

Dependency rule: torch and optcmp_data only. The maps themselves are data
(`optcmp_data.HparamMap` on each `Inclusion` of the taxonomy); this module evaluates them
for K trials at once, so a special optimizer's trials can be replayed by the general one:

    general = general_hparams(inclusion, special_hparams)        # [K] tensors
    lr_general_t = general_lr(inclusion, general, lr_special_t, step)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from optcmp.optim._rules import adam_bias
from optcmp_data import ConfigError, HparamMap, Inclusion, LrScaling

__all__ = ["general_hparams", "general_lr"]


def _map(inclusion: Inclusion) -> HparamMap:
    if inclusion.hparam_map is None:
        raise ConfigError(
            f"inclusion {inclusion.special} ⊆ {inclusion.general}: no hyperparameter map declared"
        )
    return inclusion.hparam_map


def general_hparams(inclusion: Inclusion, special: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The general optimizer's hyperparameters (no learning rate) as [K] tensors.

    `special` maps the special optimizer's hyperparameter names to [K] tensors; fixed,
    free and limit values are broadcast to the same shape, dtype and device.
    """
    hmap = _map(inclusion)
    if not special:
        raise ConfigError(
            f"inclusion {inclusion.special} ⊆ {inclusion.general}: no special hyperparameters "
            "given (pass at least the learning rate to fix K, dtype and device)"
        )
    like = next(iter(special.values()))
    out: dict[str, Tensor] = {}
    for general_name, special_name in hmap.same:
        if special_name not in special:
            raise ConfigError(
                f"inclusion {inclusion.special} ⊆ {inclusion.general}: the special optimizer's "
                f"{special_name} is not given"
            )
        out[general_name] = special[special_name].clone()
    constants = dict(hmap.fixed) | dict(hmap.free)
    if hmap.limit is not None:
        constants[hmap.limit[0]] = hmap.limit[1]
    for name, value in constants.items():
        out[name] = torch.full_like(like, value)
    return out


def general_lr(
    inclusion: Inclusion, general: Mapping[str, Tensor], special_lr: Tensor, step: int
) -> Tensor:
    """The general optimizer's learning rate at `step` for the special one's `special_lr`."""
    scaling = _map(inclusion).lr_scaling
    if scaling is LrScaling.IDENTITY:
        return special_lr.clone()
    eps = general["epsilon"]
    if scaling is LrScaling.SQRT_ONE_PLUS_EPS:
        return special_lr * torch.sqrt(1.0 + eps)
    beta1 = general["beta1"]
    return special_lr * eps / ((1.0 - beta1) * adam_bias(beta1, general["beta2"], step))
