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
* only the run's own workers reach its chief (``_ChiefGuard``, a gRPC server interceptor that
  sees each call before KerasTuner's servicer does): every call carries the run's token
  (``run_token``: made by the chief and kept in the run directory, mode 0600, or given by
  ``HPSEARCH_RUN_TOKEN``), the chief's run id and the worker's id; a worker asks for trials under
  its own id only, reports only for the trial the chief handed to it while that trial runs, and
  cannot change its hyperparameters (KerasTuner's ``end_trial`` copies the sender's over them);
* the chief binds loopback unless told otherwise, and speaks gRPC's TLS with the user's
  certificate and key (``ServeSettings.tls_cert``/``tls_key``), which workers check
  (``tls_ca``);
* a worker whose chief has not answered for ``chief_timeout`` seconds (30 by default), or whose
  port now answers for another run, stops within that bound (``_ChiefWatch``), even in the
  middle of an epoch: its heartbeat says "lost chief" and the process exits with one line;
* the chief rewrites ``trials.csv`` and ``top_configs/`` after every trial that ends, as a
  one-process search does, so a killed parallel search keeps its table;
* what KerasTuner prints while answering a call (``conditions.py`` prints a conditional
  hyperparameter's value with a bare ``print`` whenever a trial is sent) stays out of the chief's
  output; its progress lines stay in.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hmac
import ipaddress
import json
import os
import secrets
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import grpc

from search_spaces.devices import keras_backend
from tuner import rundir
from tuner.errors import HpsearchError, RunDirError, SearchError, UsageError
from tuner.rundir import DISTRIBUTED_FILE, RUN_TOKEN_FILE, TRIAL_LOG, WORKERS_DIR

__all__ = [
    "ChiefRefusedError",
    "ChiefUnreachableError",
    "ServeSettings",
    "parse_address",
    "run_token",
    "run_worker",
    "serve_oracle",
]

# How often a worker rewrites its heartbeat file, and how often the chief looks at them.
HEARTBEAT_SECONDS = 2.0
# Seconds the chief's server keeps answering calls already in flight when it stops.
STOP_GRACE_SECONDS = 5.0
# Seconds a worker goes on without an answer of its chief before it stops (run_worker).
CHIEF_TIMEOUT_SECONDS = 30.0
# Gives the run's token to a chief and its workers instead of the run directory's file.
TOKEN_ENV = "HPSEARCH_RUN_TOKEN"
# The gRPC metadata every call of a worker carries (keys in lower case, as gRPC requires).
_TOKEN_KEY, _RUN_ID_KEY, _WORKER_KEY = "hpsearch-token", "hpsearch-run-id", "hpsearch-worker"


class ChiefUnreachableError(HpsearchError, RuntimeError):
    """A worker cannot reach the chief, or lost it."""


class ChiefRefusedError(HpsearchError, RuntimeError):
    """The chief refused a worker's call: not the run's token, another run, or a report for a
    trial that is not the worker's to report. The worker stops; it does not ask again."""


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

    def stop(self, state: str, keep_trial: bool = False) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=HEARTBEAT_SECONDS * 2)
        self.update({"state": state, **({} if keep_trial else {"trial_id": None, "epoch": None})})

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
    said it stopped, or it was not seen for ``timeout`` seconds. One that retired counts as alive
    for ``timeout`` seconds, its replacement's time to start (``tuner.recycling``)."""
    if beat is None:
        return "no heartbeat file"
    now = time.time() if now is None else now
    if beat.get("state") in ("done", "failed"):
        return f"it {'finished' if beat['state'] == 'done' else 'failed'}"
    if beat.get("state") == "lost chief":
        return "it lost its chief"
    if beat.get("state") == "retired":
        # Its launcher starts a fresh process under the same id at once (tuner.recycling).
        seen = now - float(beat.get("updated") or 0)
        return "" if seen <= timeout else "it retired and no process took its place"
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


# ---------------------------------------------------------------- the run's token
def _checked_token(token: str, where: str) -> str:
    token = token.strip()
    if len(token) < 16 or not (token.isascii() and token.isprintable()):
        raise UsageError(
            f"The run token from {where} must be at least 16 printable ASCII characters, got "
            f"{len(token)} character(s). Make one with: python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\"")
    return token


def run_token(run_dir: str | os.PathLike, progress: Callable[[str], None] | None = None) -> str:
    """The token every call of the run's workers carries: ``HPSEARCH_RUN_TOKEN`` when set, else
    the run directory's ``run_token`` file, made on first use (``secrets.token_urlsafe(32)``,
    written atomically, readable by its owner only) and kept for later chiefs of the same run.

    A file that others may read is replaced by a new token (``progress`` says so).

    Raises:
        UsageError: ``HPSEARCH_RUN_TOKEN`` is too short or not printable ASCII.
        RunDirError: the file cannot be written.
    """
    given = os.environ.get(TOKEN_ENV, "")
    if given.strip():
        return _checked_token(given, TOKEN_ENV)
    path = Path(run_dir) / RUN_TOKEN_FILE
    try:
        exposed = path.stat().st_mode & 0o077
        kept = "" if exposed else path.read_text(encoding="utf-8").strip()
    except OSError:
        exposed, kept = 0, ""
    if kept:
        return kept
    if exposed and progress is not None:
        progress(f"Warning: {path} could be read by other users; it now holds a new token "
                 "(workers given the old one must be given the new one).")
    token = secrets.token_urlsafe(32)
    rundir.write_private_text(path, token + "\n")
    return token


def _worker_token(run_dir: Path) -> str:
    given = os.environ.get(TOKEN_ENV, "")
    if given.strip():
        return _checked_token(given, TOKEN_ENV)
    path = Path(run_dir) / RUN_TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RunDirError(
            f"Cannot read the run's token {path} ({error.strerror or error}). The chief writes it "
            "when it starts serving, readable by its owner only: run this worker as the same "
            f"user on the chief's run directory, or give it the token in {TOKEN_ENV} (the "
            "file's content, or the chief's own HPSEARCH_RUN_TOKEN)."
        ) from None
    return _checked_token(token, str(path))


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

        from tuner.engine import RUN_ID_PROBE

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


def _read_pem(path: str | os.PathLike, option: str) -> bytes:
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"Cannot read {option} {path}: {error.strerror or error}.") from None
    if b"-----BEGIN " not in content:
        raise UsageError(f"{option} {path} is not a PEM file (no '-----BEGIN' line): give the "
                         "certificate or key in PEM form, as openssl writes it.")
    return content


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

    from tuner.engine import RUN_ID_PROBE

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
    from tuner.engine import RUN_ID_PROBE, frozen_survivors, new_tuner, search_callbacks
    from tuner.observers import observers_for
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
