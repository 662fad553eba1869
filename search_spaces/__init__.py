"""Search spaces: one KerasTuner HyperModel per model family, each defaulting to a textbook model.

>>> import search_spaces
>>> hypermodel = search_spaces.get("mlp", input_shape=(28, 28, 1), num_classes=10)
"""

from __future__ import annotations

import importlib

__all__ = ["available_spaces", "get", "register", "space_class"]

# name -> "module:Class", imported on first use so that listing names does not start TensorFlow.
_SPACES: dict[str, str | type] = {
    "mlp": "search_spaces.mlp:MLPHyperModel",
    "cnn": "search_spaces.cnn:CNNHyperModel",
    "clock": "search_spaces.clock:ClockHyperModel",
}


def register(name: str, space: str | type) -> None:
    """Make a HyperModel class (or its "module:Class" path) available as ``get(name, ...)``."""
    _SPACES[name] = space


def available_spaces() -> list[str]:
    """Registered search space names, sorted."""
    return sorted(_SPACES)


def get(name: str, **kwargs):
    """Instantiate a search space by name.

    Args:
        name: one of ``available_spaces()``.
        **kwargs: the space's fixed facts: ``input_shape``, ``num_classes`` and, for ``clock``,
            its head options.

    Raises:
        ValueError: unknown name or a bad combination of fixed facts.
    """
    return space_class(name)(**kwargs)


def space_class(name: str) -> type:
    """The class registered under ``name`` (ValueError with the valid names when unknown)."""
    if name not in _SPACES:
        raise ValueError(
            f"Unknown search space '{name}'. Expected one of: {', '.join(available_spaces())}."
        )
    space = _SPACES[name]
    if isinstance(space, str):
        module, _, attribute = space.partition(":")
        space = _SPACES[name] = getattr(importlib.import_module(module), attribute)
    return space
