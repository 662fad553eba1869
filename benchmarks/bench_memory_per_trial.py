"""Resident memory of one search process after every trial, three ways side by side.

    python benchmarks/bench_memory_per_trial.py --trials 40 --out docs/results/memory-per-trial.csv

Each way runs the same random MLP search (2,000 Fashion-MNIST images, one epoch per trial,
float32) in a fresh process and reads VmRSS after each trial (a trial observer):
``as_is`` (hpsearch as it runs), ``no_freeze`` (the garbage collector's heap freeze off, to
tell whether freezing keeps dead objects) and ``malloc_trim`` (glibc's ``malloc_trim(0)`` after a
full collection at each trial's end, to tell retained objects from allocator fragmentation),
and ``plain_keras`` (no KerasTuner, no hpsearch: the textbook MLP built, compiled and fitted for
one epoch on 2,000 random images, then ``clear_session``, once per "trial").
Prints the growth per trial of each (least squares) and writes one row per way and trial.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WAYS = ("as_is", "no_freeze", "malloc_trim", "plain_keras")

CHILD = r'''
import contextlib, ctypes, gc, json, sys
import tuner
from tuner import RunConfig
from tuner.observers import TrialObserver
import tuner.search as search

way, trials, run_dir, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024


class Rss(TrialObserver):
    def __init__(self):
        self.values = []

    def trial_end(self, trial_id, status, score, values):
        if way == "malloc_trim":
            gc.collect()
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        self.values.append(round(rss_mb(), 1))


if way == "plain_keras":
    import keras
    import numpy as np

    x = np.random.rand(2000, 28, 28, 1).astype("float32")
    y = np.random.randint(0, 10, 2000)
    values = []
    for _ in range(trials):
        keras.backend.clear_session()
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(300, activation="relu"),
                                  keras.layers.Dense(100, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], steps_per_execution=32)
        model.fit(x, y, epochs=1, validation_data=(x[:200], y[:200]), verbose=0)
        del model
        gc.collect()
        values.append(round(rss_mb(), 1))
    print(json.dumps(values))
    sys.exit(0)
if way == "no_freeze":
    search.frozen_survivors = contextlib.nullcontext
observer = Rss()
search.run_search(RunConfig(space="mlp", tuner="random", max_trials=trials, max_epochs=1,
                            subset=2000, precision="float32"),
                  run_dir, data_dir=[data_dir] if data_dir else None, progress=None,
                  overwrite=True, observers=[observer])
print(json.dumps(observer.values))
'''


def slope(values: list[float]) -> float:
    """Least-squares MB per trial."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return (sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
            / sum((i - mean_x) ** 2 for i in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--runs", type=Path, default=Path.home() / "runs" / "bench-memory")
    parser.add_argument("--data-dir", default=os.environ.get("HPSEARCH_DATA_DIR", ""))
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    rows = []
    for way in args.ways:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, way, str(args.trials), str(args.runs / way),
             args.data_dir.split(os.pathsep)[0] if args.data_dir else ""],
            capture_output=True, text=True, cwd=root, check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        values = json.loads(done.stdout.strip().splitlines()[-1])
        rows += [(way, trial, rss) for trial, rss in enumerate(values, start=1)]
        print(f"{way:<12} trial 1 {values[0]:7.1f} MB, trial {len(values)} {values[-1]:7.1f} MB, "
              f"growth {slope(values):5.1f} MB per trial")
    if args.out:
        # Rows of other ways already in the file are kept (a run of some --ways adds to it).
        kept = []
        if args.out.is_file():
            kept = [line for line in args.out.read_text().splitlines()[2:]
                    if line.split(",")[0] not in args.ways]
        lines = [f"# command: python benchmarks/bench_memory_per_trial.py --trials {args.trials}",
                 "way,trial,rss_mb"] + kept + [f"{w},{t},{r}" for w, t, r in rows]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
