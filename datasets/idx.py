"""Reader for the IDX format of (Fashion-)MNIST: a big-endian header followed by raw uint8 data.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian uint32 per dimension. Fashion-MNIST images use magic 2051 (3 dims), labels 2049 (1 dim).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from datasets.errors import DatasetFormatError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
    """Read one IDX file, gzipped or not (told by its first two bytes, not its name), into uint8.

    Args:
        path: the file.
        expected_magic: ``IMAGES_MAGIC`` (2051) or ``LABELS_MAGIC`` (2049).

    Returns:
        A uint8 array shaped as the header says, e.g. (60000, 28, 28) or (60000,).

    Raises:
        DatasetFormatError: the file is truncated, corrupt, or has another magic number or size.
    """
    path = os.fspath(path)
    raw = _read(path, size=-1)
    shape, header_size = _parse_header(path, raw, expected_magic)
    expected_bytes = int(np.prod(shape, dtype=np.int64))
    actual_bytes = len(raw) - header_size
    if actual_bytes != expected_bytes:
        raise DatasetFormatError(
            f"{path} holds {actual_bytes} data bytes but its header announces shape {shape} "
            f"({expected_bytes} bytes): the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx_shape(path: str | os.PathLike, expected_magic: int) -> tuple[int, ...]:
    """The shape an IDX file's header announces, checked as ``read_idx`` checks it, without
    reading the data."""
    path = os.fspath(path)
    return _parse_header(path, _read(path, size=4 + 4 * 255), expected_magic)[0]


def _read(path: str, size: int) -> bytes:
    """Up to ``size`` bytes (-1: all) of the file, decompressed when it starts with gzip's magic."""
    try:
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == _GZIP_MAGIC
        with (gzip.open if gzipped else open)(path, "rb") as handle:
            return handle.read(size)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetFormatError(
            f"Cannot read {path}: {error}. The file is corrupt or truncated; "
            "download it again or point --data-dir at a good copy."
        ) from None


def _parse_header(path: str, raw: bytes, expected_magic: int) -> tuple[tuple[int, ...], int]:
    if len(raw) < 8:
        raise DatasetFormatError(
            f"{path} is too short to be an IDX file ({len(raw)} bytes, expected at least 8)."
        )
    magic = struct.unpack(">i", raw[:4])[0]
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise DatasetFormatError(
            f"{path} has magic number {magic}, expected {expected_magic} for an IDX {kind} file. "
            "Check that the images and labels files are not swapped or from another dataset."
        )
    if raw[2] != _UNSIGNED_BYTE:
        raise DatasetFormatError(f"{path} stores type code {raw[2]:#x}, expected 0x08 (uint8).")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DatasetFormatError(f"{path} is truncated inside its header.")
    return struct.unpack(f">{ndim}I", raw[4:header_size]), header_size


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in ``.gz``); used by tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, _UNSIGNED_BYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())
