"""Datasets: bytes on disk -> float32 train / validation / test splits.

>>> import datasets
>>> data = datasets.load("fashion_mnist", subset=6000, seed=0)
>>> data.x_train.shape, data.num_classes
"""

from __future__ import annotations

from datasets.cifar10 import load_cifar10_raw
from datasets.clock import load_clock
from datasets.errors import DatasetError, DatasetFormatError, DatasetNotFoundError
from datasets.fashion_mnist import load_fashion_mnist_raw
from datasets.registry import available_datasets, load, register
from datasets.splits import Dataset, split_classification

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "available_datasets",
    "load",
    "register",
]


def _classification_loader(name, read_raw):
    def load_split(
        data_dir=None, validation_fraction=0.1, subset=None, test_subset=None, seed=0, download=None
    ) -> Dataset:
        raw = read_raw(data_dir=data_dir, download=download)
        return split_classification(
            name,
            raw,
            validation_fraction=validation_fraction,
            subset=subset,
            test_subset=test_subset,
            seed=seed,
        )

    load_split.__doc__ = f"Load {name} (see ``datasets.load``)."
    return load_split


register("fashion_mnist", _classification_loader("fashion_mnist", load_fashion_mnist_raw))
register("cifar10", _classification_loader("cifar10", load_cifar10_raw))
register("clock", load_clock)
