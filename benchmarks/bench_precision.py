"""Training epoch time of the default clock CNN in float32 vs mixed_bfloat16 (Keras dtype policies).

Both policies train the same model (multi_head, auxiliary geometry output, augmentation on) on
the same rendered 75x75 clocks in one process, alternating, after one warm-up epoch each, so the
ratio holds even on a shared machine. bfloat16 pays off on CPUs with AMX or AVX512-BF16 (and on
GPUs); elsewhere it can be slower. Usage:

    python benchmarks/bench_precision.py [--images 3000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

from datasets.clock import load_clock  # noqa: E402
from search_spaces.clock import ClockHyperModel  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def epoch_seconds(policy: str, data) -> float:
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    try:
        hypermodel = ClockHyperModel(data.input_shape, head="multi_head", geometry=True)
        hp = kt.HyperParameters()
        model = hypermodel.build(hp)
        warm = slice(0, min(512, len(data.x_train)))
        hypermodel.fit(hp, model, data.x_train[warm], data.y_train[warm], epochs=1, verbose=0,
                       geometry=data.geometry_train[warm])
        started = time.perf_counter()
        hypermodel.fit(hp, model, data.x_train, data.y_train, epochs=1, verbose=0,
                       geometry=data.geometry_train)
        return time.perf_counter() - started
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000, help="training images per epoch")
    parser.add_argument("--size", type=int, default=75, choices=(75, 150))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = load_clock(size=args.size, split="final", subset=round(args.images / 0.8))
    times = {policy: [] for policy in POLICIES}
    for _ in range(args.repeats):
        for policy in POLICIES:
            times[policy].append(epoch_seconds(policy, data))
    slow, fast = (statistics.median(times[policy]) for policy in POLICIES)
    print(f"clock {args.size}x{args.size}, {len(data.x_train)} images: float32 {slow:.2f} s/epoch, "
          f"mixed_bfloat16 {fast:.2f} s/epoch, speed-up x{slow / fast:.2f} "
          f"(median of {args.repeats}; CPU: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
