"""A worker of a distributed search: joins the chief (``run_worker``), asks it for trials and
trains them, on a channel whose every call carries the run's token, the chief's run id and the
worker's id (``_WorkerCredentials``).

Every wait is bounded and ends in a clear error (``_wait_for_chief``, the bounded oracle
client), and a chief that stops answering ends the worker within ``chief_timeout``
(``_ChiefWatch``). ``tuner.distributed`` tells the whole design.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import grpc

from search_spaces.devices import keras_backend
from tuner import rundir
from tuner.chief_protocol import (
    _RUN_ID_KEY,
    _TOKEN_KEY,
    _WORKER_KEY,
    ChiefRefusedError,
    ChiefUnreachableError,
    _address,
    _read_pem,
    _worker_token,
    parse_address,
)
from tuner.errors import RunDirError, UsageError
from tuner.heartbeats import _Heartbeat, heartbeat_gone, read_heartbeats
from tuner.rundir import DISTRIBUTED_FILE

# Seconds a worker goes on without an answer of its chief before it stops (run_worker).
CHIEF_TIMEOUT_SECONDS = 30.0


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
    import keras_tuner as kt
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_client import OracleClient

    class RefusedInTrial(ChiefRefusedError, kt.errors.FatalError):
        """A refusal met inside a trial (a report from a callback): KerasTuner fails the trial
        on any other error and asks for the next one; a FatalError ends the search."""

    def __init__(self, oracle, channel, address: str):
        OracleClient.__init__(self, oracle)
        # Every call goes through the worker's channel (token, run id, worker id; TLS); the
        # plain channel KerasTuner's client made is never used, so it never connects.
        self.stub = protos.get_service_grpc().OracleStub(channel)
        self.address = address

    def bounded(name):
        method = getattr(OracleClient, name)

        def call(self, *args, **kwargs):
            try:
                result = method(self, *args, **kwargs)
            except grpc.RpcError as error:
                failure = _chief_error(error, self.address)
                if isinstance(failure, ChiefRefusedError):
                    failure = RefusedInTrial(str(failure))
                raise failure from None
            if name == "create_trial" and result.status == "IDLE":
                time.sleep(1.0)  # the oracle waits on other trials: do not ask again at once
            return result

        return call

    # KerasTuner's client on the worker's channel, its failures turned into clear errors.
    return type("BoundedOracleClient", (OracleClient,), {
        "__init__": __init__,
        **{name: bounded(name) for name in ("get_space", "update_space", "create_trial",
                                            "update_trial", "end_trial", "get_trial",
                                            "get_best_trials")},
    })


# A refusal of the chief (_ChiefGuard): asking again would be refused again.
_REFUSALS = ("UNAUTHENTICATED", "PERMISSION_DENIED", "FAILED_PRECONDITION")


def _chief_error(error, address: str) -> ChiefUnreachableError | ChiefRefusedError:
    code = error.code() if hasattr(error, "code") else None
    name = getattr(code, "name", str(code))
    if name in ("DEADLINE_EXCEEDED", "UNAVAILABLE"):
        return ChiefUnreachableError(
            f"Lost the chief at {address} ({name}): it stopped, or did not answer in time. "
            "Finished trials are saved; a trial this worker was running is run again. Check the "
            "chief, then start this worker again (raise --call-timeout if the chief is slow)."
        )
    details = error.details() if hasattr(error, "details") else str(error)
    if name in _REFUSALS:
        return ChiefRefusedError(f"The chief at {address} refused this worker ({name}): "
                                 f"{str(details)[:500]}")
    return ChiefUnreachableError(f"The chief at {address} answered with an error ({name}): "
                                 f"{str(details)[:300]}")


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    """A call's details, rebuilt with more metadata (gRPC's documented interceptor pattern)."""


class _WorkerCredentials(grpc.UnaryUnaryClientInterceptor):
    """Adds the run's token, this worker's id and (once known) the chief's run id to every call
    made on a worker's channel: what ``_ChiefGuard`` checks."""

    def __init__(self, token: str, tuner_id: str, run_id: str | None = None):
        self._metadata = ((_TOKEN_KEY, token), (_WORKER_KEY, tuner_id),
                          *(((_RUN_ID_KEY, run_id),) if run_id else ()))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(_CallDetails(
            details.method, details.timeout, tuple(details.metadata or ()) + self._metadata,
            details.credentials, details.wait_for_ready, details.compression), request)


def _chief_channel(address: str, tls_ca: str | os.PathLike | None):
    """A channel to the chief: TLS checked against ``tls_ca`` when given, else plain."""
    # gRPC waits up to 2 minutes between attempts to reconnect: a chief started again (or its
    # successor on the port) is seen within seconds instead.
    options = [("grpc.max_reconnect_backoff_ms", 2000)]
    if tls_ca is None:
        return grpc.insecure_channel(address, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=_read_pem(tls_ca, "--tls-ca"))
    return grpc.secure_channel(address, credentials, options=options)


def _wait_for_chief(host: str, port: int, timeout: float, run_dir: Path, tuner_id: str,
                    tls_ca: str | os.PathLike | None = None) -> tuple[str, str]:
    """The chief's run id and the run's token, once the chief answers (at most ``timeout``
    seconds). The token is read once the chief serves: a chief writes it before it listens."""
    from keras_tuner.src import protos

    from tuner.oracles import RUN_ID_PROBE

    address = _address(host, port)
    channel = _chief_channel(address, tls_ca)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        tls = ("with TLS: is the chief serving with --tls-cert, and is --tls-ca the CA of its "
               "certificate?" if tls_ca else "without TLS: if the chief serves with --tls-cert, "
               "pass --tls-ca.")
        raise ChiefUnreachableError(
            f"No chief answered at {address} within {timeout:.0f} s. Start it first with "
            f"`hpsearch tune ... --serve {address}`, check the address and the firewall, or wait "
            f"longer with --connect-timeout. This worker connects {tls}"
        ) from None
    try:
        token = _worker_token(run_dir)
        stub = protos.get_service_grpc().OracleStub(
            grpc.intercept_channel(channel, _WorkerCredentials(token, tuner_id)))
        response = stub.GetTrial(protos.get_service().GetTrialRequest(trial_id=RUN_ID_PROBE),
                                 wait_for_ready=True, timeout=timeout)
    except grpc.RpcError as error:
        failure = _chief_error(error, address)
        if isinstance(failure, ChiefRefusedError):
            raise failure from None
        raise ChiefUnreachableError(
            f"The server at {address} is not an hpsearch chief (or an older one): {failure}"
        ) from None
    finally:
        channel.close()
    return response.trial.trial_id, token


class _ChiefWatch:
    """Ends a worker whose chief is gone. A thread pings the chief (the run-id probe, which the
    chief answers without waiting for its oracle) every few seconds; once it has not answered
    for ``bound`` seconds, or refused the ping (its port now serves another run, or the same
    run started again), ``on_lost`` is called with the reason, once."""

    def __init__(self, ping: Callable[[float], Any], bound: float,
                 on_lost: Callable[[str], None], address: str):
        self.ping, self.bound, self.on_lost, self.address = ping, float(bound), on_lost, address
        self.interval = min(5.0, self.bound / 5)  # a few pings within the bound
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="hpsearch-chief-watch")

    def start(self) -> _ChiefWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.interval * 2 + 1)

    def _watch(self) -> None:
        answered = next_ping = time.monotonic()
        while True:
            # One ping every interval, however long a failing one waited (at most an interval):
            # the worker stops at most an interval after the bound.
            next_ping = max(next_ping + self.interval, time.monotonic())
            if self._stop.wait(next_ping - time.monotonic()):
                return
            try:
                self.ping(self.interval)
                answered = time.monotonic()
                continue
            except grpc.RpcError as error:
                failure = _chief_error(error, self.address)
            if isinstance(failure, ChiefRefusedError):
                reason = f"{failure} This worker stops: the chief it joined is gone."
            elif time.monotonic() - answered >= self.bound:
                reason = (f"Lost the chief at {self.address}: it has not answered for "
                          f"{self.bound:.0f} s (it stopped, or the network is down). This "
                          "worker stops; finished trials are saved, and its trial runs again "
                          "once a chief of this run serves and a worker joins it.")
            else:
                continue
            if not self._stop.is_set():
                self.on_lost(reason)
            return


def _leave_lost_chief(heartbeat: _Heartbeat, reason: str) -> None:
    # The training thread cannot be interrupted (an epoch runs in TensorFlow): end the process
    # from the watch's thread, after the heartbeat and the one error line are out.
    heartbeat.stop("lost chief", keep_trial=True)  # `hpsearch status`: the trial it left
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.write(f"Error: {reason}\n")
        sys.stderr.flush()
    os._exit(ChiefUnreachableError.exit_code)


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
    chief_timeout: float = CHIEF_TIMEOUT_SECONDS,
    tls_ca: str | os.PathLike | None = None,
    retirement=None,
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
        chief_timeout: once joined, seconds without an answer of the chief after which this
            worker stops (default 30): its heartbeat says "lost chief", and the process exits
            with code 1 and one ``Error:`` line, even in the middle of a trial.
        tls_ca: PEM file of the CA that signed the chief's TLS certificate (the certificate
            itself when self-signed), for a chief serving with ``tls_cert``; None: plain gRPC.
        retirement: a ``tuner.recycling.Retirement``: leave the search to a fresh process under
            the same id once it is due, after a trial reported to the chief (its heartbeat says
            "retired", and ``ProcessRetired`` is raised), for a launcher that starts that
            process (``tuner.parallel.run_parallel_search``). Default None: train until the
            budget is spent.

    Every call carries the run's token (``HPSEARCH_RUN_TOKEN``, else the run directory's
    ``run_token`` file), the chief's run id and ``tuner_id``.

    Returns:
        The number of trials this worker ran.

    Raises:
        UsageError: a bad address, tuner id, token or TLS file.
        ChiefUnreachableError: no chief answered in time, or it was lost.
        ChiefRefusedError: the chief refused a call (another run, not the run's token, or a
            report for a trial that is not this worker's).
        RunDirError: ``run_dir`` is not the chief's, or its token cannot be read.
        tuner.recycling.ProcessRetired: ``retirement`` says this process is due.
    """
    from tuner.recycling import ProcessRetired

    progress = progress or (lambda line: None)
    host, port = parse_address(address)
    address = _address(host, port)
    tuner_id = tuner_id or f"worker-{socket.gethostname()}-{os.getpid()}"
    if "chief" in tuner_id or not tuner_id.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"Worker id {tuner_id!r} must be letters, digits, '-' and '_', "
                         "without the word 'chief' (KerasTuner reserves it).")
    if chief_timeout <= 0:
        raise UsageError(f"chief_timeout must be positive, got {chief_timeout}.")
    run_dir = Path(run_dir)
    from tuner.cli_errors import import_tensorflow

    import_tensorflow()
    import keras_tuner.src.distribute.oracle_client as oracle_client
    from keras_tuner.src import protos

    from search_spaces.precision import precision_policy
    from tuner.config import read_run_config
    from tuner.preparation import fit_arguments, prepare_search
    from tuner.engine import frozen_survivors, new_tuner, search_callbacks
    from tuner.observers import observers_for
    from tuner.oracles import RUN_ID_PROBE
    from tuner.spaces import resolve_recorded_space

    _limit_threads(threads, progress)
    chief_run_id, token = _wait_for_chief(host, port, connect_timeout, run_dir, tuner_id, tls_ca)
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
    channel = grpc.intercept_channel(_chief_channel(address, tls_ca),
                                     _WorkerCredentials(token, tuner_id, chief_run_id))
    probe = protos.get_service().GetTrialRequest(trial_id=RUN_ID_PROBE)
    pings = protos.get_service_grpc().OracleStub(channel)
    watch = _ChiefWatch(
        lambda seconds: pings.GetTrial(probe, timeout=seconds, wait_for_ready=True),
        chief_timeout, functools.partial(_leave_lost_chief, heartbeat), address).start()
    try:
        with _kerastuner_environment(host, port, tuner_id):
            try:
                tuner = new_tuner(config, hypermodel, run_dir)
            except grpc.RpcError as error:
                raise _chief_error(error, address) from None
            # What the run's settings ask to watch (TensorBoard, MLflow) is written by the
            # process that trains: each worker.
            observers = observers_for(config, run_dir)
            if retirement is not None:
                observers.append(retirement)
            tuner.oracle = _bounded_client_class()(tuner.oracle._oracle, channel, address)
            tuner._setup_tracking(
                run_dir, config, progress,
                retirement.after_trial if retirement is not None else lambda: None,
                worker=tuner_id, on_trial_state=heartbeat.update,
                workers_alive=lambda: sum(not heartbeat_gone(beat, 60.0)
                                          for beat in read_heartbeats(run_dir).values()),
                hooks=prepared.hooks, record=prepared.record, observers=observers,
            )
            if retirement is not None:
                retirement.attach(tuner)
            progress(f"Worker {tuner_id} joined the chief at {address}.")
            heartbeat.update({"state": "waiting"})
            for observer in observers:
                observer.search_begin(run_dir, config, tuner.oracle.get_space().get_config())
            # The policy as the chief resolved it (run.yaml), so that every worker trains alike.
            try:
                with precision_policy(document.get("precision", config.precision)), \
                        frozen_survivors():
                    tuner.search(**fit_arguments(prepared, search_callbacks(config, run_dir)))
            except ProcessRetired:
                ended = "retired"
                raise
            finally:
                watch.stop()  # the search is over: the chief stops, and may be gone already
                for observer in observers:
                    observer.search_end()
            ended = "done"
            progress(f"Worker {tuner_id}: the search is over, {tuner._trials_this_call} "
                     "trial(s) run here.")
            return tuner._trials_this_call
    finally:
        watch.stop()
        heartbeat.stop(ended)
        channel.close()
