"""File-system failures as one line: what went wrong where, without half-written files.

Dependency rule: the standard library only.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from optcmp_data._errors import ArchiveIOError

__all__ = ["LOW_SPACE_BYTES", "os_error", "write_failure"]

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
