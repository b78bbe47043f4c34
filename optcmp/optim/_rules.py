"""The built-in update rules over K trials at once: the paper's six (method.md, Table 1),
AdamW and NAdamW. They are registered through `optcmp.register_rule` like any plug-in
(`optcmp.optim._registry`); a plug-in may subclass `Rule` the same way.

Dependency rule: torch and optcmp_data only.

Every tensor a rule touches has a leading trial axis K: parameter `p` of one model has
shape [K, *shape] and hyperparameters are float tensors of shape [K], one value per trial.
A rule is a pair of pure functions in the optax style plus an in-place fast path:

    state = rule.init(params)
    updates, state = rule.update(grads, state, hparams, lr, step)   # pure
    rule.apply_(params, grads, state, hparams, lr, step)            # in place, the fast path

`lr` is the scheduled learning rate of each trial at this step (shape [K]; eta_t or
alpha_t of Table 1), `step` is t counted from 0 and `hparams` maps the family's other
hyperparameter names (momentum, rho, beta1, beta2, epsilon) to [K] tensors; other keys
(learning_rate, schedule parameters) are ignored, so a trial's whole mapping can be passed.
Rules do not validate values (that costs a device sync per step): call
`optcmp.optim.validate_hparams` once when the trials are set up.

Performance: `apply_` never loops over trials. For K > 1 it cuts every parameter tensor
into blocks of at most `CHUNK_ELEMENTS` elements (over all K trials), gathers blocks into
waves of about that many elements, and runs the rule's operations wave by wave as
`torch._foreach_*` calls (one call per operation per wave; per-trial coefficients
broadcast as [K, 1] views). A wave's operands stay in cache from one operation to the
next and temporaries are wave-sized, never model-sized x K, which keeps a batched update
of K large models no slower than K separate updates; small models fit in one wave, so the
per-step overhead is a handful of calls whatever K is. K = 1 (the torch.optim wrappers)
runs in one wave with float coefficients on the CPU, i.e. torch's own scalar kernels.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, Final

import torch
from torch import Tensor

from optcmp_data import FAMILY_SPECS, ConfigError, Family, closest_name

__all__ = [
    "BUILTIN_RULES",
    "CHUNK_ELEMENTS",
    "SGD",
    "Adam",
    "AdamW",
    "Momentum",
    "NAdam",
    "NAdamW",
    "Nesterov",
    "RMSProp",
    "Rule",
    "State",
    "adam_bias",
]

State = dict[str, list[Tensor]]
"""A rule's state: buffer name -> one tensor per parameter, each shaped like the parameter."""

# Elements (over all K trials) per block and per wave: 2 MiB of float32 per operand, so a
# wave's few operands share the last-level cache while each foreach call has enough work
# to hide its few microseconds of dispatch.
CHUNK_ELEMENTS: Final = 1 << 19

Coef = float | list[Tensor]
"""One coefficient for a wave: a float when K = 1 on the CPU (scalar kernels, no views),
otherwise one [K, 1, ...] view per block of the wave, broadcasting over the block."""
Coeffs = Mapping[str, Coef]


# The foreach calls below take either form of a coefficient; mypy needs the branches.
def _mul_(xs: list[Tensor], c: Coef) -> None:
    if isinstance(c, float):
        torch._foreach_mul_(xs, c)
    else:
        torch._foreach_mul_(xs, c)


def _add_(xs: list[Tensor], c: Coef) -> None:
    if isinstance(c, float):
        torch._foreach_add_(xs, c)
    else:
        torch._foreach_add_(xs, c)


def _add(xs: list[Tensor], c: Coef) -> list[Tensor]:
    if isinstance(c, float):
        return list(torch._foreach_add(xs, c))
    return list(torch._foreach_add(xs, c))


def _div_(xs: list[Tensor], c: Coef) -> None:
    if isinstance(c, float):
        torch._foreach_div_(xs, c)
    else:
        torch._foreach_div_(xs, c)


def _axpy_(ys: list[Tensor], xs: list[Tensor], c: Coef) -> None:
    """ys += c xs."""
    if isinstance(c, float):
        torch._foreach_add_(ys, xs, alpha=c)
    else:
        torch._foreach_addcmul_(ys, xs, c)


def _lerp_(xs: list[Tensor], ys: list[Tensor], c: Coef) -> None:
    """xs += c (ys - xs)."""
    if isinstance(c, float):
        torch._foreach_lerp_(xs, ys, c)
    else:
        torch._foreach_lerp_(xs, ys, c)


def _average_square_(v: list[Tensor], g: list[Tensor], decay: Coef, rest: Coef) -> None:
    """v = decay v + rest g^2 (rest = 1 - decay).

    With floats: in place, no temporary (one model, where a model-sized temporary would
    be a fresh allocation each step). With per-trial views: lerp towards a wave-sized g^2;
    lerp leaves v exactly unchanged when rest = 0 (rho = 1 in RMSProp, its Momentum limit).
    """
    if isinstance(decay, float) and isinstance(rest, float):
        torch._foreach_mul_(v, decay)
        torch._foreach_addcmul_(v, g, g, value=rest)
    else:
        assert isinstance(rest, list)
        square = list(torch._foreach_mul(g, g))
        torch._foreach_lerp_(v, square, rest)


def _lerp(xs: list[Tensor], ys: list[Tensor], c: Coef) -> list[Tensor]:
    if isinstance(c, float):
        return list(torch._foreach_lerp(xs, ys, c))
    return list(torch._foreach_lerp(xs, ys, c))


def _blocks(k: int, tensors: Sequence[Tensor], chunk: int) -> Iterator[tuple[Tensor, ...]]:
    """Same-shaped views of `tensors` ([K, *shape] each), in blocks of about `chunk` elements."""
    numel = tensors[0].numel()
    if numel <= chunk or not all(t.is_contiguous() for t in tensors):
        # Small enough to be one block (or, not contiguous, impossible to flatten in place).
        yield tuple(tensors)
        return
    flat = [t.view(k, -1) for t in tensors]
    width = max(1, chunk // max(k, 1))
    for start in range(0, numel // k, width):
        yield tuple(f[:, start : start + width] for f in flat)


def _waves(blocks: Iterator[tuple[Tensor, ...]], chunk: int) -> Iterator[list[tuple[Tensor, ...]]]:
    """Consecutive blocks grouped so that each group holds about `chunk` elements."""
    wave: list[tuple[Tensor, ...]] = []
    size = 0
    for block in blocks:
        n = block[0].numel()
        if wave and size + n > chunk:
            yield wave
            wave, size = [], 0
        wave.append(block)
        size += n
    if wave:
        yield wave


class Rule(abc.ABC):
    """One update rule of Table 1, for parameters with a leading trial axis."""

    family: ClassVar[Family]
    # Buffer names in the state; `_initial` gives each buffer's starting value.
    state_names: ClassVar[tuple[str, ...]] = ()
    _initial: ClassVar[Mapping[str, float]] = {}

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def hparam_names(self) -> tuple[str, ...]:
        """The hyperparameters `hparams` must hold (the learning rate comes as `lr`)."""
        return tuple(n for n in self.family.hparam_names if n != "learning_rate")

    def init(self, params: Sequence[Tensor]) -> State:
        """Fresh state for `params` (each [K, *shape]): zeros, or ones where Table 1 says so."""
        return {
            name: [torch.full_like(p, self._initial.get(name, 0.0)) for p in params]
            for name in self.state_names
        }

    def update(
        self,
        grads: Sequence[Tensor],
        state: State,
        hparams: Mapping[str, Tensor],
        lr: Tensor,
        step: int,
        params: Sequence[Tensor] | None = None,
    ) -> tuple[list[Tensor], State]:
        """The pure form: (updates to add to the parameters, new state); inputs untouched.

        Written in terms of `apply_` (applied to a copy of the parameters and of the state)
        so that the two paths cannot drift apart. Rules whose step depends on the
        parameters themselves (weight decay) need `params`; without it the update is the
        one of parameters equal to zero, exact for the paper's six rules.
        """
        new_state = {name: [t.clone() for t in ts] for name, ts in state.items()}
        if params is None:
            updates = [torch.zeros_like(g) for g in grads]
            self.apply_(updates, grads, new_state, hparams, lr, step)
            return updates, new_state
        moved = [p.clone() for p in params]
        self.apply_(moved, grads, new_state, hparams, lr, step)
        return [m - p for m, p in zip(moved, params, strict=True)], new_state

    def apply_(
        self,
        params: Sequence[Tensor],
        grads: Sequence[Tensor],
        state: State,
        hparams: Mapping[str, Tensor],
        lr: Tensor,
        step: int,
    ) -> None:
        """Update `params` and `state` in place by one step of the rule (t = `step`)."""
        if len(params) != len(grads):
            raise ConfigError(
                f"optimizer {self.name}: {len(params)} parameters but {len(grads)} gradients"
            )
        if not params:
            return
        if lr.dim() != 1:
            raise ConfigError(
                f"optimizer {self.name}: lr must have shape [K], got {tuple(lr.shape)}"
            )
        k = lr.shape[0]
        dtype, device = params[0].dtype, params[0].device
        total = 0
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if p.dtype != dtype or g.dtype != dtype or p.device != device or g.device != device:
                raise ConfigError(
                    f"optimizer {self.name}: parameters and gradients must share one dtype and "
                    f"device; parameter {i} is {p.dtype} on {p.device}, its gradient "
                    f"{g.dtype} on {g.device}, parameter 0 {dtype} on {device}"
                )
            if p.shape[0] != k or g.shape != p.shape:
                raise ConfigError(
                    f"optimizer {self.name}: parameter {i} has shape {tuple(p.shape)} and "
                    f"gradient {tuple(g.shape)}; both must be [K={k}, ...]"
                )
            total += p.numel()
        if lr.dtype != dtype or lr.device != device:
            raise ConfigError(
                f"optimizer {self.name}: lr is {lr.dtype} on {lr.device}, the parameters "
                f"{dtype} on {device}"
            )
        coeffs = self._coefficients(self._hparams(hparams, k, dtype), lr, step)
        buffers = [state[name] for name in self.state_names]
        # Blocks exist so that K models together are no slower than K separate updates. One
        # model gains nothing from them (its temporaries are those torch.optim allocates
        # too) and would pay one call per operation per wave, so it runs in one wave.
        chunk = CHUNK_ELEMENTS if k > 1 else sys.maxsize
        # K = 1 on the CPU (the torch.optim wrappers): plain floats select torch's scalar
        # kernels and need no views; reading them costs no device sync there.
        scalars = None
        if k == 1 and device.type == "cpu":
            scalars = {n: float(c) for n, c in coeffs.items()}
        views: dict[int, dict[str, Tensor]] = {}

        def waves() -> Iterator[tuple[list[Tensor], list[Tensor], list[list[Tensor]]]]:
            if total <= chunk:
                yield list(params), list(grads), [list(b) for b in buffers]
                return
            blocks = (
                block
                for i, (p, g) in enumerate(zip(params, grads, strict=True))
                for block in _blocks(k, (p, g, *(b[i] for b in buffers)), chunk)
            )
            for wave in _waves(blocks, chunk):
                columns = [list(c) for c in zip(*wave, strict=True)]
                yield columns[0], columns[1], columns[2:]

        with torch.no_grad():
            for ps, gs, bufs in waves():
                if scalars is not None:
                    self._kernel(ps, gs, bufs, scalars)
                    continue
                per_block: dict[str, list[Tensor]] = {name: [] for name in coeffs}
                for block in ps:
                    ndim = block.dim()
                    if ndim not in views:
                        shape = (k,) + (1,) * (ndim - 1)
                        views[ndim] = {n: c.view(shape) for n, c in coeffs.items()}
                    for name, view in views[ndim].items():
                        per_block[name].append(view)
                self._kernel(ps, gs, bufs, per_block)

    def _hparams(
        self, hparams: Mapping[str, Tensor], k: int, dtype: torch.dtype
    ) -> dict[str, Tensor]:
        out = {}
        for name in self.hparam_names:
            if name not in hparams:
                raise ConfigError(
                    f"optimizer {self.name}: hyperparameter {name} is missing"
                    f"{closest_name(name, list(hparams))}"
                )
            value = hparams[name]
            if value.shape != (k,) or value.dtype != dtype:
                raise ConfigError(
                    f"optimizer {self.name}: hyperparameter {name} must be a {dtype} tensor "
                    f"of shape [{k}], got {value.dtype} of shape {tuple(value.shape)}"
                )
            out[name] = value
        return out

    @abc.abstractmethod
    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        """Per-trial [K] coefficients of this step, computed once before the blocks."""

    @abc.abstractmethod
    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        """One wave: lists of same-shaped blocks; `c` holds one coefficient view per block."""


class SGD(Rule):
    """theta -= eta_t g"""

    family = FAMILY_SPECS["sgd"]

    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        return {"neg_lr": -lr}

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        _axpy_(p, g, c["neg_lr"])


class Momentum(Rule):
    """v0 = 0; v = gamma v + g; theta -= eta_t v"""

    family = FAMILY_SPECS["momentum"]
    state_names = ("velocity",)

    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        return {"gamma": h["momentum"], "neg_lr": -lr}

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        (v,) = bufs
        _mul_(v, c["gamma"])
        torch._foreach_add_(v, g)
        _axpy_(p, v, c["neg_lr"])


class Nesterov(Rule):
    """v0 = 0; v = gamma v + g; theta -= eta_t (gamma v + g)"""

    family = FAMILY_SPECS["nesterov"]
    state_names = ("velocity",)

    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        gamma = h["momentum"]
        return {"gamma": gamma, "neg_lr": -lr, "neg_lr_gamma": -lr * gamma}

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        (v,) = bufs
        _mul_(v, c["gamma"])
        torch._foreach_add_(v, g)
        _axpy_(p, v, c["neg_lr_gamma"])
        _axpy_(p, g, c["neg_lr"])


class RMSProp(Rule):
    """TF1 form: v0 = 1, m0 = 0; v = rho v + (1-rho) g^2; m = gamma m + eta_t g / sqrt(v + eps);
    theta -= m"""

    family = FAMILY_SPECS["rmsprop"]
    state_names = ("square_avg", "momentum_buffer")
    _initial: ClassVar[Mapping[str, float]] = {"square_avg": 1.0}

    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        return {
            "rho": h["rho"],
            "one_minus_rho": 1.0 - h["rho"],
            "eps": h["epsilon"],
            "gamma": h["momentum"],
            "lr": lr,
        }

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        v, m = bufs
        _average_square_(v, g, c["rho"], c["one_minus_rho"])
        t = _add(v, c["eps"])
        torch._foreach_sqrt_(t)
        # m += g lr / sqrt(v + eps), as g / (sqrt(v + eps) / lr): lr = 0 gives g / inf = 0.
        _div_(t, c["lr"])
        _mul_(m, c["gamma"])
        torch._foreach_addcdiv_(m, g, t)
        torch._foreach_sub_(p, m)


def adam_bias(beta1: Tensor, beta2: Tensor, step: int) -> Tensor:
    """Adam's bias factor b = sqrt(1 - beta2^(t+1)) / (1 - beta1^(t+1)) at t = `step`."""
    return torch.sqrt(1.0 - beta2 ** (step + 1)) / (1.0 - beta1 ** (step + 1))


class Adam(Rule):
    """m0 = v0 = 0; m = beta1 m + (1-beta1) g; v = beta2 v + (1-beta2) g^2;
    b = sqrt(1-beta2^(t+1)) / (1-beta1^(t+1)); theta -= alpha_t b m / (sqrt(v) + eps)"""

    family = FAMILY_SPECS["adam"]
    state_names = ("exp_avg", "exp_avg_sq")

    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        beta1, beta2 = h["beta1"], h["beta2"]
        bias = adam_bias(beta1, beta2, step)
        return {
            "one_minus_beta1": 1.0 - beta1,
            "beta2": beta2,
            "one_minus_beta2": 1.0 - beta2,
            "eps": h["epsilon"],
            "neg_step": -lr * bias,
        }

    def _denominator(
        self, g: list[Tensor], m: list[Tensor], v: list[Tensor], c: Coeffs
    ) -> list[Tensor]:
        """Updates m and v; returns sqrt(v) + eps (a wave-sized temporary)."""
        _lerp_(m, g, c["one_minus_beta1"])
        _average_square_(v, g, c["beta2"], c["one_minus_beta2"])
        t = list(torch._foreach_sqrt(v))
        # eps goes in before the bias factor (Table 1), unlike torch.optim.Adam.
        _add_(t, c["eps"])
        return t

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        m, v = bufs
        t = self._denominator(g, m, v, c)
        # p += m neg_step / t, as m / (t / neg_step): no second temporary. lr = 0 gives
        # t / -0 = -inf and a zero update, as it should.
        _div_(t, c["neg_step"])
        torch._foreach_addcdiv_(p, m, t)


class NAdam(Adam):
    """m, v, b as Adam; theta -= alpha_t b (beta1 m + (1-beta1) g) / (sqrt(v) + eps);
    no momentum-decay schedule (unlike torch.optim.NAdam)."""

    family = FAMILY_SPECS["nadam"]

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        m, v = bufs
        t = self._denominator(g, m, v, c)
        u = _lerp(m, g, c["one_minus_beta1"])
        _div_(t, c["neg_step"])
        torch._foreach_addcdiv_(p, u, t)


class _DecoupledWeightDecay(Adam):
    """Decoupled weight decay (Loshchilov & Hutter 2019) in front of an Adam-type step, in
    the form of torch.optim.AdamW and AlgoPerf: theta -= alpha_t lambda theta, then the
    next class's step in the MRO. weight_decay = 0 is that step exactly (the factor
    1 - alpha_t 0 is 1)."""

    def _coefficients(self, h: Mapping[str, Tensor], lr: Tensor, step: int) -> dict[str, Tensor]:
        out = super()._coefficients(h, lr, step)
        out["shrink"] = 1.0 - lr * h["weight_decay"]
        return out

    def _kernel(
        self, p: list[Tensor], g: list[Tensor], bufs: list[list[Tensor]], c: Coeffs
    ) -> None:
        _mul_(p, c["shrink"])
        super()._kernel(p, g, bufs, c)


class AdamW(_DecoupledWeightDecay):
    """Adam with decoupled weight decay: theta -= alpha_t lambda theta, then Adam's step."""

    family = FAMILY_SPECS["adamw"]


class NAdamW(_DecoupledWeightDecay, NAdam):
    """NAdam with decoupled weight decay (AlgoPerf's baseline):
    theta -= alpha_t lambda theta, then NAdam's step."""

    family = FAMILY_SPECS["nadamw"]


#: Built-in rule classes, registered by `optcmp.optim._registry` through `register_rule`.
BUILTIN_RULES: Final = (SGD, Momentum, Nesterov, RMSProp, Adam, NAdam, AdamW, NAdamW)
