"""Epoch time of the textbook models with steps_per_execution=1 (Keras default) vs 32 (hpsearch).

Both settings are measured in the same process, alternating, after one warm-up epoch each, so the
ratio holds even on a shared machine. Usage:

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/bench_steps_per_execution.py [--images 54000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

import datasets  # noqa: E402
import search_spaces  # noqa: E402


def epoch_seconds(space: str, data, steps_per_execution: int) -> float:
    hypermodel = search_spaces.get(
        space,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        steps_per_execution=steps_per_execution,
    )
    hp = kt.HyperParameters()
    keras.backend.clear_session()
    model = hypermodel.build(hp)
    model.fit(
        data.x_train[:2048], data.y_train[:2048], batch_size=32, epochs=1, verbose=0
    )  # warm-up
    started = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=32, epochs=1, verbose=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=54000, help="MLP training images per epoch")
    parser.add_argument(
        "--cnn-images", type=int, default=3000, help="CNN training images per epoch"
    )
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for space, images in (("mlp", args.images), ("cnn", args.cnn_images)):
        data = datasets.load("fashion_mnist", subset=images / 0.9 if images < 54000 else None)
        times = {1: [], 32: []}
        for _ in range(args.repeats):
            for steps in (1, 32):
                times[steps].append(epoch_seconds(space, data, steps))
        slow, fast = statistics.median(times[1]), statistics.median(times[32])
        print(
            f"{space}: {len(data.x_train)} images, batch 32: steps_per_execution=1 {slow:.2f} s/epoch, "
            f"=32 {fast:.2f} s/epoch, speed-up x{slow / fast:.2f} (median of {args.repeats})"
        )


if __name__ == "__main__":
    main()
