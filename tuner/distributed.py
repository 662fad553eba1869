"""Searches on several processes or machines, on KerasTuner's own chief/worker mode.

The chief (``run_search(..., serve=ServeSettings(...))``) serves the oracle over KerasTuner's gRPC
protocol and trains nothing; each worker (``run_worker``) asks it for trials and trains them. All
of them work in one run directory, which must be on storage they share: trial checkpoints (which
Hyperband continues from) and trial files are written by whoever runs the trial.
``tuner.parallel.run_parallel_search`` starts a chief on loopback and N workers on this machine
and waits for them: the CLI's ``hpsearch tune --workers N``.

What KerasTuner's distributed mode alone does not do, and this module adds:

* a worker that dies (killed, out of memory, a gRPC error: keras-tuner #915) is noticed by the
  chief from its heartbeat file (``workers/<id>.json``: its process is gone, or it was not seen for
  ``worker_timeout`` seconds) and its trial goes back to the queue, so no trial is lost and the
  chief does not wait for it forever; ``run_parallel_search`` also restarts it;
* every wait of a worker is bounded (``connect_timeout`` for the chief to answer at all,
  ``call_timeout`` per call; KerasTuner waits an hour, keras-tuner #990) and ends in a clear error;
* the chief stops its server with a grace period, so a worker's last call is answered before it
  goes (keras-tuner PR #645);
* a distributed Hyperband stops at its schedule's trial count (keras-tuner #256);
* a worker checks over the wire that its run directory is the chief's (a run id);
* the chief binds loopback unless told otherwise: the port has no authentication and no TLS;
* the chief rewrites ``trials.csv`` and ``top_configs/`` after every trial that ends, as a
  one-process search does, so a killed parallel search keeps its table;
* what KerasTuner prints while answering a call (``conditions.py`` prints a conditional
  hyperparameter's value with a bare ``print`` whenever a trial is sent) stays out of the chief's
  output; its progress lines stay in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from search_spaces.devices import keras_backend
from tuner import rundir
from tuner.errors import HpsearchError, RunDirError, SearchError, UsageError
from tuner.rundir import DISTRIBUTED_FILE, TRIAL_LOG, WORKERS_DIR

__all__ = [
    "ChiefUnreachableError",
    "ServeSettings",
    "parse_address",
    "run_worker",
    "serve_oracle",
]

# How often a worker rewrites its heartbeat file, and how often the chief looks at them.
HEARTBEAT_SECONDS = 2.0
# Seconds the chief's server keeps answering calls already in flight when it stops.
STOP_GRACE_SECONDS = 5.0


class ChiefUnreachableError(HpsearchError, RuntimeError):
    """A worker cannot reach the chief, or lost it."""


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """Where and how the chief of a distributed search serves its oracle.

    Attributes:
        host: the interface to listen on. Loopback by default: only processes of this machine
            can connect. Anything else needs ``allow_remote``.
        port: the TCP port (0: any free port, told in ``distributed.json``).
        allow_remote: listen on a non-loopback interface. KerasTuner's protocol has no
            authentication and no encryption: anyone who reaches the port can read the search
            space and results and feed the search made-up scores. Use on a trusted network only.
        worker_timeout: seconds without a heartbeat after which a worker is taken for gone and its
            trial is given to another worker (its heartbeat is rewritten every 2 s while it
            trains, so this only has to cover a stalled file system or machine).
    """

    host: str = "127.0.0.1"  # loopback: no other machine can connect
    port: int = 0  # 0: a free port chosen by the system
    allow_remote: bool = False  # the port has no auth and no TLS (see above)
    worker_timeout: float = 120.0  # 60 missed heartbeats: a worker stalled, not slow

    def __post_init__(self):
        check_bind(self.host, self.allow_remote)
        if not 0 <= int(self.port) <= 65535:
            raise UsageError(f"Port {self.port} is not a TCP port; expected 1 to 65535.")
        if self.worker_timeout <= 0:
            raise UsageError(f"worker_timeout must be positive, got {self.worker_timeout}.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse to serve on a non-loopback interface unless ``allow_remote`` (see ServeSettings).

    Raises:
        UsageError: ``host`` is not loopback and ``allow_remote`` is False.
    """
    if not is_loopback(host) and not allow_remote:
        raise UsageError(
            f"Refusing to serve the search on {host}: KerasTuner's oracle port has no "
            "authentication and no encryption, so anyone who can reach it could read the search "
            "and send it made-up results. Serve on 127.0.0.1 (the default) and reach it through "
            "an SSH tunnel, or pass --allow-remote on a network you trust."
        )


def parse_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:PORT"`` for IPv6) as (host, port).

    Raises:
        UsageError: not of that form, or the port is not 1 to 65535.
    """
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"Expected an address like 127.0.0.1:8000 (HOST:PORT, port 1 to 65535), got {text!r}."
        )
    return host, int(port)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------- heartbeats (worker side)
def _heartbeat_path(run_dir: Path, tuner_id: str) -> Path:
    return Path(run_dir) / WORKERS_DIR / f"{tuner_id}.json"


class _Heartbeat:
    """A worker's file ``workers/<id>.json``: what it runs and when it was last seen, rewritten
    every ``HEARTBEAT_SECONDS`` by a thread (so it stays fresh during a long epoch)."""

    def __init__(self, run_dir: Path, tuner_id: str):
        self.path = _heartbeat_path(run_dir, tuner_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = {
            "tuner_id": tuner_id, "host": socket.gethostname(), "pid": os.getpid(),
            "state": "starting", "trial_id": None, "trial_started": None, "epoch": None,
            "trials_done": 0, "since": time.time(),
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="hpsearch-heartbeat")

    def start(self) -> "_Heartbeat":
        self.update({})
        self._thread.start()
        return self

    def update(self, changes: dict[str, Any]) -> None:
        with self._lock:
            self.state.update(changes)
            self.state["updated"] = time.time()
            try:
                rundir.write_json(self.path, self.state)
            except RunDirError:
                pass  # a full disk must not kill the trial; the chief's timeout covers it

    def stop(self, state: str) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=HEARTBEAT_SECONDS * 2)
        self.update({"state": state, "trial_id": None, "epoch": None})

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.update({})


def read_heartbeats(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """tuner id -> the worker's last heartbeat (unreadable files are skipped)."""
    beats = {}
    for path in sorted((Path(run_dir) / WORKERS_DIR).glob("*.json")):
        try:
            beat = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(beat, dict) and "tuner_id" in beat:
            beats[str(beat["tuner_id"])] = beat
    return beats


def heartbeat_gone(beat: dict[str, Any] | None, timeout: float, now: float | None = None) -> str:
    """Why a worker counts as gone ("" while it is alive): its process exited (same host), it
    said it stopped, or it was not seen for ``timeout`` seconds."""
    if beat is None:
        return "no heartbeat file"
    now = time.time() if now is None else now
    if beat.get("state") in ("done", "failed"):
        return f"it {'finished' if beat['state'] == 'done' else 'failed'}"
    if beat.get("host") == socket.gethostname() and not _process_alive(beat.get("pid")):
        return f"its process {beat.get('pid')} is gone"
    seen = now - float(beat.get("updated") or 0)
    if seen > timeout:
        return f"not seen for {seen:.0f} s"
    return ""


def _process_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is gone too
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


# ---------------------------------------------------------------- the chief
# The oracle's gRPC calls (OracleServicer's methods: KerasTuner's protocol).
_ORACLE_CALLS = ("GetSpace", "UpdateSpace", "CreateTrial", "UpdateTrial", "EndTrial", "GetTrial",
                 "GetBestTrials")


class _QuietOracleCalls:
    """``sys.stdout`` while the chief serves: drops what is printed inside an oracle call (in
    gRPC's threads), passes everything else (the progress lines) to the stream it replaced.

    KerasTuner 1.4.8 prints a conditional hyperparameter's first value with a bare ``print``
    each time a trial or the space is serialized for a worker (``Parent.to_proto``): most of a
    chief's output. Redirecting ``sys.stdout`` around each call would also swallow the progress
    lines the serve loop prints meanwhile; marking the calling thread does not.
    """

    def __init__(self, stream):
        self._stream = stream
        self._inside = threading.local()

    def write(self, text):
        if getattr(self._inside, "call", False):
            return len(text)
        return self._stream.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):  # encoding, flush, isatty...: the replaced stream's
        return getattr(self._stream, name)

    def quiet(self, call: Callable) -> Callable:
        """``call``, with what it prints dropped."""

        @functools.wraps(call)
        def quieted(*args, **kwargs):
            self._inside.call = True
            try:
                return call(*args, **kwargs)
            finally:
                self._inside.call = False

        return quieted

    def restore(self) -> None:
        """Put the replaced stream back as ``sys.stdout`` (unless something replaced this)."""
        if sys.stdout is self:
            sys.stdout = self._stream


class _ExportEachTrial:
    """Rewrites ``trials.csv`` and ``top_configs/`` once a trial has ended (on the chief: its
    oracle saved the trial, or a worker logged it in ``trial_log.jsonl``), as a one-process search
    does after each trial. Called from the serve loop, never inside a gRPC call, so a worker's
    call never waits for it. ``--keep-models`` files are written at the end only."""

    def __init__(self, oracle, run_dir: Path, progress: Callable[[str], None]):
        self.oracle, self.run_dir, self.progress = oracle, Path(run_dir), progress
        self._seen = self._ended()
        self._warned = False

    def _ended(self) -> tuple[int, int]:
        # list(): the oracle's dict changes in gRPC's thread meanwhile.
        trials = list(self.oracle.trials.values())
        try:
            logged = (self.run_dir / TRIAL_LOG).stat().st_size
        except OSError:
            logged = 0
        return sum(trial.status in rundir.ENDED_STATUSES for trial in trials), logged

    def poll(self) -> bool:
        """Export when a trial ended since the last call; True when it did."""
        ended = self._ended()
        if ended == self._seen:
            return False
        self._seen = ended
        self.export()
        return True

    def export(self) -> None:
        from tuner.config import read_run_config
        from tuner.export import export_results

        try:
            # As run_search resolved it (objective, direction, textbook values).
            config, document = read_run_config(self.run_dir)
            export_results(self.run_dir, config, document.get("textbook_values"))
        except HpsearchError as error:
            if not self._warned:  # the export at the end says it again, as an error
                self.progress(f"Warning: trials.csv and top_configs/ not updated: {error}")
            self._warned = True


def serve_oracle(oracle, run_dir: Path, settings: ServeSettings,
                 progress: Callable[[str], None]) -> None:
    """Serve ``oracle`` to workers until its budget is spent and every worker has left.

    Called by ``run_search`` in place of training. Writes ``distributed.json`` (address, run id),
    gives the trial of a worker that is gone back to the queue, rewrites ``trials.csv`` and
    ``top_configs/`` after every trial that ends, keeps what KerasTuner prints inside the oracle's
    calls out of standard output, and stops with a grace period for calls in flight.

    Raises:
        SearchError: the address cannot be listened on.
    """
    import grpc
    from concurrent import futures
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    if not is_loopback(settings.host):
        progress(f"Warning: serving on {settings.host}, not loopback. The oracle port has no "
                 "authentication and no encryption: anyone who can reach it can read and corrupt "
                 "this search. Use a trusted network only.")
    oracle.run_id = uuid.uuid4().hex
    oracle.verbose = 0  # KerasTuner's trial display: the workers' progress lines say it
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    quiet = _QuietOracleCalls(sys.stdout)
    for name in _ORACLE_CALLS:  # before the server looks them up
        setattr(servicer, name, quiet.quiet(getattr(servicer, name)))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(_address(settings.host, settings.port))
    except RuntimeError:
        port = 0
    if not port:
        raise SearchError(
            f"Cannot listen on {_address(settings.host, settings.port)}: the port is in use or "
            "the address is not one of this machine's. Choose another port or address."
        )
    address = _address(settings.host, port)
    rundir.write_json(Path(run_dir) / DISTRIBUTED_FILE, {
        "run_id": oracle.run_id, "address": address, "chief_host": socket.gethostname(),
        "chief_pid": os.getpid(), "started": time.time(),
    })
    sys.stdout = quiet
    try:
        server.start()
        progress(f"Chief serving on {address}; add workers with: "
                 f"hpsearch worker {address} --run-dir {run_dir}")
        first_seen: dict[str, float] = {}
        last_worker_left = None
        exports = _ExportEachTrial(oracle, run_dir, progress)
        while True:
            time.sleep(0.5)
            exports.poll()
            now = time.time()
            beats = read_heartbeats(run_dir)
            for tuner_id in sorted(set(oracle.tuner_ids) | set(oracle.ongoing_trials)):
                first_seen.setdefault(tuner_id, now)
                beat = beats.get(tuner_id)
                if beat is None and now - first_seen[tuner_id] < settings.worker_timeout:
                    continue
                why = heartbeat_gone(beat, settings.worker_timeout, now)
                if not why or (beat and beat.get("state") == "done"
                               and tuner_id not in oracle.ongoing_trials):
                    continue
                trial_id = oracle.release_worker(tuner_id)
                first_seen.pop(tuner_id, None)
                again = f"; its trial {trial_id} goes back to the queue" if trial_id else ""
                progress(f"Worker {tuner_id} is gone ({why}){again}.")
            if not (servicer.stop_triggered and exit_chief(oracle)):
                last_worker_left = None
                continue
            if not oracle._retry_queue:
                break
            # A trial of a lost worker is still to run: wait a while for a worker to take it.
            last_worker_left = last_worker_left or now
            if now - last_worker_left > settings.worker_timeout:
                progress(f"Trial(s) {', '.join(oracle._retry_queue)} of a lost worker were not "
                         "run again (no worker left); run the same command again to run them.")
                break
    finally:
        server.stop(grace=STOP_GRACE_SECONDS).wait(STOP_GRACE_SECONDS + 1)
        quiet.restore()


# ---------------------------------------------------------------- a worker
@contextlib.contextmanager
def _kerastuner_environment(host: str, port: int, tuner_id: str):
    names = {"KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": str(port),
             "KERASTUNER_TUNER_ID": tuner_id}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _bounded_client_class():
    import grpc
    from keras_tuner.src.distribute.oracle_client import OracleClient

    def bounded(name):
        method = getattr(OracleClient, name)

        def call(self, *args, **kwargs):
            try:
                result = method(self, *args, **kwargs)
            except grpc.RpcError as error:
                raise _chief_error(error, self.address) from None
            if name == "create_trial" and result.status == "IDLE":
                time.sleep(1.0)  # the oracle waits on other trials: do not ask again at once
            return result

        return call

    # KerasTuner's client, its failures turned into clear errors.
    return type("BoundedOracleClient", (OracleClient,), {
        "address": "",
        **{name: bounded(name) for name in ("get_space", "update_space", "create_trial",
                                            "update_trial", "end_trial", "get_trial",
                                            "get_best_trials")},
    })


def _chief_error(error, address: str) -> ChiefUnreachableError:
    code = error.code() if hasattr(error, "code") else None
    name = getattr(code, "name", str(code))
    if name in ("DEADLINE_EXCEEDED", "UNAVAILABLE"):
        return ChiefUnreachableError(
            f"Lost the chief at {address} ({name}): it stopped, or did not answer in time. "
            "Finished trials are saved; a trial this worker was running is run again. Check the "
            "chief, then start this worker again (raise --call-timeout if the chief is slow)."
        )
    details = error.details() if hasattr(error, "details") else str(error)
    return ChiefUnreachableError(f"The chief at {address} answered with an error ({name}): "
                                 f"{str(details)[:300]}")


def _wait_for_chief(host: str, port: int, timeout: float):
    """The chief's run id, once it answers (at most ``timeout`` seconds)."""
    import grpc
    from keras_tuner.src import protos
    from tuner.engine import RUN_ID_PROBE

    address = _address(host, port)
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise ChiefUnreachableError(
            f"No chief answered at {address} within {timeout:.0f} s. Start it first with "
            f"`hpsearch tune ... --serve {address}`, check the address and the firewall, or wait "
            "longer with --connect-timeout."
        ) from None
    stub = protos.get_service_grpc().OracleStub(channel)
    try:
        response = stub.GetTrial(protos.get_service().GetTrialRequest(trial_id=RUN_ID_PROBE),
                                 wait_for_ready=True, timeout=timeout)
    except grpc.RpcError as error:
        raise ChiefUnreachableError(
            f"The server at {address} is not an hpsearch chief (or an older one): "
            f"{_chief_error(error, address)}"
        ) from None
    finally:
        channel.close()
    return response.trial.trial_id


def check_same_run(run_dir: Path, chief_run_id: str, address: str) -> None:
    """Refuse a worker whose run directory is not the chief's.

    Raises:
        RunDirError: ``run_dir`` was not served by a chief, or by another one than ``address``.
    """
    path = Path(run_dir) / DISTRIBUTED_FILE
    fix = ("Every worker must use the chief's run directory, on storage they all share (an NFS "
           "or other network mount): pass --run-dir the path of that folder as mounted on this "
           "machine.")
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not the run directory of the chief at {address}: it has "
                          f"no {DISTRIBUTED_FILE}. {fix}")
    mine = rundir.read_json(path, "the chief's address and run id").get("run_id")
    if mine != chief_run_id:
        raise RunDirError(
            f"{run_dir} is not the run directory of the chief at {address}: the chief's run id "
            f"is {chief_run_id}, this folder's is {mine}. {fix}")


def _limit_threads(threads: int | None, progress: Callable[[str], None]) -> None:
    if not threads or keras_backend() != "tensorflow":  # other backends: OMP_NUM_THREADS alone
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        progress(f"Warning: TensorFlow is already running here; {threads} thread(s) not applied.")


def run_worker(
    address: str,
    run_dir: str | os.PathLike,
    tuner_id: str | None = None,
    data_dir=None,
    progress: Callable[[str], None] | None = print,
    connect_timeout: float = 300.0,
    call_timeout: float = 600.0,
    threads: int | None = None,
) -> int:
    """Join the chief at ``address`` and train trials until the search's budget is spent.

    The run's settings are read from ``run_dir``, which must be the chief's (shared storage).

    Args:
        address: the chief's ``HOST:PORT``.
        run_dir: the chief's run directory, as mounted here.
        tuner_id: this worker's name (default ``worker-<host>-<pid>``); must not contain "chief".
            A worker started again with the same name takes back the trial it was running.
        data_dir: where to look for the dataset first.
        progress: called with each progress line (None: silence).
        connect_timeout: seconds to wait for the chief to answer at all (default 300: a chief
            loads its data before it serves).
        call_timeout: seconds to wait for any one answer of the chief (default 600).
        threads: TensorFlow's intra- and inter-op threads (default: TensorFlow's own choice).

    Returns:
        The number of trials this worker ran.

    Raises:
        UsageError: a bad address or tuner id.
        ChiefUnreachableError: no chief answered in time, or it was lost.
        RunDirError: ``run_dir`` is not the chief's.
    """
    progress = progress or (lambda line: None)
    host, port = parse_address(address)
    address = _address(host, port)
    tuner_id = tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
    if "chief" in tuner_id or not tuner_id.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"Worker id {tuner_id!r} must be letters, digits, '-' and '_', "
                         "without the word 'chief' (KerasTuner reserves it).")
    run_dir = Path(run_dir)
    from tuner.cli_errors import import_tensorflow

    import_tensorflow()
    import keras_tuner.src.distribute.oracle_client as oracle_client

    from search_spaces.precision import precision_policy
    from tuner.config import read_run_config
    from tuner.preparation import fit_arguments, prepare_search
    from tuner.engine import frozen_survivors, new_tuner, search_callbacks
    from tuner.observers import observers_for
    from tuner.spaces import resolve_recorded_space

    _limit_threads(threads, progress)
    chief_run_id = _wait_for_chief(host, port, connect_timeout)
    check_same_run(run_dir, chief_run_id, address)
    config, document = read_run_config(run_dir)
    # The chief recorded its space's choices (the clock images' polarity) in run.yaml; every
    # worker feeds its data the same way.
    prepared = prepare_search(config, data_dir, recorded=document.get("input_polarity") or {},
                              space=resolve_recorded_space(config, document))
    hypermodel = prepared.hypermodel
    heartbeat = _Heartbeat(run_dir, tuner_id).start()
    ended = "failed"
    oracle_client.TIMEOUT = call_timeout  # KerasTuner's own: an hour
    try:
        with _kerastuner_environment(host, port, tuner_id):
            import grpc

            try:
                tuner = new_tuner(config, hypermodel, run_dir)
            except grpc.RpcError as error:
                raise _chief_error(error, address) from None
            # What the run's settings ask to watch (TensorBoard, MLflow) is written by the
            # process that trains: each worker.
            observers = observers_for(config, run_dir)
            client = _bounded_client_class()(tuner.oracle._oracle)
            client.address = address
            tuner.oracle = client
            tuner._setup_tracking(
                run_dir, config, progress, lambda: None, worker=tuner_id,
                on_trial_state=heartbeat.update,
                workers_alive=lambda: sum(not heartbeat_gone(beat, 60.0)
                                          for beat in read_heartbeats(run_dir).values()),
                hooks=prepared.hooks, record=prepared.record, observers=observers,
            )
            progress(f"Worker {tuner_id} joined the chief at {address}.")
            heartbeat.update({"state": "waiting"})
            for observer in observers:
                observer.search_begin(run_dir, config, tuner.oracle.get_space().get_config())
            # The policy as the chief resolved it (run.yaml), so that every worker trains alike.
            try:
                with precision_policy(document.get("precision", config.precision)), \
                        frozen_survivors():
                    tuner.search(**fit_arguments(prepared, search_callbacks(config, run_dir)))
            finally:
                for observer in observers:
                    observer.search_end()
            ended = "done"
            progress(f"Worker {tuner_id}: the search is over, {tuner._trials_this_call} "
                     "trial(s) run here.")
            return tuner._trials_this_call
    finally:
        heartbeat.stop(ended)
