"""Name -> loader registry behind ``datasets.load``."""

from __future__ import annotations

from typing import Callable

from datasets.splits import Dataset

_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register(name: str, loader: Callable[..., Dataset]) -> None:
    """Make ``loader`` available as ``datasets.load(name, ...)``."""
    _LOADERS[name] = loader


def available_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_LOADERS)


def load(name: str, **options) -> Dataset:
    """Load a dataset by name with its train / validation / test splits.

    Args:
        name: one of ``available_datasets()`` (``fashion_mnist``, ``cifar10``, ``clock``).
        **options: passed to the dataset's loader. Common ones: ``data_dir`` (directory or list of
            directories searched first), ``validation_fraction`` (default 0.1), ``subset`` (count or
            fraction of the training set, default all), ``test_subset``, ``seed`` (default 0),
            ``download`` (default: allowed unless ``HPSEARCH_NO_DOWNLOAD=1``).

    Raises:
        ValueError: unknown name.
        DatasetNotFoundError: the data is nowhere to be found (the message lists where it looked).
        DatasetFormatError: a file is corrupt or not in the expected format.
    """
    if name not in _LOADERS:
        raise ValueError(
            f"Unknown dataset '{name}'. Expected one of: {', '.join(available_datasets())}."
        )
    return _LOADERS[name](**options)
