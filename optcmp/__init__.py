"""optcmp: the simulation layer (PyTorch): optimizers, schedules, search spaces,
workloads, the study runner and its executors.

Dependency rule: torch, numpy, scipy, attrs and optcmp_data; never optcmp_analysis or
optcmp_cli. Everything it produces leaves through the archive format of optcmp_data.
"""

from optcmp.spaces import PRESETS, HParamRange, SearchSpace, preset
from optcmp.study import StudySpec, derive_seed
from optcmp.workloads import WORKLOADS, Splits, TensorSplit, Workload, WorkloadSpec, get_workload

__all__: list[str] = [
    "PRESETS",
    "WORKLOADS",
    "HParamRange",
    "SearchSpace",
    "Splits",
    "StudySpec",
    "TensorSplit",
    "Workload",
    "WorkloadSpec",
    "derive_seed",
    "get_workload",
    "preset",
]
