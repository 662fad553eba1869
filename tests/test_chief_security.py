"""Only a run's own workers reach its chief (issue 38, items 1 and 2): the run token, calls bound
to the caller's trial, TLS, and workers that stop when their chief is gone. Everything addresses
127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import math
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import wait_for, write_fashion_mnist
from tuner.cli import main
from tuner.config import RunConfig, write_run_config
from tuner.distributed import (
    ChiefRefusedError,
    ServeSettings,
    read_heartbeats,
    run_token,
    serve_oracle,
)
from tuner.errors import RunDirError, UsageError
from tuner.worker import _ChiefWatch, _wait_for_chief, _worker_token
from tuner.status import format_status, search_status

CODE = grpc.StatusCode


# ---------------------------------------------------------------- a chief in a thread
def _oracle(project: Path, max_trials: int):
    """The chief's oracle of a random search over a tiny space with a conditional value."""
    import keras_tuner as kt

    from tuner.oracles import _RandomOracle

    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["sgd", "adam"], default="adam")
    with hp.conditional_scope("optimizer", ["adam"]):
        hp.Float("beta_1", 0.8, 0.99, default=0.9)
    hp.Int("layers", 1, 3, default=2)
    oracle = _RandomOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=max_trials,
                           seed=1, hyperparameters=hp)
    oracle._set_project_dir(str(project.parent), project.name)
    return oracle


class _Chief:
    """``serve_oracle`` of a ``max_trials`` search in ``run_dir``, in a thread."""

    def __init__(self, run_dir: Path, max_trials: int = 2, **settings):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(run_dir, RunConfig(space="mlp", tuner="random", max_trials=max_trials))
        self.run_dir, self.lines = run_dir, []
        self.oracle = _oracle(run_dir / "kt", max_trials)
        self.thread = threading.Thread(
            target=serve_oracle, daemon=True,
            args=(self.oracle, run_dir, ServeSettings(worker_timeout=600.0, **settings),
                  self.lines.append))
        self.thread.start()
        wait_for(lambda: any(line.startswith("Chief serving") for line in self.lines), 30,
                  "the chief serving")
        served = json.loads((run_dir / "distributed.json").read_text())
        self.address, self.run_id = served["address"], served["run_id"]
        self.port = int(self.address.rsplit(":", 1)[1])
        self.token = (run_dir / "run_token").read_text().strip()

    def caller(self, worker="worker0", token=None, run_id=None, credentials=None):
        return _Caller(self.address, self.token if token is None else token,
                       self.run_id if run_id is None else run_id, worker, credentials)

    def trials_written(self, rows: int) -> None:
        wait_for(lambda: (self.run_dir / "trials.csv").is_file()
                  and len(pd.read_csv(self.run_dir / "trials.csv")) == rows, 10,
                  f"trials.csv with {rows} row(s)")


class _Caller:
    """A client of the chief's port speaking KerasTuner's protocol, with the metadata a worker
    sends (an empty value: left out)."""

    def __init__(self, address, token, run_id, worker, credentials=None):
        from keras_tuner.src import protos

        self.service, self.status = protos.get_service(), protos.get_proto().TrialStatus
        self.channel = (grpc.secure_channel(address, credentials) if credentials
                        else grpc.insecure_channel(address))
        self.stub = protos.get_service_grpc().OracleStub(self.channel)
        self.metadata = tuple((key, value) for key, value in (
            ("hpsearch-token", token), ("hpsearch-run-id", run_id), ("hpsearch-worker", worker))
            if value)
        self.worker = worker

    def call(self, method: str, request):
        return getattr(self.stub, method)(request, metadata=self.metadata, timeout=10)

    def get_space(self):
        return self.call("GetSpace", self.service.GetSpaceRequest())

    def create(self, tuner_id=None):
        return self.call("CreateTrial", self.service.CreateTrialRequest(
            tuner_id=tuner_id or self.worker)).trial

    def update(self, trial_id: str, score: float):
        return self.call("UpdateTrial", self.service.UpdateTrialRequest(
            trial_id=trial_id, metrics={"val_accuracy": score}, step=0))

    def end(self, trial, score: float | None = None):
        if score is not None:
            self.update(trial.trial_id, score)
        request = self.service.EndTrialRequest()
        request.trial.CopyFrom(trial)
        request.trial.status = self.status.COMPLETED
        return self.call("EndTrial", request)


def _with_values(trial, **values):
    """``trial`` (a proto) with some hyperparameter values changed, as a forger sends it."""
    import keras_tuner as kt

    changed = kt.engine.trial.Trial.from_proto(trial)
    changed.hyperparameters.values.update(values)
    return changed.to_proto()


def _values(trial) -> dict:
    import keras_tuner as kt

    return kt.engine.trial.Trial.from_proto(trial).hyperparameters.values


def _files(folder: Path, names=None) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()
            and (names is None or any(str(path.relative_to(folder)).startswith(n) for n in names))}


def _refused(call, code, text: str = "") -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    assert text in caught.value.details()
    return caught.value.details()


# ---------------------------------------------------------------- the hostile client
def test_hostile_calls_are_refused_and_change_no_file(tmp_path):
    chief = _Chief(tmp_path / "run", max_trials=2)
    assert stat.S_IMODE((chief.run_dir / "run_token").stat().st_mode) == 0o600
    honest = chief.caller()
    honest.get_space()
    first = honest.create()
    honest.end(first, score=0.5)
    chief.trials_written(1)
    running = honest.create()  # handed to worker0, not ended
    assert running.trial_id != first.trial_id
    before = _files(chief.run_dir)
    assert "trials.csv" in before and "top_configs/rank_1.yaml" in before

    forged = _with_values(running)
    request = honest.service
    for caller in (chief.caller(token=""), chief.caller(token=secrets.token_urlsafe(32))):
        for call in (caller.get_space, lambda c=caller: c.create(),
                     lambda c=caller: c.end(forged, score=0.999),
                     lambda c=caller: c.call("GetTrial", request.GetTrialRequest(
                         trial_id="hpsearch-run-id")),
                     lambda c=caller: c.call("GetBestTrials", request.GetBestTrialsRequest(
                         num_trials=3)),
                     lambda c=caller: c.call("GetTrial", request.GetTrialRequest(
                         trial_id=first.trial_id)),
                     lambda c=caller: c.call("UpdateSpace", request.UpdateSpaceRequest())):
            _refused(call, CODE.UNAUTHENTICATED, "run token")
    other_run = chief.caller(run_id="0" * 32)
    for call in (other_run.get_space, lambda: other_run.end(running, score=0.999)):
        _refused(call, CODE.PERMISSION_DENIED,
                 f"This chief serves run {chief.run_id} ({chief.run_dir}), not run {'0' * 32}")
    intruder = chief.caller(worker="intruder")
    _refused(lambda: intruder.create("worker0"), CODE.PERMISSION_DENIED,
             "Worker intruder asked for a trial as 'worker0'")
    _refused(lambda: intruder.update(running.trial_id, 0.999), CODE.FAILED_PRECONDITION,
             f"Trial {running.trial_id} is not running on worker intruder (the chief handed it "
             "to worker0): its report is refused.")
    _refused(lambda: intruder.end(running, score=0.999), CODE.FAILED_PRECONDITION,
             "not running on worker intruder")
    # With the token and the right worker id: only its own trial, as it was handed out.
    layers = _values(running)["layers"]
    changed = _with_values(running, layers=3 if layers != 3 else 1)
    _refused(lambda: honest.end(changed), CODE.PERMISSION_DENIED,
             f"Worker worker0 ended trial {running.trial_id} with other hyperparameter values "
             f"than the chief handed out (layers: {layers} handed, {3 if layers != 3 else 1} "
             "sent): the report is refused")
    _refused(lambda: honest.end(_with_values(running, invented=5)), CODE.PERMISSION_DENIED,
             "(invented: not handed, 5 sent, not its default)")
    _refused(lambda: honest.update(first.trial_id, 0.999), CODE.FAILED_PRECONDITION,
             f"Trial {first.trial_id} is not running on worker worker0 (it has ended, COMPLETED)")
    _refused(lambda: honest.end(first, score=0.999), CODE.FAILED_PRECONDITION, "it has ended")
    _refused(lambda: honest.update("77", 0.999), CODE.FAILED_PRECONDITION, "no such trial")
    time.sleep(1.5)  # three turns of the chief's loop, which exports when a trial ended
    assert _files(chief.run_dir) == before

    # The honest report of the running trial is still taken, and the search ends.
    honest.end(running, score=0.7)
    assert honest.create().status == honest.status.STOPPED
    chief.thread.join(timeout=30)
    assert not chief.thread.is_alive()
    trials = pd.read_csv(chief.run_dir / "trials.csv")
    assert trials["status"].tolist() == ["COMPLETED", "COMPLETED"]
    assert sorted(trials["score"]) == [0.5, 0.7]


# ---------------------------------------------------------------- the token
def test_the_run_token_comes_from_the_environment_or_a_private_file(tmp_path, monkeypatch):
    monkeypatch.delenv("HPSEARCH_RUN_TOKEN", raising=False)
    token = run_token(tmp_path)
    path = tmp_path / "run_token"
    assert len(token) >= 40 and path.read_text() == token + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run_token(tmp_path) == token == _worker_token(tmp_path)  # kept for the run
    path.chmod(0o644)  # readable by others: replaced, and said so
    said = []
    assert run_token(tmp_path, said.append) != token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "could be read by other users" in said[0]
    monkeypatch.setenv("HPSEARCH_RUN_TOKEN", "given-by-the-environment-0123")
    assert run_token(tmp_path / "elsewhere") == "given-by-the-environment-0123"
    assert not (tmp_path / "elsewhere").exists()
    assert _worker_token(tmp_path / "elsewhere") == "given-by-the-environment-0123"
    monkeypatch.setenv("HPSEARCH_RUN_TOKEN", "short")
    with pytest.raises(UsageError, match="at least 16 printable ASCII characters, got 5"):
        run_token(tmp_path)
    monkeypatch.delenv("HPSEARCH_RUN_TOKEN")
    with pytest.raises(RunDirError, match="Cannot read the run's token .*HPSEARCH_RUN_TOKEN"):
        _worker_token(tmp_path / "elsewhere")


def test_a_worker_without_the_token_is_told_so_at_once(tmp_path, monkeypatch):
    chief = _Chief(tmp_path / "run", max_trials=1)
    try:
        monkeypatch.setenv("HPSEARCH_RUN_TOKEN", secrets.token_urlsafe(32))
        started = time.monotonic()
        with pytest.raises(ChiefRefusedError, match=(
                f"The chief at {chief.address} refused this worker \\(UNAUTHENTICATED\\): The "
                "run token does not match this chief's")):
            _wait_for_chief("127.0.0.1", chief.port, 30, chief.run_dir, "worker0")
        assert time.monotonic() - started < 5
        monkeypatch.delenv("HPSEARCH_RUN_TOKEN")
        run_id, token = _wait_for_chief("127.0.0.1", chief.port, 30, chief.run_dir, "worker0")
        assert (run_id, token) == (chief.run_id, chief.token)
    finally:
        _finish(chief)


def _finish(chief: _Chief) -> None:
    """Run the chief's remaining trials with honest calls, so that its thread ends."""
    honest = chief.caller(worker="finisher")
    while True:
        trial = honest.create()
        if trial.status == honest.status.STOPPED:
            break
        honest.end(trial, score=0.1)
    chief.thread.join(timeout=30)


# ---------------------------------------------------------------- TLS
def _self_signed(folder: Path, name: str = "chief") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM)."""
    pytest.importorskip("cryptography", reason="makes the test's TLS certificate")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_a_chief_with_tls_answers_only_tls_workers_that_trust_its_certificate(tmp_path):
    cert, key = _self_signed(tmp_path / "tls")
    other_ca, _ = _self_signed(tmp_path / "other", "someone-else")
    chief = _Chief(tmp_path / "run", max_trials=1, tls_cert=str(cert), tls_key=str(key))
    try:
        assert "--tls-ca FILE" in chief.lines[0]
        # A worker's own probe, over TLS: the chief's run id.
        run_id, _ = _wait_for_chief("127.0.0.1", chief.port, 30, chief.run_dir, "worker0",
                                    tls_ca=cert)
        assert run_id == chief.run_id
        plain = chief.caller()
        _refused(plain.get_space, CODE.UNAVAILABLE)
        untrusted = chief.caller(credentials=grpc.ssl_channel_credentials(other_ca.read_bytes()))
        _refused(untrusted.get_space, CODE.UNAVAILABLE)
        trusting = chief.caller(credentials=grpc.ssl_channel_credentials(cert.read_bytes()))
        trusting.get_space()
        _refused(chief.caller(token=secrets.token_urlsafe(32),
                              credentials=grpc.ssl_channel_credentials(cert.read_bytes())
                              ).get_space, CODE.UNAUTHENTICATED)
    finally:
        honest = chief.caller(worker="finisher",
                              credentials=grpc.ssl_channel_credentials(cert.read_bytes()))
        trial = honest.create()
        honest.end(trial, score=0.3)
        assert honest.create().status == honest.status.STOPPED
        chief.thread.join(timeout=30)
    assert pd.read_csv(chief.run_dir / "trials.csv")["score"].tolist() == [0.3]


def test_tls_options_are_checked_before_anything_runs(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "run"),
                                       "--tls-cert", str(cert), "--tls-key", str(cert)])
    assert result.exit_code == 2
    assert result.output == ("Error: --tls-cert and --tls-key only apply with --serve "
                             "HOST:PORT.\n")
    with pytest.raises(UsageError, match="pass --tls-cert FILE and --tls-key FILE together"):
        ServeSettings(tls_cert=str(cert))
    with pytest.raises(UsageError, match=f"--tls-cert {cert} is not a PEM file"):
        ServeSettings(tls_cert=str(cert), tls_key=str(cert))
    first, _ = _self_signed(tmp_path / "a", "a")
    _, second_key = _self_signed(tmp_path / "b", "b")
    with pytest.raises(UsageError, match="cannot serve TLS together .*the unencrypted private key"):
        ServeSettings(tls_cert=str(first), tls_key=str(second_key))


# ---------------------------------------------------------------- a chief that is gone
class _RpcFailure(grpc.RpcError):
    def __init__(self, code, details=""):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_the_watch_ends_a_worker_whose_chief_is_silent_or_refuses(tmp_path):
    def silent(seconds):
        raise _RpcFailure(CODE.UNAVAILABLE)

    lost: list[str] = []
    started = time.monotonic()
    watch = _ChiefWatch(silent, 1.0, lost.append, "127.0.0.1:1").start()
    wait_for(lambda: lost, 5, "the watch giving up")
    assert 1.0 <= time.monotonic() - started < 2.5
    assert lost == [("Lost the chief at 127.0.0.1:1: it has not answered for 1 s (it stopped, or "
                     "the network is down). This worker stops; finished trials are saved, and its "
                     "trial runs again once a chief of this run serves and a worker joins it.")]
    watch.stop()

    def another_run(seconds):
        raise _RpcFailure(CODE.PERMISSION_DENIED, "This chief serves run abc")

    lost.clear()
    started = time.monotonic()
    _ChiefWatch(another_run, 10.0, lost.append, "127.0.0.1:1").start()
    wait_for(lambda: lost, 10, "the watch seeing the refusal")
    assert time.monotonic() - started < 4  # at the first ping (after 2 s), not after 10 s
    assert lost == [("The chief at 127.0.0.1:1 refused this worker (PERMISSION_DENIED): This "
                     "chief serves run abc This worker stops: the chief it joined is gone.")]

    lost.clear()
    answering = _ChiefWatch(lambda seconds: None, 0.5, lost.append, "127.0.0.1:1").start()
    time.sleep(1.2)
    answering.stop()
    assert lost == []


def test_status_shows_a_lost_worker_and_not_its_trial_as_running(tmp_path):
    from tuner import rundir

    run = tmp_path / "run"
    run.mkdir()
    write_run_config(run, RunConfig(space="mlp", tuner="random", max_trials=3))
    for trial_id in ("0", "1"):
        (run / "kt" / f"trial_{trial_id}").mkdir(parents=True)
        rundir.write_json(run / "kt" / f"trial_{trial_id}" / "trial.json",
                          {"trial_id": trial_id, "status": "RUNNING"})
    gone = subprocess.Popen(["true"])
    gone.wait()
    now = time.time()
    beats = {
        "w-killed": {"state": "training", "trial_id": "0", "pid": gone.pid},
        "w-orphan": {"state": "lost chief", "trial_id": None, "pid": os.getpid()},
        "w-live": {"state": "training", "trial_id": "1", "pid": os.getpid(),
                   "trial_started": now - 3, "epoch": 2},
    }
    (run / "workers").mkdir()
    for tuner_id, beat in beats.items():
        rundir.write_json(run / "workers" / f"{tuner_id}.json", {
            "tuner_id": tuner_id, "host": socket.gethostname(), "trials_done": 1,
            "updated": now, **beat})
    with rundir.run_lock(run):  # the chief works in it
        shown = format_status(search_status(run, now=now))
    assert "running: trial 1 on w-live" in shown
    assert "running: trial 0" not in shown, shown
    assert (f"worker w-killed on {socket.gethostname()}: worker lost (its process {gone.pid} "
            "is gone), trial 0 not finished, 1 trial(s) done") in shown
    assert f"worker w-orphan on {socket.gethostname()}: worker lost (it lost its chief)," in shown
    assert f"worker w-live on {socket.gethostname()}: trial 1, 1 trial(s) done" in shown


_CLI = "import sys\nfrom tuner.cli import main\nmain(sys.argv[1:])\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(arguments: list, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("HPSEARCH_RUN_TOKEN", None)
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-c", _CLI, *map(str, arguments)], env=env,
                                stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _kept(run: Path) -> dict[str, bytes]:
    """What a chief must never change behind its trials' backs: the ended trials' files, the
    tables, the exported configurations and the trial log."""
    files = _files(run, ["trials.csv", "top_configs", "trial_log.jsonl"])
    for path in sorted((run / "kt").glob("trial_*/trial.json")):
        if json.loads(path.read_text())["status"] in ("COMPLETED", "FAILED", "INVALID"):
            files[str(path.relative_to(run))] = path.read_bytes()
    return files


@pytest.mark.slow
def test_a_killed_chief_then_another_run_then_itself_again_change_no_trial(tmp_path):
    """kill -9 of the chief while its remote worker trains; a chief of another run on the same
    port, then the first chief again: the worker is gone within its bound, no trial of either
    run changed, none ran twice."""
    import keras_tuner  # noqa: F401 - before the kill: chief B below starts in a second

    data = write_fashion_mnist(tmp_path / "data", train=6000, test=20)
    run_a, port, bound = tmp_path / "a", _free_port(), 5.0
    tune = ["tune", "mlp", "--run-dir", run_a, "--data-dir", data, "--subset", "all",
            "--tuner", "random", "--max-trials", "4", "--max-epochs", "40", "--seed", "1",
            "--precision", "float32", "--serve", f"127.0.0.1:{port}", "--worker-timeout", "60"]
    processes: list[subprocess.Popen] = []
    chief_b = None
    try:
        processes.append(_start(tune, tmp_path / "chief_a.log"))
        wait_for(lambda: (run_a / "distributed.json").is_file(), 240, "chief A serving")
        first_run_id = json.loads((run_a / "distributed.json").read_text())["run_id"]
        worker = _start(["worker", f"127.0.0.1:{port}", "--run-dir", run_a, "--id", "w1",
                         "--data-dir", data, "--threads", "1", "--chief-timeout", bound],
                        tmp_path / "worker.log")
        processes.append(worker)

        def training_after_a_finished_trial():
            beat = read_heartbeats(run_a).get("w1") or {}
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            return ((run_a / "trials.csv").is_file() and beat.get("state") == "training"
                    and (beat.get("epoch") or 0) >= 1)

        wait_for(training_after_a_finished_trial, 300, "the worker inside its second trial")
        # Killed within an epoch (not in the middle of a call): the worker's next call waits.
        epoch, epoch_started = read_heartbeats(run_a)["w1"]["epoch"], time.monotonic()
        wait_for(lambda: read_heartbeats(run_a)["w1"].get("epoch") != epoch, 60, "an epoch")
        time.sleep((time.monotonic() - epoch_started) * 0.4)
        os.kill(processes[0].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        exited, exited_at = threading.Event(), []
        threading.Thread(target=lambda: (worker.wait(), exited_at.append(time.monotonic()),
                                         exited.set()), daemon=True).start()
        processes[0].wait(10)
        kept_a = _kept(run_a)
        assert any(name.endswith("trial.json") for name in kept_a) and "trials.csv" in kept_a

        # Another run's chief on the same port, at once, with a trial of its own ended.
        for attempt in range(50):
            try:
                chief_b = _Chief(tmp_path / "b", max_trials=2, port=port)
                break
            except Exception:  # noqa: BLE001 - the port is not free yet
                time.sleep(0.1)
        assert chief_b is not None
        honest_b = chief_b.caller(worker="b0")
        honest_b.end(honest_b.create(), score=0.25)
        chief_b.trials_written(1)
        kept_b = _files(chief_b.run_dir)
        exited.wait(bound + 10)
        gone_after = exited_at[0] - killed_at if exited_at else math.inf
        worker.wait(10)
        output = (tmp_path / "worker.log").read_text()
        assert worker.returncode == 1, output[-3000:]
        assert gone_after < bound + 6, (gone_after, output[-3000:])
        errors = [line for line in output.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, output[-3000:]
        assert ("refused this worker (UNAUTHENTICATED)" in errors[0]
                or "Lost the chief" in errors[0]), errors
        assert read_heartbeats(run_a)["w1"]["state"] in ("lost chief", "failed")
        time.sleep(1.0)
        assert _files(chief_b.run_dir) == kept_b
        honest_b.end(honest_b.create(), score=0.35)  # B ends normally
        assert honest_b.create().status == honest_b.status.STOPPED
        chief_b.thread.join(timeout=30)
        assert pd.read_csv(chief_b.run_dir / "trials.csv")["score"].tolist() == [0.25, 0.35]

        # The first run's chief again: a new run id, the same finished trials.
        processes.append(_start(tune, tmp_path / "chief_a_again.log"))
        wait_for(lambda: json.loads((run_a / "distributed.json").read_text())["run_id"]
                  != first_run_id, 240, "chief A serving again")
        time.sleep(3.0)  # six turns of its loop, which exports when a trial ends
        assert _kept(run_a) == kept_a
        logged = [json.loads(line)["trial_id"]
                  for line in (run_a / "trial_log.jsonl").read_text().splitlines()]
        assert len(logged) == len(set(logged))  # none trained twice
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(10)
        if chief_b is not None and chief_b.thread.is_alive():
            with contextlib.suppress(Exception):
                _finish(chief_b)
