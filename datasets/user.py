"""A user's own data -> an hpsearch ``Dataset``: ``.npz`` arrays, a folder of pictures, or a table.

Accepted kinds:

- an ``.npz`` archive with ``x_train`` and ``y_train`` (and optionally ``x_val``/``y_val``,
  ``x_test``/``y_test``), kept as given apart from dtypes (x float32; labels int64 or float32);
- a folder of class sub-folders of pictures (``root/<class>/<picture>``, the layout Keras's
  ``image_dataset_from_directory`` reads), or ``root/train/<class>/...`` beside ``root/test/...``
  and ``root/val/...`` (or ``validation``); pixels float32 in 0..255, as Keras gives them;
- a ``.csv`` or ``.parquet`` table whose ``target`` column holds the labels and whose other
  columns are the (numeric) features;
- from Python: numpy arrays (``from_arrays``) or ``tf.data`` datasets (``from_tf_dataset``).

When no validation set is given, ``validation_fraction`` of the training examples is held out
(stratified by class when the labels are classes, a seeded shuffle otherwise); ``subset`` draws
from the training examples before that split. Nothing is rescaled: the user's model does that.

The readers of each kind live in ``user_npz``, ``user_pictures`` and ``user_tables``, and the
checks and splits they share in ``user_arrays``; this module is the entry points and the dispatch.

>>> from datasets.user import load_user_data
>>> data = load_user_data("flowers/", validation_fraction=0.2, seed=1)
>>> data.input_shape, data.class_names
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from datasets.errors import DatasetFormatError, DatasetNotFoundError
from datasets.splits import Dataset
from datasets.user_arrays import _ARRAY_KEYS, _dataset_from_parts, _materialize_tf_dataset
from datasets.user_npz import _peek_npz, _read_npz
from datasets.user_pictures import (
    ACCEPTED_KINDS,
    MAX_PICTURE_PIXELS,
    PICTURE_EXTENSIONS,
    SPLIT_FOLDERS,
    _peek_picture_folder,
    _read_picture_folder,
    check_picture_size,
)
from datasets.user_tables import TABLE_EXTENSIONS, _peek_table, _read_table

__all__ = [
    "ACCEPTED_KINDS",
    "MAX_PICTURE_PIXELS",
    "PICTURE_EXTENSIONS",
    "SPLIT_FOLDERS",
    "TABLE_EXTENSIONS",
    "arrays_fingerprint",
    "check_picture_size",
    "data_fingerprint",
    "from_arrays",
    "from_tf_dataset",
    "load_user_data",
    "peek_user_data",
]


def load_user_data(
    path: str | os.PathLike,
    target: str | None = None,
    *,
    validation_fraction: float = 0.1,
    subset: float | None = None,
    seed: int = 0,
) -> Dataset:
    """Read a user's data set from disk and make its train / validation / test splits.

    Args:
        path: an ``.npz`` file, a folder of class sub-folders of pictures, or a ``.csv`` /
            ``.parquet`` table (see the module docstring for each layout).
        target: the label column of a table (required for ``.csv``/``.parquet``, must be None
            for the other kinds).
        validation_fraction: share of the training examples held out for validation when the
            data brings no validation set, in [0, 1) (default 0.1). Ignored when it does.
        subset: draw this many (int >= 1) or this share (float in (0, 1]) of the training
            examples before the validation split, stratified for classes (default None: all).
        seed: seed of the subset and the validation split (default 0).

    Returns:
        A Dataset whose ``name`` is the file stem or folder name and ``source`` the path as given;
        an empty test set (with the right trailing shapes) when the data brings none.

    Raises:
        DatasetNotFoundError: nothing at ``path``.
        DatasetFormatError: an unknown kind of file, or data that cannot be used as it is (the
            message says what was expected and how to fix it).
        DatasetError: a parquet table without a parquet engine installed.
        ValueError: ``target`` given for a kind that has no columns, or bad fractions.
    """
    data_path = _existing_path(path)
    kind = _kind_of(data_path)
    _check_target_use(kind, target)
    if kind == "npz":
        parts, class_names, notes = _read_npz(data_path), (), []
    elif kind == "images":
        parts, class_names, notes = _read_picture_folder(data_path)
    else:
        parts, class_names, notes = _read_table(data_path, target)
    return _dataset_from_parts(
        parts,
        name=_name_of(data_path),
        source=os.fspath(path),
        class_names=class_names,
        notes=notes,
        validation_fraction=validation_fraction,
        subset=subset,
        seed=seed,
    )


def from_arrays(
    x_train: Any,
    y_train: Any,
    x_val: Any = None,
    y_val: Any = None,
    x_test: Any = None,
    y_test: Any = None,
    *,
    validation_fraction: float = 0.1,
    subset: float | None = None,
    seed: int = 0,
    name: str = "arrays",
    source: str = "arrays (Python)",
) -> Dataset:
    """Make a Dataset from arrays given in Python, with the same checks and splits as a file.

    Args:
        x_train, y_train: training examples (N, ...) and their labels: int class ids, one-hot
            rows, float targets, or strings (encoded as ids of their sorted distinct values).
        x_val, y_val: optional validation set (both or neither); when absent,
            ``validation_fraction`` of the training examples is held out.
        x_test, y_test: optional test set (both or neither); when absent the test set is empty.
        validation_fraction: see ``load_user_data`` (default 0.1).
        subset: see ``load_user_data`` (default None: all training examples).
        seed: seed of the subset and the split (default 0).
        name: the Dataset's name (default ``"arrays"``).
        source: where the arrays came from, for summaries (default ``"arrays (Python)"``).

    Returns:
        A Dataset: x float32, labels int64 (classes) or float32 (targets).

    Raises:
        DatasetFormatError: a missing half of a pair, mismatched lengths or shapes, object or
            non-numeric features, negative class ids.
        ValueError: bad ``validation_fraction`` or ``subset``.
    """
    parts = {
        "x_train": x_train,
        "y_train": y_train,
        "x_val": x_val,
        "y_val": y_val,
        "x_test": x_test,
        "y_test": y_test,
    }
    return _dataset_from_parts(
        parts,
        name=name,
        source=source,
        validation_fraction=validation_fraction,
        subset=subset,
        seed=seed,
    )


def from_tf_dataset(
    train: Any,
    validation: Any = None,
    test: Any = None,
    *,
    validation_fraction: float = 0.1,
    subset: float | None = None,
    seed: int = 0,
    name: str = "tf.data",
    batched: bool | None = None,
) -> Dataset:
    """Make a Dataset from ``tf.data.Dataset``s of (x, y) pairs, read once into memory.

    Args:
        train: the training examples, batched or not.
        validation: optional validation examples; when absent, ``validation_fraction`` of the
            training examples is held out.
        test: optional test examples; when absent the test set is empty.
        validation_fraction, subset, seed: see ``load_user_data``.
        name: the Dataset's name (default ``"tf.data"``).
        batched: whether the elements are batches. Default None: batched when the first
            dimension of x's element spec is unknown, as ``.batch()`` makes it; pass True for a
            set batched with ``drop_remainder=True``, whose batch dimension is known.

    Returns:
        A Dataset, as ``from_arrays`` makes it.

    Raises:
        TypeError: an argument is not a ``tf.data.Dataset``.
        DatasetFormatError: elements that are not (x, y) pairs, an empty or endlessly
            repeating set, or elements of different shapes; and everything ``from_arrays``
            refuses.
    """
    arrays: dict[str, np.ndarray | None] = {}
    for part, dataset in (("train", train), ("val", validation), ("test", test)):
        if dataset is None:
            arrays[f"x_{part}"] = arrays[f"y_{part}"] = None
            continue
        arrays[f"x_{part}"], arrays[f"y_{part}"] = _materialize_tf_dataset(dataset, part, batched)
    return from_arrays(
        **arrays,
        validation_fraction=validation_fraction,
        subset=subset,
        seed=seed,
        name=name,
        source="tf.data (Python)",
    )


def data_fingerprint(path: str | os.PathLike) -> str:
    """A short hash of the data's content, to tell whether the data behind a run has changed.

    Args:
        path: a file (its bytes are hashed: the sha256 of the file) or a folder (every file's
            path relative to the folder and bytes, in sorted order of the paths).

    Returns:
        The first 16 hex digits of the sha256.

    Raises:
        DatasetNotFoundError: nothing at ``path``.
    """
    data_path = _existing_path(path)
    digest = hashlib.sha256()
    if data_path.is_dir():
        files = sorted(
            (file for file in data_path.rglob("*") if file.is_file()),
            key=lambda file: file.relative_to(data_path).as_posix(),
        )
        for file in files:
            # Length prefixes keep a byte moved from one file's end to the next file's name from
            # hashing the same.
            relative = file.relative_to(data_path).as_posix().encode()
            digest.update(len(relative).to_bytes(8, "little") + relative)
            digest.update(file.stat().st_size.to_bytes(8, "little"))
            _hash_file_into(digest, file)
    else:
        _hash_file_into(digest, data_path)
    return digest.hexdigest()[:16]


def arrays_fingerprint(dataset: Dataset) -> str:
    """A short hash of a Dataset's six arrays (bytes, shapes and dtypes), for data given from
    Python, which has no file to fingerprint.

    Args:
        dataset: the Dataset, e.g. from ``from_arrays`` or ``from_tf_dataset``.

    Returns:
        The first 16 hex digits of the sha256.
    """
    digest = hashlib.sha256()
    for key in _ARRAY_KEYS:
        array = np.ascontiguousarray(getattr(dataset, key))
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def peek_user_data(path: str | os.PathLike, target: str | None = None) -> dict:
    """What ``load_user_data`` would give, from headers and labels only (no pixels, no features).

    Args:
        path: as for ``load_user_data``.
        target: as for ``load_user_data``.

    Returns:
        ``{"kind": "npz" | "images" | "table", "input_shape": tuple, "num_classes": int | None,
        "examples": int}``, ``examples`` counting every split the data holds.

    Raises:
        The errors of ``load_user_data`` that can be seen without reading all the data.
    """
    data_path = _existing_path(path)
    kind = _kind_of(data_path)
    _check_target_use(kind, target)
    if kind == "npz":
        return _peek_npz(data_path)
    if kind == "images":
        return _peek_picture_folder(data_path)
    return _peek_table(data_path, target)


# --- Which kind of data ---------------------------------------------------------------------


def _existing_path(path: str | os.PathLike) -> Path:
    data_path = Path(path)
    if not data_path.exists():
        raise DatasetNotFoundError(f"No data at '{os.fspath(path)}'. Expected {ACCEPTED_KINDS}.")
    return data_path


def _kind_of(path: Path) -> str:
    if path.is_dir():
        return "images"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in TABLE_EXTENSIONS:
        return "table"
    raise DatasetFormatError(
        f"Cannot read '{path}': unknown kind of file '{suffix or '(no extension)'}'. "
        f"Expected {ACCEPTED_KINDS}."
    )


def _check_target_use(kind: str, target: str | None) -> None:
    if target is not None and kind != "table":
        what = "an .npz archive" if kind == "npz" else "a folder of pictures"
        raise ValueError(
            f"--target (target='{target}') applies to CSV/parquet tables only, but the data is "
            f"{what}, whose labels are {'y_train' if kind == 'npz' else 'its class folders'}. "
            "Leave --target out."
        )


def _name_of(path: Path) -> str:
    return path.resolve().name if path.is_dir() else path.stem


def _hash_file_into(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
