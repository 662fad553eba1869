"""Cost of the spaces' augmentation per backend: Keras's RandomTranslation against RandomShift.

An MLP (Flatten -> Dense 300 -> softmax) on 4,500 random 28x28 images, batch 32,
``steps_per_execution`` 32, 3 epochs per variant, in one process; prints the first epoch (tracing
and compiling) and the mean of the others, and each variant's ratio to no augmentation. Run it
once per backend:

    KERAS_BACKEND=jax python -m benchmarks.bench_augmentation
    KERAS_BACKEND=tensorflow python -m benchmarks.bench_augmentation
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.bench_trial_speed import EpochTimes  # noqa: E402
from search_spaces._layers import RandomShift  # noqa: E402

VARIANTS = {
    "none": lambda x: x,
    "flip": lambda x: keras.layers.RandomFlip("horizontal")(x),
    "RandomTranslation": lambda x: keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant")(x),
    "RandomShift": lambda x: RandomShift(0.1)(x),
}


def epoch_seconds(variant: str, x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[float, float]:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(x.shape[1:])
    hidden = keras.layers.Dense(300, activation="relu")(keras.layers.Flatten()(VARIANTS[variant](inputs)))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=32)
    timer = EpochTimes()
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[timer])
    return timer.seconds[0], float(np.mean(timer.seconds[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4500)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.images)
    print(f"Keras backend {keras.backend.backend()}, {args.images} images, batch 32")
    base = None
    for variant in VARIANTS:
        first, later = epoch_seconds(variant, x, y, args.epochs)
        base = base or later
        print(f"{variant:18s} first epoch {first:6.2f} s, then {later:6.3f} s/epoch (x{later / base:.2f})")


if __name__ == "__main__":
    main()
