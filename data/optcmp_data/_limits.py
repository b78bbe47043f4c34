"""Size limits: refuse work that cannot fit in memory before starting it.

Dependency rule: the standard library only.

Callers estimate the bytes a step will hold (a trained group, a study's archive, a
bootstrap) and call `check_memory`; the limit is the memory this machine has available
now, or what the user set (`--memory-limit`, in GiB) to override it either way.
"""

from __future__ import annotations

import math
import os
from typing import Final

from optcmp_data._errors import ConfigError

__all__ = [
    "BOOTSTRAP_BYTES_PER_DRAW",
    "GIB",
    "available_memory",
    "check_bootstrap",
    "check_memory",
    "format_bytes",
    "memory_limit",
]

GIB: Final = 1024**3
#: Bytes a best-of-k analysis holds per cell and bootstrap draw: the selected positions
#: (int64), validity mask, picked values and their masked copy, and one reduction of them.
BOOTSTRAP_BYTES_PER_DRAW: Final = 40


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux, else the
    physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        return 1 << 62  # unknown: do not refuse


def memory_limit(override_gib: float | None = None) -> int:
    """The limit in bytes: `override_gib` GiB when given, else `available_memory()`."""
    if override_gib is None:
        return available_memory()
    if not (math.isfinite(override_gib) and override_gib > 0):
        raise ConfigError(
            f"--memory-limit {override_gib}: must be a positive, finite number of GiB"
        )
    return int(override_gib * GIB)


def format_bytes(n: float) -> str:
    """`n` bytes as a short human-readable size (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(what: str, estimate: float, limit: int, *, hint: str | None = None) -> None:
    """Raise ConfigError (one line: what, the estimate, the limit, and `hint`: what to do)
    when `estimate` bytes exceed `limit`."""
    if estimate <= limit:
        return
    hint = f"; {hint}" if hint else ""
    raise ConfigError(
        f"{what} needs about {format_bytes(estimate)} of memory, more than the limit of "
        f"{format_bytes(limit)}{hint}"
    )


def check_bootstrap(
    n_cells: int,
    n_boot: int,
    option: str = "--n-boot",
    *,
    bytes_per_draw: int = BOOTSTRAP_BYTES_PER_DRAW,
    what: str | None = None,
) -> None:
    """Refuse a bootstrap (or `n_boot` random permutations, or `n_boot` of whatever
    `what` names) over `n_cells` cells that cannot fit; `option` names the command-line
    option that sets `n_boot`, and `bytes_per_draw` is what one draw holds per cell."""
    if what is None:
        kind = "a permutation test" if option == "--n-perm" else "a bootstrap"
        what = f"{kind} of {n_boot} draws"
    check_memory(
        f"{what} over {n_cells} cells",
        n_cells * n_boot * bytes_per_draw,
        memory_limit(),
        hint=f"use a smaller {option}",
    )
