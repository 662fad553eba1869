"""Which clocks of the second drawing a trained clock model misreads: its error per style attribute.

The second drawing (``clock_second_drawing.py``) draws each clock's design from its own random
stream; this script replays that stream to recover every evaluation clock's design (face tone,
markers, hand shape, case, frame, seconds hand) and its pose (tilt, size in the frame), reads the
clocks with the model, and prints the mean common-sense error per value of each attribute. It
tells which part of an unseen design stops a model: dark faces, Roman numerals, skeleton hands,
steep tilts, small clocks. Usage:

    python benchmarks/clock_error_slices.py RUN [--images 2000] [--level numbered]
        [--polarity auto] [--csv OUT]

RUN is a folder written by ``hpsearch clock compare``; the clocks are the same 2,000 of seed 202
that ``bench_clock_unseen_style.py`` scores, read at the run's test rotations as it reads them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from bench_clock_unseen_style import SECOND_DRAWING_SEED  # noqa: E402
from clock_second_drawing import LEVELS, cached_second_drawing, clock_attributes  # noqa: E402
from search_spaces.clock_time import common_sense_error_minutes, labels_to_minutes  # noqa: E402
from tuner.clock_models import POLARITIES, load_trained_model, read_times  # noqa: E402

ATTRIBUTES = ("tone", "markers", "hands", "case", "frame", "seconds_hand", "tilt", "size")


def _bucket(values: np.ndarray, edges: tuple[float, ...], unit: str) -> list[str]:
    names = [f"< {edges[0]:g}{unit}"]
    names += [f"{low:g}-{high:g}{unit}" for low, high in zip(edges, edges[1:])]
    names.append(f">= {edges[-1]:g}{unit}")
    return [names[int(np.searchsorted(edges, value, side="right"))] for value in values]


def slice_errors(run_dir: str, count: int = 2000, level: str = "numbered",
                 seed: int = SECOND_DRAWING_SEED, head: str | None = None,
                 polarity: str = "as_is") -> pd.DataFrame:
    """One row per (attribute, value): clocks, mean / median error and share within 5 minutes."""
    trained = load_trained_model(run_dir, head)
    size = int(trained.model.input_shape[1])
    images, labels = cached_second_drawing(count, size=size, seed=seed, level=level)
    # The run's own test rotations, as bench_clock_unseen_style.py reads it.
    config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
    rotations = int(config.get("test_rotations", 1))
    read = read_times(trained.model, images, rotations=rotations, head=trained.head,
                      polarity=polarity)
    errors = common_sense_error_minutes(labels_to_minutes(labels), read)
    clocks = pd.DataFrame([clock_attributes(i, seed, level) for i in range(count)])
    clocks["tilt"] = _bucket(clocks["tilt_degrees"].to_numpy(), (10, 20, 30), " deg")
    clocks["size"] = _bucket(clocks["radius_fraction"].to_numpy(), (0.36, 0.42), " of side")
    clocks["error"] = errors
    rows = []
    for attribute in ATTRIBUTES:
        for value, group in clocks.groupby(attribute):
            rows.append({"attribute": attribute, "value": value, "clocks": len(group),
                         "cse_mean": group["error"].mean(), "cse_median": group["error"].median(),
                         "within_5min": float((group["error"] <= 5).mean())})
    table = pd.DataFrame(rows)
    table.attrs.update(label=trained.label, size=size, rotations=rotations,
                       overall=float(errors.mean()))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a folder written by hpsearch clock compare")
    parser.add_argument("--head", default=None, help="row label (default: the run's best)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--level", choices=LEVELS, default="numbered")
    parser.add_argument("--polarity", choices=POLARITIES, default="as_is",
                        help="auto: read each image and its negative, keep the surer reading")
    parser.add_argument("--csv", default=None, help="also write the table here")
    args = parser.parse_args()
    table = slice_errors(args.run_dir, args.images, args.level, head=args.head,
                         polarity=args.polarity)
    meta = table.attrs
    print(f"{meta['label']} ({args.run_dir}) on {args.images} second-drawing clocks, level "
          f"{args.level}, {meta['rotations']} rotations, polarity {args.polarity}: mean "
          f"{meta['overall']:.1f} min overall")
    for attribute, group in table.groupby("attribute", sort=False):
        cells = ", ".join(f"{row.value} {row.cse_mean:.0f} (n={row.clocks})"
                          for row in group.sort_values("cse_mean").itertuples())
        print(f"  {attribute:12s} {cells}")
    if args.csv:
        table.to_csv(args.csv, index=False, float_format="%.2f")


if __name__ == "__main__":
    main()
