"""Trials per second one hpsearch chief answers, and the number of workers at which it becomes the
bottleneck (issue 38, item 5).

    python benchmarks/bench_chief_capacity.py [--max-clients 64] [--seconds-per-level 5]
        [--client-processes 2] [--time-limit 600] [--out docs/results] [--short]

Each level starts a real chief on 127.0.0.1: ``hpsearch tune mlp --tuner random --serve``
(``run_search``, then ``serve_oracle`` with its ``_ChiefGuard`` and the run's token; the random
oracle of the MLP space over a fresh run directory; tiny Fashion-MNIST in the real IDX format;
nothing trained), and N light clients. Each client is a thread that meets the chief as
``hpsearch worker`` does, with tuner.distributed's own pieces: the handshake
(``_wait_for_chief``: the token read from the run directory, the chief's run id), a channel of
``_chief_channel`` carrying ``_WorkerCredentials``, a heartbeat file (``_Heartbeat``) that the
chief reads. It then does, as fast as the chief answers, what a worker does for a trial of one
epoch: CreateTrial, UpdateTrial (the epoch's val_accuracy), EndTrial (COMPLETED). The clients
live in ``--client-processes`` processes started once; N doubles from 1 to ``--max-clients``,
each level lasting ``--seconds-per-level`` seconds with a fresh chief, so that every level starts
from an empty run.

Per level: trials per second (create-to-end cycles ended in the level's window), the median and
95th percentile of each call's latency in ms as the clients see it, errors, the CPU use of the
chief's process and of the client processes (% of one core, from /proc) and the machine's load
average (other jobs on the machine show there). From the saturated rate R (the highest level's):
a worker whose trials last T seconds asks for one trial every T seconds, so N workers ask N / T
trials per second and the chief keeps up while N / T <= R: it becomes the bottleneck at
N = T x R workers.

Clients and chief share this machine: every core-second the clients use is taken from the chief,
so the rates are a lower bound of what a chief alone on its machine answers. Writes
``chief-capacity.csv`` and ``chief-capacity-bottleneck.csv`` to ``--out``; ``--short`` (levels of
1 and 2 clients, 1.5 s each) is the smoke test. Stops by itself within ``--time-limit`` seconds;
the chief and the client processes are ended on every way out (Ctrl-C included), and die with
this process if it is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

TRIAL_SECONDS = (1, 10, 100)
CALLS = ("create", "update", "end")
# Far more trials than any level creates: the oracle never answers STOPPED.
MAX_TRIALS = 1_000_000
# Seconds any one call may take before it counts as an error.
CALL_TIMEOUT = 30.0
# A chief imports TensorFlow and builds the MLP model before it serves; a loaded machine is slow.
CHIEF_START_SECONDS = 180.0
# Seconds for every client of a level to join its chief (the handshake of `hpsearch worker`).
JOIN_SECONDS = 60.0
# Errors after which a client gives up for the rest of its level, rather than spin on a fault.
MAX_ERRORS_PER_CLIENT = 20
# A level reaching this share of the highest rate counts as saturated.
SATURATED_SHARE = 0.9

# The chief's process: the real CLI, killed by the kernel if this benchmark dies (Linux).
_CHIEF_CODE = ("import sys\nfrom tuner.children import _die_with_launcher\n"
               "_die_with_launcher(int(sys.argv[1]))\nfrom tuner.cli import main\n"
               "main(sys.argv[2:])\n")


class BenchmarkError(RuntimeError):
    """The benchmark could not measure a level (a chief or client failed, or time ran out)."""


@dataclasses.dataclass(frozen=True)
class LevelResult:
    """What one level (``clients`` clients for ``seconds`` seconds) measured."""

    clients: int
    trials: int
    seconds: float
    trials_per_second: float
    create_ms_median: float
    create_ms_p95: float
    update_ms_median: float
    update_ms_p95: float
    end_ms_median: float
    end_ms_p95: float
    chief_cpu_percent: float
    clients_cpu_percent: float
    load_average: float
    errors: int


# ---------------------------------------------------------------- the chief
def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of these processes (all their threads) so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Chief:
    """``hpsearch tune mlp --tuner random --serve 127.0.0.1:PORT`` on a fresh run in ``folder``."""

    def __init__(self, folder: Path, data_dir: Path):
        folder.mkdir(parents=True)
        self.run_dir, self.log = folder / "run", folder / "chief.log"
        self.address = f"127.0.0.1:{_free_port()}"
        arguments = ["tune", "mlp", "--run-dir", self.run_dir, "--data-dir", data_dir,
                     "--subset", "all", "--tuner", "random", "--max-trials", MAX_TRIALS,
                     "--max-epochs", 1, "--seed", 0, "--precision", "float32",
                     "--serve", self.address,
                     # Longer than any level: no client is ever taken for gone.
                     "--worker-timeout", 3600]
        env = {**os.environ, "HPSEARCH_NO_DOWNLOAD": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
               "CUDA_VISIBLE_DEVICES": "",  # a chief trains nothing
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                           os.environ.get("PYTHONPATH")]))}
        # The token file in the run directory: what workers on shared storage read.
        for name in ("HPSEARCH_RUN_TOKEN", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT",
                     "KERASTUNER_TUNER_ID"):
            env.pop(name, None)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CHIEF_CODE, str(os.getpid()), *map(str, arguments)],
                cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)

    def wait_serving(self, deadline: float) -> None:
        limit = min(deadline, time.monotonic() + CHIEF_START_SECONDS)
        while not (self.run_dir / "distributed.json").is_file():
            if self.process.poll() is not None:
                raise BenchmarkError(f"The chief stopped (exit code {self.process.returncode})"
                                     f" before serving:\n{self.log_tail()}")
            if time.monotonic() > limit:
                why = ("the time limit passed" if limit == deadline
                       else f"it was not serving after {CHIEF_START_SECONDS:.0f} s")
                raise BenchmarkError(f"The chief did not serve: {why}.\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        # Killed, not stopped: its run directory is thrown away with the level.
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)


# ---------------------------------------------------------------- a client (in a client process)
class _Client:
    """One light worker: joins the chief as ``hpsearch worker`` does, then runs trials that end
    as soon as they start. Its results are plain lists, sent back to the launcher."""

    def __init__(self, address: str, run_dir: Path, tuner_id: str):
        self.address, self.run_dir, self.tuner_id = address, run_dir, tuner_id
        self.channel = self.stub = self.heartbeat = None
        self.failure: str | None = None
        # One row per trial: when it ended, then the create, update and end latencies (ms).
        self.cycles: list[tuple[float, float, float, float]] = []
        self.errors: list[str] = []

    def join(self) -> None:
        import grpc
        from keras_tuner.src import protos

        from tuner.chief_protocol import parse_address
        from tuner.heartbeats import _Heartbeat
        from tuner.worker import _chief_channel, _wait_for_chief, _WorkerCredentials
        from tuner.oracles import RUN_ID_PROBE
        from tuner.errors import HpsearchError

        host, port = parse_address(self.address)
        try:
            run_id, token = _wait_for_chief(host, port, JOIN_SECONDS, self.run_dir,
                                            self.tuner_id)
            self.channel = grpc.intercept_channel(_chief_channel(self.address, None),
                                                  _WorkerCredentials(token, self.tuner_id, run_id))
            self.stub = protos.get_service_grpc().OracleStub(self.channel)
            # A worker's ping, so that this channel is connected before the clock starts.
            self.stub.GetTrial(protos.get_service().GetTrialRequest(trial_id=RUN_ID_PROBE),
                               timeout=JOIN_SECONDS, wait_for_ready=True)
            self.heartbeat = _Heartbeat(self.run_dir, self.tuner_id).start()
            self.heartbeat.update({"state": "training"})
        except (HpsearchError, grpc.RpcError) as error:
            self.failure = f"{self.tuner_id}: {error}"

    def run(self, start_at: float, stop_at: float) -> None:
        import grpc
        from keras_tuner.src import protos

        service, status = protos.get_service(), protos.get_proto().TrialStatus
        scores = random.Random(self.tuner_id)
        time.sleep(max(0.0, start_at - time.monotonic()))
        while time.monotonic() < stop_at and len(self.errors) < MAX_ERRORS_PER_CLIENT:
            try:
                started = time.monotonic()
                trial = self.stub.CreateTrial(
                    service.CreateTrialRequest(tuner_id=self.tuner_id),
                    timeout=CALL_TIMEOUT, wait_for_ready=True).trial
                created = time.monotonic()
                if trial.status != status.RUNNING:
                    self.errors.append(f"CreateTrial answered {status.Name(trial.status)}")
                    continue
                self.stub.UpdateTrial(
                    service.UpdateTrialRequest(trial_id=trial.trial_id, step=0,
                                               metrics={"val_accuracy": scores.random()}),
                    timeout=CALL_TIMEOUT, wait_for_ready=True)
                updated = time.monotonic()
                request = service.EndTrialRequest()
                request.trial.CopyFrom(trial)
                request.trial.status = status.COMPLETED
                self.stub.EndTrial(request, timeout=CALL_TIMEOUT, wait_for_ready=True)
                ended = time.monotonic()
            except grpc.RpcError as error:
                self.errors.append(f"{error.code().name}: {error.details()}")
                continue
            self.cycles.append((ended, (created - started) * 1000, (updated - created) * 1000,
                                (ended - updated) * 1000))

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop("done")
        if self.channel is not None:
            self.channel.close()


def _run_threads(target, clients: list[_Client], *args, seconds: float) -> None:
    threads = [threading.Thread(target=getattr(client, target), args=args, daemon=True)
               for client in clients]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _client_level(connection, address: str, run_dir: str, tuner_ids: list[str]) -> dict:
    """One level in this client process: join, say so, wait for the window, run, report."""
    clients = [_Client(address, Path(run_dir), tuner_id) for tuner_id in tuner_ids]
    try:
        _run_threads("join", clients, seconds=JOIN_SECONDS + 10)
        connection.send([client.failure or f"{client.tuner_id}: did not join in time"
                         for client in clients if client.failure or client.stub is None])
        window = connection.recv()
        if window is None:  # another process's clients failed: the level is abandoned
            return {}
        start_at, stop_at = window
        # Every call is bounded by CALL_TIMEOUT: each thread ends within this.
        _run_threads("run", clients, start_at, stop_at,
                     seconds=stop_at - time.monotonic() + 3 * CALL_TIMEOUT + 5)
        return {"cycles": [cycle for client in clients for cycle in client.cycles],
                "errors": [error for client in clients for error in client.errors]}
    finally:
        for client in clients:
            client.close()


def _client_process(connection, launcher_pid: int) -> None:
    """A process of client threads, started once: runs each level ``connection`` sends."""
    from tuner.children import _die_with_launcher

    _die_with_launcher(launcher_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher ends it, on Ctrl-C too
    # KerasTuner's protocol imports Keras; a client computes nothing, so no TensorFlow for it.
    os.environ["KERAS_BACKEND"] = "numpy"
    from keras_tuner.src import protos  # noqa: F401 - imported once, before the first level

    connection.send("started")
    while (order := connection.recv()) is not None:
        connection.send(_client_level(connection, **order))


class _ClientPool:
    """The client processes, each with a pipe to this one."""

    def __init__(self, processes: int):
        # Fresh interpreters, whatever the launcher holds: gRPC does not survive a fork.
        context = multiprocessing.get_context("spawn")
        self.connections, self.processes = [], []
        for _ in range(processes):
            mine, theirs = context.Pipe()
            process = context.Process(target=_client_process, args=(theirs, os.getpid()),
                                      daemon=True, name="chief-capacity-clients")
            process.start()
            self.connections.append(mine)
            self.processes.append(process)
        self._started = False

    def receive(self, connection, deadline: float, what: str):
        if not connection.poll(max(0.0, deadline - time.monotonic())):
            raise BenchmarkError(f"The client processes did not {what} within the time limit.")
        return connection.recv()

    def wait_started(self, deadline: float) -> None:
        if not self._started:
            for connection in self.connections:
                self.receive(connection, deadline, "start")
            self._started = True

    def close(self) -> None:
        for connection, process in zip(self.connections, self.processes, strict=True):
            with contextlib.suppress(OSError, BrokenPipeError):
                connection.send(None)
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


# ---------------------------------------------------------------- the launcher
def _percentile(values: list[float], share: float) -> float:
    import numpy as np

    return round(float(np.percentile(values, share)), 2) if values else float("nan")


def measure_level(clients: int, pool: _ClientPool, data_dir: Path, folder: Path,
                  seconds: float, deadline: float) -> LevelResult:
    """``clients`` clients against a fresh chief for ``seconds`` seconds.

    Raises:
        BenchmarkError: the chief did not serve, a client could not join, or ``deadline`` (a
            ``time.monotonic()`` value) passed.
    """
    chief = _Chief(folder, data_dir)
    try:
        pool.wait_started(deadline)
        chief.wait_serving(deadline)
        tuner_ids = [f"client{index}" for index in range(clients)]
        shares = [(connection, tuner_ids[index::len(pool.connections)])
                  for index, connection in enumerate(pool.connections)]
        shares = [(connection, share) for connection, share in shares if share]
        for connection, share in shares:
            connection.send({"address": chief.address, "run_dir": str(chief.run_dir),
                             "tuner_ids": share})
        failures = [failure for connection, _ in shares
                    for failure in pool.receive(connection, deadline, "join the chief")]
        if failures:
            for connection, _ in shares:
                connection.send(None)
                pool.receive(connection, deadline, "end the level")
            raise BenchmarkError(f"{len(failures)} client(s) could not join the chief: "
                                 f"{failures[0]}\n{chief.log_tail()}")
        start_at = time.monotonic() + 0.2
        stop_at = start_at + seconds
        for connection, _ in shares:
            connection.send((start_at, stop_at))
        time.sleep(max(0.0, start_at - time.monotonic()))
        client_pids = [process.pid for process in pool.processes]
        chief_before, clients_before = _cpu_seconds([chief.process.pid]), _cpu_seconds(client_pids)
        time.sleep(max(0.0, stop_at - time.monotonic()))
        chief_cpu = _cpu_seconds([chief.process.pid]) - chief_before
        clients_cpu = _cpu_seconds(client_pids) - clients_before
        # What else ran meanwhile: the machine's load (runnable processes, 1-minute average).
        load_average = os.getloadavg()[0]
        reports = [pool.receive(connection, deadline, "finish the level")
                   for connection, _ in shares]
    finally:
        chief.stop()
    cycles = [cycle for report in reports for cycle in report["cycles"] if cycle[0] <= stop_at]
    errors = [error for report in reports for error in report["errors"]]
    if errors:
        print(f"  {len(errors)} error(s) at {clients} client(s), the first: {errors[0]}")
    latencies = {call: [cycle[1 + index] for cycle in cycles]
                 for index, call in enumerate(CALLS)}
    return LevelResult(
        clients=clients, trials=len(cycles), seconds=round(seconds, 2),
        trials_per_second=round(len(cycles) / seconds, 2),
        **{f"{call}_ms_{name}": _percentile(latencies[call], share)
           for call in CALLS for name, share in (("median", 50), ("p95", 95))},
        chief_cpu_percent=round(100 * chief_cpu / seconds, 1),
        clients_cpu_percent=round(100 * clients_cpu / seconds, 1),
        load_average=round(load_average, 2), errors=len(errors))


def client_levels(max_clients: int) -> list[int]:
    """1, 2, 4... up to ``max_clients``, which is always the last level."""
    levels = [1]
    while levels[-1] * 2 < max_clients:
        levels.append(levels[-1] * 2)
    return levels + ([max_clients] if max_clients > 1 else [])


def saturation(results: list[LevelResult]) -> tuple[float, int]:
    """The highest rate measured and the fewest clients that reached ``SATURATED_SHARE`` of it."""
    best = max(result.trials_per_second for result in results)
    first = min(result.clients for result in results
                if result.trials_per_second >= SATURATED_SHARE * best)
    return best, first


def bottleneck_rows(best_rate: float) -> list[dict]:
    """Workers at which a chief answering ``best_rate`` trials/s is the bottleneck, per trial
    length: workers = trial_seconds x trials per second."""
    return [{"trial_seconds": seconds, "max_trials_per_second": best_rate,
             "workers_at_saturation": round(seconds * best_rate)} for seconds in TRIAL_SECONDS]


def _write_csv(path: Path, comment: str, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        file.write(f"# {comment}\n")
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _print_table(results: list[LevelResult], best: float) -> None:
    one = results[0].trials_per_second
    print(f"\n{'clients':>7} {'trials':>7} {'trials/s':>9} {'x 1 client':>10} {'% of max':>8} "
          f"{'create ms':>13} {'update ms':>13} {'end ms':>13} {'chief CPU':>9} "
          f"{'clients CPU':>11} {'load':>5} {'errors':>6}")
    print(f"{'':>58}{'median / p95':>13} {'median / p95':>13} {'median / p95':>13}")
    for r in results:
        print(f"{r.clients:>7} {r.trials:>7} {r.trials_per_second:>9.1f} "
              f"{r.trials_per_second / one if one else float('nan'):>10.2f} "
              f"{100 * r.trials_per_second / best:>7.0f}% "
              f"{r.create_ms_median:>6.1f} /{r.create_ms_p95:>6.1f} "
              f"{r.update_ms_median:>6.1f} /{r.update_ms_p95:>6.1f} "
              f"{r.end_ms_median:>6.1f} /{r.end_ms_p95:>6.1f} "
              f"{r.chief_cpu_percent:>8.0f}% {r.clients_cpu_percent:>10.0f}% "
              f"{r.load_average:>5.2f} {r.errors:>6}")


def run_benchmark(levels: list[int], seconds: float, client_processes: int,
                  time_limit: float) -> tuple[list[LevelResult], str | None]:
    """Measure each level in turn; returns the results and, when the time limit or a failure
    stopped it early, why."""
    from conftest import write_fashion_mnist

    deadline = time.monotonic() + time_limit
    results: list[LevelResult] = []
    pool = _ClientPool(min(client_processes, max(levels)))
    try:
        with tempfile.TemporaryDirectory(prefix="hpsearch-chief-capacity-") as folder:
            data_dir = write_fashion_mnist(Path(folder) / "data", train=60, test=20)
            for clients in levels:
                print(f"{clients} client(s): starting a chief...", flush=True)
                try:
                    result = measure_level(clients, pool, data_dir,
                                           Path(folder) / f"level-{clients}", seconds, deadline)
                except BenchmarkError as error:
                    return results, f"{clients} client(s): {error}"
                results.append(result)
                print(f"  {result.trials} trials in {seconds:g} s: "
                      f"{result.trials_per_second:.1f} trials/s, chief CPU "
                      f"{result.chief_cpu_percent:.0f}%, clients' CPU "
                      f"{result.clients_cpu_percent:.0f}%", flush=True)
    finally:
        pool.close()
    return results, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-clients", type=int, default=64,
                        help="the last level's clients (levels double from 1; default 64)")
    parser.add_argument("--seconds-per-level", type=float, default=5.0,
                        help="measured seconds of each level (default 5)")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="processes the client threads are spread over (default 2)")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds after which the benchmark stops, whatever it measured "
                        "(default 600)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of chief-capacity.csv and chief-capacity-bottleneck.csv "
                        "(default docs/results; with --short, nothing is written without it)")
    parser.add_argument("--short", action="store_true",
                        help="smoke test: 1 and 2 clients, 1.5 s each")
    args = parser.parse_args(argv)
    if args.short:
        args.max_clients, args.seconds_per_level = 2, 1.5
    elif args.out is None:
        args.out = REPO / "docs" / "results"
    if args.max_clients < 1 or args.seconds_per_level <= 0 or args.client_processes < 1:
        parser.error("--max-clients and --client-processes must be at least 1, "
                     "--seconds-per-level positive.")
    # A `kill` of the benchmark ends its chief and client processes too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))

    try:
        results, stopped = run_benchmark(client_levels(args.max_clients), args.seconds_per_level,
                                         args.client_processes, args.time_limit)
    except KeyboardInterrupt:
        print("Interrupted: the chief and the client processes were stopped.", file=sys.stderr)
        return 130
    if stopped:
        print(f"Stopped early: {stopped}", file=sys.stderr)
    if not results or not any(result.trials for result in results):
        print("No trial was completed: nothing to report.", file=sys.stderr)
        return 1
    best, saturated_at = saturation(results)
    _print_table(results, best)
    print(f"\nThe highest rate: {best:.1f} trials/s; {SATURATED_SHARE:.0%} of it first reached "
          f"with {saturated_at} client(s).")
    print("A chief is the bottleneck once workers >= trial seconds x max trials per second:")
    rows = bottleneck_rows(best)
    for row in rows:
        print(f"  trials of {row['trial_seconds']:>3} s: {row['workers_at_saturation']} workers")
    if args.out is None:
        return 1 if stopped else 0
    command = " ".join(sys.argv[1:] if argv is None else argv)
    comment = (f"command: python benchmarks/bench_chief_capacity.py {command}  "
               f"({os.cpu_count()} CPU cores shared by the chief and {args.client_processes} "
               f"client process(es), {datetime.date.today().isoformat()})")
    _write_csv(args.out / "chief-capacity.csv", comment,
               [dataclasses.asdict(result) for result in results])
    _write_csv(args.out / "chief-capacity-bottleneck.csv", comment, rows)
    print(f"Wrote {args.out / 'chief-capacity.csv'} and "
          f"{args.out / 'chief-capacity-bottleneck.csv'}.")
    return 1 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())
