"""Provenance attributes every archive carries.

Dependency rule: standard library only.
"""

from __future__ import annotations

import datetime as _dt
import functools
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["git_commit", "optcmp_version", "provenance_attrs"]


def optcmp_version() -> str:
    try:
        return metadata.version("optcmp")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@functools.cache
def git_commit() -> str:
    """The commit of the optcmp source tree this code runs from ('' outside a checkout)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def provenance_attrs(
    *, source: str, command: str | None = None, torch_version: str = "", caveats: str = ""
) -> dict[str, str | int]:
    """The global attributes of a new archive (schema version added by the builder)."""
    return {
        "optcmp_version": optcmp_version(),
        "torch_version": torch_version,
        "git_commit": git_commit(),
        "command": command if command is not None else shlex.join(sys.argv),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "source": source,
        "caveats": caveats,
    }
