"""optcmp: the simulation layer (PyTorch): optimizers, schedules, search spaces,
workloads, the study runner and its executors.

Dependency rule: torch, numpy, scipy, attrs and optcmp_data; never optcmp_analysis or
optcmp_cli. Everything it produces leaves through the archive format of optcmp_data.

Extending (docs/extending.md): `register_family` (torch-free description of an optimizer
family), `register_rule` (its batched implementation), `register_relation` (a declared
inclusion between families) and `register_workload`; installed packages do the same
through the entry-point groups `optcmp.optimizers` and `optcmp.workloads`.
"""

from optcmp._plugins import discover as discover_plugins
from optcmp._plugins import load_optimizer
from optcmp.optim import BatchedRule, Rule, register_rule
from optcmp.spaces import PRESETS, HParamRange, SearchSpace, preset
from optcmp.study import StudySpec, derive_seed
from optcmp.workloads import (
    WORKLOADS,
    Splits,
    TensorSplit,
    Workload,
    WorkloadSpec,
    get_workload,
    register_workload,
)
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
    "PRESETS",
    "WORKLOADS",
    "BatchedRule",
    "Family",
    "HParamRange",
    "HparamMap",
    "HyperparamSpec",
    "Inclusion",
    "Rule",
    "SearchRange",
    "SearchSpace",
    "Splits",
    "StudySpec",
    "TensorSplit",
    "Workload",
    "WorkloadSpec",
    "derive_seed",
    "discover_plugins",
    "get_workload",
    "load_optimizer",
    "preset",
    "register_family",
    "register_relation",
    "register_rule",
    "register_workload",
]
