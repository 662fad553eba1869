"""Time the clock renderer: images per second and the extrapolated time for the full 18,000 set.

Example: python benchmarks/bench_clock_render.py --count 2000 --size 150 --processes 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.clock_render import SIZES, render_images, time_labels  # noqa: E402

FULL_SET = 18000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="images to render (default 2000)")
    parser.add_argument("--size", type=int, choices=SIZES, default=150)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    labels = time_labels(FULL_SET)[:: max(1, FULL_SET // args.count)][: args.count]
    start = time.perf_counter()
    images = render_images(labels, seed=args.seed, size=args.size, processes=args.processes)
    seconds = time.perf_counter() - start
    rate = len(images) / seconds
    print(f"rendered {len(images)} images of {args.size}x{args.size} with {args.processes} "
          f"process(es) in {seconds:.1f} s: {rate:.0f} images/s; "
          f"{FULL_SET} images would take {FULL_SET / rate:.0f} s")


if __name__ == "__main__":
    main()
