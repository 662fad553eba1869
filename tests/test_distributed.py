"""Parallel and multi-machine searches (tuner/distributed.py), status, TensorBoard, strategies."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_fashion_mnist
from tuner.cli import main
from tuner.config import InvalidSettingError, RunConfig
from tuner.distributed import ServeSettings, check_same_run, parse_address, read_heartbeats
from tuner.errors import RunDirError, UsageError


def test_non_loopback_bind_without_the_option_is_refused(tmp_path):
    result = CliRunner().invoke(
        main, ["tune", "mlp", "--run-dir", str(tmp_path / "run"), "--serve", "0.0.0.0:5000"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: Refusing to serve the search on 0.0.0.0: KerasTuner's "
                                    "oracle port has no authentication and no encryption")
    assert "--allow-remote" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
    ServeSettings("0.0.0.0", 5000, allow_remote=True)  # explicit: accepted
    ServeSettings("::1", 5000)


@pytest.mark.parametrize("address", ["localhost", "host:port", ":80", "h:0", "h:70000"])
def test_bad_addresses_are_usage_errors(address):
    with pytest.raises(UsageError, match="Expected an address like 127.0.0.1:8000"):
        parse_address(address)


def test_workers_and_serve_together_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "r"),
                                       "--workers", "2", "--serve", "127.0.0.1:5000"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: --workers and --serve cannot be combined")


def test_a_worker_on_another_run_directory_is_refused(tmp_path):
    with pytest.raises(RunDirError, match="has no distributed.json.*storage they all share"):
        check_same_run(tmp_path, "abc", "127.0.0.1:5000")
    (tmp_path / "distributed.json").write_text(json.dumps({"run_id": "other"}))
    with pytest.raises(RunDirError, match="the chief's run id is abc, this folder's is other"):
        check_same_run(tmp_path, "abc", "127.0.0.1:5000")
    check_same_run(tmp_path, "other", "127.0.0.1:5000")


def test_mirrored_strategy_wiring(monkeypatch):
    import tensorflow as tf

    from tuner.engine import distribution_strategy

    assert distribution_strategy(RunConfig()) is None
    with pytest.raises(InvalidSettingError, match="1 GPU\\(s\\) are visible"):
        distribution_strategy(RunConfig(strategy="mirrored"), gpus=1)
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda: "mirrored-strategy")
    assert distribution_strategy(RunConfig(strategy="mirrored"), gpus=2) == "mirrored-strategy"
    with pytest.raises(InvalidSettingError, match="Unknown strategy 'mirror'"):
        RunConfig(strategy="mirror")


_TWO_REPLICA_SEARCH = """
import sys
import tensorflow as tf

# Two logical CPUs stand in for two GPUs: MirroredStrategy then really keeps one replica per
# device, all-reduces the gradients and splits each batch, as across the GPUs of one host.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
real_strategy, replicas = tf.distribute.MirroredStrategy, []

def on_two_cpus():
    strategy = real_strategy(["/cpu:0", "/cpu:1"])
    replicas.append(strategy.num_replicas_in_sync)
    return strategy

tf.distribute.MirroredStrategy = on_two_cpus
import search_spaces.devices
search_spaces.devices.visible_gpus = lambda: ["gpu0", "gpu1"]
from tuner.cli import main
try:
    main(sys.argv[1:])
finally:
    print("replicas:", replicas)
"""


@pytest.mark.slow
@pytest.mark.parametrize("space", ["mlp", "cnn"])
def test_mirrored_strategy_trains_each_trial_on_two_replicas(space, tiny_data_dir, tmp_path):
    # The real tf.distribute path of --strategy mirrored (KerasTuner builds and fits each trial
    # inside the strategy's scope), on the two logical CPUs of _TWO_REPLICA_SEARCH.
    run = tmp_path / "run"
    command = [sys.executable, "-c", _TWO_REPLICA_SEARCH, "tune", space, "--run-dir", str(run),
               "--data-dir", str(tiny_data_dir), "--subset", "all", "--strategy", "mirrored",
               "--precision", "float32", "--tuner", "random", "--max-trials", "2",
               "--max-epochs", "2", "--seed", "3", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "replicas: [2]" in result.stdout  # one strategy, two replicas, for the whole search
    with open(run / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED"]
    assert all(0.0 <= float(row["score"]) <= 1.0 for row in rows)
    assert (run / "top_configs" / "rank_1.yaml").exists()


def test_no_gpu_mirrored_is_refused_before_training(tiny_data_dir, tmp_path):
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "r"),
                                       "--data-dir", str(tiny_data_dir), "--subset", "all",
                                       "--strategy", "mirrored", "--tuner", "random",
                                       "--max-trials", "1", "--max-epochs", "1"])
    assert result.exit_code == 2, result.output
    assert "Error: --strategy mirrored trains each trial across several GPUs" in result.output


@pytest.mark.slow
def test_the_workers_launcher_imports_no_tensorflow_and_keeps_the_chief_s_usage_error(
        tiny_data_dir, tmp_path):
    # The launcher trains nothing: the chief checks the settings, and its usage error (exit 2,
    # the whole message) is the command's.
    code = ("import sys\nfrom tuner.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "finally:\n    print('tensorflow imported:', 'tensorflow' in sys.modules)\n")
    command = [sys.executable, "-c", code, "tune", "mlp", "--workers", "1", "--quiet",
               "--run-dir", str(tmp_path / "run"), "--data-dir", str(tiny_data_dir),
               "--objective", "val_auc"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("Error: Objective 'val_auc' is not a metric of the 'mlp' space's models; they "
            "report: ") in result.stderr
    assert "tensorflow imported: False" in result.stdout and "Traceback" not in result.stderr


def test_trial_cap_stops_a_distributed_hyperband_at_its_schedule(tmp_path):
    import keras_tuner as kt

    from tuner.oracles import _HyperbandOracle

    oracle = _HyperbandOracle(objective=kt.Objective("val_accuracy", "max"), max_epochs=2,
                              factor=2, seed=0)
    oracle.hyperparameters.Float("lr", 1e-3, 1e-1, default=1e-2)
    oracle.trial_cap = 1
    oracle._set_project_dir(str(tmp_path), "p")
    first = oracle.create_trial("worker0")
    assert first.status == "RUNNING"
    assert oracle.create_trial("worker1").status == "STOPPED"


def test_tensorboard_logs_every_trial_with_hparams(tiny_data_dir, tmp_path):
    from tuner.search import run_search

    config = RunConfig(tuner="random", max_trials=1, max_epochs=1, subset=None, tensorboard=True)
    run_search(config, tmp_path / "run", data_dir=[tiny_data_dir], progress=None)
    logs = list((tmp_path / "run" / "tensorboard").iterdir())
    # One folder per trial, beside the search's own file (the HParams experiment: every domain).
    trial_logs = [path for path in logs if path.is_dir()]
    assert [p.name for p in trial_logs] == ["0"]
    assert [p.name for p in logs if p.is_file() and "hparams-experiment" in p.name]
    events = list(trial_logs[0].rglob("events.out.tfevents.*"))
    assert events
    assert any(b"hparams" in path.read_bytes() for path in events)


def _kill_leftovers(run_dir: Path) -> None:
    pids = [beat.get("pid") for beat in read_heartbeats(run_dir).values()]
    chief = run_dir / "distributed.json"
    if chief.is_file():
        pids.append(json.loads(chief.read_text()).get("chief_pid"))
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, TypeError, ValueError):
            pass


@pytest.mark.slow
def test_chief_and_two_workers_run_each_trial_once_and_a_killed_worker_s_trial_again(tmp_path):
    """One search, three checks: status while it runs, a worker killed mid-trial (its trial is
    run again by its restarted self or the other worker), every trial run to the end once."""
    from tuner.parallel import run_parallel_search
    from tuner.status import format_status, search_status

    data_dir = write_fashion_mnist(tmp_path / "data", train=1500, test=20)
    run_dir = tmp_path / "run"
    # In bfloat16: the workers train under the policy the chief resolved (run.yaml).
    config = RunConfig(tuner="random", max_trials=4, max_epochs=4, subset=None,
                       precision="mixed_bfloat16")
    lines: list[str] = []
    outcome: dict = {}

    def search():
        try:
            outcome["result"] = run_parallel_search(
                config, run_dir, workers=2, data_dir=[data_dir], progress=lines.append,
                worker_timeout=30, connect_timeout=120, call_timeout=120)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=search, daemon=True)
    thread.start()
    killed = None
    shown = ""
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and killed is None and thread.is_alive():
            time.sleep(0.2)
            for beat in read_heartbeats(run_dir).values():
                if beat.get("state") == "training" and (beat.get("epoch") or 0) >= 1:
                    shown = format_status(search_status(run_dir))
                    killed = (beat["tuner_id"], str(beat["trial_id"]))
                    os.kill(int(beat["pid"]), signal.SIGKILL)
                    break
        thread.join(timeout=300)
        assert not thread.is_alive(), "the search did not finish in time:\n" + "\n".join(lines[-30:])
    finally:
        if thread.is_alive():
            _kill_leftovers(run_dir)
    assert "error" not in outcome, "\n".join(lines[-30:])
    assert killed is not None, "no worker was seen inside a trial"
    worker, trial_id = killed
    assert f"running: trial {trial_id} on {worker}" in shown, shown
    assert any(f"{worker} stopped (killed by signal 9); starting it again" in line
               for line in lines)
    trials = outcome["result"].trials
    assert len(trials) == 4 and set(trials["status"]) == {"COMPLETED"}
    finished = [json.loads(line)["trial_id"]
                for line in (run_dir / "trial_log.jsonl").read_text().splitlines()]
    assert sorted(finished) == ["0", "1", "2", "3"]  # each run to the end exactly once
    assert {json.loads(line)["worker"] for line in
            (run_dir / "trial_log.jsonl").read_text().splitlines()} <= {"worker0", "worker1"}
    assert set(trials["worker"]) <= {"worker0", "worker1"} and all(trials["worker"])
    assert {json.loads(line)["compute_dtype"] for line in
            (run_dir / "trial_log.jsonl").read_text().splitlines()} == {"bfloat16"}
    assert len(list((run_dir / "top_configs").glob("rank_*.yaml"))) == 3
    final = format_status(search_status(run_dir))
    assert "finished. 4/4 trials done (4 completed, 0 failed)" in final
    # --watch stops by itself once the search has finished.
    watched = CliRunner().invoke(main, ["status", str(run_dir), "--watch", "1"],
                                 catch_exceptions=False)
    assert watched.exit_code == 0 and watched.output.count("finished. 4/4 trials done") == 1
    for beat in read_heartbeats(run_dir).values():  # no orphans
        with pytest.raises(ProcessLookupError):
            os.kill(int(beat["pid"]), 0)
