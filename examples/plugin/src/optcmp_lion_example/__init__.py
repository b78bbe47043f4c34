"""An optcmp plug-in: the Lion update rule, batched over trials, and a workload."""

from optcmp_lion_example._lion import LION, Lion
from optcmp_lion_example._workload import SineRegression

__all__ = ["LION", "Lion", "SineRegression"]
