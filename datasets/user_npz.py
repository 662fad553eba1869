"""A user's ``.npz`` archive -> arrays: read whole, or peeked at from its ``.npy`` headers."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets.errors import DatasetFormatError
from datasets.user_arrays import _ARRAY_KEYS, _encode_string_labels, _labels, _num_classes


def _read_npz(path: Path) -> dict[str, np.ndarray | None]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetFormatError(
            f"Cannot read '{path}' as an .npz archive ({error}). Save the arrays with "
            "np.savez(path, x_train=x, y_train=y)."
        ) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetFormatError(
            f"'{path}' holds a single array, not an .npz archive of named arrays. Save them with "
            "np.savez(path, x_train=x, y_train=y)."
        )
    with archive:
        _check_npz_keys(path, archive.files)
        return {
            key: _read_npz_array(path, archive, key) if key in archive.files else None
            for key in _ARRAY_KEYS
        }


def _check_npz_keys(path: Path, keys: Sequence[str]) -> None:
    missing = [key for key in ("x_train", "y_train") if key not in keys]
    if missing:
        raise DatasetFormatError(
            f"'{path}' has no {' or '.join(missing)}: it must hold arrays x_train and y_train "
            f"(optionally x_val/y_val and x_test/y_test); found: {', '.join(keys) or 'no arrays'}. "
            "Save them with np.savez(path, x_train=x, y_train=y)."
        )


def _read_npz_array(path: Path, archive, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DatasetFormatError(
                f"'{key}' in '{path}' is an object-dtype array (Python objects, mixed types or "
                "rows of different lengths), which hpsearch does not load. Save numeric arrays, "
                "e.g. np.asarray(x, dtype=np.float32)."
            ) from error
        raise DatasetFormatError(f"Cannot read '{key}' from '{path}': {error}.") from error
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetFormatError(
            f"Cannot read '{key}' from '{path}' ({error}): the archive is damaged. Save it again."
        ) from error


def _npz_header(path: Path, archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one array from its .npy header, without reading its data."""
    with archive.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            # Version 3 headers (utf-8 field names) have no public reader: load that one array.
            with np.load(path, allow_pickle=False) as arrays:
                array = arrays[key]
            return array.shape, array.dtype
    return tuple(shape), dtype


def _peek_npz(path: Path) -> dict:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise DatasetFormatError(
            f"Cannot read '{path}' as an .npz archive ({error}). Save the arrays with "
            "np.savez(path, x_train=x, y_train=y)."
        ) from error
    with archive:
        keys = [name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")]
        _check_npz_keys(path, keys)
        headers = {key: _npz_header(path, archive, key) for key in _ARRAY_KEYS if key in keys}
    labels = {}
    with np.load(path, allow_pickle=False) as arrays:
        for key in ("y_train", "y_val", "y_test"):
            if key in headers:
                labels[key] = _labels(_read_npz_array(path, arrays, key), key)
    labels, class_names = _encode_string_labels(labels)
    return {
        "kind": "npz",
        "input_shape": tuple(int(size) for size in headers["x_train"][0][1:]),
        "num_classes": _num_classes(list(labels.values()), class_names),
        "examples": sum(int(shape[0]) for key, (shape, _) in headers.items() if key[0] == "x"),
    }
