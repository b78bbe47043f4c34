"""Shared CLI plumbing: consoles, the error boundary, JSON output.

Dependency rule: typer, rich, and the library packages; the only place that prints.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import os
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, ProgressColumn

from optcmp_analysis import AnalysisError
from optcmp_cli.render.escape import visible
from optcmp_data import ConfigError, OptcmpError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "about_archive",
    "check_archive_out",
    "check_export_out",
    "check_finite_options",
    "check_out_dir",
    "check_out_file",
    "console",
    "err_console",
    "fail",
    "json_text",
    "print_json",
    "progress_on_stderr",
    "reports_errors",
    "require_torch",
    "seeded_rng",
]


def _live_console(**kwargs: Any) -> Console:
    """A console whose width follows COLUMNS (or the terminal) at every use: rich fixes
    the width for good when COLUMNS is set while the console is made."""
    saved = os.environ.pop("COLUMNS", None)
    try:
        return Console(**kwargs)
    finally:
        if saved is not None:
            os.environ["COLUMNS"] = saved


# soft_wrap: plain lines (paths, summaries) are never broken at 80 columns in pipes.
console = _live_console(highlight=False, soft_wrap=True)
err_console = _live_console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> typer.Exit:
    """Print one line on stderr and return the Exit(2) to raise."""
    one_line = visible(" ".join(message.split()))
    err_console.print(f"error: {one_line}", markup=False)
    return typer.Exit(2)


def _option_names(fn: Callable[..., Any]) -> dict[str, str]:
    """Parameter name -> the option that sets it (its first `--` declaration)."""
    names: dict[str, str] = {}
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):
        return names
    for param, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            # In Annotated, typer reads Option's first argument (`default`) as a name.
            given = [getattr(meta, "default", None), *(getattr(meta, "param_decls", ()) or ())]
            decls = [d for d in given if isinstance(d, str) and d.startswith("--")]
            if decls:
                names[param] = decls[0]
    return names


def check_finite_options(fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """ConfigError (one line) for a number option given as inf or nan: no option of
    optcmp means anything by them, and they would reach arithmetic that overflows."""
    for param, value in kwargs.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                option = _option_names(fn).get(param, f"--{param.replace('_', '-')}")
                raise ConfigError(f"{option} {item}: must be a finite number")


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Errors of our own type become one line on stderr and exit code 2, never a traceback;
    number options are finite (`check_finite_options`) before the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            check_finite_options(fn, kwargs)
            return fn(*args, **kwargs)
        except OptcmpError as err:
            raise fail(str(err)) from None

    return wrapper


@contextlib.contextmanager
def about_archive(path: Path | str) -> Iterator[None]:
    """Analysis errors raised inside name the archive they concern."""
    try:
        yield
    except AnalysisError as err:
        raise AnalysisError(f"{path}: {err}") from None


@contextlib.contextmanager
def progress_on_stderr(
    *columns: str | ProgressColumn, transient: bool = False
) -> Iterator[Progress]:
    """A progress display on stderr that leaves nothing behind when the block raises an
    error of our own type, so that the error stays the only line there."""
    progress = Progress(*columns, console=err_console, transient=transient)
    progress.start()
    try:
        yield progress
    except OptcmpError:
        # Stopping the live display itself, made transient, erases the bar on a terminal
        # and skips both the final render and the blank line that `Progress.stop` writes
        # to a file.
        progress.live.transient = True
        progress.live.stop()
        raise
    finally:
        if progress.live.is_started:
            progress.stop()


def _jsonable(value: Any) -> Any:
    import numpy as np  # here, not at the top: `--help` loads no numpy

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(payload: Any) -> str:
    """`payload` as indented JSON text ending in a newline; NaN/inf become null so every
    parser accepts it."""
    return json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n"


def print_json(payload: Any) -> None:
    """Only JSON on stdout (see `json_text`)."""
    sys.stdout.write(json_text(payload))
    sys.stdout.flush()


def require_torch(command: str) -> None:
    """Commands that train import the torch-based `optcmp` package lazily; without torch
    they fail with one line that says how to install it, not an import traceback."""
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(
            f"optcmp {command} trains models and needs torch, which is not installed: "
            "pip install 'optcmp[train]'"
        )


def seeded_rng(seed: int, option: str = "--seed") -> np.random.Generator:
    """The generator of a non-negative seed; ConfigError (one line) for another."""
    if seed < 0:
        raise ConfigError(f"{option} {seed}: must be a non-negative integer")
    import numpy as np

    return np.random.default_rng(seed)


def _utf8_path(path: Path, option: str) -> None:
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{option} {os.fsdecode(path)!r}: the path is not valid UTF-8; pick another"
        ) from None


def _writable_dir(directory: Path, option: str, shown: Path) -> None:
    """`directory` (existing or to be created) can take new files."""
    probe = directory
    while not probe.exists():
        if probe.is_symlink() or probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{option} {shown}: {probe} is a file, not a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {shown}: {probe} is not writable (permission denied)")


def check_out_dir(out: Path, option: str = "--out") -> None:
    """Before any work: `out` can be (or already is) a directory we may write into."""
    _utf8_path(out, option)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out}: exists and is not a directory")
    _writable_dir(out, option, out)


def check_out_file(out: Path, option: str = "--out") -> None:
    """Before any work: `out` names a file (not a directory) in a writable directory."""
    _utf8_path(out, option)
    if out.is_dir():
        raise ConfigError(f"{option} {out}: is a directory; name a file to write")
    _writable_dir(out.parent if str(out.parent) else Path("."), option, out)
    if out.exists() and not os.access(out, os.W_OK):
        raise ConfigError(f"{option} {out}: not writable (permission denied)")


#: The first bytes of every netCDF4 (HDF5) file.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_archive_out(out: Path, option: str = "--out") -> None:
    """Before any work: `out` names a new file or an existing archive to replace, never
    another file (a typo must not overwrite someone's data)."""
    check_out_file(out, option)
    if out.exists():
        try:
            with open(out, "rb") as handle:
                head = handle.read(len(_HDF5_SIGNATURE))
        except OSError as err:
            raise ConfigError(f"{option} {out}: cannot read ({err.strerror})") from None
        if head != _HDF5_SIGNATURE:
            raise ConfigError(
                f"{option} {out}: exists and is not a netCDF archive; refusing to overwrite it"
            )


def _optcmp_sidecar(path: Path) -> bool:
    """Whether `path` is a sidecar optcmp export wrote (a JSON object naming its version)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b'"optcmp_table"' in head


def check_export_out(out: Path, sidecar: Path, option: str = "--out") -> None:
    """Before any work: `out` and its `sidecar` are new, or a table optcmp exported (with
    its sidecar) to replace; never another file (a typo must not overwrite someone's data)."""
    check_out_file(out, option)
    for path in (out, sidecar):
        if os.path.lexists(path) and not path.is_file():
            raise ConfigError(f"{option} {out}: {path} exists and is not a regular file")
    if sidecar.exists() and not _optcmp_sidecar(sidecar):
        raise ConfigError(
            f"{option} {out}: {sidecar} exists and is not the sidecar of an optcmp export; "
            "refusing to overwrite it"
        )
    if out.exists() and not sidecar.exists():
        raise ConfigError(
            f"{option} {out}: exists and is not an optcmp export (it has no {sidecar.name}); "
            "refusing to overwrite it"
        )
