"""Trials in processes that are replaced (tuner/recycling.py): the rule, a local search and
``--workers`` that go on in fresh processes with nothing lost or run again, the options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_fashion_mnist
from tuner import recycling
from tuner.cli import main
from tuner.config import InvalidSettingError, RunConfig, read_run_config, write_run_config
from tuner.distributed import heartbeat_gone, read_heartbeats
from tuner.recycling import ProcessRetired, Retirement, replaces_processes
from tuner.rundir import PROJECT_NAME, lock_holder, read_trial_states

REPO = Path(__file__).resolve().parents[1]


def _trial_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trial_log.jsonl").read_text().splitlines()]


def _values_by_trial(run_dir: Path) -> dict[str, dict]:
    return {state["trial_id"]: state["hyperparameters"]["values"]
            for state in read_trial_states(run_dir / PROJECT_NAME)}


# ---------------------------------------------------------------- the rule
def _retirement(tmp_path, events=None, **settings) -> Retirement:
    config = RunConfig(tuner="random", max_trials=10, **settings)
    report = events.append if events is not None else None
    return Retirement(config, tmp_path, report)


def _end_trials(retirement: Retirement, run_dir: Path, count: int) -> None:
    """``count`` trials end as the engine ends them: logged, observers told, then after_trial."""
    for _ in range(count):
        trial_id = str(retirement.trials)
        with open(run_dir / "trial_log.jsonl", "a") as log:
            log.write(json.dumps({"trial_id": f"{len(_lines(run_dir))}"}) + "\n")
        retirement.trial_begin(trial_id, {})
        retirement.trial_end(trial_id, "COMPLETED", 0.5, {})
        retirement.after_trial()


def _lines(run_dir: Path) -> list[str]:
    path = run_dir / "trial_log.jsonl"
    return path.read_text().splitlines() if path.is_file() else []


def test_a_process_retires_after_its_trials_and_reports_them(tmp_path):
    events: list[dict] = []
    retirement = _retirement(tmp_path, events, recycle_after=2)
    _end_trials(retirement, tmp_path, 1)
    with pytest.raises(ProcessRetired):
        _end_trials(retirement, tmp_path, 1)
    assert [event["event"] for event in events] == ["ready", "trial", "trial", "retired"]
    assert events[-1]["reason"] == "2 trials run" and events[-1]["trials"] == 2
    assert all(event["rss_mb"] > 0 for event in events if event["event"] == "trial")


def test_no_retirement_once_the_budget_is_spent_or_when_never_asked(tmp_path):
    retirement = _retirement(tmp_path, recycle_after=3)
    (tmp_path / "trial_log.jsonl").write_text(
        "".join(json.dumps({"trial_id": str(i)}) + "\n" for i in range(7)))
    _end_trials(retirement, tmp_path, 3)  # trials 8-10 of 10: a fresh process would find none
    never = _retirement(tmp_path / "never", recycle_after=0)
    (tmp_path / "never").mkdir()
    _end_trials(never, tmp_path / "never", 5)


def test_memory_limit_retires_a_grown_process_but_not_a_fresh_one(tmp_path, monkeypatch):
    memory = {"mb": 900.0}
    monkeypatch.setattr(recycling, "resident_memory_mb", lambda: memory["mb"])
    shown: list[str] = []
    retirement = _retirement(tmp_path, recycle_after=0, max_memory_mb=1000)
    retirement.progress(shown.append)
    _end_trials(retirement, tmp_path, 1)  # below the limit
    memory["mb"] = 1100.0
    with pytest.raises(ProcessRetired, match="1100 MB resident, above 1000 MB"):
        _end_trials(retirement, tmp_path, 1)
    # A process above the limit after its first trial: a fresh one would be too.
    memory["mb"] = 1200.0
    fresh = _retirement(tmp_path / "fresh", recycle_after=0, max_memory_mb=1000)
    (tmp_path / "fresh").mkdir()
    fresh.progress(shown.append)
    _end_trials(fresh, tmp_path / "fresh", 2)
    assert shown == ["Warning: this process holds 1200 MB after its first trial, more than "
                     "--max-memory 1000 MB: a fresh process would too, so it is not replaced "
                     "for its memory. Raise --max-memory above 1200."]


def test_a_replacement_shows_nothing_before_its_first_trial(tmp_path):
    shown: list[str] = []
    config = RunConfig(tuner="random", max_trials=10)
    replacement = Retirement(config, tmp_path, search_started=5.0, show_set_up=False)
    progress = replacement.progress(shown.append)
    progress("Data: ...")
    progress("Resuming a random search ...")
    replacement.search_begin(tmp_path, config, {})
    progress("[trial 3/10] ...")
    assert shown == ["[trial 3/10] ..."]

    class Tuner:
        _search_started = 99.0

    tuner = Tuner()
    replacement.attach(tuner)
    assert tuner._search_started == 5.0  # the elapsed time goes on


def test_a_search_leaves_this_process_only_when_it_may_replace_it():
    assert not replaces_processes(RunConfig(tuner="random", max_trials=100, recycle_after=100))
    assert replaces_processes(RunConfig(tuner="random", max_trials=101, recycle_after=100))
    assert not replaces_processes(RunConfig(tuner="random", max_trials=500, recycle_after=0))
    assert replaces_processes(RunConfig(tuner="random", max_trials=2, max_memory_mb=4000))
    assert not replaces_processes(RunConfig())  # the default bohb search: 10 trials


def test_a_retired_worker_is_alive_while_its_replacement_starts():
    now = time.time()
    beat = {"tuner_id": "worker0", "host": "elsewhere", "pid": 1, "state": "retired",
            "updated": now - 5}
    assert heartbeat_gone(beat, 120, now) == ""
    assert heartbeat_gone(beat, 2, now) == "it retired and no process took its place"


# ---------------------------------------------------------------- settings and options
def test_run_yaml_without_the_settings_reads_as_their_defaults(tmp_path):
    write_run_config(tmp_path, RunConfig(tuner="random", max_trials=3, recycle_after=7,
                                         max_memory_mb=3000))
    assert read_run_config(tmp_path)[0].recycle_after == 7
    document = (tmp_path / "run.yaml").read_text()
    older = "\n".join(line for line in document.splitlines()
                      if "recycle_after" not in line and "max_memory_mb" not in line)
    (tmp_path / "run.yaml").write_text(older + "\n")
    config, _ = read_run_config(tmp_path)
    assert (config.recycle_after, config.max_memory_mb) == (100, None)
    assert "recycle_after" not in config.identity()  # a resume may change them


@pytest.mark.parametrize("settings, expected", [
    ({"recycle_after": -1}, "recycle_after must be a whole number of trials, 0 or more"),
    ({"recycle_after": 2.5}, "recycle_after must be a whole number of trials"),
    ({"max_memory_mb": 0}, "max_memory_mb must be a whole number of MB, at least 1"),
    ({"max_memory_mb": "lots"}, "max_memory_mb must be a whole number of MB"),
])
def test_bad_settings_are_refused(settings, expected):
    with pytest.raises(InvalidSettingError, match=expected):
        RunConfig(**settings)


@pytest.mark.parametrize("options, expected", [
    (["--recycle-after", "-1"],
     "Error: Invalid value for '--recycle-after': -1 is not in the range x>=0."),
    (["--recycle-after", "many"],
     "Error: Invalid value for '--recycle-after': 'many' is not a valid integer range."),
    (["--max-memory", "0"], "Error: Invalid value for '--max-memory': 0 is not in the range x>=1."),
    (["--max-memory", "2GB"],
     "Error: Invalid value for '--max-memory': '2GB' is not a valid integer range."),
    (["--serve", "127.0.0.1:5000", "--recycle-after", "10"],
     "Error: --recycle-after and --max-memory apply to processes this command starts to train;"),
])
def test_bad_option_values_exit_2_with_one_line(tmp_path, options, expected):
    result = CliRunner().invoke(main, ["tune", "mlp", "--run-dir", str(tmp_path / "run"),
                                       *options])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- searches
def _tune(run_dir: Path, data_dir: Path, *extra: str):
    result = CliRunner().invoke(main, [
        "tune", "mlp", "--run-dir", str(run_dir), "--data-dir", str(data_dir),
        *"--subset all --tuner random --max-trials 5 --max-epochs 1".split(), *extra],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_a_local_search_recycled_every_2_trials_runs_each_trial_once_as_one_process(
        tiny_data_dir, tmp_path):
    recycled = tmp_path / "recycled"
    output = _tune(recycled, tiny_data_dir, "--recycle-after", "2")
    finished = [entry["trial_id"] for entry in _trial_log(recycled)]
    assert sorted(finished) == ["0", "1", "2", "3", "4"]  # each trial run to the end once
    assert {state["status"] for state in read_trial_states(recycled / PROJECT_NAME)} == {
        "COMPLETED"}  # the retired processes left nothing RUNNING
    assert len((recycled / "trials.csv").read_text().splitlines()) == 6
    # What a user reads is one search's output: set-up lines once, trials 1 to 5 in order.
    assert output.count("Data: ") == 1 and "Resuming" not in output
    assert output.count("Starting a random search") == 1
    trial_lines = [line.split("]")[0] for line in output.splitlines() if line.startswith("[trial")]
    assert trial_lines == [f"[trial {n}/5" for n in range(1, 6)]
    assert "5 trials (5 completed, 0 failed), 5 run now" in output
    assert lock_holder(recycled) is None
    # A seeded search draws the same trials whichever process draws them.
    alone = tmp_path / "alone"
    _tune(alone, tiny_data_dir, "--recycle-after", "0")
    assert _values_by_trial(recycled) == _values_by_trial(alone)


@pytest.mark.slow
def test_workers_retiring_after_every_trial_lose_and_rerun_nothing(tmp_path):
    from tuner.parallel import run_parallel_search

    data_dir = write_fashion_mnist(tmp_path / "data", train=200, test=20)
    run_dir = tmp_path / "run"
    config = RunConfig(tuner="random", max_trials=4, max_epochs=1, subset=None, recycle_after=1)
    lines: list[str] = []
    events: list[tuple[str, dict]] = []
    result = run_parallel_search(config, run_dir, workers=2, data_dir=[data_dir],
                                 progress=lines.append, worker_timeout=30,
                                 on_event=lambda name, event: events.append((name, event)))
    assert sorted(entry["trial_id"] for entry in _trial_log(run_dir)) == ["0", "1", "2", "3"]
    assert len(result.trials) == 4 and set(result.trials["status"]) == {"COMPLETED"}
    assert result.new_trials == 4
    retired = [name for name, event in events if event["event"] == "retired"]
    assert retired and set(retired) <= {"worker0", "worker1"}
    # A retirement is neither a crash nor a lost worker, and a fresh process says nothing twice.
    assert not [line for line in lines if "starting it again" in line or "is gone" in line]
    for name in ("worker0", "worker1"):
        assert sum(f"{name} | Worker {name} joined" in line for line in lines) == 1
    assert {beat["state"] for beat in read_heartbeats(run_dir).values()} == {"done"}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.is_file() else []


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_command_trains_nothing_and_sigterm_stops_its_search_process(tmp_path):
    data_dir = write_fashion_mnist(tmp_path / "data", train=600, test=20)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "tuner.cli", "tune", "mlp", "--run-dir", str(run_dir),
               "--data-dir", str(data_dir), *"--subset all --tuner random --max-trials 40 "
               "--max-epochs 3 --recycle-after 1 --quiet".split()]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HPSEARCH_NO_DOWNLOAD": "1"})
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(_lines(run_dir)) < 2:
            time.sleep(0.1)
        assert len(_lines(run_dir)) >= 2, "no trial ended in time"
        children = _children(process.pid)
        assert children, "the search runs in a child process"
        # The command keeps no TensorFlow in its own memory beside its child's.
        assert "tensorflow" not in Path(f"/proc/{process.pid}/maps").read_text()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert "Traceback" not in process.stderr.read()
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "State:\tZ" in Path(
            f"/proc/{child}/status").read_text()
    assert lock_holder(run_dir) is None  # free for the resume
    finished = [entry["trial_id"] for entry in _trial_log(run_dir)]
    assert len(finished) == len(set(finished))
    states = read_trial_states(run_dir / PROJECT_NAME)
    assert {s["trial_id"]: s["status"] for s in states if s["trial_id"] in finished} == {
        trial_id: "COMPLETED" for trial_id in finished}
