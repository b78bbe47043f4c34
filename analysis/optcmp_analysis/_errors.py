"""The analysis layer's own error.

Dependency rule: optcmp_data only (its exception hierarchy).
"""

from __future__ import annotations

from optcmp_data import OptcmpError

__all__ = ["AnalysisError"]


class AnalysisError(OptcmpError):
    """An analysis cannot be done on this archive with these options (unknown name, budget
    larger than the trial count, no usable trial); the message is one line naming the cause."""
