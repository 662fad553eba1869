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

>>> from datasets.user import load_user_data
>>> data = load_user_data("flowers/", validation_fraction=0.2, seed=1)
>>> data.input_shape, data.class_names
"""

from __future__ import annotations

import collections
import difflib
import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datasets.errors import DatasetError, DatasetFormatError, DatasetNotFoundError
from datasets.splits import Dataset, stratified_split, stratified_subset

PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TABLE_EXTENSIONS = (".csv", ".parquet")
# Top-level folder name (lower case) -> the split it holds.
SPLIT_FOLDERS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
ACCEPTED_KINDS = (
    "an .npz file with arrays x_train and y_train (optionally x_val/y_val and x_test/y_test); "
    "a folder of class sub-folders of pictures (" + ", ".join(PICTURE_EXTENSIONS) + "), "
    "optionally split into train/, val/ and test/ folders; "
    "a .csv or .parquet table with --target naming the label column"
)
_ARRAY_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
# Pillow modes of one-channel pictures; a set made only of these is read with 1 channel.
_GRAYSCALE_MODES = frozenset({"L", "1", "I;16", "I;16B", "I;16L", "I;16N"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_PICTURE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
# The largest picture read, in pixels: a 48-megapixel photo (8064 x 6048) fits, while a
# 13000 x 13000 one (hundreds of megabytes once decoded and converted) is refused from its
# header before any pixel is decoded. Pillow itself only refuses above 179 million pixels.
MAX_PICTURE_PIXELS = 50_000_000


def check_picture_size(path: str | os.PathLike, size: tuple[int, int]) -> None:
    """Refuse a picture larger than ``MAX_PICTURE_PIXELS``, from its header's (width, height)
    (``Image.open(path).size``: Pillow reads the header only, nothing is decoded yet).

    Raises:
        DatasetFormatError: naming the file, its size and the limit.
    """
    width, height = size
    if width * height > MAX_PICTURE_PIXELS:
        raise DatasetFormatError(
            f"The picture '{path}' is {width}x{height} pixels ({width * height / 1e6:.0f} "
            f"million); pictures of up to {MAX_PICTURE_PIXELS / 1e6:.0f} million pixels are "
            "read. Scale it down first."
        )


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


# --- .npz archives --------------------------------------------------------------------------


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


# --- Folders of pictures --------------------------------------------------------------------


def _split_folders(root: Path) -> dict[str, Path]:
    """Split name -> the folder holding that split's class folders."""
    entries = [entry for entry in root.iterdir() if not entry.name.startswith(".")]
    if not entries:
        raise DatasetFormatError(f"The folder '{root}' is empty. Expected {ACCEPTED_KINDS}.")
    folders = sorted(entry for entry in entries if entry.is_dir())
    if not folders:
        raise DatasetFormatError(
            f"The folder '{root}' has no class sub-folders. Put each class's pictures in a "
            f"sub-folder named after it: '{root}/<class name>/<picture>'."
        )
    names = {folder.name.lower(): folder for folder in folders}
    if not set(names) <= set(SPLIT_FOLDERS):
        return {"train": root}
    if "train" not in names:
        raise DatasetFormatError(
            f"The folder '{root}' holds split folders ({', '.join(sorted(names))}) but no "
            "train folder. Add 'train/<class name>/<picture>'."
        )
    if "val" in names and "validation" in names:
        raise DatasetFormatError(
            f"The folder '{root}' has both 'val' and 'validation' folders; keep one of them."
        )
    return {SPLIT_FOLDERS[name]: folder for name, folder in names.items()}


def _class_folders(split_root: Path) -> dict[str, Path]:
    # Hidden folders (.ipynb_checkpoints, .git) are tools' leftovers, not classes.
    return {
        folder.name: folder
        for folder in sorted(split_root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }


def _pictures_in(folder: Path) -> list[Path]:
    # Hidden files and folders are skipped: macOS leaves "._name.jpg" companions that are not
    # pictures, and tools leave thumbnails in hidden folders.
    return sorted(
        file
        for file in folder.rglob("*")
        if file.is_file()
        and file.suffix.lower() in PICTURE_EXTENSIONS
        and not any(part.startswith(".") for part in file.relative_to(folder).parts)
    )


def _list_picture_folder(
    root: Path,
) -> tuple[tuple[str, ...], dict[str, list[tuple[Path, int]]]]:
    """Class names (sorted, from train) and each split's (picture, class id) list."""
    splits = _split_folders(root)
    train_classes = _class_folders(splits["train"])
    class_names = tuple(sorted(train_classes))
    if len(class_names) < 2:
        raise DatasetFormatError(
            f"'{splits['train']}' has {len(class_names)} class sub-folder"
            f"{'' if len(class_names) == 1 else 's'} ({', '.join(class_names) or 'none'}); "
            "a classification set needs at least 2. Put each class's pictures in its own "
            "sub-folder."
        )
    listed: dict[str, list[tuple[Path, int]]] = {}
    for split, split_root in splits.items():
        classes = train_classes if split == "train" else _class_folders(split_root)
        if not classes:
            raise DatasetFormatError(
                f"'{split_root}' has no class sub-folders. Put its pictures in sub-folders named "
                f"after their classes: '{split_root}/<class name>/<picture>'."
            )
        unknown = sorted(set(classes) - set(class_names))
        if unknown:
            raise DatasetFormatError(
                f"'{split_root}' has class folders that train does not: {', '.join(unknown)}. "
                f"Expected classes (from '{splits['train']}'): {', '.join(class_names)}."
            )
        listed[split] = []
        for class_name, folder in classes.items():
            pictures = _pictures_in(folder)
            if not pictures:
                raise DatasetFormatError(
                    f"The class folder '{folder}' holds no pictures "
                    f"({', '.join(PICTURE_EXTENSIONS)}). Add pictures or remove the folder."
                )
            label = class_names.index(class_name)
            listed[split].extend((picture, label) for picture in pictures)
    return class_names, listed


def _picture_header(path: Path) -> tuple[str, tuple[int, int]]:
    try:
        with Image.open(path) as picture:
            mode, size = picture.mode, picture.size
    except _PICTURE_ERRORS as error:
        raise DatasetFormatError(
            f"Cannot read the picture '{path}' ({error}). Remove or replace it."
        ) from error
    # Every picture's header is read before any is decoded (``_picture_geometry``).
    check_picture_size(path, size)
    return mode, size


def _picture_geometry(
    listed: dict[str, list[tuple[Path, int]]],
) -> tuple[bool, tuple[int, int], list[tuple[int, int]]]:
    """(grayscale, most common (width, height), every picture's size in listing order)."""
    modes, sizes = set(), []
    for pictures in listed.values():
        for path, _ in pictures:
            mode, size = _picture_header(path)
            modes.add(mode)
            sizes.append(size)
    counts = collections.Counter(sizes)
    # Ties go to the larger picture, so that no information is thrown away by the tie-break.
    common = max(counts, key=lambda size: (counts[size], size[0] * size[1], size))
    return modes <= _GRAYSCALE_MODES, common, sizes


def _read_picture(path: Path, grayscale: bool, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode in _SIXTEEN_BIT_MODES:
                # Pillow clips 16-bit values when converting to 8-bit modes: scale them to
                # 0..255 like every other picture instead (a float "F" picture).
                picture = Image.fromarray(np.asarray(picture, dtype=np.float32) / np.float32(257))
            elif grayscale:
                picture = picture.convert("L")
            else:
                picture = picture.convert("RGB")
            if picture.size != size:
                picture = picture.resize(size, Image.Resampling.BILINEAR)
            array = np.asarray(picture, dtype=np.float32)
    except _PICTURE_ERRORS as error:
        raise DatasetFormatError(
            f"Cannot read the picture '{path}' ({error}). Remove or replace it."
        ) from error
    if array.ndim == 2:
        array = array[..., None] if grayscale else np.repeat(array[..., None], 3, axis=2)
    return array


def _read_picture_folder(
    root: Path,
) -> tuple[dict[str, np.ndarray | None], tuple[str, ...], list[str]]:
    class_names, listed = _list_picture_folder(root)
    grayscale, (width, height), sizes = _picture_geometry(listed)
    channels = 1 if grayscale else 3
    parts: dict[str, np.ndarray | None] = {key: None for key in _ARRAY_KEYS}
    for split, pictures in listed.items():
        key = "val" if split == "validation" else split
        images = np.empty((len(pictures), height, width, channels), dtype=np.float32)
        for index, (path, _) in enumerate(pictures):
            images[index] = _read_picture(path, grayscale, (width, height))
        parts[f"x_{key}"] = images
        parts[f"y_{key}"] = np.array([label for _, label in pictures], dtype=np.int64)
    colour = "grayscale (1 channel)" if grayscale else "RGB (3 channels)"
    notes = [f"{len(sizes)} pictures in {len(class_names)} classes, {colour}, pixels 0..255"]
    if len(listed) > 1:
        notes.append("splits from the folders " + ", ".join(sorted(listed)))
    others = collections.Counter(size for size in sizes if size != (width, height))
    if others:
        resized = ", ".join(f"{w}x{h}" for w, h in sorted(others))
        notes.append(
            f"resized {sum(others.values())} of {len(sizes)} pictures ({resized}) to "
            f"{width}x{height}, the most common size (bilinear)"
        )
    return parts, class_names, notes


def _peek_picture_folder(root: Path) -> dict:
    class_names, listed = _list_picture_folder(root)
    grayscale, (width, height), sizes = _picture_geometry(listed)
    return {
        "kind": "images",
        "input_shape": (height, width, 1 if grayscale else 3),
        "num_classes": len(class_names),
        "examples": len(sizes),
    }


# --- Tables ---------------------------------------------------------------------------------


def _read_table_file(path: Path, columns: list[str] | None = None, header_only: bool = False):
    # pandas takes a while to import and only tables need it.
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, usecols=columns, nrows=0 if header_only else None)
        return pd.read_parquet(path, columns=columns)
    except ImportError as error:
        raise DatasetError(
            f"Reading the parquet table '{path}' needs a parquet engine, and none is installed "
            f"({error}). Install one with `pip install pyarrow`, or save the table as CSV."
        ) from error
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DatasetFormatError(f"Cannot read the table '{path}' ({error}).") from error


def _check_target_column(path: Path, target: str | None, columns: Sequence[str]) -> str:
    listed = ", ".join(str(column) for column in columns)
    if target is None:
        raise DatasetFormatError(
            f"A table needs --target to name its label column; '{path}' has the columns: {listed}."
        )
    if target not in columns:
        close = difflib.get_close_matches(target, [str(column) for column in columns], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DatasetFormatError(
            f"No column '{target}' (--target) in '{path}'; its columns are: {listed}.{hint}"
        )
    if len(columns) < 2:
        raise DatasetFormatError(
            f"'{path}' has only the target column '{target}': there are no feature columns."
        )
    return target


def _encode_target(series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Numeric targets as given; strings and categories -> ids of their sorted distinct values."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64), ()
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64), ()
    if pd.api.types.is_float_dtype(series.dtype):
        return series.to_numpy(dtype=np.float32), ()
    distinct = list(pd.unique(series.to_numpy(dtype=object)))
    try:
        distinct.sort()
    except TypeError:
        # Mixed types (numbers and text) have no order of their own: order them as text.
        distinct.sort(key=str)
    ids = {value: index for index, value in enumerate(distinct)}
    labels = np.array([ids[value] for value in series.to_numpy(dtype=object)], dtype=np.int64)
    return labels, tuple(str(value) for value in distinct)


def _read_table(
    path: Path, target: str | None
) -> tuple[dict[str, np.ndarray | None], tuple[str, ...], list[str]]:
    import pandas as pd

    table = _read_table_file(path)
    target = _check_target_column(path, target, list(table.columns))
    features = [column for column in table.columns if column != target]
    not_numeric = [
        f"'{column}' ({table[column].dtype})"
        for column in features
        if not pd.api.types.is_numeric_dtype(table[column].dtype)
    ]
    if not_numeric:
        raise DatasetFormatError(
            f"Feature columns must be numeric; in '{path}' these are not: "
            f"{', '.join(not_numeric)}. Encode them as numbers (e.g. pandas.get_dummies for "
            "categories) or drop them."
        )
    missing = table.isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        counts = ", ".join(f"'{column}' {int(count)}" for column, count in missing.items())
        raise DatasetFormatError(
            f"'{path}' has missing values: {counts}. Fill them (e.g. DataFrame.fillna) or drop "
            "those rows (DataFrame.dropna)."
        )
    labels, class_names = _encode_target(table[target])
    parts: dict[str, np.ndarray | None] = {key: None for key in _ARRAY_KEYS}
    parts["x_train"] = table[features].to_numpy(dtype=np.float32)
    parts["y_train"] = labels
    notes = [f"{len(features)} feature columns, target '{target}'"]
    return parts, class_names, notes


def _peek_table(path: Path, target: str | None) -> dict:
    # A CSV's header names the columns; parquet has no cheaper way here than reading the table.
    columns = list(_read_table_file(path, header_only=True).columns)
    target = _check_target_column(path, target, columns)
    labels, class_names = _encode_target(_read_table_file(path, columns=[target])[target])
    return {
        "kind": "table",
        "input_shape": (len(columns) - 1,),
        "num_classes": _num_classes([labels], class_names),
        "examples": len(labels),
    }


# --- tf.data --------------------------------------------------------------------------------


def _materialize_tf_dataset(
    dataset, part: str, batched: bool | None
) -> tuple[np.ndarray, np.ndarray]:
    # TensorFlow takes seconds to import: only users who hand over tf.data sets pay for it.
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"from_tf_dataset expected a tf.data.Dataset of (x, y) pairs for '{part}', got "
            f"{type(dataset).__name__}. For numpy arrays use datasets.user.from_arrays."
        )
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise DatasetFormatError(
            f"The {part} tf.data.Dataset must yield (x, y) pairs; its elements are {spec}. "
            "Map it to pairs, e.g. dataset.map(lambda features, label: (features, label))."
        )
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise DatasetFormatError(
            f"The {part} tf.data.Dataset repeats forever, so it cannot be read into arrays. "
            "Pass it without .repeat()."
        )
    if batched is None:
        shape = spec[0].shape
        batched = shape.rank is not None and shape.rank > 0 and shape[0] is None
    xs, ys = [], []
    for x, y in dataset.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DatasetFormatError(f"The {part} tf.data.Dataset is empty.")
    try:
        if batched:
            return np.concatenate(xs), np.concatenate(ys)
        return np.stack(xs), np.stack(ys)
    except ValueError as error:
        raise DatasetFormatError(
            f"The {part} tf.data.Dataset's elements have different shapes ({error}). "
            "Resize or pad them to one shape (for batches, pass batched=True or False if the "
            "guess from the element spec was wrong)."
        ) from error


# --- Arrays -> checked arrays -> splits -----------------------------------------------------


def _as_array(value: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except ValueError as error:
        raise DatasetFormatError(
            f"'{key}' cannot be made into one array ({error}): every example must have the same "
            "shape. Resize or pad them first."
        ) from error


def _features(array: np.ndarray, key: str) -> np.ndarray:
    if array.dtype.kind in "biu":
        array = array.astype(np.float32)
    elif array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    elif array.dtype.kind == "O":
        raise DatasetFormatError(
            f"'{key}' is an object-dtype array (Python objects, mixed types or rows of different "
            "lengths). Give a numeric array, e.g. np.asarray(x, dtype=np.float32)."
        )
    else:
        raise DatasetFormatError(
            f"'{key}' must hold numbers (int, bool or float); it holds {array.dtype}. Encode the "
            "features as numbers first."
        )
    if array.ndim < 2:
        raise DatasetFormatError(
            f"'{key}' must have one row per example, shape (examples, ...) with at least 2 "
            f"dimensions; got shape {array.shape}. For one feature per example use "
            "x.reshape(-1, 1)."
        )
    # min and max carry any NaN or infinity through without a temporary the size of the array.
    if array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        raise DatasetFormatError(
            f"'{key}' holds {int(np.size(array) - np.isfinite(array).sum())} NaN or infinite "
            "values. Replace or drop them first."
        )
    return array


def _labels(array: np.ndarray, key: str) -> np.ndarray:
    if array.dtype.kind == "O" and all(isinstance(value, str) for value in array.ravel()):
        array = array.astype(str)
    kind = array.dtype.kind
    if kind in "US":
        if array.ndim != 1:
            raise DatasetFormatError(
                f"'{key}' holds text labels of shape {array.shape}; text labels must be one per "
                "example, shape (examples,)."
            )
        return array
    if kind in "biu":
        return array.astype(np.int64)
    if kind == "f":
        if not np.isfinite(array).all():
            raise DatasetFormatError(
                f"'{key}' holds NaN or infinite values. Replace or drop those examples first."
            )
        return array.astype(np.float32, copy=False)
    if kind == "O":
        raise DatasetFormatError(
            f"'{key}' is an object-dtype array (Python objects or mixed types). Give int class "
            "ids, one-hot rows, float targets or strings."
        )
    raise DatasetFormatError(
        f"'{key}' must hold int class ids, one-hot rows, float targets or strings; it holds "
        f"{array.dtype}."
    )


def _encode_string_labels(
    labels: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Text labels of every split -> ids of their sorted distinct values (one mapping for all)."""
    text = [key for key, array in labels.items() if array.dtype.kind in "US"]
    if not text:
        return labels, ()
    if len(text) != len(labels):
        numeric = [key for key in labels if key not in text]
        raise DatasetFormatError(
            f"{', '.join(text)} hold text labels but {', '.join(numeric)} hold numbers; give "
            "every split labels of the same kind."
        )
    class_names = np.unique(np.concatenate([labels[key].astype(str) for key in text]))
    encoded = {
        key: np.searchsorted(class_names, array.astype(str)).astype(np.int64)
        for key, array in labels.items()
    }
    return encoded, tuple(str(name) for name in class_names)


def _is_one_hot(labels: np.ndarray) -> bool:
    return (
        labels.ndim == 2
        and labels.shape[1] >= 2
        and bool(np.isin(labels, (0, 1)).all())
        and bool((labels.sum(axis=1) == 1).all())
    )


def _class_ids(labels: np.ndarray) -> np.ndarray | None:
    """The class of every example, to stratify on; None when the labels are not classes."""
    if labels.dtype.kind == "i" and labels.ndim == 1:
        return labels
    if labels.dtype.kind == "i" and labels.ndim == 2 and labels.shape[1] == 1:
        return labels[:, 0]
    if _is_one_hot(labels):
        return labels.argmax(axis=1)
    return None


def _num_classes(labels: list[np.ndarray], class_names: tuple[str, ...]) -> int | None:
    if class_names:
        return len(class_names)
    train = labels[0]
    if _is_one_hot(train):
        return int(train.shape[1])
    if _class_ids(train) is None:
        return None
    return int(max(int(array.max()) for array in labels if array.size)) + 1


def _checked_subset(subset: float | None) -> float | None:
    """The subset as a Python int (a count) or float (a fraction), as ``stratified_subset``
    tells them apart; numpy scalars are welcome too."""
    if subset is None:
        return None
    is_count = isinstance(subset, (int, np.integer)) and not isinstance(subset, (bool, np.bool_))
    is_fraction = isinstance(subset, (float, np.floating))
    if is_count and subset >= 1:
        return int(subset)
    if is_fraction and 0.0 < subset <= 1.0:
        return float(subset)
    raise ValueError(
        f"subset must be a count (an int >= 1) or a fraction (a float in (0, 1]); got {subset!r}."
    )


def _check_validation_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(
            f"validation_fraction must be in [0, 1), got {fraction!r}; 0.1 holds out a tenth of "
            "the training examples."
        )


def _random_subset(count: int, subset: float | None, seed: int) -> np.ndarray:
    if subset is None:
        return np.arange(count)
    size = round(subset * count) if isinstance(subset, float) else subset
    return np.sort(np.random.default_rng(seed).permutation(count)[: min(size, count)])


def _random_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    held = round(fraction * count)
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[held:]), np.sort(order[:held])


def _checked_parts(
    parts: dict[str, Any],
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """Split name -> (x, y), checked: pairs complete, lengths and shapes agree, labels encoded."""
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in ("train", "val", "test"):
        x, y = parts.get(f"x_{split}"), parts.get(f"y_{split}")
        if x is None and y is None and split != "train":
            continue
        if x is None or y is None:
            given, absent = ("x", "y") if y is None else ("y", "x")
            raise DatasetFormatError(
                f"{given}_{split} was given without {absent}_{split}: give both or neither."
            )
        features = _features(_as_array(x, f"x_{split}"), f"x_{split}")
        labels = _labels(_as_array(y, f"y_{split}"), f"y_{split}")
        if len(features) != len(labels):
            raise DatasetFormatError(
                f"x_{split} has {len(features)} examples but y_{split} has {len(labels)}; "
                "give one label per example."
            )
        pairs[split] = (features, labels)
    encoded, class_names = _encode_string_labels({split: y for split, (_, y) in pairs.items()})
    pairs = {split: (x, encoded[split]) for split, (x, _) in pairs.items()}
    x_train, y_train = pairs["train"]
    for split, (x, y) in pairs.items():
        if x.shape[1:] != x_train.shape[1:]:
            raise DatasetFormatError(
                f"x_{split} examples have shape {x.shape[1:]} but x_train examples have "
                f"{x_train.shape[1:]}; every split must have the same shape."
            )
        if y.shape[1:] != y_train.shape[1:] or y.dtype.kind != y_train.dtype.kind:
            raise DatasetFormatError(
                f"y_{split} labels ({y.dtype}, shape {y.shape[1:]} each) differ from y_train "
                f"labels ({y_train.dtype}, shape {y_train.shape[1:]} each); give every split "
                "labels of the same kind."
            )
    if _class_ids(y_train) is not None and not _is_one_hot(y_train):
        negative = [split for split, (_, y) in pairs.items() if y.size and y.min() < 0]
        if negative:
            raise DatasetFormatError(
                f"Integer labels are class ids 0..K-1, but y_{negative[0]} holds negative "
                "values. Map the classes to 0..K-1, or give float labels for regression."
            )
    return pairs, class_names


def _dataset_from_parts(
    parts: dict[str, Any],
    *,
    name: str,
    source: str,
    validation_fraction: float,
    subset: float | None,
    seed: int,
    class_names: tuple[str, ...] = (),
    notes: Sequence[str] = (),
) -> Dataset:
    _check_validation_fraction(validation_fraction)
    subset = _checked_subset(subset)
    pairs, encoded_names = _checked_parts(parts)
    class_names = tuple(class_names) or encoded_names
    x_train, y_train = pairs["train"]
    classes = _class_ids(y_train)
    how = "stratified by class" if classes is not None else "random"
    description = list(notes)

    if classes is not None:
        train_index = stratified_subset(classes, subset, seed)
    else:
        train_index = _random_subset(len(y_train), subset, seed)
    if subset is not None:
        description.append(
            f"subset {subset}: {len(train_index)} of {len(y_train)} training examples "
            f"({how}, seed {seed})"
        )

    if "val" in pairs:
        x_val, y_val = pairs["val"]
        description.append(f"validation as given ({len(y_val)} examples)")
    else:
        if classes is not None:
            kept, held = stratified_split(classes[train_index], validation_fraction, seed + 1)
        else:
            kept, held = _random_split(len(train_index), validation_fraction, seed + 1)
        if validation_fraction > 0 and len(held) == 0:
            raise DatasetFormatError(
                f"Holding out {validation_fraction:.0%} of {len(train_index)} training examples "
                "leaves no validation examples. Give more examples, a larger "
                "validation_fraction, or a validation set."
            )
        x_val, y_val = x_train[train_index[held]], y_train[train_index[held]]
        train_index = train_index[kept]
        description.append(f"validation {validation_fraction:.0%} of train ({how}, seed {seed})")
    if len(train_index) == 0:
        raise DatasetFormatError(
            "No training examples are left after the subset and the validation split. Give "
            "more examples, a larger subset or a smaller validation_fraction."
        )

    if "test" in pairs:
        x_test, y_test = pairs["test"]
        description.append(f"test as given ({len(y_test)} examples)")
    else:
        x_test, y_test = x_train[:0], y_train[:0]
        description.append("no test set")

    labels = [y_train, y_val, y_test]
    return Dataset(
        name=name,
        x_train=x_train[train_index],
        y_train=y_train[train_index],
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        input_shape=tuple(int(size) for size in x_train.shape[1:]),
        num_classes=_num_classes(labels, class_names),
        class_names=class_names,
        source=source,
        description="; ".join(description),
        subset_drawn=None,
    )


def _hash_file_into(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
