"""Device and precision set-up of a group: the one place that knows about devices,
threads, TF32/bf16 and the CUDA back-end switches.

Dependency rule: torch, optcmp_data and optcmp.study (for the lists of accepted values).

- `resolve_device(name)`: the torch device of a `device` / `devices` entry of a study;
- `Precision` / `PRECISIONS`: the study's `precision` setting. "fp32" computes in float32
  everywhere; "tf32" lets CUDA matmuls and convolutions use TF32 tensor cores (float32
  storage, 10-bit mantissa products; on the CPU it is exactly fp32); "bf16" runs forward
  and backward passes under `torch.autocast(dtype=torch.bfloat16)` while parameters,
  gradients and optimizer state stay float32 (mixed precision);
- `group_settings(device, precision)`: the process-wide switches a group trains under,
  restored afterwards: on the CPU one intra-op thread and flushed denormals
  (`deterministic_threads`), on CUDA cuDNN autotuning and the TF32 switches;
- `autocast(device, precision)`: the context of every forward pass of the group;
- `wants_channels_last(device, inputs)`: whether image batches go channels-last (CUDA
  and 4-d inputs: cuDNN's fastest convolution layout).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

from optcmp.study import COMPILE_MODES, PRECISIONS
from optcmp_data import ConfigError

__all__ = [
    "COMPILE_MODES",
    "PRECISIONS",
    "CompileMode",
    "Precision",
    "autocast",
    "check_compile_mode",
    "check_precision",
    "deterministic_threads",
    "group_settings",
    "resolve_device",
    "synchronize",
    "wants_channels_last",
]

# The accepted values are listed once, in optcmp.study (PRECISIONS, COMPILE_MODES).
Precision = Literal["fp32", "tf32", "bf16"]
CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune"]


def check_precision(value: str) -> Precision:
    """`value` as a `Precision`; ConfigError naming the accepted values otherwise."""
    if value not in PRECISIONS:
        raise ConfigError(f"precision {value!r} is not one of {', '.join(PRECISIONS)}")
    return value  # type: ignore[return-value]


def check_compile_mode(value: str) -> CompileMode:
    """`value` as a `CompileMode`; ConfigError naming the accepted values otherwise."""
    if value not in COMPILE_MODES:
        raise ConfigError(f"compile {value!r} is not one of {', '.join(COMPILE_MODES)}")
    return value  # type: ignore[return-value]


def resolve_device(name: str) -> torch.device:
    """The torch device for a study's `device` setting; ConfigError if it is unusable."""
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available here")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    raise ConfigError(f"device {name!r} is not supported; use 'cpu' or 'cuda'")


@contextlib.contextmanager
def deterministic_threads(device: torch.device) -> Iterator[None]:
    """CPU settings of a group while the block runs (restored after): one intra-op thread,
    so every reduction happens in one order on any machine, and denormal floats flushed
    to zero, which keeps decaying activations and gradients of some trials (below 1e-38)
    from slowing the whole group down many times over. No effect on other devices."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    flushing = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if flushing:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def _cuda_switches(precision: Precision) -> Iterator[None]:
    """cuDNN autotuning on, TF32 matmuls/convolutions on for "tf32" and off otherwise."""
    before = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    tf32 = precision == "tf32"
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        (
            torch.backends.cudnn.benchmark,
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
        ) = before


@contextlib.contextmanager
def group_settings(device: torch.device, precision: str = "fp32") -> Iterator[None]:
    """Every process-wide switch a group trains under on `device` at `precision`
    (restored after the block); see the module docstring."""
    checked = check_precision(precision)
    with deterministic_threads(device):
        if device.type != "cuda":
            yield
            return
        with _cuda_switches(checked):
            yield


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on `device` for "bf16" (float32 parameters stay float32); a no-op
    otherwise."""
    if check_precision(precision) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def wants_channels_last(device: torch.device, inputs: Tensor) -> bool:
    """Image batches ([B, C, H, W]) on CUDA train channels-last (cuDNN's fast layout)."""
    return device.type == "cuda" and inputs.dim() == 4


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a no-op on the CPU, which never queues)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
