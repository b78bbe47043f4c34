"""File-system failures as one line: what went wrong where, without half-written files;
the one atomic write every writer of optcmp uses; the check that an input is a regular
file before anything reads it; and the reading of a configuration file's text.

Dependency rule: the standard library only.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from optcmp_data._errors import ArchiveIOError, ConfigError

__all__ = [
    "LOW_SPACE_BYTES",
    "atomic_write",
    "atomic_write_text",
    "check_regular_file",
    "os_error",
    "read_config_text",
    "write_failure",
]

#: Free space below which a failed write is reported as a full disk (netCDF/HDF5 reports
#: ENOSPC only as "NetCDF: HDF error").
LOW_SPACE_BYTES = 16 * 1024**2


def os_error(path: str | os.PathLike[str], err: OSError) -> ArchiveIOError:
    """ArchiveIOError naming `path` and the failure in words."""
    shown = os.fsdecode(path)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return ArchiveIOError(f"{shown}: no space left on device")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ArchiveIOError(f"{shown}: not writable ({err.strerror})")
    if err.errno == errno.EISDIR:
        return ArchiveIOError(f"{shown}: is a directory")
    if err.errno == errno.ENOTDIR:
        return ArchiveIOError(f"{shown}: a path under a file, not a directory")
    return ArchiveIOError(f"{shown}: cannot write ({err.strerror or err})")


def write_failure(path: str | os.PathLike[str], err: BaseException) -> ArchiveIOError:
    """ArchiveIOError for a failed write of `path` (an OSError, or the RuntimeError netCDF
    raises): a full disk is named as such."""
    if isinstance(err, OSError) and err.errno is not None:
        return os_error(path, err)
    parent = Path(path).parent
    try:
        free = shutil.disk_usage(parent if str(parent) else ".").free
    except OSError:
        free = None
    if free is not None and free < LOW_SPACE_BYTES:
        return ArchiveIOError(
            f"{os.fsdecode(path)}: no space left on device ({free // 1024} KiB free)"
        )
    detail = str(err).splitlines()[0] if str(err) else type(err).__name__
    return ArchiveIOError(f"{os.fsdecode(path)}: cannot write ({detail})")


#: Flags of a new temp file: created here or not at all, never through a symlink.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def _new_temp(path: Path, parent: Path) -> Path:
    """A new, empty temp file next to `path` (a dotfile ending in .tmp, which readers
    skip). Its mode is 0666 less the umask, as for any file a program creates: mkstemp's
    0600 would make shared outputs unreadable to the group."""
    for _ in range(16):
        tmp = parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, _CREATE | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        except OSError as err:
            raise os_error(path, err) from None
        os.close(fd)
        return tmp
    raise ArchiveIOError(f"{path}: cannot create a temp file next to it")


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[Path], None],
    *,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Write `path` atomically: `write(tmp)` fills a new temp file in the same directory,
    which is flushed to disk (fsync) and renamed over `path`.

    A failure anywhere leaves `path` as it was and no temp file behind: an OSError, or the
    RuntimeError netCDF raises, becomes one ArchiveIOError naming `path` (a full disk as
    such); anything else is raised unchanged. `before_rename` runs just before the rename.
    The rename replaces a symlink at `path` itself, never the file it points to.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ArchiveIOError(f"{path}: directory {parent} does not exist")
    if path.is_dir() and not path.is_symlink():
        raise ArchiveIOError(f"{path}: is a directory")
    tmp = _new_temp(path, parent)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        tmp.unlink(missing_ok=True)
        raise write_failure(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """`atomic_write` of UTF-8 text."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return atomic_write(path, write)


def check_regular_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """`path` exists and is a regular file (symlinks followed), else one ArchiveIOError:
    a FIFO, a device or a socket would block or never end when read, and a directory is
    not a file."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ArchiveIOError(f"{path}: no such file or directory") from None
    except OSError as err:
        raise ArchiveIOError(f"{path}: cannot read ({err.strerror or err})") from None
    if stat.S_ISREG(mode):
        return path
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a special file"
    )
    raise ArchiveIOError(f"{path}: is {kind}, not a regular {what}")


def read_config_text(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of TOML or JSON (by its suffix) configuration file `path` (`what`:
    "study file", "taxonomy file"); one ConfigError naming it when it is missing or
    unreadable, not a regular file (a FIFO would block the read) or not UTF-8."""
    path = Path(path)
    try:
        if path.exists():  # a FIFO would block the read below
            check_regular_file(path, what)
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read {what} ({err.strerror})") from None
    except ArchiveIOError as err:
        raise ConfigError(str(err)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}); "
            f"a {what} is UTF-8"
        ) from None
