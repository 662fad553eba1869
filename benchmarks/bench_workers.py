"""Trials per hour of one MLP search: one process (2 TensorFlow threads) against ``--workers 2``
(a chief and two workers of 1 thread each) on this machine (issue 12).

Both runs are the real ``hpsearch tune`` command on the same synthetic Fashion-MNIST (written in the
real IDX format to a temporary folder), the same random search and seed; the wall time of the whole
command (start-up, data, chief and workers included) gives the trials per hour.

Usage::

    python benchmarks/bench_workers.py [--trials 8] [--epochs 2] [--images 6000] [--precision P]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def timed_search(data_dir: Path, run_dir: Path, trials: int, epochs: int, extra: list[str],
                 env: dict[str, str]) -> float:
    command = [sys.executable, "-m", "tuner.cli", "tune", "mlp", "--run-dir", str(run_dir),
               "--data-dir", str(data_dir), "--subset", "all", "--tuner", "random",
               "--max-trials", str(trials), "--max-epochs", str(epochs), "--quiet", *extra]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--precision", default="auto", help="tune's --precision for every run")
    args = parser.parse_args()
    from conftest import write_fashion_mnist

    env = {**os.environ, "HPSEARCH_NO_DOWNLOAD": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data_dir = write_fashion_mnist(root / "data", train=args.images, test=20)
        common = ["--precision", args.precision]
        one = timed_search(data_dir, root / "one", args.trials, args.epochs, common,
                           {**env, "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2",
                            "OMP_NUM_THREADS": "2"})
        two = timed_search(data_dir, root / "two", args.trials, args.epochs,
                           [*common, "--workers", "2"], env)
    rows = [("1 process, 2 threads", one), ("--workers 2, 1 thread each", two)]
    print("| setup | wall s | trials/hour | vs 1 process |\n|---|---:|---:|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {args.trials * 3600 / seconds:.0f} | "
              f"{one / seconds:.2f}x |")
    print(f"({args.trials} trials x {args.epochs} epochs, {args.images} images, precision "
          f"{args.precision}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
