"""A search across two machines, rehearsed on this one (issue 38, item 5).

    python benchmarks/rehearse_remote_worker.py [--trials 2] [--timeout 300]

"Machine A" runs the chief, ``hpsearch tune mlp ... --serve 127.0.0.1:PORT``; "machine B" runs
``hpsearch worker 127.0.0.1:PORT``. Each has its own working directory, its own environment built
from nothing (its own HOME, Keras home and temporary folder; none of the other's variables) and
its own copy of a tiny Fashion-MNIST written in the real IDX format. The run directory lies on
"shared storage" (a folder standing for an NFS export), which B reaches by another path: through
a symlink, as a mount point elsewhere. The run's token reaches both only through
``HPSEARCH_RUN_TOKEN``, as between machines that do not share the token file: the chief then
writes none, so the worker cannot have read it from the run directory.

Checks that both processes exit 0, that every trial is in ``trials.csv`` exactly once and
COMPLETED, that each was trained once and by B (``trial_log.jsonl``), that no token file was
written and that B's heartbeat says it finished. Prints one line and exits 0 when all hold;
otherwise exits 1 with what failed and the end of both logs. Everything listens on 127.0.0.1
only; both processes are ended on every way out (Ctrl-C and ``kill`` included) and die with this
script if it is killed (Linux).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

WORKER_ID = "machine-b"
# `hpsearch` itself, killed by the kernel if this script dies (Linux).
_HPSEARCH = ("import sys\nfrom tuner.children import _die_with_launcher\n"
             "_die_with_launcher(int(sys.argv[1]))\nfrom tuner.cli import main\n"
             "main(sys.argv[2:])\n")


class RehearsalFailed(RuntimeError):
    """The rehearsed search did not end as a several-machine search must."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine_env(home: Path, token: str) -> dict[str, str]:
    """The environment of one "machine": only what a login shell there would give, plus the
    run's token. Nothing is inherited from the other machine or from this script's caller,
    except the search path and Keras's backend (both machines run the same install)."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "TMPDIR": str(home / "tmp"), "KERAS_HOME": str(home / ".keras"),
           "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PYTHONPATH": str(REPO), "HPSEARCH_RUN_TOKEN": token,
           "HPSEARCH_NO_DOWNLOAD": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if os.environ.get("KERAS_BACKEND"):
        env["KERAS_BACKEND"] = os.environ["KERAS_BACKEND"]
    return env


def _start(arguments: list, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "-c", _HPSEARCH, str(os.getpid()), *map(str, arguments)],
            cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def check_run(run_dir: Path, trials: int) -> str:
    """What the finished run directory shows, in one line.

    Raises:
        RehearsalFailed: a trial is missing, repeated, not COMPLETED or not trained by the
            remote worker, a token file was written, or the worker's heartbeat is not "done".
    """
    table = run_dir / "trials.csv"
    if not table.is_file():
        raise RehearsalFailed(f"The chief wrote no {table}.")
    with open(table, newline="") as file:
        rows = list(csv.DictReader(file))
    ids = [row["trial_id"] for row in rows]
    if len(ids) != trials or len(set(ids)) != trials:
        raise RehearsalFailed(f"trials.csv holds trials {ids}; expected {trials} distinct ones.")
    statuses = {row["trial_id"]: row["status"] for row in rows}
    if set(statuses.values()) != {"COMPLETED"}:
        raise RehearsalFailed(f"Not every trial completed: {statuses}.")
    log = [json.loads(line) for line in (run_dir / "trial_log.jsonl").read_text().splitlines()
           if line.strip()]
    trained = sorted(entry["trial_id"] for entry in log)
    if trained != sorted(ids):
        raise RehearsalFailed(f"trial_log.jsonl records trainings of {trained}; expected each "
                              f"of {sorted(ids)} once.")
    workers = {entry.get("worker") for entry in log}
    if workers != {WORKER_ID}:
        raise RehearsalFailed(f"Trials were trained by {workers}, expected {WORKER_ID} only.")
    if (run_dir / "run_token").exists():
        raise RehearsalFailed("The chief wrote run_token although HPSEARCH_RUN_TOKEN was given.")
    beat = json.loads((run_dir / "workers" / f"{WORKER_ID}.json").read_text())
    if beat.get("state") != "done":
        raise RehearsalFailed(f"The worker's heartbeat says {beat.get('state')!r}, not 'done'.")
    return (f"{trials} trial(s) in trials.csv, each once and COMPLETED, all trained by "
            f"{WORKER_ID} through the symlinked run directory, the token from the environment "
            "only")


def rehearse(root: Path, trials: int, timeout: float) -> str:
    """Run the chief and the worker in ``root`` and check the run; returns the summary line.

    Raises:
        RehearsalFailed: see ``check_run``; also a process that failed or outlived ``timeout``.
    """
    from conftest import write_fashion_mnist

    machine_a, machine_b, shared = root / "machine-a", root / "machine-b", root / "nfs-export"
    run_dir = shared / "runs" / "mlp"
    run_dir.parent.mkdir(parents=True)
    (machine_b / "mnt").mkdir(parents=True)
    (machine_b / "mnt" / "shared").symlink_to(shared, target_is_directory=True)
    run_dir_on_b = machine_b / "mnt" / "shared" / "runs" / "mlp"
    token, address = secrets.token_urlsafe(32), f"127.0.0.1:{_free_port()}"
    logs = {"chief": machine_a / "chief.log", "worker": machine_b / "worker.log"}
    processes = {
        "chief": _start(
            ["tune", "mlp", "--run-dir", run_dir,
             "--data-dir", write_fashion_mnist(machine_a / "data", train=60, test=20),
             "--subset", "all", "--tuner", "random", "--max-trials", trials,
             "--max-epochs", 1, "--seed", 1, "--precision", "float32", "--serve", address],
            machine_a, machine_env(machine_a, token), logs["chief"]),
        "worker": _start(
            ["worker", address, "--run-dir", run_dir_on_b, "--id", WORKER_ID,
             "--data-dir", write_fashion_mnist(machine_b / "data", train=60, test=20),
             "--threads", 1, "--connect-timeout", timeout, "--chief-timeout", 60],
            machine_b, machine_env(machine_b, token), logs["worker"]),
    }
    deadline = time.monotonic() + timeout
    try:
        while any(process.poll() is None for process in processes.values()):
            if time.monotonic() > deadline:
                running = [name for name, process in processes.items() if process.poll() is None]
                raise RehearsalFailed(f"The {' and the '.join(running)} still ran after "
                                      f"{timeout:g} s.")
            time.sleep(0.5)
        for name, process in processes.items():
            if process.returncode != 0:
                raise RehearsalFailed(f"The {name} exited with code {process.returncode}.")
        return check_run(run_dir, trials)
    except RehearsalFailed as failure:
        raise RehearsalFailed(f"{failure}\n--- chief (machine A):\n{_tail(logs['chief'])}\n"
                              f"--- worker (machine B):\n{_tail(logs['worker'])}") from None
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2, help="trials of the search (default 2)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds the chief and worker may run (default 300)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.timeout <= 0:
        parser.error("--trials must be at least 1 and --timeout positive.")
    # A `kill` of the rehearsal ends its chief and worker too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hpsearch-rehearsal-") as folder:
        try:
            summary = rehearse(Path(folder), args.trials, args.timeout)
        except RehearsalFailed as failure:
            print(f"Rehearsal failed: {failure}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("Interrupted: the chief and the worker were stopped.", file=sys.stderr)
            return 130
    print(f"Rehearsal passed in {time.monotonic() - started:.0f} s: {summary}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
