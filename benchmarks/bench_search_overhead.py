"""Search overhead: wall time of a whole search over the seconds its trials spent inside ``fit``.

Runs the same 30-trial random search of the MLP space (Fashion-MNIST subset, fixed seed) twice
in one process, alternating the garbage-collector setting: as KerasTuner leaves it (a full
collection before every trial, ~0.5-0.7 s each with TensorFlow's objects in the heap) and with
hpsearch's ``gc.freeze()`` of the objects alive when the search starts. Each run's time is split
into model building, ``fit`` (training, its tracing and checkpoints included) and the rest
(oracle, trial files, ``trials.csv`` and the top-3 YAML after every trial), from the per-trial
log. Process start-up (the TensorFlow import) is measured in a fresh interpreter and added to
both. Usage:

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/bench_search_overhead.py \\
        [--trials 30] [--images 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datasets  # noqa: E402
from tuner.config import RunConfig  # noqa: E402
from tuner.results import TRIAL_LOG  # noqa: E402
from tuner.search import run_search  # noqa: E402


def import_seconds() -> float:
    """Seconds a fresh interpreter needs to import what ``hpsearch tune`` imports."""
    code = ("import time; t = time.perf_counter(); import tuner.cli, tuner.search; "
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def one_search(config: RunConfig, data, freeze: bool) -> dict[str, float]:
    real_freeze = gc.freeze
    if not freeze:
        gc.freeze = lambda: None  # KerasTuner's behaviour: every collection walks the whole heap
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            started = time.perf_counter()
            result = run_search(config, run_dir, data=data, progress=None)
            wall = time.perf_counter() - started
            log = [json.loads(line) for line in (Path(run_dir) / TRIAL_LOG).read_text().splitlines()]
    finally:
        gc.freeze = real_freeze
        gc.unfreeze()
    build = sum(entry["build_seconds"] for entry in log)
    fit = sum(entry["fit_seconds"] for entry in log)
    trials = sum(entry["seconds"] for entry in log)
    return {
        "trials": len(log),
        "wall": wall,
        "fit": fit,
        "build": build,
        "per_trial_rest": trials - build - fit,
        "outside_trials": wall - trials,
        "check": result.training_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    startup = import_seconds()
    data = datasets.load("fashion_mnist", subset=args.images)
    config = RunConfig(
        space="mlp", tuner="random", max_trials=args.trials, max_epochs=args.epochs,
        subset=args.images, seed=0,
    )
    print(f"{args.trials}-trial random search, MLP, {len(data.x_train)} images, up to "
          f"{args.epochs} epochs a trial; start-up imports {startup:.1f} s (added to both)")
    runs = {False: [], True: []}
    for _ in range(args.repeats):
        for freeze in (False, True):
            runs[freeze].append(one_search(config, data, freeze))
    for freeze in (False, True):
        r = min(runs[freeze], key=lambda run: run["wall"])
        wall = r["wall"] + startup
        print(
            f"{'gc.freeze (hpsearch)' if freeze else 'full gc per trial  '}: wall {wall:6.1f} s = "
            f"fit {r['fit']:6.1f} + build {r['build']:5.1f} + rest of trials "
            f"{r['per_trial_rest']:4.1f} + outside trials {r['outside_trials']:4.1f} + start-up "
            f"{startup:.1f}; overhead x{wall / r['fit']:.3f} "
            f"({(wall - r['fit']) / r['trials']:.2f} s per trial)"
        )


if __name__ == "__main__":
    main()
