"""Training speed of the clock CNN by input size and stem, side by side in one process.

The default clock model (multi_head, minute sin/cos, auxiliary geometry output) at 75 px with
its stride-2 stem, and at 150 px with the stride-4 patch stem (the default from 128 px) and with
the stride-2 stem; seconds per 14,400-image epoch (the 80% training split), measured on 1,024
random images after one warm-up epoch. Usage:

    python benchmarks/bench_clock_stem.py [--images 1024]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402

from search_spaces.clock import ClockHyperModel  # noqa: E402

VARIANTS = ((75, 2), (150, 4), (150, 2))  # (image side, stem stride)
EPOCH_IMAGES = 14400


def seconds_per_epoch(side: int, stem: int, images: int) -> tuple[float, int]:
    """(seconds per 14,400-image epoch, parameters) of one variant."""
    hypermodel = ClockHyperModel((side, side, 1), head="multi_head", geometry=True)
    hp = kt.HyperParameters()
    hp.Fixed("stem_stride", stem)
    hp.Fixed("minute_output", "periodic")
    model = hypermodel.build(hp)
    rng = np.random.default_rng(0)
    x = rng.random((images, side, side, 1), dtype=np.float32)
    y = np.stack([rng.integers(0, 12, images), rng.integers(0, 60, images)], axis=1)
    geometry = rng.random((images, 5), dtype=np.float32)
    hypermodel.fit(hp, model, x, y, geometry=geometry, epochs=1, verbose=0)  # traces the graph
    started = time.perf_counter()
    hypermodel.fit(hp, model, x, y, geometry=geometry, epochs=1, verbose=0)
    return (time.perf_counter() - started) / images * EPOCH_IMAGES, model.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    args = parser.parse_args()
    rows = [(side, stem, *seconds_per_epoch(side, stem, args.images)) for side, stem in VARIANTS]
    base = rows[0][2]
    print("| input | stem | s per 14,400-image epoch | vs 75 px | parameters |")
    print("|---|---|---|---|---|")
    for side, stem, seconds, parameters in rows:
        print(f"| {side}x{side} | stride {stem} | {seconds:.1f} | x{seconds / base:.2f} | "
              f"{parameters:,} |")


if __name__ == "__main__":
    main()
