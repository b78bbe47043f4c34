"""Plug-ins: optimizers and workloads from installed packages (entry points) or named in a
study file (`[plugins] NAME = "module:attribute"`).

Dependency rule: the standard library, torch, optcmp_data and optcmp's optim/workloads.

Entry-point groups, discovered once per process on first use (`discover`):

- `optcmp.optimizers`: each entry point names a batched rule object (see
  `optcmp.optim.BatchedRule`; its `family` is registered with it) or a
  `torch.optim.Optimizer` subclass (registered under the entry point's name). A rule may
  carry `relations`, a sequence of `optcmp_data.Inclusion`, registered with it.
- `optcmp.workloads`: each names a `Workload` subclass (or zero-argument factory).

Every problem (cannot import, not a rule / Optimizer subclass / Workload, a name that
collides with a built-in, a default outside its own valid range, updates of the wrong
shape) is one ConfigError naming the plug-in and the problem, raised before any trial.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import Any, Final

import attrs
import torch

from optcmp.optim import RULES, TorchOptimizerRule, register_rule
from optcmp.workloads import WORKLOAD_SOURCES, register_workload
from optcmp_data import (
    FAMILY_SPECS,
    ConfigError,
    Family,
    Inclusion,
    OptcmpError,
    register_relation,
)

__all__ = [
    "OPTIMIZER_GROUP",
    "WORKLOAD_GROUP",
    "PluginError",
    "discover",
    "group_plugins",
    "load_optimizer",
    "load_study_plugin",
    "plugin_errors",
    "plugin_record",
    "resolve_target",
]

OPTIMIZER_GROUP: Final = "optcmp.optimizers"
WORKLOAD_GROUP: Final = "optcmp.workloads"

_lock = threading.Lock()
_discovered = False


def resolve_target(target: str, *, owner: str) -> Any:
    """Import `module:attribute` (attribute may be dotted); ConfigError naming `owner`."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{owner}: {target!r} is not of the form 'module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as err:
        raise ConfigError(
            f"{owner}: cannot import module {module_name!r} ({type(err).__name__}: {err})"
        ) from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"{owner}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return obj


def _distribution_of(module_name: str) -> str:
    """'name version' of the installed distribution providing a top-level module, or ''."""
    top = module_name.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    if not names:
        return ""
    try:
        return f"{names[0]} {metadata.version(names[0])}"
    except metadata.PackageNotFoundError:
        return names[0]


def _with_source(family: Family, source: str) -> Family:
    return family if family.source == source else attrs.evolve(family, source=source)


def load_optimizer(name: str, obj: Any, *, source: str) -> Any:
    """Register `obj` (a batched rule or a torch.optim.Optimizer subclass) as optimizer
    `name`; returns the registered rule. ConfigError naming the plug-in on any problem."""
    owner = f"plug-in {name} ({source})"
    builtin = FAMILY_SPECS.get(name)
    if builtin is not None and builtin.source == "optcmp":
        raise ConfigError(f"{owner}: collides with the built-in optimizer {name!r}")
    if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
        existing = RULES.get(name)
        if isinstance(existing, TorchOptimizerRule) and existing.cls is obj:
            return existing
        adapter = TorchOptimizerRule(name, obj, source)
        try:
            adapter.family.check_declaration()
        except ConfigError as err:
            raise ConfigError(f"{owner}: {err}") from None
        adapter.check()
        try:
            return register_rule(adapter, check=False)
        except ConfigError as err:
            raise ConfigError(f"{owner}: {err}") from None
    family = getattr(obj, "family", None)
    if isinstance(obj, type) or not isinstance(family, Family):
        raise ConfigError(
            f"{owner}: {obj!r} is neither a batched rule object (with a `family` and "
            "init / update / apply_) nor a torch.optim.Optimizer subclass"
        )
    if family.name != name:
        raise ConfigError(f"{owner}: the rule's family is named {family.name!r}, not {name!r}")
    # A rule that cannot take the attribute keeps the source its author gave.
    with contextlib.suppress(AttributeError, TypeError):
        obj.family = _with_source(family, source)
    try:
        rule = register_rule(obj)
        for relation in getattr(obj, "relations", ()):
            if not isinstance(relation, Inclusion):
                raise ConfigError(f"relation {relation!r} is not an optcmp_data.Inclusion")
            register_relation(relation)
    except ConfigError as err:
        text = str(err)
        raise ConfigError(
            text if text.startswith(f"plug-in {name}") else f"{owner}: {text}"
        ) from None
    return rule


def discover() -> None:
    """Load the entry points of both groups once per process (see the module docstring)."""
    global _discovered
    with _lock:
        if _discovered:
            return
        _discovered = True
        for group in (OPTIMIZER_GROUP, WORKLOAD_GROUP):
            for ep in metadata.entry_points(group=group):
                dist = ep.dist
                source = f"{dist.name} {dist.version}" if dist is not None else ep.value
                owner = f"plug-in {ep.name} ({source}, entry point {group})"
                try:
                    obj = ep.load()
                except Exception as err:
                    raise ConfigError(
                        f"{owner}: cannot import {ep.value} ({type(err).__name__}: {err})"
                    ) from None
                if group == OPTIMIZER_GROUP:
                    load_optimizer(ep.name, obj, source=source)
                else:
                    try:
                        register_workload(obj, source=source)
                    except ConfigError as err:
                        raise ConfigError(f"{owner}: {err}") from None


def load_study_plugin(name: str, target: str, *, where: str) -> Any:
    """Register the plug-in a study file names; source 'module:attribute' plus the
    distribution providing the module where one is installed."""
    owner = f"{where}: plug-in {name}"
    obj = resolve_target(target, owner=owner)
    dist = _distribution_of(target.partition(":")[0])
    source = f"{target} ({dist})" if dist else target
    try:
        return load_optimizer(name, obj, source=source)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def plugin_record(family: Family) -> dict[str, Any]:
    """What an archive stores about a plug-in optimizer: its source and family (the
    searched spaces are stored per workload in the archive's space variables anyway)."""
    return {"source": family.source, "family": family.to_mapping()}


class PluginError(ConfigError):
    """A plug-in raised while training: the run stops with one line naming it."""


def in_process_only(optimizer: str, workload: str) -> tuple[str, ...]:
    """The registrations of a group that only this process has: an optimizer or workload
    registered from Python (`register_rule`, `register_workload`) without a source a fresh
    worker process could load it from (a study file's [plugins] entry or an installed
    package's entry point); each named as in messages ("optimizer lion")."""
    found = []
    family = FAMILY_SPECS.get(optimizer)
    if family is not None and family.source == "":
        found.append(f"optimizer {optimizer}")
    if WORKLOAD_SOURCES.get(workload, "optcmp") == "":
        found.append(f"workload {workload}")
    return tuple(found)


def group_plugins(optimizer: str, workload: str) -> tuple[str, ...]:
    """The plug-ins a group of `optimizer` on `workload` runs, each as it is named in
    messages ('plug-in optimizer crash (mymod:CRASH)'); empty for built-ins."""
    found = []
    family = FAMILY_SPECS.get(optimizer)
    if family is not None and family.source != "optcmp":
        found.append(f"plug-in optimizer {optimizer} ({family.source})")
    wsource = WORKLOAD_SOURCES.get(workload, "optcmp")
    if wsource != "optcmp":
        found.append(f"plug-in workload {workload} ({wsource})")
    return tuple(found)


@contextlib.contextmanager
def plugin_errors(optimizer: str, workload: str) -> Iterator[None]:
    """Turn an exception escaping a plug-in's code during training into one PluginError
    naming the plug-in (built-ins' errors pass through unchanged)."""
    family = FAMILY_SPECS.get(optimizer)
    wsource = WORKLOAD_SOURCES.get(workload, "optcmp")
    try:
        yield
    except OptcmpError:
        raise
    except (Exception, SystemExit) as err:  # sys.exit() in a plug-in must not end a worker
        if family is not None and family.source != "optcmp":
            raise PluginError(
                f"plug-in optimizer {optimizer} ({family.source}) raised while training on "
                f"{workload}: {type(err).__name__}: {err}"
            ) from None
        if wsource != "optcmp":
            raise PluginError(
                f"plug-in workload {workload} ({wsource}) raised while training: "
                f"{type(err).__name__}: {err}"
            ) from None
        raise
