"""The registry of workloads by name.

Dependency rule: the standard library and this subpackage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from optcmp.workloads._base import Workload, WorkloadSpec
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

__all__ = ["WORKLOADS", "WORKLOAD_SOURCES", "get_workload", "register_workload"]

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

_FACTORIES: dict[str, Callable[[], Workload]] = {}
_SOURCES: dict[str, str] = {}

#: Workload name -> factory (a zero-argument callable returning a fresh Workload); a live
#: read-only view of the registry (built-ins, then plug-ins).
WORKLOADS: Mapping[str, Callable[[], Workload]] = MappingProxyType(_FACTORIES)
#: Workload name -> who provides it ("optcmp", or a plug-in's distribution / module).
WORKLOAD_SOURCES: Mapping[str, str] = MappingProxyType(_SOURCES)


def register_workload(factory: Callable[[], Workload], *, source: str = "") -> None:
    """Register a workload (re-exported as `optcmp.register_workload`): `factory` is a
    Workload subclass or any zero-argument callable returning a Workload; its name is
    `factory().spec.name`. ConfigError naming it if it is not a workload or its name is
    taken by another one. Registering the same factory again is a no-op."""
    label = getattr(factory, "__qualname__", type(factory).__name__)
    try:
        made = factory()
    except Exception as err:
        raise ConfigError(
            f"workload plug-in {label} ({source}): cannot be created: {type(err).__name__}: {err}"
        ) from None
    spec = getattr(made, "spec", None)
    if not isinstance(made, Workload) or not isinstance(spec, WorkloadSpec):
        raise ConfigError(
            f"workload plug-in {label} ({source}): not an optcmp.Workload with a WorkloadSpec"
        )
    old = _FACTORIES.get(spec.name)
    if old is not None and old != factory:
        raise ConfigError(
            f"workload plug-in {spec.name} ({source}) collides with the "
            f"{'built-in' if _SOURCES[spec.name] == 'optcmp' else 'registered'} workload of "
            f"that name ({_SOURCES[spec.name]})"
        )
    _FACTORIES[spec.name] = factory
    _SOURCES[spec.name] = source


for _cls in _CLASSES:
    register_workload(_cls, source="optcmp")


def get_workload(name: str) -> Workload:
    """A fresh workload by name; ConfigError naming the closest valid name if unknown.

    Workloads of installed plug-in packages (entry points) are discovered on first use.
    """
    if name not in _FACTORIES:
        from optcmp._plugins import discover

        discover()
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown workload {name!r}{closest_name(name, tuple(_FACTORIES))}; "
            f"known: {', '.join(_FACTORIES)}"
        )
    return factory()
