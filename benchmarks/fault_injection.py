"""Crash safety, memory and bad input of the real ``hpsearch`` command, measured (issue 13).

Three parts, each bounded in time, all on tiny synthetic Fashion-MNIST written in the real IDX
format to a temporary folder (nothing else is read or written):

* ``kills``: for each tuner (hyperband, bayesian, random), start ``hpsearch tune`` and kill -9 it
  at a random moment, again and again (``--kills`` per tuner), checking after every kill that
  every file of the run directory is readable (trials.csv, top_configs/rank_*.yaml, oracle.json,
  trial.json); then let it finish. Counted: completed trials lost (a trial seen COMPLETED after a
  kill that is later missing or changed) and completed trials retrained (logged as finished twice).
  The ``workers`` search (``--workers 2``: a chief and two worker processes) and the
  ``recycled`` one (one-process, its trials in child processes replaced every 3 trials) are
  killed as a whole process group, or every other time by their launcher alone; counted as well:
  kills after which a chief, worker or child was still running 5 s later (orphans).
* ``rss``: peak resident memory of one ``hpsearch tune`` process over a 50-trial random search,
  sampled every 0.2 s, with its value after trials 1, 10, 25 and 50.
* ``bad-input``: each bad-input class once through the real command; exit code, first line of
  stderr, whether a traceback was printed, whether something was left behind.

Usage::

    python benchmarks/fault_injection.py [--kills 7] [--seed 0] [--parts kills,rss,bad-input]
    python benchmarks/fault_injection.py --parts kills --tuners random,recycled,workers \
        --kills 20 --max-trials 30 --json faults.json

Prints Markdown tables (the source of the BENCHMARKS.md section) and writes them as JSON with
``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets import fashion_mnist  # noqa: E402
from datasets.idx import write_idx  # noqa: E402

TUNE = [sys.executable, "-m", "tuner.cli", "tune", "mlp", "--quiet", "--subset", "all"]
BUDGETS = {  # small enough that a run finishes in about a minute on 2 cores
    "hyperband": ["--tuner", "hyperband", "--max-epochs", "4", "--factor", "2"],
    "bayesian": ["--tuner", "bayesian", "--max-trials", "12", "--max-epochs", "3"],
    "random": ["--tuner", "random", "--max-trials", "12", "--max-epochs", "3"],
    # A chief and two workers (issue 12); each kill is of the launcher's whole process group or,
    # every other time, of the launcher alone (its chief and workers must die with it).
    "workers": ["--tuner", "random", "--max-trials", "12", "--max-epochs", "3", "--workers", "2"],
    # A one-process search whose trials run in child processes replaced every 3 trials
    # (--recycle-after): killed as a whole or, every other time, its launcher alone.
    "recycled": ["--tuner", "random", "--max-trials", "12", "--max-epochs", "3",
                 "--recycle-after", "3"],
}
# Budgets whose command is a launcher of other processes (killed alone every other time).
LAUNCHERS = ("workers", "recycled")
# Seconds the chief and workers of a killed launcher get to be gone before they count as orphans.
ORPHAN_GRACE = 5.0


def write_tiny_fashion_mnist(directory: Path, train: int, test: int = 50) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part, count in (("train", train), ("test", test)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(count, 28, 28)) + labels[:, None, None] * 19
        write_idx(directory / f"{fashion_mnist.FILES['x_' + part]}.gz",
                  np.clip(images, 0, 255).astype(np.uint8))
        write_idx(directory / f"{fashion_mnist.FILES['y_' + part]}.gz", labels)
    return directory


def _env() -> dict[str, str]:
    return {**os.environ, "HPSEARCH_NO_DOWNLOAD": "1", "PYTHONPATH": str(REPO)}


def _states(run_dir: Path) -> dict[str, dict]:
    """trial id -> trial.json content; raises if any file of the run is unreadable."""
    import yaml

    from top_configs import read_top_config

    states = {}
    for path in (run_dir / "kt").glob("trial_*/trial.json"):
        states[path.parent.name[6:]] = json.loads(path.read_text())
    if (run_dir / "kt" / "oracle.json").exists():
        json.loads((run_dir / "kt" / "oracle.json").read_text())
    for path in (run_dir / "top_configs").glob("rank_*.yaml"):
        read_top_config(path)
    if (run_dir / "trials.csv").exists():
        import pandas as pd

        pd.read_csv(run_dir / "trials.csv")
    if (run_dir / "run.yaml").exists():
        yaml.safe_load((run_dir / "run.yaml").read_text())
    return states


MOMENTS = ("start-up", "export", "in a trial")


def _wait_for_lines(process, log: Path, lines: int, timeout: float = 300.0) -> None:
    """Poll (every 5 ms) until the trial log has ``lines`` lines or the process ends."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if log.exists() and log.read_text().count("\n") >= lines:
            return
        time.sleep(0.005)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _kill(process: subprocess.Popen, whole_group: bool) -> bool:
    """SIGKILL the launcher (and its process group); True when processes of its group are still
    there ``ORPHAN_GRACE`` seconds later (then they are killed too)."""
    if whole_group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + ORPHAN_GRACE
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _group_alive(process.pid):
        return False
    os.killpg(process.pid, signal.SIGKILL)
    return True


def kills(data_dir: Path, work: Path, kills_per_tuner: int, rng: random.Random,
          deadline: float, tuners=tuple(BUDGETS), max_trials: int | None = None) -> list[dict]:
    results = []
    for tuner in tuners:
        budget = list(BUDGETS[tuner])
        if max_trials is not None and "--max-trials" in budget:
            # More kills than a budget's trials would end the search before the last kill.
            budget[budget.index("--max-trials") + 1] = str(max_trials)
        run_dir = work / f"run-{tuner}"
        command = TUNE + ["--run-dir", str(run_dir), "--data-dir", str(data_dir)] + budget
        completed: dict[str, dict] = {}
        unreadable = exit_errors = landed = orphaned = 0
        moments: dict[str, int] = {}
        done = 0
        while done < kills_per_tuner and time.monotonic() < deadline:
            log = run_dir / "trial_log.jsonl"
            lines_before = log.read_text().count("\n") if log.exists() else 0
            process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            # Three kinds of moment, in turn: during start-up (TensorFlow import, data, tuner
            # reload); right after a trial is logged, while trials.csv and the top-3 YAML files
            # are being replaced; at a random moment inside the following trials.
            moment = MOMENTS[done % len(MOMENTS)]
            if moment == "start-up":
                time.sleep(rng.uniform(0.5, 6.0))
            else:
                _wait_for_lines(process, log, lines_before + (1 if moment == "export" else
                                                              rng.randint(0, 2)))
                if moment == "in a trial":
                    time.sleep(rng.uniform(0.0, 2.5))
            moments[moment] = moments.get(moment, 0) + 1
            if process.poll() is not None:
                if process.returncode != 0:
                    exit_errors += 1
                break  # the search finished before this kill
            orphaned += _kill(process, whole_group=tuner not in LAUNCHERS or done % 2 == 0)
            done += 1
            try:
                states = _states(run_dir)
            except Exception:  # noqa: BLE001 - counted, that is the point
                unreadable += 1
                continue
            if any(state.get("status") == "RUNNING" for state in states.values()):
                landed += 1
            for trial_id, state in states.items():
                if state.get("status") == "COMPLETED":
                    completed.setdefault(trial_id, state)
        final = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True,
                               timeout=900)
        states = _states(run_dir)
        lost = sum(1 for trial_id, state in completed.items()
                   if states.get(trial_id, {}).get("score") != state.get("score"))
        log = [json.loads(line) for line in (run_dir / "trial_log.jsonl").read_text().splitlines()
               if line.strip()]
        finished = [entry["trial_id"] for entry in log if entry["status"] == "COMPLETED"]
        retrained = len(finished) - len(set(finished))
        import pandas as pd

        trials = pd.read_csv(run_dir / "trials.csv", dtype={"trial_id": str})
        results.append({
            "tuner": tuner, "kills": done, "moments": moments, "running_trial_on_disk": landed,
            "unreadable_after_kill": unreadable, "completed_before_final_run": len(completed),
            "lost": lost, "retrained": retrained, "final_exit": final.returncode,
            "final_error": final.stderr.strip().splitlines()[-1:] if final.returncode else [],
            "final_trials": len(trials), "final_completed": int((trials.status == "COMPLETED").sum()),
            "failed_exits_during_kills": exit_errors, "orphaned_after_kill": orphaned,
            "top_configs": len(list((run_dir / "top_configs").glob("rank_*.yaml"))),
        })
        print(json.dumps(results[-1]), flush=True)
    return results


def rss(data_dir: Path, work: Path, trials: int = 50) -> dict:
    run_dir = work / "run-rss"
    command = TUNE + ["--run-dir", str(run_dir), "--data-dir", str(data_dir), "--tuner", "random",
                      "--max-trials", str(trials), "--max-epochs", "1"]
    process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    log = run_dir / "trial_log.jsonl"
    by_trial: dict[int, float] = {}
    peak = 0.0
    started = time.monotonic()
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            megabytes = int(next(line for line in status.splitlines()
                                 if line.startswith("VmRSS")).split()[1]) / 1024
        except (OSError, StopIteration):
            break
        peak = max(peak, megabytes)
        count = log.read_text().count("\n") if log.exists() else 0
        by_trial.setdefault(count, megabytes)
        time.sleep(0.2)
    process.wait()
    result = {"trials": trials, "exit": process.returncode, "seconds": time.monotonic() - started,
              "peak_mb": round(peak, 1)}
    for mark in (1, 10, 25, trials - 1):
        if mark in by_trial:
            result[f"after_{mark}_trials_mb"] = round(by_trial[mark], 1)
    print(json.dumps(result), flush=True)
    return result


def bad_input(data_dir: Path, work: Path) -> list[dict]:
    (work / "a-file").write_text("x")
    binary = work / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 8)
    broken_run = work / "run-random"  # left complete by the kills part when it ran
    cases = [
        ("unknown objective", ["tune", "mlp", "--objective", "val_acc"]),
        ("accuracy minimized", ["tune", "mlp", "--direction", "min"]),
        ("space/dataset mismatch", ["tune", "mlp", "--dataset", "clock"]),
        ("--head on a classifier", ["tune", "mlp", "--head", "periodic"]),
        ("--subset 1", ["tune", "mlp", "--subset", "1"]),
        ("--subset nan", ["tune", "mlp", "--subset", "nan"]),
        ("--subset inf", ["tune", "mlp", "--subset", "inf"]),
        ("--subset larger than the data", ["tune", "mlp", "--subset", "100000"]),
        ("run dir below a regular file", ["tune", "mlp", "--run-dir", str(work / "a-file" / "r")]),
        ("binary YAML to transfer", ["transfer", str(binary)]),
        ("report of a non-run", ["report", str(work / "empty")]),
    ]
    (work / "empty").mkdir(exist_ok=True)
    if (broken_run / "kt" / "trial_1" / "trial.json").exists():
        (broken_run / "kt" / "trial_1" / "trial.json").write_text("{garbage")
        cases += [("corrupt trial.json: tune", ["tune", "mlp", "--run-dir", str(broken_run),
                                               *BUDGETS["random"]]),
                  ("corrupt trial.json: report", ["report", str(broken_run)]),
                  ("corrupt trial.json: repair", ["repair", str(broken_run)]),
                  ("after repair: tune", ["tune", "mlp", "--run-dir", str(broken_run),
                                          *BUDGETS["random"]])]
    results = []
    for name, arguments in cases:
        run_dir = work / f"bad-{len(results)}"
        if arguments[0] == "tune" and "--run-dir" not in arguments:
            arguments = arguments + ["--run-dir", str(run_dir)]
        if arguments[0] == "transfer":
            arguments = arguments + ["--run-dir", str(run_dir)]
        if arguments[0] == "report":
            arguments = arguments + ["--out", str(work / f"report-{len(results)}")]
        if arguments[0] == "tune":
            arguments = arguments + ["--data-dir", str(data_dir), "--quiet"]
            if "--subset" not in arguments:
                arguments += ["--subset", "all"]
        started = time.monotonic()
        process = subprocess.run([sys.executable, "-m", "tuner.cli", *arguments], cwd=REPO,
                                 env=_env(), capture_output=True, text=True, timeout=600)
        stderr_lines = [line for line in process.stderr.splitlines() if line.strip()]
        # click's usage errors start with the usage line: show their Error: line.
        stderr_lines = [line for line in stderr_lines if line.startswith("Error:")] or stderr_lines
        results.append({
            "case": name, "exit": process.returncode,
            "first_line": (stderr_lines or process.stdout.splitlines() or [""])[0][:150],
            "traceback": "Traceback" in process.stderr,
            "left_behind": run_dir.exists(),
            "seconds": round(time.monotonic() - started, 1),
        })
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=8, help="kills per search kind (--tuners)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=25.0, help="bound on the kills part")
    parser.add_argument("--train", type=int, default=600, help="tiny training images")
    parser.add_argument("--parts", default="kills,rss,bad-input")
    parser.add_argument("--tuners", default=",".join(BUDGETS),
                        help=f"which searches the kills part runs (of {', '.join(BUDGETS)})")
    parser.add_argument("--max-trials", type=int, default=None,
                        help="trials of each killed search with a trial count (default: 12)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    parts = args.parts.split(",")
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="hpsearch-faults-") as temporary:
        work = Path(temporary)
        data_dir = write_tiny_fashion_mnist(work / "data", train=args.train)
        if "kills" in parts:
            report["kills"] = kills(data_dir, work, args.kills, random.Random(args.seed),
                                    time.monotonic() + 60 * args.minutes,
                                    tuners=args.tuners.split(","), max_trials=args.max_trials)
        if "rss" in parts:
            report["rss"] = rss(data_dir, work)
        if "bad-input" in parts:
            report["bad_input"] = bad_input(data_dir, work)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
