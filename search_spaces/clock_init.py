"""Starting a clock model from a trained one: copy, layer by layer, the weights that fit.

A fine-tune builds the new model with the trained model's architecture and copies its weights:
the whole backbone, the time head's output layers when the head is the same ``ClockHead`` (same
kind and settings, so the outputs mean the same), and the auxiliary geometry output when both
models have it. Everything else starts from its usual random initialization.

Layers are matched by name and weight shapes. The output layers have fixed names (``time``,
``hour``, ``minute``, ``geometry``); the backbone's are Keras's automatic ones (``conv2d_7``),
numbered across everything built in the session, so their number is replaced by the layer's
position among the backbone layers of its kind (``Conv2D/0``, ``Conv2D/1``, ...).
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any

import keras
import numpy as np

from search_spaces.clock_heads import GEOMETRY_OUTPUT, ClockHead

# The time head's output layers, by the names ClockHead.output_layers gives them.
TIME_OUTPUTS = ("time", "hour", "minute")


@dataclasses.dataclass(frozen=True)
class InitialWeights:
    """The trained weights of a clock model, to start new models from.

    Attributes:
        layers: layer key (see the module docstring) -> that layer's weight arrays, in order.
        head: the trained model's head; its output layers are copied only into the same head.
        source: where the weights come from, in words (for reports).
    """

    layers: dict[str, tuple[np.ndarray, ...]]
    head: ClockHead
    source: str

    @classmethod
    def of_model(cls, model: keras.Model, head: ClockHead, source: str) -> "InitialWeights":
        """The weights of a trained ``model`` (copied out as numpy arrays) whose head is ``head``."""
        return cls({key: tuple(np.array(array) for array in layer.get_weights())
                    for key, layer in layer_keys(model).items()}, head, source)


@dataclasses.dataclass(frozen=True)
class WeightCopyReport:
    """What a new model took from ``InitialWeights``, counted in weight tensors.

    Attributes:
        source: where the weights came from.
        copied_tensors, initialized_tensors: tensors of the new model copied / left to their
            random initialization.
        copied, initialized: the layer keys of each.
        unused: layers of the source the new model has no place for (e.g. the geometry output
            when the new data has no geometry).
        head_copied: the time head's output layers were copied (same head).
        geometry_copied: the geometry output was copied.
    """

    source: str
    copied_tensors: int
    initialized_tensors: int
    copied: tuple[str, ...]
    initialized: tuple[str, ...]
    unused: tuple[str, ...]
    head_copied: bool
    geometry_copied: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        values = dataclasses.asdict(self)
        for name in ("copied", "initialized", "unused"):
            values[name] = list(values[name])
        return values

    def describe(self) -> str:
        """One line: e.g. "copied 38 tensors (backbone, time head, geometry) from runs/clock-75
        (multi_head), 2 freshly initialized (geometry)"."""
        copied = ["backbone"] if any(key not in _OUTPUTS for key in self.copied) else []
        copied += ["time head"] if self.head_copied else []
        copied += ["geometry"] if self.geometry_copied else []
        fresh = sorted({"time head" if key in TIME_OUTPUTS else
                        "geometry" if key == GEOMETRY_OUTPUT else "backbone"
                        for key in self.initialized})
        line = (f"copied {self.copied_tensors} tensors ({', '.join(copied) or 'none'}) from "
                f"{self.source}, {self.initialized_tensors} freshly initialized")
        return line + (f" ({', '.join(fresh)})" if fresh else "")


def copy_weights(initial: InitialWeights, model: keras.Model, head: ClockHead
                 ) -> WeightCopyReport:
    """Copy into ``model`` (whose head is ``head``) every layer of ``initial`` that fits.

    A backbone layer is copied when ``initial`` has a layer of the same key whose weights have
    the same shapes; the time head's outputs only when ``head == initial.head``; the geometry
    output when both have it with the same shapes.

    Returns:
        What was copied and what was left to its random initialization.
    """
    copied, initialized = [], []
    copied_tensors = initialized_tensors = 0
    targets = layer_keys(model)
    for key, layer in targets.items():
        weights = initial.layers.get(key)
        fits = weights is not None and [w.shape for w in weights] == [
            tuple(v.shape) for v in layer.weights]
        if key in TIME_OUTPUTS and head != initial.head:
            fits = False
        if fits:
            layer.set_weights(list(weights))
            copied.append(key)
            copied_tensors += len(weights)
        else:
            initialized.append(key)
            initialized_tensors += len(layer.weights)
    return WeightCopyReport(
        source=initial.source, copied_tensors=copied_tensors,
        initialized_tensors=initialized_tensors, copied=tuple(copied),
        initialized=tuple(initialized),
        unused=tuple(key for key in initial.layers if key not in targets),
        head_copied=any(key in TIME_OUTPUTS for key in copied),
        geometry_copied=GEOMETRY_OUTPUT in copied)


def layer_keys(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The layers of ``model`` that have weights, by matching key (see the module docstring)."""
    keys: dict[str, keras.layers.Layer] = {}
    kinds: collections.Counter = collections.Counter()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name in _OUTPUTS:
            keys[layer.name] = layer
            continue
        kind = type(layer).__name__
        keys[f"{kind}/{kinds[kind]}"] = layer
        kinds[kind] += 1
    return keys


_OUTPUTS = TIME_OUTPUTS + (GEOMETRY_OUTPUT,)
