"""Resident memory of the processes that train a search, trial by trial, with and without their
replacement by fresh ones (tuner/recycling.py), and what a replacement costs.

    python benchmarks/bench_recycling.py --trials 200 --recycle-after 10 \\
        --out docs/results/memory-recycling.csv \\
        --summary docs/results/memory-recycling-summary.csv

One random MLP search (1,000 Fashion-MNIST images by default, one epoch per trial, float32: trials
of about a second, the shortest kind, where a start-up weighs most), run four ways as
``hpsearch tune`` runs them: in one process (``tuner.recycled_search.run_recycled_search``: the
trials in a child process) and with ``--workers 2`` (``run_parallel_search``), each with recycling
off (``--recycle-after 0``) and on. The processes that train report the VmRSS of their own process
after every trial (their ``Retirement`` events), and when they retire and begin their first
trial: a replacement's start-up is the time from its predecessor's retirement to its own first
trial (the process's start, TensorFlow's import, the data, the tuner's reload). Each trial's own
seconds come from the trial log. This process imports no TensorFlow. Writes one row per way and
trial (in the order the trials ended), and one summary row per way.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuner.config import RunConfig  # noqa: E402
from tuner.parallel import run_parallel_search  # noqa: E402
from tuner.recycled_search import run_recycled_search  # noqa: E402
from tuner.results import read_trial_log  # noqa: E402


def run_way(workers: int, recycle_after: int, trials: int, subset: int, run_dir: Path,
            data_dir: list[str] | None):
    """(rows of (trial, process, rss_mb, seconds), start-up seconds of each replacement, wall
    seconds); trials in the order they ended, each with its own seconds from the trial log."""
    config = RunConfig(space="mlp", tuner="random", max_trials=trials, max_epochs=1,
                       subset=subset, precision="float32", recycle_after=recycle_after)
    ended, startups, retired_at = [], [], {}

    def on_event(name: str, event: dict) -> None:
        if event["event"] == "trial":
            ended.append((event["trial_id"], name, round(event["rss_mb"], 1)))
        elif event["event"] == "retired":
            retired_at[name] = event["at"]
        elif event["event"] == "ready" and name in retired_at:
            startups.append(event["at"] - retired_at.pop(name))

    started = time.monotonic()
    if workers == 1:
        run_recycled_search(config, run_dir, data_dir=data_dir, overwrite=True, progress=None,
                            on_event=on_event)
    else:
        run_parallel_search(config, run_dir, workers=workers, data_dir=data_dir,
                            overwrite=True, progress=None, on_event=on_event)
    wall = time.monotonic() - started
    seconds = {trial_id: entry["seconds"] for trial_id, entry in read_trial_log(run_dir).items()}
    rows = [(index, name, rss, seconds[trial_id])
            for index, (trial_id, name, rss) in enumerate(ended, start=1)]
    return rows, startups, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--recycle-after", type=int, default=10)
    parser.add_argument("--subset", type=int, default=1000, help="Fashion-MNIST images")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--summary", type=Path, default=None)
    parser.add_argument("--runs", type=Path, default=Path.home() / "runs" / "bench-recycling")
    parser.add_argument("--data-dir", default=os.environ.get("HPSEARCH_DATA_DIR", ""))
    args = parser.parse_args()
    data_dir = [d for d in args.data_dir.split(os.pathsep) if d] or None
    early = min(10, args.trials)
    details, summary = [], []
    for workers in args.workers:
        for recycle_after in (0, args.recycle_after):
            way = f"recycle_after_{recycle_after}" if recycle_after else "off"
            rows, startups, wall = run_way(workers, recycle_after, args.trials, args.subset,
                                           args.runs / f"{way}-w{workers}", data_dir)
            details += [(way, workers, *row) for row in rows]
            at = {trial: rss for trial, _, rss, _ in rows}
            ratio = at[len(rows)] / at[early]
            startup = statistics.median(startups) if startups else float("nan")
            first = statistics.mean(seconds for _, _, _, seconds in rows[:early])
            last = statistics.mean(seconds for _, _, _, seconds in rows[-early:])
            summary.append((way, workers, at[early], at[len(rows)], round(ratio, 3),
                            len(startups), round(startup, 2), round(first, 2), round(last, 2),
                            round(wall, 1)))
            print(f"{way:<18} workers {workers}: RSS at trial {early} {at[early]:7.1f} MB, at "
                  f"trial {len(rows)} {at[len(rows)]:7.1f} MB (x{ratio:.2f}); {len(startups)} "
                  f"replacements, start-up median {startup:.1f} s; trials of {first:.2f} s "
                  f"then {last:.2f} s; {wall:.0f} s wall", flush=True)
    command = ("# command: python benchmarks/bench_recycling.py --trials "
               f"{args.trials} --recycle-after {args.recycle_after} --subset {args.subset}")
    if args.out:
        with open(args.out, "w", newline="") as handle:
            handle.write(command + "\n")
            writer = csv.writer(handle)
            writer.writerow(("way", "workers", "trial", "process", "rss_mb", "seconds"))
            writer.writerows(details)
    if args.summary:
        with open(args.summary, "w", newline="") as handle:
            handle.write(command + "\n")
            writer = csv.writer(handle)
            writer.writerow(("way", "workers", f"rss_trial_{early}_mb",
                             f"rss_trial_{args.trials}_mb", "ratio", "replacements",
                             "startup_seconds_median", f"trial_seconds_first_{early}",
                             f"trial_seconds_last_{early}", "wall_seconds"))
            writer.writerows(summary)


if __name__ == "__main__":
    main()
