"""Search spaces: one KerasTuner HyperModel per model family, each defaulting to a textbook model.

>>> import search_spaces
>>> hypermodel = search_spaces.get("mlp", input_shape=(28, 28, 1), num_classes=10)
"""
from __future__ import annotations

from search_spaces.base import SearchSpace
from search_spaces.cnn import CNNHyperModel
from search_spaces.mlp import MLPHyperModel

__all__ = ["SearchSpace", "MLPHyperModel", "CNNHyperModel", "available_spaces", "get", "register"]

_SPACES: dict[str, type[SearchSpace]] = {"mlp": MLPHyperModel, "cnn": CNNHyperModel}


def register(name: str, space_class: type[SearchSpace]) -> None:
    """Make ``space_class`` available as ``search_spaces.get(name, ...)``."""
    _SPACES[name] = space_class


def available_spaces() -> list[str]:
    """Registered search space names, sorted."""
    return sorted(_SPACES)


def get(name: str, **kwargs) -> SearchSpace:
    """Instantiate a search space by name.

    Args:
        name: one of ``available_spaces()``.
        **kwargs: the space's fixed facts: ``input_shape``, ``num_classes`` and, for ``clock``,
            its head options.

    Raises:
        ValueError: unknown name or a bad combination of fixed facts.
    """
    if name not in _SPACES:
        raise ValueError(
            f"Unknown search space '{name}'. Expected one of: {', '.join(available_spaces())}."
        )
    return _SPACES[name](**kwargs)


def space_class(name: str) -> type[SearchSpace]:
    """The class registered under ``name`` (ValueError with the valid names when unknown)."""
    if name not in _SPACES:
        raise ValueError(
            f"Unknown search space '{name}'. Expected one of: {', '.join(available_spaces())}."
        )
    return _SPACES[name]
