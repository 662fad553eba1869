"""CIFAR-10 from the standard "python version" batches (``data_batch_1..5``, ``test_batch``).

Accepted layouts: a ``cifar-10-batches-py/`` directory, a directory holding the batch files, or the
``cifar-10-python.tar.gz`` archive, unpacked in memory. Each batch is a pickled dict with
``b"data"`` (N x 3072 uint8, channel-first rows) and ``b"labels"``.
"""

from __future__ import annotations

import functools
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from datasets.errors import DatasetFormatError, DatasetNotFoundError
from datasets.sources import (
    explicit_data_dirs,
    format_not_found,
    keras_cache_dir,
    keras_download_root,
    search_explicit_dirs,
    searched_folders,
    try_download,
)
from datasets.splits import RawDataset

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
ARCHIVE = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
_SUBDIRS = ("", BATCH_DIR, "cifar10", f"cifar10/{BATCH_DIR}", "cifar-10", f"cifar-10/{BATCH_DIR}")
_KERAS_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def _candidate(directory: Path) -> Path | None:
    """``directory`` if it holds the batch files, else the archive inside it, else None."""
    if all((directory / name).is_file() for name in TRAIN_BATCHES + (TEST_BATCH,)):
        return directory
    if (directory / ARCHIVE).is_file():
        return directory / ARCHIVE
    return None


def locate(data_dir=None, download: bool | None = None) -> tuple[Path, list[str]]:
    """Find the batch directory or archive; returns it and the places searched.

    Raises:
        DatasetNotFoundError: nowhere had it and a download was off or failed.
    """
    tried: list[str] = []
    for base in explicit_data_dirs(data_dir):
        if base.is_file() and base.name.endswith(".tar.gz"):
            return base, tried
    found = search_explicit_dirs(data_dir, _SUBDIRS, _candidate, tried)
    if found:
        return found, tried
    cache = keras_cache_dir()
    for directory in _keras_layouts(cache):
        found = _candidate(directory)
        if found:
            return found, tried
    tried.append(f"{cache} (Keras cache: {BATCH_DIR}/, {BATCH_DIR}/{BATCH_DIR}/, "
                 f"{BATCH_DIR}-target/{BATCH_DIR}/)")
    found = try_download(download, _KERAS_ORIGIN, _download, tried)
    if found:
        return found, tried
    raise DatasetNotFoundError(
        format_not_found(
            "cifar10",
            tried + _unread_layouts(data_dir),
            [
                "pass --data-dir DIR (or set HPSEARCH_DATA_DIR=DIR) where DIR holds cifar-10-batches-py/ "
                f"or {ARCHIVE}",
                "from a JPEG copy such as ../shared/data/cifar10: "
                "python3 ../shared/data/cifar10/prepare.py DIR",
                "connect to the internet once so Keras can download it into ~/.keras/datasets",
            ],
        )
    )


def _unread_layouts(data_dir) -> list[str]:
    """Lines naming what the searched folders hold that is CIFAR-10 but cannot be read."""
    notes = []
    batches = TRAIN_BATCHES + (TEST_BATCH,)
    for directory in searched_folders(data_dir, _SUBDIRS):
        if (directory / "cifar-10-batches-bin").is_dir():
            notes.append(f"{directory / 'cifar-10-batches-bin'} is the binary version, which "
                         f"is not read: use the python version ({ARCHIVE})")
        missing = [name for name in batches if not (directory / name).is_file()]
        if 0 < len(missing) < len(batches):
            notes.append(f"{directory} holds only some of the batches: missing "
                         f"{', '.join(missing)}")
    return notes


def _keras_layouts(directory: Path) -> tuple[Path, ...]:
    """Where a Keras download named ``cifar-10-batches-py`` leaves the batches under ``directory``:
    Keras 2 and 3.0 in ``cifar-10-batches-py/``; Keras 3.x extracts the archive's own
    ``cifar-10-batches-py/`` folder into ``cifar-10-batches-py/`` or ``...-target/``."""
    return (directory / BATCH_DIR, directory / BATCH_DIR / BATCH_DIR,
            directory / f"{BATCH_DIR}-target" / BATCH_DIR, directory)


def _download() -> Path:
    import keras  # imported here: TensorFlow start-up is slow and rarely needed for loading

    path = Path(keras.utils.get_file(BATCH_DIR, origin=_KERAS_ORIGIN, untar=True,
                                     cache_dir=keras_download_root()))
    for directory in (path, path / BATCH_DIR, *_keras_layouts(path.parent)):
        found = _candidate(directory)
        if found:
            return found
    raise FileNotFoundError(f"the download left no batch files in {path}")


def _unpickle(raw: bytes, name: str) -> dict:
    try:
        batch = pickle.loads(raw, encoding="bytes")
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a corrupt file
        raise DatasetFormatError(
            f"{name} is not a readable CIFAR-10 python batch ({type(error).__name__}: {error})."
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DatasetFormatError(
            f"{name} should be a dict with keys b'data' and b'labels', found {keys}."
        )
    return batch


def _decode_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(raw, name)
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetFormatError(f"{name}: b'data' has shape {data.shape}, expected (N, 3072).")
    if len(labels) != len(data):
        raise DatasetFormatError(
            f"{name}: {len(labels)} labels for {len(data)} images; the batch is corrupt."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFormatError(f"{name}: labels outside 0-9 ({labels.min()}..{labels.max()}).")
    return data.reshape(-1, 3, 32, 32), labels


def _reader(location: Path) -> Callable[[str], bytes]:
    if location.is_dir():

        def read(name: str) -> bytes:
            return (location / name).read_bytes()

        return read
    try:
        with tarfile.open(location, "r:gz") as archive:
            members = {
                Path(m.name).name: archive.extractfile(m).read()
                for m in archive.getmembers()
                if m.isfile()
            }
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DatasetFormatError(
            f"Cannot read archive {location}: {error}. The archive is corrupt or truncated; "
            f"download {ARCHIVE} again, or point --data-dir at a folder holding {BATCH_DIR}/."
        ) from None

    def read_member(name: str) -> bytes:
        if name not in members:
            raise DatasetFormatError(f"{location} has no member {name}; it is not {ARCHIVE}.")
        return members[name]

    return read_member


@functools.lru_cache(maxsize=2)
def _read(location: Path) -> RawDataset:
    read = _reader(location)
    train = [_decode_batch(read(name), f"{location}/{name}") for name in TRAIN_BATCHES]
    x_test, y_test = _decode_batch(read(TEST_BATCH), f"{location}/{TEST_BATCH}")
    class_names = CLASS_NAMES
    try:
        meta = pickle.loads(read("batches.meta"), encoding="bytes")
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"])
        if len(names) == len(CLASS_NAMES):
            class_names = names
    except Exception:  # noqa: BLE001 - batches.meta is optional; the standard names apply
        pass
    # Channel-last views of the channel-first rows: the copy happens once, when the splits are
    # indexed and scaled to float32, instead of a slow uint8 transpose here.
    return RawDataset(
        x_train=np.concatenate([x for x, _ in train]).transpose(0, 2, 3, 1),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test.transpose(0, 2, 3, 1),
        y_test=y_test,
        class_names=class_names,
        source=str(location),
    )


def load_cifar10_raw(data_dir=None, download: bool | None = None) -> RawDataset:
    """CIFAR-10 as uint8 arrays (N, 32, 32, 3), read once per process and then cached."""
    location, _ = locate(data_dir, download)
    return _read(location.resolve())
