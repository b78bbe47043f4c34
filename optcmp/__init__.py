"""optcmp: the simulation layer (PyTorch): optimizers, schedules, search spaces,
workloads, the study runner and its executors.

Dependency rule: torch, numpy, scipy, attrs and optcmp_data; never optcmp_analysis or
optcmp_cli. Everything it produces leaves through the archive format of optcmp_data.

Extending (docs/extending.md): `register_family` (torch-free description of an optimizer
family), `register_rule` (its batched implementation), `register_relation` (a declared
inclusion between families) and `register_workload`; installed packages do the same
through the entry-point groups `optcmp.optimizers` and `optcmp.workloads`.

This root holds that extension API (the registration calls and the types they take),
`StudySpec` and the plug-in loaders; everything else is public in its own module
(`optcmp.spaces`, `optcmp.study`, `optcmp.workloads`, `optcmp.optim`, `optcmp.runner`).
"""

from optcmp._plugins import discover as discover_plugins
from optcmp._plugins import load_optimizer
from optcmp.optim import BatchedRule, Rule, register_rule
from optcmp.study import StudySpec
from optcmp.workloads import Splits, TensorSplit, Workload, WorkloadSpec, register_workload
from optcmp_data import (
    Family,
    HparamMap,
    HyperparamSpec,
    Inclusion,
    SearchRange,
    register_family,
    register_relation,
)

__all__: list[str] = [
    "BatchedRule",
    "Family",
    "HparamMap",
    "HyperparamSpec",
    "Inclusion",
    "Rule",
    "SearchRange",
    "Splits",
    "StudySpec",
    "TensorSplit",
    "Workload",
    "WorkloadSpec",
    "discover_plugins",
    "load_optimizer",
    "register_family",
    "register_relation",
    "register_rule",
    "register_workload",
]
