"""Fashion-MNIST from its four original IDX ``*.gz`` files (Zalando SE, MIT licence)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from datasets.errors import DatasetFormatError, DatasetNotFoundError
from datasets.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_idx_shape
from datasets.sources import (
    format_not_found,
    keras_cache_dir,
    keras_download_root,
    search_explicit_dirs,
    searched_folders,
    try_download,
)
from datasets.splits import RawDataset

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# The last three: a clone of github.com/zalandoresearch/fashion-mnist, which keeps them in data/fashion.
_SUBDIRS = ("", "fashion-mnist", "fashion_mnist", "fashion-mnist/data", "data/fashion",
            "fashion-mnist/data/fashion", "fashion_mnist/data/fashion")
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def _find_files(directory: Path) -> dict[str, Path] | None:
    """The four files in ``directory`` (``.gz`` or uncompressed), or None if any is missing."""
    found = {}
    for key, stem in FILES.items():
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def locate(data_dir=None, download: bool | None = None) -> tuple[dict[str, Path], list[str]]:
    """Find the four files; returns them and the list of places searched.

    Raises:
        DatasetNotFoundError: nowhere had all four files and a download was off or failed.
    """
    tried: list[str] = []
    files = search_explicit_dirs(data_dir, _SUBDIRS, _find_files, tried)
    if files:
        return files, tried
    for directory, label in (
        (DEBIAN_DIR, "Debian package dataset-fashion-mnist"),
        (keras_cache_dir() / "fashion-mnist", "Keras cache"),
    ):
        files = _find_files(directory)
        if files:
            return files, tried
        tried.append(f"{directory} ({label})")
    files = try_download(download, _KERAS_ORIGIN, _download, tried)
    if files:
        return files, tried
    raise DatasetNotFoundError(
        format_not_found(
            "fashion_mnist",
            tried + _incomplete_sets(data_dir),
            [
                "apt-get install dataset-fashion-mnist   "
                "(Debian/Ubuntu; installs to /usr/share/datasets/fashion-mnist)",
                "pass --data-dir DIR (or set HPSEARCH_DATA_DIR=DIR) where DIR holds "
                + ", ".join(f"{stem}.gz" for stem in FILES.values()),
                "connect to the internet once so Keras can download it into ~/.keras/datasets/fashion-mnist",
            ],
        )
    )


def _incomplete_sets(data_dir) -> list[str]:
    """One line per searched folder that holds some of the four files but not all of them."""
    notes = []
    for directory in searched_folders(data_dir, _SUBDIRS):
        missing = [f"{stem}.gz" for stem in FILES.values()
                   if not any((directory / name).is_file() for name in (f"{stem}.gz", stem))]
        if 0 < len(missing) < len(FILES):
            notes.append(f"{directory} holds only {len(FILES) - len(missing)} of the 4 files: "
                         f"missing {', '.join(missing)}")
    return notes


def count_images(path: Path, expected_magic: int = LABELS_MAGIC) -> int:
    """The item count an IDX file's header announces (labels by default), checked as ``read_idx``
    checks it, without reading the data.

    Raises:
        DatasetFormatError: unreadable, corrupt, or another magic number.
    """
    return read_idx_shape(path, expected_magic)[0]


def _download() -> dict[str, Path]:
    import keras  # imported here: TensorFlow start-up is slow and rarely needed for loading

    files = {}
    for key, stem in FILES.items():
        path = keras.utils.get_file(
            f"{stem}.gz", origin=_KERAS_ORIGIN + f"{stem}.gz", cache_subdir="datasets/fashion-mnist",
            cache_dir=keras_download_root(),
        )
        files[key] = Path(path)
    return files


@functools.lru_cache(maxsize=4)
def _read_files(files: tuple[tuple[str, Path], ...]) -> RawDataset:
    paths = dict(files)
    arrays = {
        key: read_idx(path, IMAGES_MAGIC if key.startswith("x") else LABELS_MAGIC)
        for key, path in paths.items()
    }
    for part in ("train", "test"):
        images, labels = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DatasetFormatError(
                f"{paths[f'x_{part}']} holds images of shape {images.shape[1:]}, expected (28, 28)."
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise DatasetFormatError(
                f"{paths[f'y_{part}']} holds {len(labels)} labels but {paths[f'x_{part}']} holds "
                f"{len(images)} images: the files do not belong together."
            )
        if labels.size and labels.max() >= len(CLASS_NAMES):
            raise DatasetFormatError(
                f"{paths[f'y_{part}']} has label {int(labels.max())}, expected 0-{len(CLASS_NAMES) - 1}."
            )
    source = os.path.dirname(paths["x_train"])
    return RawDataset(
        x_train=arrays["x_train"][..., np.newaxis],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"][..., np.newaxis],
        y_test=arrays["y_test"],
        class_names=CLASS_NAMES,
        source=source,
    )


def load_fashion_mnist_raw(data_dir=None, download: bool | None = None) -> RawDataset:
    """Fashion-MNIST as uint8 arrays (N, 28, 28, 1), read once per process and then cached."""
    files, _ = locate(data_dir, download)
    return _read_files(tuple(sorted(files.items())))
