"""Zero-shot reading of clocks the renderer never drew, against the model's in-style error.

For each trained clock model (a folder written by ``hpsearch clock compare``), reads fresh clocks
of the independent second drawing (``benchmarks/clock_second_drawing.py``, evaluation only, never
used for training) and, optionally, fresh clocks of the renderer's styles, at 1 and at the run's
test rotations, and writes one row per (model, evaluation set, rotations) with the model's own
held-out (in-style) error next to it. ``--polarity auto`` reads the unseen sets as
``hpsearch clock predict --polarity auto`` does (each image and its negative, the surer reading
kept); the in-style row stays the run's own figure. Usage:

    python benchmarks/bench_clock_unseen_style.py ~/runs/clock-75-varied ~/runs/clock-150 \
        --images 2000 --styles varied classic --csv docs/results/clock-unseen-style.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from clock_second_drawing import LEVELS, cached_second_drawing  # noqa: E402
from datasets.clock_render import render_images  # noqa: E402
from search_spaces.clock import error_summary  # noqa: E402
from search_spaces.clock_time import labels_to_minutes  # noqa: E402
from tuner.clock_models import POLARITIES, load_trained_model, read_times  # noqa: E402

# Seeds of the evaluation images: none of them is a training set's seed (rendered sets use 0,
# the fine-tuning benchmark draws its training clocks with 101).
SECOND_DRAWING_SEED = 202
RENDERER_SEED = 303
COLUMNS = ["head", "size", "images", "epochs", "test_rotations", "cse_mean", "cse_median",
           "within_5min", "train_data", "eval_data", "in_style_cse_mean", "ratio_to_in_style",
           "polarity"]


def evaluate(run_dir: str, count: int, styles: list[str], head: str | None = None,
             levels: tuple[str, ...] = ("full",), polarity: str = "as_is") -> list[dict]:
    """Rows of one trained model: its in-style error and its error on each unseen drawing."""
    config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    trained = load_trained_model(run_dir, head)
    model, label = trained.model, trained.label
    size = int(model.input_shape[1])
    table = pd.read_csv(Path(run_dir) / "comparison.csv").set_index("head")
    in_style = table.loc[label]
    rotations = int(config.get("test_rotations", 1))
    train_data = config.get("data_dir") or f"rendered {config.get('style', 'classic')} style"
    rows = [{"head": label, "size": size, "images": int(in_style["test_images"]),
             "epochs": int(in_style["epochs"]), "test_rotations": rotations,
             "cse_mean": float(in_style["cse_mean"]), "cse_median": float(in_style["cse_median"]),
             "within_5min": float(in_style["within_5min"]), "train_data": train_data,
             "eval_data": "held-out 20% of its own set (in style)",
             "in_style_cse_mean": float(in_style["cse_mean"]), "ratio_to_in_style": 1.0,
             "polarity": "as_is"}]
    sets = {("second drawing (independent, never trained on)" if level == "full" else
             f"second drawing, {level} (independent, never trained on)"):
            cached_second_drawing(count, size=size, seed=SECOND_DRAWING_SEED, level=level)
            for level in levels}
    for style in styles:
        labels = np.random.default_rng(RENDERER_SEED).integers(0, [12, 60], size=(count, 2))
        sets[f"renderer, {style} style (fresh seed)"] = (
            render_images(labels, seed=RENDERER_SEED, size=size, style=style), labels)
    for name, (images, labels) in sets.items():
        true = labels_to_minutes(labels)
        for turns in sorted({1, rotations}):
            started = time.perf_counter()
            summary = error_summary(true, read_times(model, images, rotations=turns,
                                                    head=trained.head, polarity=polarity))
            print(f"{label} ({run_dir}) on {name}, {turns} rotation(s), polarity {polarity}: mean "
                  f"{summary['cse_mean']:.2f} min, median {summary['cse_median']:.1f}, within 5 "
                  f"min {summary['within_5min']:.1%} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
            if turns != rotations:
                continue
            rows.append({"head": label, "size": size, "images": len(images),
                         "epochs": int(in_style["epochs"]), "test_rotations": turns,
                         **{key: summary[key] for key in ("cse_mean", "cse_median",
                                                          "within_5min")},
                         "train_data": train_data, "eval_data": name,
                         "in_style_cse_mean": float(in_style["cse_mean"]),
                         "ratio_to_in_style": summary["cse_mean"] / float(in_style["cse_mean"]),
                         "polarity": polarity})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="folders written by hpsearch clock compare")
    parser.add_argument("--head", default=None, help="row label (default: each run's best)")
    parser.add_argument("--images", type=int, default=2000, help="clocks per evaluation set")
    parser.add_argument("--styles", nargs="*", default=[], choices=["varied", "classic"],
                        help="also read fresh clocks of these renderer styles")
    parser.add_argument("--levels", nargs="+", default=["full"], choices=LEVELS,
                        help="second-drawing levels to read (clock_second_drawing.py)")
    parser.add_argument("--polarity", choices=POLARITIES, default="as_is",
                        help="auto: read each unseen image and its negative, keep the surer reading")
    parser.add_argument("--csv", default=None, help="write the rows to this CSV file")
    args = parser.parse_args()
    rows = [row for run_dir in args.run_dirs
            for row in evaluate(run_dir, args.images, args.styles, args.head, tuple(args.levels),
                                args.polarity)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w") as handle:
            handle.write(f"# python benchmarks/bench_clock_unseen_style.py "
                         f"{' '.join(sys.argv[1:])}\n")
            table.to_csv(handle, index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
