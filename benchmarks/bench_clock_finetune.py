"""Fine-tuning a rendered-set clock model on labels-only images of another drawing, against
training the same network from scratch on the same images and epochs.

The labelled images come from the independent second drawing (``benchmarks/clock_second_drawing.py``,
seed 101) with no geometry (like the assignment's images.npy / labels.npy); every model is scored
on the same 2,000 further clocks of that drawing (seed 202, never trained on) with the test
rotations of the pretrained run. Each (images, start) pair is one ``compare_heads`` call, so
results are reused when the script is run again. Usage:

    python benchmarks/bench_clock_finetune.py ~/runs/clock-150 --images 1000 4000 14400 \
        --epochs 15 15 5 --out ~/runs/clock-finetune --csv docs/results/clock-finetune.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from clock_second_drawing import LEVELS, cached_second_drawing  # noqa: E402
from datasets.splits import Dataset, scale_pixels  # noqa: E402
from tuner import rundir  # noqa: E402
from tuner.clock import ComparisonConfig, compare_heads  # noqa: E402
from tuner.clock_models import load_init_source  # noqa: E402

TRAIN_SEED = 101   # the labelled clocks of the other drawing
EVAL_SEED = 202    # the clocks every model is scored on (bench_clock_unseen_style.py's too)
# The recipe that worked in the 30-line fine-tune: Adam 3e-4 at a constant rate, rotation
# augmentation, batch 64.
RECIPE = {"optimizer": "adam", "learning_rate": 3e-4, "lr_schedule": "constant", "batch_size": 64,
          "augment": True}
COLUMNS = ["head", "size", "images", "epochs", "test_rotations", "cse_mean", "cse_median",
           "within_5min", "start", "drawing", "eval_images", "cse_mean_one_read",
           "seconds_per_epoch", "polarity"]


def _dataset(images, labels, eval_images, eval_labels, source: str) -> Dataset:
    x_eval = scale_pixels(eval_images)[..., None]
    return Dataset(name="clock", x_train=scale_pixels(images)[..., None],
                   y_train=labels.astype(np.int64), x_val=x_eval,
                   y_val=eval_labels.astype(np.int64), x_test=x_eval,
                   y_test=eval_labels.astype(np.int64), input_shape=x_eval.shape[1:],
                   num_classes=None, class_names=(), source=source,
                   description=f"{len(images)} labelled clocks of {source}; scored on "
                               f"{len(eval_images)} more (seed {EVAL_SEED})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the pretrained model: a folder of hpsearch clock compare")
    parser.add_argument("--head", default=None, help="its row label (default: its best)")
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 4000, 14400])
    parser.add_argument("--epochs", type=int, nargs="+", default=[15],
                        help="epochs of every run, or one per --images count")
    parser.add_argument("--eval-images", type=int, default=2000)
    parser.add_argument("--starts", nargs="+", default=["pretrained", "scratch"],
                        choices=["pretrained", "scratch"])
    parser.add_argument("--level", choices=LEVELS, default="full",
                        help="second-drawing level of the training and scoring clocks")
    parser.add_argument("--negate", action="store_true",
                        help="train and score on the negatives of the clocks (255 - pixel): light "
                             "faces for dark ones, to see what the face's polarity costs")
    parser.add_argument("--polarity", choices=["auto", "as_is", "negated"], default="auto",
                        help="how fine-tunes feed the images (ComparisonConfig.polarity); "
                             "scratch runs always take them as they are")
    parser.add_argument("--out", required=True, help="folder for the runs (reused when rerun)")
    parser.add_argument("--csv", default=None, help="write the table to this CSV file")
    args = parser.parse_args()

    run = Path(args.run_dir).expanduser()
    source = load_init_source(run, args.head)
    label, head = source.label, source.head
    # Scratch runs get the pretrained network's architecture too (fine-tunes get it anyway).
    architecture = source.architecture(head.kind)
    size = source.input_shape[0]
    rotations = int(yaml.safe_load((run / "config.yaml").read_text()).get("test_rotations", 1))
    pool_images, pool_labels = cached_second_drawing(max(args.images), size=size, seed=TRAIN_SEED,
                                                     level=args.level)
    eval_images, eval_labels = cached_second_drawing(args.eval_images, size=size, seed=EVAL_SEED,
                                                     level=args.level)
    if args.negate:
        pool_images, eval_images = 255 - pool_images, 255 - eval_images
    drawing = f"{args.level}, negated" if args.negate else args.level
    if len(args.epochs) not in (1, len(args.images)):
        parser.error(f"--epochs takes one value or one per --images count ({len(args.images)})")
    epochs_of = dict(zip(args.images, args.epochs * len(args.images) if len(args.epochs) == 1
                         else args.epochs))
    rows = []
    for count in args.images:
        data = _dataset(pool_images[:count], pool_labels[:count], eval_images, eval_labels,
                        f"the second drawing ({drawing}, seed {TRAIN_SEED})")
        for start in args.starts:
            config = ComparisonConfig(
                size=size, heads=(head.kind,),
                num_classes=(head.num_classes if head.kind == "classification" else 720,),
                epochs=epochs_of[count], seed=0, hyperparameters={**architecture, **RECIPE},
                test_rotations=rotations,
                init_from=str(run) if start == "pretrained" else None,
                init_head=label if start == "pretrained" else None,
                polarity=args.polarity if start == "pretrained" else "as_is")
            out = Path(args.out).expanduser() / f"{start}-{count}"
            table = compare_heads(config, out, data=data)
            row = table.iloc[0]
            result = rundir.read_json(out / "heads" / f"{row['head']}.json", "one head's result")
            single = result.get("without_test_rotations")
            chosen = (result.get("input_polarity") or {}).get("polarity", "as_is")
            rows.append({"head": row["head"], "size": size, "images": count,
                         "epochs": epochs_of[count], "test_rotations": rotations,
                         "cse_mean": row["cse_mean"], "cse_median": row["cse_median"],
                         "within_5min": row["within_5min"],
                         "start": (f"pretrained on {run.name}" if start == "pretrained"
                                   else "scratch"),
                         "drawing": drawing, "polarity": f"{chosen} ({args.polarity})"
                         if start == "pretrained" else "as_is",
                         "eval_images": args.eval_images,
                         "cse_mean_one_read": (single or {}).get("cse_mean", row["cse_mean"]),
                         "seconds_per_epoch": row["seconds_per_epoch"]})
            print(f"{start:>10}  {count:>6} images, fed {chosen}: mean {row['cse_mean']:.2f} min "
                  f"(median {row['cse_median']:.1f}, within 5 min {row['within_5min']:.1%})",
                  flush=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w") as handle:
            handle.write(f"# python benchmarks/bench_clock_finetune.py {' '.join(sys.argv[1:])}\n")
            table.to_csv(handle, index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
