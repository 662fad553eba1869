"""Where a clock model thinks the 12 and the hands point, against where the renderer drew them.

A clock model trained with the auxiliary geometry output (``hpsearch clock compare`` on a rendered
set) predicts the image-frame directions of the 12 mark, the hour hand and the minute hand. The
time is a hand's direction minus the 12's, so when a model reads a style badly this tells which
of the three it has not learnt. Renders fresh clocks of each style (seed 303, never trained on)
with their geometry and prints the median angular error of each direction and the share within
15 degrees. Usage:

    python benchmarks/clock_directions.py runs/clock-75-mixed --images 600 --styles classic varied
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from datasets.clock_render import STYLES, render_images  # noqa: E402
from datasets.splits import scale_pixels  # noqa: E402
from search_spaces.clock_pipeline import geometry_angles  # noqa: E402
from tuner.clock_models import load_trained_model  # noqa: E402

SEED = 303  # the evaluation seed of bench_clock_unseen_style.py; no training set uses it
DIRECTIONS = ("12 mark", "hour hand", "minute hand")


def direction_errors(run_dir: str, count: int, style: str, head: str | None = None) -> np.ndarray:
    """Angular errors in degrees, shape (count, 3): 12 mark, hour hand, minute hand."""
    trained = load_trained_model(run_dir, head)
    size = int(trained.model.input_shape[1])
    labels = np.random.default_rng(SEED).integers(0, [12, 60], size=(count, 2))
    images, geometry = render_images(labels, seed=SEED, size=size, style=style, with_geometry=True)
    outputs = trained.model.predict(scale_pixels(images)[..., None], verbose=0, batch_size=128)
    if not isinstance(outputs, dict) or "geometry" not in outputs:
        raise SystemExit(f"{run_dir}: this model has no geometry output (trained without "
                         "geometry, or with --set geometry_weight=0).")
    predicted = np.asarray(outputs["geometry"], dtype=np.float64)
    angles = np.arctan2(predicted[:, :3], predicted[:, 3:6])  # sin then cos of each direction
    drawn = geometry_angles(geometry, count).astype(np.float64)  # the training targets' angles
    return np.degrees(np.abs((angles - drawn + np.pi) % (2 * np.pi) - np.pi))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a folder written by hpsearch clock compare")
    parser.add_argument("--head", default=None, help="row label (default: the run's best)")
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--styles", nargs="+", default=list(STYLES[:2]), choices=STYLES)
    args = parser.parse_args()
    for style in args.styles:
        errors = direction_errors(args.run_dir, args.images, style, args.head)
        parts = ", ".join(f"{name} median {np.median(errors[:, k]):.1f} deg "
                          f"({np.mean(errors[:, k] < 15):.0%} within 15)"
                          for k, name in enumerate(DIRECTIONS))
        print(f"{args.run_dir} on {args.images} {style} clocks: {parts}", flush=True)


if __name__ == "__main__":
    main()
