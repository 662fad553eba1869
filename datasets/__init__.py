"""Datasets: bytes on disk -> float32 train / validation / test splits.

>>> import datasets
>>> data = datasets.load("fashion_mnist", subset=6000, seed=0)
>>> data.x_train.shape, data.num_classes
"""

from __future__ import annotations

from datasets.cifar10 import load_cifar10_raw
from datasets.errors import DatasetError, DatasetFormatError, DatasetNotFoundError
from datasets.fashion_mnist import load_fashion_mnist_raw
from datasets.registry import available_datasets, load, locate, register, space_of
from datasets.splits import Dataset, split_classification

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "available_datasets",
    "load",
    "locate",
    "register",
    "space_of",
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


def _locate_fashion_mnist(data_dir=None, download=None) -> str:
    from datasets import fashion_mnist

    files, _ = fashion_mnist.locate(data_dir, download)
    counts = {key: fashion_mnist.count_images(path) for key, path in files.items()
              if key.startswith("y")}
    return (f"fashion_mnist: {counts['y_train']} train / {counts['y_test']} test images in "
            f"{files['x_train'].parent}")


def _locate_cifar10(data_dir=None, download=None) -> str:
    from datasets import cifar10

    location, _ = cifar10.locate(data_dir, download)
    return f"cifar10: found at {location}"


def _locate_clock(data_dir=None, download=None) -> str:
    from datasets import clock

    return clock.locate_clock(data_dir)


register("fashion_mnist", _classification_loader("fashion_mnist", load_fashion_mnist_raw),
         _locate_fashion_mnist)
register("cifar10", _classification_loader("cifar10", load_cifar10_raw), _locate_cifar10)
def _load_clock(**options):
    from datasets.clock import load_clock

    return load_clock(**options)


_load_clock.__doc__ = "Load the clock set (see ``datasets.clock.load_clock``)."
register("clock", _load_clock, _locate_clock, space="clock")
