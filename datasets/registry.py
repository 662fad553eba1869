"""Name -> loader registry behind ``datasets.load``."""

from __future__ import annotations

from typing import Callable

from datasets.splits import Dataset

_LOADERS: dict[str, Callable[..., Dataset]] = {}
_LOCATORS: dict[str, Callable[..., str]] = {}
_SPACES: dict[str, str] = {}


def register(name: str, loader: Callable[..., Dataset],
             locator: Callable[..., str] | None = None, space: str | None = None) -> None:
    """Make ``loader`` available as ``datasets.load(name, ...)``; ``locator(data_dir=...)`` says
    where the data is without reading it (``datasets.locate``); ``space``: the one search space
    whose labels these are (None: any space that takes its arrays)."""
    _LOADERS[name] = loader
    if locator is not None:
        _LOCATORS[name] = locator
    if space is not None:
        _SPACES[name] = space


def space_of(name: str) -> str | None:
    """The one search space a registered dataset is for, or None when any may read it."""
    return _SPACES.get(name)


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


def locate(name: str, data_dir=None, download: bool | None = False) -> str:
    """One line saying where a dataset is found, reading file headers at most (not the images).

    Args:
        name: one of ``available_datasets()``.
        data_dir: directory (or list) searched first.
        download: try a download when it is nowhere on disk (default False; None: unless
            ``HPSEARCH_NO_DOWNLOAD=1``).

    Raises:
        ValueError: unknown name.
        DatasetNotFoundError: the data is nowhere to be found (the message lists where it looked).
    """
    if name not in _LOADERS:
        raise ValueError(
            f"Unknown dataset '{name}'. Expected one of: {', '.join(available_datasets())}."
        )
    if name in _LOCATORS:
        return _LOCATORS[name](data_dir=data_dir, download=download)
    return _LOADERS[name](data_dir=data_dir, download=download).summary()
