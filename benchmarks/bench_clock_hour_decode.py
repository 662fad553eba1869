"""How a multi_head's 12-way hour softmax and its minute reading become a time: four decodes.

Reads a trained multi_head (hour softmax + minute output) on its comparison's own held-out images
(same size, split, seed and subset as its config.yaml), once and at 8 test rotations, and scores
the same outputs decoded three ways:

- ``argmax``: the softmax's likeliest hour, then the minute reading;
- ``likeliest``: the hour whose reading h:minute most likely holds the true time when the minute
  reading may be about a minute off (``MINUTE_READING_SD`` = 1): hpsearch's decode until
  2026-12-07, and still its decode of a model without the geometry output;
- ``hour_hand``: the softmax read as an hour-hand position (the circular mean of the classes'
  centres, 0:30, 1:30 ..., weighted by their probabilities) and the hour whose h:minute lies
  nearest it, as the periodic hour output is decoded: a softmax split between 2 and 3 says the
  hand is near the 3, so 58 minutes read 2:58 and 2 minutes 3:02.

The row ``product`` is the head's own decode (``ClockHead.decode``), whichever it is now: since
2026-12-07, for a model with the auxiliary geometry output, the softmax weighed against the
geometry's hour hand and the mean of both minute readings (``HAND_READING_SD``,
``GEOMETRY_MINUTE_WEIGHT``, chosen on ``--fresh`` clocks). The first three use the hour and minute
outputs only. All decodes see the same model outputs, so the differences are the decodes' alone.
Usage:

    python benchmarks/bench_clock_hour_decode.py runs/clock-75 [--head multi_head] [--fresh 3000]
        [--csv FILE]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from datasets.clock import load_clock  # noqa: E402
from datasets.clock_render import render_images  # noqa: E402
from datasets.splits import scale_pixels  # noqa: E402
from search_spaces.clock import ClockHyperModel  # noqa: E402
from search_spaces.clock_heads import _angle, _combine, _likeliest_hour  # noqa: E402
from search_spaces.clock_time import error_summary, labels_to_minutes  # noqa: E402
from tuner.clock_models import load_trained_model  # noqa: E402

ROTATIONS = (1, 8)
FRESH_SEED = 303  # as benchmarks/bench_clock_unseen_style.py: clocks no run trains on


def argmax_hour(probabilities: np.ndarray, minute: np.ndarray) -> np.ndarray:
    return np.argmax(probabilities, axis=-1) * 60.0 + minute


def likeliest_hour(probabilities: np.ndarray, minute: np.ndarray) -> np.ndarray:
    """The decode without geometry (``_likeliest_hour``), hpsearch's until 2026-12-07."""
    return _likeliest_hour(probabilities, minute) * 60.0 + minute


def hour_hand(probabilities: np.ndarray, minute: np.ndarray) -> np.ndarray:
    centres = (np.arange(12) * 60.0 + 30.0) / 720.0 * 2.0 * math.pi
    sin_cos = np.stack([probabilities @ np.sin(centres), probabilities @ np.cos(centres)], axis=1)
    return _combine(_angle(sin_cos, 720.0), minute)


DECODES = {"argmax": argmax_hour, "likeliest": likeliest_hour, "hour_hand": hour_hand}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="folder written by hpsearch clock compare")
    parser.add_argument("--head", default=None, help="row label (default: the best)")
    parser.add_argument("--fresh", type=int, default=0, metavar="N",
                        help="also score N fresh rendered clocks (seed 303, the run's style), "
                             "the set the decode's constants were chosen on")
    parser.add_argument("--csv", type=Path, default=None, help="append the rows to this CSV")
    args = parser.parse_args()
    config = yaml.safe_load((Path(args.run_dir) / "config.yaml").read_text())
    data = load_clock(data_dir=config["data_dir"], size=config["size"], split=config["split"],
                      seed=config["seed"], subset=config["subset"], count=config["count"],
                      style=config.get("style", "classic"))
    trained = load_trained_model(args.run_dir, args.head)
    head = trained.head
    if head.kind != "multi_head" or head.hour_output != "classification":
        raise SystemExit(f"{trained.label} has no 12-way hour softmax: nothing to compare.")
    sets = [("held-out", data.x_test, labels_to_minutes(data.y_test))]
    if args.fresh:
        labels = np.random.default_rng(FRESH_SEED).integers(0, [12, 60], size=(args.fresh, 2))
        pixels = render_images(labels, seed=FRESH_SEED, size=config["size"],
                               style=config.get("style", "classic"))
        sets.append((f"fresh (seed {FRESH_SEED})", scale_pixels(pixels)[..., None],
                     labels_to_minutes(labels)))
    print(f"{trained.label} of {args.run_dir} (minute output: {head.minute_output}):")
    print("| images | rotations | decode | mean CSE (min) | median | within 1 min "
          "| within 5 min | hour off |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for (images, x, true), rotations in itertools.product(sets, ROTATIONS):
        outputs = head.average(ClockHyperModel.rotated_outputs(
            trained.model, x, rotations=rotations))
        probabilities = np.asarray(outputs["hour"], dtype=np.float64)
        minute = np.round(head.minute_reading(outputs["minute"])) % 60
        decodes = {**DECODES, "product": lambda *_: head.decode(outputs)}
        for name, decode in decodes.items():
            predicted = decode(probabilities, minute) % 720
            summary = error_summary(true, predicted)
            hour_off = float(np.mean(np.abs(((predicted - true + 360) % 720) - 360) >= 30))
            print(f"| {images} ({len(true)}) | {rotations} | {name} | {summary['cse_mean']:.3f} | "
                  f"{summary['cse_median']:.1f} | {summary['within_1min']:.2%} | "
                  f"{summary['within_5min']:.2%} | {hour_off:.2%} |")
            rows.append({"run": str(args.run_dir), "head": trained.label,
                         "size": config["size"], "images": len(data.x_train),
                         "epochs": config["epochs"], "eval_data": images,
                         "test_images": len(true),
                         "test_rotations": rotations, "decode": name,
                         "cse_mean": round(summary["cse_mean"], 4),
                         "cse_median": summary["cse_median"],
                         "within_1min": round(summary["within_1min"], 4),
                         "within_5min": round(summary["within_5min"], 4),
                         "hour_off": round(hour_off, 4)})
    if args.csv is not None:
        frame = pd.DataFrame(rows)
        frame.to_csv(args.csv, mode="a", header=not args.csv.exists(), index=False)
        print(f"Appended {len(frame)} rows to {args.csv}")


if __name__ == "__main__":
    main()
