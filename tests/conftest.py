"""Shared fixtures: tiny datasets written in the real on-disk formats, seeding, environment."""

from __future__ import annotations

import os
import pickle
import random
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from datasets import cifar10, fashion_mnist  # noqa: E402
from datasets.idx import write_idx  # noqa: E402

REAL_DATA_DIRS = [Path(p) for p in os.environ.get("HPSEARCH_DATA_DIR", "").split(os.pathsep) if p]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    """Seed everything; never download; keep Keras's cache and hpsearch's cache out of $HOME."""
    random.seed(0)
    np.random.seed(0)
    monkeypatch.setenv("HPSEARCH_NO_DOWNLOAD", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path_factory.getbasetemp() / "keras-home"))
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "hpsearch-cache"))
    if "HPSEARCH_DATA_DIR" in os.environ and not os.environ.get("HPSEARCH_KEEP_DATA_DIR"):
        monkeypatch.delenv("HPSEARCH_DATA_DIR")


@pytest.fixture(autouse=True)
def _registered_spaces():
    """Spaces a test registers (search_spaces.register) are gone after it."""
    from search_spaces import registry

    registry.available_spaces()
    saved = dict(registry._REGISTERED)
    yield
    registry._REGISTERED.clear()
    registry._REGISTERED.update(saved)


def wait_for(condition, seconds: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s: {what}")


def tiny_images(count: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images whose mean brightness depends on the label (so a model can learn)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, *shape)).astype(np.int64)
    images += (labels * 19).reshape(-1, *([1] * len(shape)))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_fashion_mnist(directory: Path, train: int = 60, test: int = 20) -> Path:
    """The four Fashion-MNIST IDX .gz files with ``train``/``test`` tiny images."""
    directory.mkdir(parents=True, exist_ok=True)
    x_train, y_train = tiny_images(train, (28, 28), seed=1)
    x_test, y_test = tiny_images(test, (28, 28), seed=2)
    for key, array in (
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_test", x_test),
        ("y_test", y_test),
    ):
        write_idx(directory / f"{fashion_mnist.FILES[key]}.gz", array)
    return directory


def write_clock_files(directory: Path, count: int = 40, size: int = 75) -> Path:
    """``count`` random size x size clock images and valid (hour, minute) labels in the
    assignment's format (images.npy, labels.npy; no geometry.npy)."""
    from datasets.clock_render import time_labels

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    np.save(directory / "images.npy", rng.integers(0, 256, (count, size, size), dtype=np.uint8))
    np.save(directory / "labels.npy", time_labels(count))
    return directory


def write_cifar10(directory: Path, per_batch: int = 10, test: int = 20) -> Path:
    """``cifar-10-batches-py/`` with five tiny training batches, a test batch and batches.meta."""
    batch_dir = directory / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True, exist_ok=True)
    for index in range(1, 7):
        count = test if index == 6 else per_batch
        images, labels = tiny_images(count, (32, 32, 3), seed=10 + index)
        rows = images.transpose(0, 3, 1, 2).reshape(count, 3072)
        name = "test_batch" if index == 6 else f"data_batch_{index}"
        with open(batch_dir / name, "wb") as handle:
            pickle.dump(
                {
                    b"data": rows,
                    b"labels": labels.astype(int).tolist(),
                    b"batch_label": name.encode(),
                },
                handle,
            )
    with open(batch_dir / "batches.meta", "wb") as handle:
        pickle.dump(
            {
                b"label_names": [name.encode() for name in cifar10.CLASS_NAMES]
            },
            handle,
        )
    return directory


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A data directory holding tiny Fashion-MNIST (60/20) and CIFAR-10 (50/20) copies."""
    root = tmp_path_factory.mktemp("tiny-data")
    write_fashion_mnist(root / "fashion-mnist")
    write_cifar10(root)
    return root


def real_data_dir(dataset_folder: str) -> Path | None:
    """The first directory of $HPSEARCH_DATA_DIR (as CI sets it) that holds ``dataset_folder``."""
    for directory in REAL_DATA_DIRS:
        if (directory / dataset_folder).exists():
            return directory
    return None
