"""What every hpsearch HyperModel shares: fixed facts in the constructor, batch size tuned in fit."""

from __future__ import annotations

import functools
from typing import Any, Sequence

import keras_tuner as kt

from search_spaces._layers import BATCH_SIZES, schedule_callbacks
from search_spaces.precision import reapply_policy


class SearchSpace(kt.HyperModel):
    """A KerasTuner HyperModel whose default point is a textbook model.

    Subclasses set ``name`` and ``objective`` and implement ``build(hp)``; the batch size is the
    hyperparameter ``batch_size`` and is applied in ``fit``.

    Args:
        input_shape: (H, W, C) of one image, e.g. (28, 28, 1) or (32, 32, 3).
        num_classes: number of output classes (classification families).
        steps_per_execution: training steps run per call into TensorFlow; 32 halves the epoch
            time of the MLP on 2 CPU cores (see BENCHMARKS.md), where per-step overhead dominates.
            A model built inside a tf.distribute strategy's scope (``--strategy mirrored``)
            compiles with 1 instead (``steps_per_execution`` below).
    """

    name = "base"
    # (metric, direction): what a search of this family optimizes unless told otherwise.
    objective = ("val_accuracy", "max")
    # What its default point is called in summaries and reports.
    baseline_name = "textbook"
    # Its models keep their outputs in float32 under a mixed policy, so ``--precision auto`` may
    # choose one (a user's space trains in float32 unless its user asks otherwise).
    mixed_precision_ready = True

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None:
            cls.build = _under_active_policy(build)

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int | None = None,
        steps_per_execution: int = 32,
        **kwargs: Any,
    ):
        super().__init__(name=self.name, **kwargs)
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(
                f"input_shape must be (height, width, channels) of positive sizes, got {input_shape}."
            )
        self.input_shape = input_shape
        self.num_classes = num_classes
        self._steps_per_execution = int(steps_per_execution)

    @property
    def steps_per_execution(self) -> int:
        """What the space's models compile with: the constructor's value, but 1 for a model built
        inside a tf.distribute strategy's scope. Keras 3 (3.15) under MirroredStrategy fails every
        ``fit`` with more than one step per execution ("You must feed a value for placeholder
        tensor"; tests/test_distributed.py trains on two replicas to keep this true)."""
        if self._steps_per_execution > 1 and _in_distribution_scope():
            return 1
        return self._steps_per_execution

    def _declare_batch_size(self, hp: kt.HyperParameters, default: int = 32) -> int:
        return hp.Choice("batch_size", BATCH_SIZES, default=default)

    def fit(self, hp: kt.HyperParameters, model, *args, **kwargs):
        """``model.fit`` with the trial's batch size and learning-rate schedule (over ``epochs``)."""
        kwargs["batch_size"] = hp.get("batch_size") if "batch_size" in hp.values else 32
        callbacks = list(kwargs.pop("callbacks", None) or [])
        kwargs["callbacks"] = callbacks + schedule_callbacks(hp, kwargs.get("epochs", 1))
        return model.fit(*args, **kwargs)

    def textbook_values(self) -> dict[str, Any]:
        """The hyperparameter values of the textbook model (the space's default point)."""
        hp = kt.HyperParameters()
        self.build(hp)
        return dict(hp.values)


def _in_distribution_scope() -> bool:
    """Whether the code runs inside a tf.distribute strategy's scope (never on other backends)."""
    from search_spaces.devices import keras_backend

    if keras_backend() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy()


def _under_active_policy(build):
    """``build`` that first sets the open ``precision_policy`` again (``clear_session`` resets it)."""

    @functools.wraps(build)
    def build_under_policy(self, hp, *args, **kwargs):
        reapply_policy()
        return build(self, hp, *args, **kwargs)

    return build_under_policy


def _require_classes(space: str, num_classes: int | None) -> int:
    if num_classes is None or int(num_classes) < 2:
        raise ValueError(
            f"The {space} search space is a classifier and needs num_classes >= 2, got {num_classes}."
        )
    return int(num_classes)
