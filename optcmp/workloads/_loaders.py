"""Readers for the dataset files users provide with the study file's `data_dir` (no torchvision).

Dependency rule: numpy and optcmp_data only (no torch): each reader returns numpy arrays.

- IDX (MNIST, Fashion-MNIST), gzipped or not: `read_idx`.
- CIFAR-10/100 "python version" pickle batches: `read_cifar_batch`, through an unpickler
  that only resolves the few globals numpy array reconstruction needs, so a data file
  can never run code.
- UTF-8 text: `read_text`.

Every problem raises DataFormatError naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from optcmp_data import DataFormatError

__all__ = ["find_file", "read_cifar_batch", "read_idx", "read_text"]

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def find_file(directory: Path, stem: str, *, what: str) -> Path:
    """`directory/stem` or `directory/stem.gz`, whichever exists (one of them must)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataFormatError(f"{directory / stem}[.gz]: missing; expected {what}")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: missing") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataFormatError(f"{path}: cannot read ({err})") from None


def read_idx(path: Path, *, ndim: int | None = None) -> npt.NDArray[Any]:
    """An IDX file (LeCun's MNIST format) as an array; `.gz` files are decompressed."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataFormatError(f"{path}: not an IDX file (expected magic bytes 00 00 TYPE NDIM)")
    code, dims = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataFormatError(f"{path}: IDX type code 0x{code:02x} is not a known element type")
    if ndim is not None and dims != ndim:
        raise DataFormatError(f"{path}: IDX file has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(
            f"{path}: IDX payload has {len(raw) - header} bytes, shape {shape} needs {expected}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _numpy_global(module: str, name: str) -> Any:
    # Pickles written by numpy 1.x name `numpy.core.multiarray`; numpy 2 moved it to
    # `numpy._core` and warns on the old path, so resolve it here without the alias.
    import numpy._core.multiarray as multiarray

    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}[name]
    return {"ndarray": np.ndarray, "dtype": np.dtype}[name]


class _ArrayOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 store bytes
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if module == "_codecs":
            import codecs

            return codecs.encode
        return _numpy_global(module, name)


def read_cifar_batch(
    path: Path, *, label_key: str
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """One CIFAR python batch: images [N, 3, 32, 32] uint8 and labels [N] int64."""
    raw = _read_bytes(path)
    try:
        obj = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError) as err:
        raise DataFormatError(f"{path}: not a CIFAR python pickle batch ({err})") from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict with b'data' and labels")

    def get(key: str) -> Any:
        for k in (key.encode(), key):
            if k in obj:
                return obj[k]
        raise DataFormatError(f"{path}: key {key!r} missing; expected a CIFAR python batch")

    data = np.asarray(get("data"))
    labels = np.asarray(get(label_key))
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DataFormatError(
            f"{path}: 'data' has shape {data.shape} dtype {data.dtype}, expected [N, 3072] uint8"
        )
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise DataFormatError(
            f"{path}: {label_key!r} has shape {labels.shape}, expected {data.shape[0]} integers"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_text(path: Path) -> str:
    """A UTF-8 text file's contents."""
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(
            f"{path}: not UTF-8 text (invalid byte at offset {err.start})"
        ) from None
