"""The registry of workloads by name.

Dependency rule: the standard library and this subpackage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from optcmp.workloads._base import Workload
from optcmp.workloads._builtin import DigitsCNN, DigitsMLP, NoisyQuadratic, TeacherMLP
from optcmp.workloads._files import (
    CharLSTMWorkload,
    CharTransformerWorkload,
    Cifar10ResNet32,
    Cifar10VGG11,
    Cifar100CNN,
    FashionMnistCNN,
    FashionMnistMLP,
    MnistCNN,
)
from optcmp_data import ConfigError, closest_name

__all__ = ["WORKLOADS", "get_workload"]

_CLASSES: tuple[type[Workload], ...] = (
    TeacherMLP,
    DigitsMLP,
    DigitsCNN,
    NoisyQuadratic,
    MnistCNN,
    FashionMnistCNN,
    FashionMnistMLP,
    Cifar10ResNet32,
    Cifar10VGG11,
    Cifar100CNN,
    CharLSTMWorkload,
    CharTransformerWorkload,
)

#: Workload name -> factory (a zero-argument callable returning a fresh Workload).
WORKLOADS: Mapping[str, Callable[[], Workload]] = MappingProxyType(
    {cls.spec.name: cls for cls in _CLASSES}
)


def get_workload(name: str) -> Workload:
    """A fresh workload by name; ConfigError naming the closest valid name if unknown."""
    factory = WORKLOADS.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown workload {name!r}{closest_name(name, tuple(WORKLOADS))}; "
            f"known: {', '.join(WORKLOADS)}"
        )
    return factory()
