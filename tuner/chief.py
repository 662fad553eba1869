"""The chief of a distributed search: serves KerasTuner's oracle over gRPC to the run's workers
and trains nothing (``serve_oracle``, which ``run_search(..., serve=ServeSettings(...))`` calls).

It binds loopback unless told otherwise (``check_bind``), speaks TLS with the user's certificate
and key, answers only calls that carry the run's token and that a worker makes for its own trial
(``_ChiefGuard``), gives the trial of a gone worker back to the queue, rewrites ``trials.csv``
and ``top_configs/`` after every trial, and keeps KerasTuner's prints out of its output.
``tuner.distributed`` tells the whole design.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import ipaddress
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import grpc

from tuner import rundir
from tuner.chief_protocol import (
    _RUN_ID_KEY,
    _TOKEN_KEY,
    _WORKER_KEY,
    TOKEN_ENV,
    _address,
    _read_pem,
    run_token,
)
from tuner.errors import HpsearchError, SearchError, UsageError
from tuner.heartbeats import heartbeat_gone, read_heartbeats
from tuner.rundir import DISTRIBUTED_FILE, RUN_TOKEN_FILE, TRIAL_LOG

# Seconds the chief's server keeps answering calls already in flight when it stops.
STOP_GRACE_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """Where and how the chief of a distributed search serves its oracle.

    Attributes:
        host: the interface to listen on. Loopback by default: only processes of this machine
            can connect. Anything else needs ``allow_remote``.
        port: the TCP port (0: any free port, told in ``distributed.json``).
        allow_remote: listen on a non-loopback interface. Every call must carry the run's
            token, but without TLS the token and the search cross the network in clear text:
            give ``tls_cert`` and ``tls_key`` too, or use a network you trust.
        worker_timeout: seconds without a heartbeat after which a worker is taken for gone and its
            trial is given to another worker (its heartbeat is rewritten every 2 s while it
            trains, so this only has to cover a stalled file system or machine).
        tls_cert, tls_key: PEM files of the chief's certificate (its chain, leaf first) and
            private key: the port then speaks gRPC's TLS, and workers need ``tls_ca``. Both or
            neither.
    """

    host: str = "127.0.0.1"  # loopback: no other machine can connect
    port: int = 0  # 0: a free port chosen by the system
    allow_remote: bool = False  # off loopback, see above
    worker_timeout: float = 120.0  # 60 missed heartbeats: a worker stalled, not slow
    tls_cert: str | None = None  # None: plain gRPC (loopback, or a trusted network)
    tls_key: str | None = None

    def __post_init__(self):
        check_bind(self.host, self.allow_remote)
        if not 0 <= int(self.port) <= 65535:
            raise UsageError(f"Port {self.port} is not a TCP port; expected 1 to 65535.")
        if self.worker_timeout <= 0:
            raise UsageError(f"worker_timeout must be positive, got {self.worker_timeout}.")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UsageError("TLS needs both the certificate and its private key: pass "
                             "--tls-cert FILE and --tls-key FILE together.")
        if self.tls_cert is not None:  # found before the data is loaded, not by gRPC later
            _check_tls_pair(self.tls_cert, self.tls_key)


def _check_tls_pair(cert: str | os.PathLike, key: str | os.PathLike) -> None:
    import ssl

    _read_pem(cert, "--tls-cert")
    _read_pem(key, "--tls-key")
    try:  # the standard library's own check that the key is the certificate's
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, OSError) as error:
        raise UsageError(
            f"--tls-cert {cert} and --tls-key {key} cannot serve TLS together ({error}): give "
            "a PEM certificate and the unencrypted private key it was made for.") from None


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
            "authentication and no encryption of its own. hpsearch adds a run token, but off "
            "this machine only TLS keeps the token and the search private. Serve on 127.0.0.1 "
            "(the default) and reach it through an SSH tunnel, or pass --allow-remote with "
            "--tls-cert FILE --tls-key FILE (or on a network you trust)."
        )


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


# ---------------------------------------------------------------- what the chief lets through
class _ChiefGuard(grpc.ServerInterceptor):
    """The chief's checks of every call, made before KerasTuner's servicer sees it.

    A call without the run's token is refused (UNAUTHENTICATED), one for another run id
    (PERMISSION_DENIED, naming the run this chief serves); only the run-id probe may come
    without a run id, as a worker learns it from that probe. CreateTrial asks for the caller's
    own id only; UpdateTrial and EndTrial name the trial the chief handed to the caller and that
    has not ended (FAILED_PRECONDITION); EndTrial brings back the hyperparameter values the trial
    was handed out with (PERMISSION_DENIED), since KerasTuner's ``end_trial`` would copy the
    sender's over the stored trial. The probe (a worker's ping, too) is answered here without
    waiting for the oracle; every other call reaches the servicer one at a time, as on
    KerasTuner's own one-thread server.
    """

    def __init__(self, oracle, token: str, run_dir: Path,
                 quiet: Callable[[Callable], Callable] = lambda call: call):
        from keras_tuner.src import protos

        from tuner.oracles import RUN_ID_PROBE

        self.oracle, self.run_dir = oracle, Path(run_dir)
        self._token = token.encode("utf-8")
        self._protos, self._probe = protos, RUN_ID_PROBE
        self._serial = threading.Lock()
        # Parsing a trial prints, as serializing one does (see _QuietOracleCalls).
        self._check_trial = quiet(self._check_trial)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        caller = {entry.key: entry.value
                  for entry in handler_call_details.invocation_metadata or ()}

        def guarded(request, context):
            probe = method == "GetTrial" and request.trial_id == self._probe
            self._check_caller(caller, probe, context)
            if probe:
                return self._run_id_answer()
            with self._serial:
                self._check_trial(method, request, caller[_WORKER_KEY], context)
                return handler.unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def _check_caller(self, caller: dict[str, Any], probe: bool, context) -> None:
        token = caller.get(_TOKEN_KEY)
        if not token:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, (
                "This call carries no run token. The chief answers only its run's workers: start "
                "them with `hpsearch worker` on the chief's run directory, which reads the token "
                f"from its {RUN_TOKEN_FILE} file (or from {TOKEN_ENV})."))
        if not hmac.compare_digest(str(token).encode("utf-8"), self._token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, (
                "The run token does not match this chief's: it serves another run, or was given "
                f"another {TOKEN_ENV}. Give the worker the token of the run it should join (its "
                f"run directory's {RUN_TOKEN_FILE} file, or the chief's {TOKEN_ENV})."))
        run_id = caller.get(_RUN_ID_KEY)
        if run_id != self.oracle.run_id and not (probe and run_id is None):
            asked = f"not run {run_id}" if run_id else "and this call names no run"
            context.abort(grpc.StatusCode.PERMISSION_DENIED, (
                f"This chief serves run {self.oracle.run_id} ({self.run_dir}), {asked}: the chief "
                "that worker joined stopped or was started again. Start the worker again to join "
                "this run."))
        if not caller.get(_WORKER_KEY):
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "This call names no worker; start workers with `hpsearch worker`.")

    def _check_trial(self, method: str, request, worker: str, context) -> None:
        if method == "CreateTrial" and request.tuner_id != worker:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, (
                f"Worker {worker} asked for a trial as {request.tuner_id!r}: a worker asks for "
                "trials under its own id only."))
        if method not in ("UpdateTrial", "EndTrial"):
            return
        trial_id = request.trial_id if method == "UpdateTrial" else request.trial.trial_id
        handed = self.oracle.ongoing_trials.get(worker)
        if handed is None or handed.trial_id != trial_id:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, (
                f"Trial {trial_id} is not running on worker {worker} ({self._whose(trial_id)}): "
                "its report is refused. This worker stops; start it again to take a new trial."))
        if method == "EndTrial":
            changed = self._changed_values(handed, request.trial)
            if changed:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, (
                    f"Worker {worker} ended trial {trial_id} with other hyperparameter values "
                    f"than the chief handed out ({'; '.join(changed[:5])}): the report is "
                    "refused; the trial keeps its values, and runs again once this worker is "
                    "gone."))

    def _whose(self, trial_id: str) -> str:
        trial = self.oracle.trials.get(trial_id)
        if trial is None:
            return "no such trial"
        if trial.status in rundir.ENDED_STATUSES:
            return f"it has ended, {trial.status}"
        for worker, running in list(self.oracle.ongoing_trials.items()):
            if running.trial_id == trial_id:
                return f"the chief handed it to {worker}"
        return "it waits to be run again: the chief took this worker for gone"

    def _changed_values(self, handed, sent_proto) -> list[str]:
        """What an EndTrial changes of the values its trial was handed out with. A value the
        trial was not handed may be added with its default only: what a worker's build gives a
        hyperparameter it registers (declared in another scope, or new to the space)."""
        import keras_tuner as kt

        missing = object()
        sent_space = kt.engine.trial.Trial.from_proto(sent_proto).hyperparameters
        sent, kept = sent_space.values, handed.hyperparameters.values
        changed = [f"{name}: {kept[name]!r} handed, {sent.get(name, '-')!r} sent"
                   for name in sorted(kept) if sent.get(name, missing) != kept[name]]
        for name in sorted(set(sent) - set(kept)):
            defaults = ([hp.default for hp in self.oracle.hyperparameters.space if hp.name == name]
                        or [hp.default for hp in sent_space.space if hp.name == name])
            if sent[name] not in defaults:
                changed.append(f"{name}: not handed, {sent[name]!r} sent, not its default")
        return changed

    def _run_id_answer(self):
        proto = self._protos.get_proto()
        return self._protos.get_service().GetTrialResponse(
            trial=proto.Trial(trial_id=str(self.oracle.run_id), status=proto.TrialStatus.IDLE))


def serve_oracle(oracle, run_dir: Path, settings: ServeSettings,
                 progress: Callable[[str], None]) -> None:
    """Serve ``oracle`` to workers until its budget is spent and every worker has left.

    Called by ``run_search`` in place of training. Writes ``distributed.json`` (address, run id)
    and the run's token (``run_token``), answers only calls that carry both and that a worker makes
    for its own trial (``_ChiefGuard``), over TLS when ``settings`` name a certificate and key,
    gives the trial of a worker that is gone back to the queue, rewrites ``trials.csv`` and
    ``top_configs/`` after every trial that ends, keeps what KerasTuner prints inside the oracle's
    calls out of standard output, and stops with a grace period for calls in flight.

    Raises:
        SearchError: the address cannot be listened on.
        UsageError: the TLS files cannot be read, or are not a certificate and its key.
    """
    from concurrent import futures

    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    credentials = None
    if settings.tls_cert is not None:
        credentials = grpc.ssl_server_credentials([(_read_pem(settings.tls_key, "--tls-key"),
                                                    _read_pem(settings.tls_cert, "--tls-cert"))])
    elif not is_loopback(settings.host):
        progress(f"Warning: serving on {settings.host} without TLS. Calls need the run's token, "
                 "but the token and the search cross the network in clear text: anyone who can "
                 "watch it can read them, then corrupt this search. Pass --tls-cert and "
                 "--tls-key, or use a network you trust.")
    oracle.run_id = uuid.uuid4().hex
    oracle.verbose = 0  # KerasTuner's trial display: the workers' progress lines say it
    token = run_token(run_dir, progress)
    quiet = _QuietOracleCalls(sys.stdout)
    # Threads for the workers' pings, which the guard answers without the oracle; the oracle's
    # calls still run one at a time (the guard's lock).
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         interceptors=[_ChiefGuard(oracle, token, run_dir, quiet.quiet)])
    servicer = OracleServicer(oracle)
    for name in _ORACLE_CALLS:  # before the server looks them up
        setattr(servicer, name, quiet.quiet(getattr(servicer, name)))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    target = _address(settings.host, settings.port)
    try:
        port = (server.add_secure_port(target, credentials) if credentials is not None
                else server.add_insecure_port(target))
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
        tls = (f" --tls-ca FILE (the CA that signed {settings.tls_cert}, or that file if it is "
               "self-signed)") if credentials is not None else ""
        progress(f"Chief serving on {address}; add workers with: "
                 f"hpsearch worker {address} --run-dir {run_dir}{tls}")
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
