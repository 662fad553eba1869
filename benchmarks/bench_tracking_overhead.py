"""Tracking overhead: the wall time of the same small search plain, with --tensorboard (HParams
data written live, tuner/hparams.py) and with --mlflow (a local SQLite store,
tuner/mlflow_tracking.py), side by side.

The three ways run in one process, one after another in a rotating order, after one untimed
warm-up search (TensorFlow's first tracing); each search is a fresh run directory with the same
seed, so the same trials train. Per way, medians over the repeats: the wall time and the CPU
time of the process (both over the plain search's), the seconds the training thread spends
inside the tracking observers (the only work --tensorboard and --mlflow add there: they add no
Keras callback), and for MLflow the seconds its background writer spends in the store's calls
and the CPU seconds of that thread (``time.thread_time``, the least sensitive to other load).
On a machine other processes use too, the wall time is the noisiest. MLflow's import, paid once
by each process that tracks, is measured apart in a fresh interpreter. Usage:

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/bench_tracking_overhead.py \\
        [--trials 6] [--images 10000] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datasets  # noqa: E402
import tuner.search  # noqa: E402
from tuner.config import RunConfig  # noqa: E402
from tuner.observers import TrialObserver  # noqa: E402
from tuner.search import run_search  # noqa: E402

WAYS = ("plain", "tensorboard", "mlflow")
# Seconds spent inside the observers of the search running now.
_observer_seconds = [0.0]


class _Timed(TrialObserver):
    """Runs an observer, adding the time each of its calls takes to ``_observer_seconds``."""

    def __init__(self, observer: TrialObserver):
        self._observer = observer

    def _timed(self, name, *args):
        started = time.perf_counter()
        try:
            return getattr(self._observer, name)(*args)
        finally:
            _observer_seconds[0] += time.perf_counter() - started

    def search_begin(self, *args):
        self._timed("search_begin", *args)

    def trial_begin(self, *args):
        self._timed("trial_begin", *args)

    def epoch_end(self, *args):
        self._timed("epoch_end", *args)

    def trial_end(self, *args):
        self._timed("trial_end", *args)

    def search_end(self):
        self._timed("search_end")


def _timed_observers_for(config, run_dir, extra=()):
    return [_Timed(observer) for observer in _observers_for(config, run_dir, extra)]


_observers_for = tuner.search.observers_for
tuner.search.observers_for = _timed_observers_for
# Seconds MLflow's writer thread spends in the store's calls, and its CPU seconds there.
_writer_seconds = [0.0]
_writer_cpu = [0.0]


def _timed_guard(self, call):
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        return _guard(self, call)
    finally:
        _writer_seconds[0] += time.perf_counter() - started
        _writer_cpu[0] += time.thread_time() - cpu


try:
    from tuner.mlflow_tracking import MlflowObserver

    _guard = MlflowObserver._guard
    MlflowObserver._guard = _timed_guard
except ImportError:
    pass


def mlflow_import_seconds() -> float | None:
    """Seconds a fresh interpreter needs to import MLflow's client (None: not installed)."""
    code = ("import time; t = time.perf_counter(); from mlflow.tracking import MlflowClient; "
            "print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None


def one_search(base: RunConfig, way: str, data, scratch: Path) -> dict[str, float]:
    """Wall and CPU seconds of one search, and the seconds inside its observers and writer."""
    options = {"tensorboard": way == "tensorboard",
               "mlflow": f"sqlite:///{scratch / 'mlflow.db'}" if way == "mlflow" else None}
    config = RunConfig(**{**base.to_dict(), **options})
    _observer_seconds[0] = _writer_seconds[0] = _writer_cpu[0] = 0.0
    with tempfile.TemporaryDirectory(dir=scratch) as run_dir:
        started, cpu = time.perf_counter(), time.process_time()
        run_search(config, run_dir, data=data, progress=None)
        return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                "observers": _observer_seconds[0], "writer": _writer_seconds[0],
                "writer_cpu": _writer_cpu[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import_seconds = mlflow_import_seconds()
    ways = [way for way in WAYS if way != "mlflow" or import_seconds is not None]
    data = datasets.load("fashion_mnist", subset=args.images)
    base = RunConfig(tuner="random", max_trials=args.trials, max_epochs=args.epochs,
                     dataset="fashion_mnist", early_stopping_patience=args.epochs)
    runs: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        one_search(base, "plain", data, scratch)  # warm-up: TensorFlow's first tracing
        if "mlflow" in ways:
            one_search(RunConfig(**{**base.to_dict(), "max_trials": 1, "max_epochs": 1}),
                       "mlflow", data, scratch)  # MLflow's import and store set-up, measured apart
        for repeat in range(args.repeats):
            order = ways[repeat % len(ways):] + ways[:repeat % len(ways)]
            for way in order:
                run = one_search(base, way, data, scratch)
                runs[way].append(run)
                print(f"repeat {repeat + 1} {way:12s} wall {run['wall']:6.2f} s, cpu "
                      f"{run['cpu']:6.2f} s, observers {run['observers']:.3f} s, writer "
                      f"{run['writer']:.3f} s ({run['writer_cpu']:.3f} s cpu)", flush=True)
    def median(way, key):
        return statistics.median(run[key] for run in runs[way])

    wall, cpu = median("plain", "wall"), median("plain", "cpu")
    print(f"\n{args.trials} random trials x {args.epochs} epochs, MLP, {args.images} Fashion-MNIST "
          f"images, medians of {args.repeats} repeats:")
    print(f"  {'':12s} {'wall':>8s} {'ratio':>6s} {'cpu':>8s} {'ratio':>6s} "
          f"{'observers':>10s} {'of wall':>7s} {'writer':>8s} {'its cpu':>8s} {'of cpu':>7s}")
    for way in ways:
        print(f"  {way:12s} {median(way, 'wall'):6.2f} s {median(way, 'wall') / wall:6.3f} "
              f"{median(way, 'cpu'):6.2f} s {median(way, 'cpu') / cpu:6.3f} "
              f"{median(way, 'observers'):8.3f} s {median(way, 'observers') / wall:7.2%} "
              f"{median(way, 'writer'):6.3f} s {median(way, 'writer_cpu'):6.3f} s "
              f"{median(way, 'writer_cpu') / cpu:7.2%}")
    if import_seconds is not None:
        print(f"  MLflow's import, once per process that tracks: {import_seconds:.2f} s")


if __name__ == "__main__":
    main()
