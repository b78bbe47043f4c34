"""optcmp: the simulation layer (PyTorch): optimizers, schedules, search spaces,
workloads, the study runner and its executors.

Dependency rule: torch, numpy, scipy, attrs and optcmp_data; never optcmp_analysis or
optcmp_cli. Everything it produces leaves through the archive format of optcmp_data.
"""

__all__: list[str] = []
