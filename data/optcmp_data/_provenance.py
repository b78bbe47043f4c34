"""Provenance attributes every archive carries.

Dependency rule: standard library only.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["archive_plugins", "git_commit", "optcmp_version", "plugin_attr", "provenance_attrs"]

_PLUGIN_KINDS = ("optimizer", "workload")


def plugin_attr(name: str, kind: str = "optimizer") -> str:
    """The global attribute holding a plug-in's provenance record:
    `plugin_optimizer_NAME` or `plugin_workload_NAME`."""
    if kind not in _PLUGIN_KINDS:
        raise ValueError(f"plug-in kind {kind!r} is not one of {_PLUGIN_KINDS}")
    return f"plugin_{kind}_{name}"


def archive_plugins(attrs: Mapping[str, Any], kind: str = "optimizer") -> dict[str, dict[str, Any]]:
    """Plug-in optimizer (or workload, with `kind`) -> its provenance record, from an
    archive's attributes; records that are not valid JSON objects are skipped."""
    prefix = plugin_attr("", kind)
    out: dict[str, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        try:
            record = json.loads(str(value))
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out[key[len(prefix) :]] = record
    return out


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
    *,
    source: str,
    command: str | None = None,
    torch_version: str = "",
    caveats: str = "",
    commit: str | None = None,
) -> dict[str, str | int]:
    """The global attributes of a new archive (schema version added by the builder);
    `commit` None: the commit of this process's checkout (`git_commit`)."""
    return {
        "optcmp_version": optcmp_version(),
        "torch_version": torch_version,
        "git_commit": git_commit() if commit is None else commit,
        "command": command if command is not None else shlex.join(sys.argv),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "source": source,
        "caveats": caveats,
    }
