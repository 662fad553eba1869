"""A user's folder of pictures -> arrays: its layout, its pictures' headers and their pixels.

``root/<class>/<picture>``, or ``root/train/<class>/...`` beside ``root/test/...`` and
``root/val/...`` (or ``validation``). Every header is read before any picture is decoded, so an
oversized or unreadable picture is refused early; pictures of other sizes are resized to the most
common one, and a set made only of one-channel pictures is read with one channel.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
from PIL import Image

from datasets.errors import DatasetFormatError
from datasets.user_arrays import _ARRAY_KEYS

PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Top-level folder name (lower case) -> the split it holds.
SPLIT_FOLDERS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}
# Every kind load_user_data reads, for the messages that list them. It is defined beside the
# picture extensions it names because an empty picture folder's message lists it too.
ACCEPTED_KINDS = (
    "an .npz file with arrays x_train and y_train (optionally x_val/y_val and x_test/y_test); "
    "a folder of class sub-folders of pictures (" + ", ".join(PICTURE_EXTENSIONS) + "), "
    "optionally split into train/, val/ and test/ folders; "
    "a .csv or .parquet table with --target naming the label column"
)
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
