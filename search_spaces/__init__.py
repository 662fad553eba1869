"""Search spaces: KerasTuner HyperModels, hpsearch's own (each defaulting to a textbook model) and
the user's, all resolved through one registry (``search_spaces.registry``).

>>> import search_spaces
>>> hypermodel = search_spaces.get("mlp", input_shape=(28, 28, 1), num_classes=10)
>>> space = search_spaces.resolve("examples/fashion_function.py:build_model")
"""

from __future__ import annotations

from search_spaces.registry import (ENTRY_POINT_GROUP, Space, SpaceError, available_spaces,
                                    register, resolve)

__all__ = ["ENTRY_POINT_GROUP", "Space", "SpaceError", "available_spaces", "get", "register",
           "resolve", "space_class"]


def get(name: str, options: dict | None = None, **facts):
    """Make the HyperModel of a space.

    Args:
        name: a registered name or a ``file.py:NAME`` / ``module:NAME`` reference.
        options: constructor options of a HyperModel class (``--space-arg``).
        **facts: the data's ``input_shape``, ``num_classes`` and the like; ``clock`` also takes
            its head options here.

    Raises:
        SpaceError: unknown space, or options or facts it cannot take.
    """
    return resolve(name).make(options, **facts)


def space_class(name: str) -> type | None:
    """The HyperModel class of a space (None for a ``build_model`` function)."""
    return resolve(name).space_class
