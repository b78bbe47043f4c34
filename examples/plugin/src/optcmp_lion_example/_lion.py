"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") as a batched
optcmp rule:

    c = beta1 m + (1 - beta1) g            (interpolated momentum)
    theta <- theta (1 - lr lambda) - lr sign(c)   (decoupled weight decay)
    m = beta2 m + (1 - beta2) g

The rule subclasses `optcmp.Rule`: `_coefficients` computes per-trial [K] tensors once per
step, `_kernel` applies them to lists of parameter blocks. A coefficient arrives either as
a float (one trial on the CPU) or as a list of per-block [K, 1, ...] views; the foreach
calls used here (mul, lerp, add, sign) accept both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from optcmp import Family, HyperparamSpec, Rule, SearchRange

_LR = HyperparamSpec("learning_rate", "eta_t", 1e-4, 0.0, math.inf, True, False, "step size")
_BETA1 = HyperparamSpec("beta1", "beta1", 0.9, 0.0, 1.0, True, True, "interpolation for the sign")
_BETA2 = HyperparamSpec("beta2", "beta2", 0.99, 0.0, 1.0, True, False, "momentum decay")
_WD = HyperparamSpec("weight_decay", "lambda", 0.0, 0.0, math.inf, True, False, "decoupled decay")

LION_FAMILY = Family(
    "lion",
    "Lion",
    (_LR, _BETA1, _BETA2, _WD),
    "c = beta1 m + (1-beta1) g; theta -= eta_t (sign(c) + lambda theta); m = beta2 m + (1-beta2) g",
    presets={
        "choi2019": (
            SearchRange("learning_rate", 1e-6, 1e-1, "log"),
            SearchRange("beta1", 0.0, 0.999, "one_minus_log"),
            SearchRange("beta2", 0.0, 0.9999, "one_minus_log"),
            SearchRange("weight_decay", 1e-5, 1.0, "log"),
        ),
        "lr-only": (SearchRange("learning_rate", 1e-6, 1e-1, "log"),),
        "deepobs": (SearchRange("learning_rate", 1e-5, 1e2, "log"),),
    },
)


class Lion(Rule):
    """Lion over K trials at once (see the module docstring)."""

    family = LION_FAMILY
    state_names = ("exp_avg",)

    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        return {
            "one_minus_beta1": 1.0 - h["beta1"],
            "one_minus_beta2": 1.0 - h["beta2"],
            "shrink": 1.0 - lr * h["weight_decay"],
            "neg_lr": -lr,
        }

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Mapping[str, Any]
    ) -> None:
        (m,) = bufs
        direction = list(torch._foreach_lerp(m, g, c["one_minus_beta1"]))
        torch._foreach_sign_(direction)
        torch._foreach_mul_(direction, c["neg_lr"])
        torch._foreach_mul_(p, c["shrink"])
        torch._foreach_add_(p, direction)
        torch._foreach_lerp_(m, g, c["one_minus_beta2"])


#: The object the entry point names: a rule instance (its `family` is registered with it).
LION = Lion()
