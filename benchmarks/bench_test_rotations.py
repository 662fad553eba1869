"""Error and cost of test-time rotations, for a head trained by ``hpsearch clock compare``.

Reads the comparison's own held-out images (same size, split, seed and subset as its
config.yaml) with 1, 2, 4, 8 and 16 evenly turned copies per image, averaging the head's outputs,
and prints the common-sense error and the reading time of each, with the time as a ratio to one
read. All in one process, one after the other. Usage:

    python benchmarks/bench_test_rotations.py runs/clock-75-best [--head multi_head]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from datasets.clock import load_clock  # noqa: E402
from search_spaces.clock_time import error_summary, labels_to_minutes  # noqa: E402
from tuner.clock_models import load_trained_model, read_times  # noqa: E402

ROTATIONS = (1, 2, 4, 8, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="folder written by hpsearch clock compare")
    parser.add_argument("--head", default=None, help="row label (default: the best)")
    args = parser.parse_args()
    config = yaml.safe_load((Path(args.run_dir) / "config.yaml").read_text())
    data = load_clock(data_dir=config["data_dir"], size=config["size"], split=config["split"],
                      seed=config["seed"], subset=config["subset"], count=config["count"])
    trained = load_trained_model(args.run_dir, args.head)
    model = trained.model
    pixels = np.round(data.x_test[..., 0] * 255.0).astype(np.uint8)
    true = labels_to_minutes(data.y_test)
    read_times(model, pixels[:256])  # warm-up: traces the prediction graph
    print(f"{trained.label} of {args.run_dir}, {len(pixels)} held-out images:")
    print("| rotations | mean CSE (min) | median | within 1 min | within 5 min | seconds | time ratio |")
    print("|---|---|---|---|---|---|---|")
    first = None
    for rotations in ROTATIONS:
        started = time.perf_counter()
        predicted = read_times(model, pixels, rotations=rotations)
        seconds = time.perf_counter() - started
        first = first or seconds
        summary = error_summary(true, predicted)
        print(f"| {rotations} | {summary['cse_mean']:.2f} | {summary['cse_median']:.1f} | "
              f"{summary['within_1min']:.1%} | {summary['within_5min']:.1%} | {seconds:.1f} | "
              f"x{seconds / first:.1f} |")


if __name__ == "__main__":
    main()
