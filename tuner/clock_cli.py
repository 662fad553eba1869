"""``hpsearch clock``: render the clock set, compare label representations, read the time.

Each command is a short function over ``datasets.clock_render`` / ``tuner.clock``. Those that
need TensorFlow import it when they run, so ``hpsearch --help`` stays fast.
"""
from __future__ import annotations

import time

import click
import numpy as np

from datasets.clock_render import DEFAULT_STYLE, STYLES
from search_spaces.precision import PRECISIONS
from tuner.cli_errors import cli_errors, import_tensorflow
from tuner.cli_options import init_from_options, polarity_option

STYLE_HELP = ("Rendered clocks: classic (one design), varied (a new design per image: cases, faces, "
              "numerals, hands, seconds hand, shadows, occlusion) or mixed (half of each).")

# search_spaces.clock.HEADS, repeated so that building the CLI does not import Keras (a test
# checks that the two agree).
HEADS = ("classification", "regression", "multi_head", "periodic")


def _size_option(default: int):
    return click.option("--size", type=click.Choice(["75", "150"]), default=str(default),
                        show_default=True, callback=lambda ctx, param, value: int(value),
                        help="Image side in pixels.")


@click.group(name="clock")
def clock_group():
    """Tell the time: render the clock images, compare label representations (heads).

    Example: hpsearch clock render --count 18000 --size 150 --seed 0 --out data/clock-150
    """


@clock_group.command("render")
@click.option("--count", type=click.IntRange(min=1), default=18000, show_default=True,
              help="Images to render, spread evenly over the 720 minutes (18,000 = 25 each).")
@_size_option(150)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the rendered set.")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes.")
@click.option("--style", type=click.Choice(STYLES), default=DEFAULT_STYLE, show_default=True,
              help=STYLE_HELP)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder to write images.npy, labels.npy and preview.png into.")
@cli_errors
def render_command(count, size, seed, processes, style, out_dir):
    """Render the clock stand-in set: images.npy (N x S x S uint8), labels.npy (N x 2 hour,
    minute) and a preview sheet.

    Example: hpsearch clock render --count 18000 --size 150 --seed 0 --out data/clock-150
    """
    from datasets.clock_render import write_dataset

    start = time.perf_counter()
    paths = write_dataset(out_dir, count=count, size=size, seed=seed, processes=processes,
                          style=style)
    seconds = time.perf_counter() - start
    click.echo(f"Rendered {count} clocks of {size}x{size} in {seconds:.1f} s "
               f"({count / seconds:.0f} images/s).")
    for path in paths.values():
        click.echo(f"  {path}")


@clock_group.command("compare")
@_size_option(75)
@click.option("--split", type=click.Choice(["final", "tuning"]), default="final", show_default=True,
              help="final: 80/20, scored on the held-out 20%; tuning: 80/10/10, scored on test.")
@click.option("--head", "heads", type=click.Choice(list(HEADS)), multiple=True,
              help="Head to compare (repeatable; default: all four).")
@click.option("--num-classes", type=click.IntRange(2, 720), multiple=True,
              help="Class count of the classification head, a divisor of 720 (repeatable, one "
                   "row each; default 720).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Training epochs of every head.")
@click.option("--subset", type=click.IntRange(min=1), default=None,
              help="Images of the whole set to use before splitting (default: all).")
@click.option("--trials", type=click.IntRange(min=0), default=0, show_default=True,
              help="Random-search trials per head before training its best point (0: defaults).")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Fix a backbone hyperparameter for every head, e.g. --set filters=16; "
                   "--set geometry_weight=0 turns the auxiliary geometry output off.")
@click.option("--seed", type=int, default=0, show_default=True, help="Split and training seed.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="float32", show_default=True,
              help="Keras dtype policy; mixed_bfloat16 trains faster on CPUs with AMX/AVX512-BF16; "
                   "auto picks it where the hardware has bfloat16.")
@click.option("--test-rotations", type=click.IntRange(min=1), default=1, show_default=True,
              help="Test-time augmentation: read every held-out image at this many evenly "
                   "spaced rotations and average the outputs (1: off).")
@click.option("--count", type=click.IntRange(min=1), default=18000, show_default=True,
              help="Size of the rendered set used when --data-dir is not given.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with the assignment's images.npy and labels.npy (default: rendered).")
@click.option("--style", type=click.Choice(STYLES), default=DEFAULT_STYLE, show_default=True,
              help=STYLE_HELP)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Results folder (finished heads are reused when rerun).")
@init_from_options
@polarity_option
@click.option("--tensorboard", is_flag=True,
              help="Write TensorBoard's HParams data of each head as it trains to OUT/tensorboard/ "
                   "(its error in minutes as the score); see it with `hpsearch board OUT`.")
@click.option("-v", "--verbose", count=True, help="Also show Keras's own training progress.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress lines (one per epoch per head: loss, held-out error, time left).")
@cli_errors
def compare_command(size, split, heads, num_classes, epochs, subset, trials, assignments, seed,
                    precision, test_rotations, count, data_dir, style, out_dir, init_from, init_head,
                    polarity, tensorboard, verbose, quiet):
    """Train every head with the same backbone, budget and data; write comparison.csv/.json/.md.

    On the rendered set every head also learns the auxiliary geometry output (where the 12 and
    the hands point), which lifts training off the chance plateau of freely rotated clocks.
    Prints a line per epoch per head (loss, held-out error as monitoring only, time left) unless
    --quiet. --init-from RUN fine-tunes a trained model instead of starting from random weights
    (its own head only, unless --head names heads).

    \b
    Example: hpsearch clock compare --size 75 --subset 7500 --epochs 10 --out runs/clock-75
             hpsearch clock compare --init-from runs/clock-75 --head multi_head \\
                 --data-dir my_clocks/ --epochs 10 --out runs/clock-75-mine
    """
    import_tensorflow()
    from tuner.clock import ComparisonConfig, compare_heads, format_table
    from tuner.config import parse_assignments

    if init_from and not heads:
        # A fine-tune trains the model it starts from: RUN's head, unless --head names others.
        from tuner.clock_models import load_trained_model

        source_head = load_trained_model(init_from, init_head).head
        heads = (source_head.kind,)
        if source_head.kind == "classification" and not num_classes:
            num_classes = (source_head.num_classes,)
    config = ComparisonConfig(
        size=size, split=split, heads=tuple(heads) or HEADS,
        num_classes=tuple(num_classes) or (720,), epochs=epochs, subset=subset, trials=trials,
        seed=seed, count=count, data_dir=data_dir, style=style, precision=precision,
        test_rotations=test_rotations, hyperparameters=parse_assignments(assignments),
        init_from=init_from, init_head=init_head, polarity=polarity)
    table = compare_heads(config, out_dir, verbose=2 if verbose else 0,
                          progress=None if quiet else click.echo, tensorboard=tensorboard)
    click.echo(format_table(table))
    for label, initialized in table.attrs.get("initialization", {}).items():
        if initialized:
            click.echo(f"{label}: {initialized['summary']}")
    best = table.loc[table["cse_mean"].idxmin()]
    click.echo(f"Best: {best['head']}, mean common-sense error {best['cse_mean']:.1f} min. "
               f"Written to {out_dir}/comparison.csv")


@clock_group.command("predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--head", default=None,
              help="Row of the comparison to use, e.g. multi_head or classification-72, or a "
                   "trial id of a `tune clock` run (default: the best).")
@click.option("--test-rotations", type=click.IntRange(min=1), default=1, show_default=True,
              help="Read each image at this many evenly spaced rotations and average (1: off).")
@click.option("--polarity", type=click.Choice(["as_is", "auto", "negated"]), default=None,
              help="Default: the model's own (negated for a model fine-tuned on negated clocks, "
                   "see `clock compare --polarity`; else as_is). auto: also read each image's "
                   "negative and keep the reading the model is surer of, for light hands on dark "
                   "faces (twice the reads; needs a classification or multi_head model). "
                   "negated: read only the negatives (255 - pixel).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Also write the readings to this CSV file (image, hour, minute, time).")
@cli_errors
def predict_command(run_dir, images, head, test_rotations, polarity, out_file):
    """Read the time from clock images with a model trained by `hpsearch clock compare` (RUN_DIR
    is its --out folder) or `hpsearch tune clock` (its --run-dir).

    IMAGES are .npy arrays of (N, S, S) uint8 images, picture files (PNG, JPEG, ...) or folders of
    pictures; pictures are made grayscale, cropped square and resized to the model's input.

    Example: hpsearch clock predict runs/clock-75-best photos/ --test-rotations 8 --polarity auto
    --out times.csv
    """
    import_tensorflow()
    import pandas as pd

    from datasets.clock import read_clock_images
    from tuner.clock_models import load_trained_model, read_times

    trained = load_trained_model(run_dir, head)
    pixels, names = read_clock_images(images, size=trained.model.input_shape[1])
    minutes = read_times(trained.model, pixels, rotations=test_rotations, head=trained.head,
                         polarity=polarity)
    minutes = np.round(minutes).astype(int) % 720
    table = pd.DataFrame({"image": names, "hour": minutes // 60, "minute": minutes % 60})
    table["time"] = [f"{hour}:{minute:02d}" for hour, minute in zip(table["hour"], table["minute"])]
    for name, time_read in zip(table["image"], table["time"]):
        click.echo(f"{time_read:>5}  {name}")
    click.echo(f"Read {len(table)} image(s) with {trained.label} from {run_dir}.", err=True)
    if out_file:
        table.to_csv(out_file, index=False)
