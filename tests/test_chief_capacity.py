"""The chief's load test and the two-machine rehearsal (issue 38, item 5): both run to the end on
127.0.0.1 and report sanely. No timing is asserted beyond "more than zero"."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where dataclasses look up the module's annotations
    spec.loader.exec_module(module)
    return module


def _run(script: str, arguments: list[str], tmp_path: Path, timeout: float):
    # TMPDIR: whatever the script leaves behind stays in the test's folder.
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], check=False,
                          env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True,
                          text=True, timeout=timeout)


def test_levels_saturation_and_bottleneck_arithmetic():
    bench = _module("bench_chief_capacity")
    assert bench.client_levels(64) == [1, 2, 4, 8, 16, 32, 64]
    assert bench.client_levels(20) == [1, 2, 4, 8, 16, 20]
    assert bench.client_levels(1) == [1]
    empty = {field.name: 0 for field in dataclasses.fields(bench.LevelResult)}
    levels = [bench.LevelResult(**{**empty, "clients": clients, "trials_per_second": rate})
              for clients, rate in ((1, 20.0), (2, 36.0), (4, 40.0), (8, 39.0))]
    assert bench.saturation(levels) == (40.0, 2)  # 36 is within 90% of 40
    assert bench.bottleneck_rows(40.0) == [
        {"trial_seconds": 1, "max_trials_per_second": 40.0, "workers_at_saturation": 40},
        {"trial_seconds": 10, "max_trials_per_second": 40.0, "workers_at_saturation": 400},
        {"trial_seconds": 100, "max_trials_per_second": 40.0, "workers_at_saturation": 4000},
    ]


@pytest.mark.slow
def test_the_short_load_test_measures_a_live_chief(tmp_path):
    out = tmp_path / "results"
    result = _run("bench_chief_capacity.py", ["--short", "--out", str(out), "--time-limit", "50"],
                  tmp_path, timeout=90)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    levels = pd.read_csv(out / "chief-capacity.csv", comment="#")
    assert levels["clients"].tolist() == [1, 2]
    assert (levels["trials"] > 0).all() and (levels["trials_per_second"] > 0).all()
    assert levels.loc[levels["clients"] == 1, "errors"].item() == 0
    for call in ("create", "update", "end"):
        assert (levels[f"{call}_ms_median"] > 0).all()
        assert (levels[f"{call}_ms_p95"] >= levels[f"{call}_ms_median"]).all()
    assert (levels["chief_cpu_percent"] > 0).all() and (levels["clients_cpu_percent"] > 0).all()
    bottleneck = pd.read_csv(out / "chief-capacity-bottleneck.csv", comment="#")
    best = levels["trials_per_second"].max()
    assert bottleneck["trial_seconds"].tolist() == [1, 10, 100]
    assert bottleneck["workers_at_saturation"].tolist() == [round(1 * best), round(10 * best),
                                                            round(100 * best)]
    assert "workers >= trial seconds x max trials per second" in result.stdout


def test_the_rehearsal_names_what_a_run_directory_lacks(tmp_path):
    rehearsal = _module("rehearse_remote_worker")
    with pytest.raises(rehearsal.RehearsalFailed, match="The chief wrote no .*trials.csv"):
        rehearsal.check_run(tmp_path, 2)
    (tmp_path / "trials.csv").write_text("trial_id,status\n0,COMPLETED\n0,COMPLETED\n")
    with pytest.raises(rehearsal.RehearsalFailed,
                       match=r"trials.csv holds trials \['0', '0'\]; expected 2 distinct ones"):
        rehearsal.check_run(tmp_path, 2)


@pytest.mark.slow
def test_a_worker_with_another_home_path_and_token_source_completes_the_search(tmp_path):
    result = _run("rehearse_remote_worker.py", ["--trials", "2", "--timeout", "240"], tmp_path,
                  timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.startswith("Rehearsal passed in ")
    assert "2 trial(s) in trials.csv, each once and COMPLETED" in result.stdout
