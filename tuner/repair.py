"""Repairing a KerasTuner project whose files were damaged, keeping every good trial.

hpsearch writes its state atomically, so damage comes from outside (a full disk, a copy cut
short, an editor, a plain KerasTuner project killed while writing). KerasTuner numbers a new trial
after the count of trials it knows, so an unreadable trial cannot simply be dropped: the next
trial would take the id, and the folder, of the last good one. Each unreadable ``trial.json`` is
moved to ``set_aside/`` and replaced by a FAILED placeholder that says so; an unreadable
``oracle.json`` is rebuilt from the trial files (random and Bayesian searches).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from tuner import rundir
from tuner.config import (
    HYPERBAND_TUNERS,
    bayesian_initial_points,
    oracle_seed,
    read_run_config,
)
from tuner.errors import CorruptRunError, RunDirError

# keras_tuner.oracles.BayesianOptimizationOracle's defaults, which hpsearch does not change.
BAYESIAN_ALPHA, BAYESIAN_BETA = 1e-4, 2.6


@dataclasses.dataclass
class RepairResult:
    """What ``repair_run`` did.

    Attributes:
        project: the KerasTuner project repaired.
        good_trials: trial ids whose files were read and kept as they are.
        set_aside: the unreadable files, moved under ``set_aside/`` (paths after the move).
        oracle_rebuilt: ``oracle.json`` was unreadable and was rebuilt from the trials.
    """

    project: Path
    good_trials: list[str]
    set_aside: list[Path]
    oracle_rebuilt: bool


def repair_run(run_dir: str | os.PathLike) -> RepairResult:
    """Set unreadable KerasTuner files aside and rebuild the state from the good trial files.

    Args:
        run_dir: a search run directory (its ``kt/`` is repaired) or a KerasTuner project.

    Returns:
        A RepairResult; nothing is changed when every file is readable.

    Raises:
        RunDirError: no KerasTuner project there, or a Hyperband ``oracle.json`` that cannot be
            rebuilt (its brackets are not in the trial files).
        RunLockedError: another process works in ``run_dir``.
    """
    run_dir = Path(run_dir)
    project = rundir.keras_tuner_project(run_dir)
    if project is None or not project.is_dir():
        raise RunDirError(f"{run_dir} holds no KerasTuner project (oracle.json, "
                          "trial_*/trial.json): nothing to repair.")
    with rundir.run_lock(run_dir):
        good, set_aside = [], []
        for path in rundir.trial_files(project):
            try:
                state = rundir.read_json(path, "a KerasTuner trial")
                if not isinstance(state, dict) or "trial_id" not in state:
                    raise CorruptRunError(f"{path} is not a KerasTuner trial.")
            except CorruptRunError as error:
                set_aside.append(_set_aside(project, path, str(error)))
                continue
            good.append(state)
        oracle_rebuilt = False
        try:
            oracle = rundir.read_oracle_state(project)
        except CorruptRunError:
            oracle = None
            set_aside.append(_set_aside(project, project / rundir.ORACLE_FILE, "unreadable"))
        states = rundir.read_trial_states(project)
        if oracle is None and states:
            rundir.write_json(project / rundir.ORACLE_FILE, _rebuilt_oracle(run_dir, states))
            oracle_rebuilt = True
        return RepairResult(project, [str(state["trial_id"]) for state in good], set_aside,
                            oracle_rebuilt)


def _set_aside(project: Path, path: Path, reason: str) -> Path:
    """Move ``path`` under ``set_aside/``; a trial file is replaced by a FAILED placeholder."""
    target = project / rundir.SET_ASIDE_DIR / path.relative_to(project)
    target = target.with_name(f"{target.name}.{time.strftime('%Y%m%d-%H%M%S')}")
    rundir.make_dirs(target.parent, "folder")
    shutil.move(str(path), str(target))
    trial_id = rundir.trial_id_of_dir(path.parent)
    if path.name == rundir.TRIAL_FILE and trial_id is not None:
        rundir.write_json(path, {
            "trial_id": trial_id,
            "hyperparameters": {"space": [], "values": {}},
            "metrics": {"metrics": {}},
            "score": None,
            "best_step": 0,
            "status": "FAILED",
            "message": f"trial.json was unreadable ({reason[:200]}); the original is {target}. "
                       "Set aside by hpsearch repair.",
        })
    return target


def _values_hash(values: dict[str, Any]) -> str:
    # KerasTuner's Oracle._compute_values_hash, so that a rebuilt oracle skips tried values.
    text = "".join(f"{key}={values[key]}" for key in sorted(values))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _rebuilt_oracle(run_dir: Path, states: list[dict[str, Any]]) -> dict[str, Any]:
    seed, extra = oracle_seed(0), {}
    if (run_dir / rundir.RUN_FILE).is_file():
        config, _ = read_run_config(run_dir)
        if config.tuner in HYPERBAND_TUNERS:
            raise RunDirError(
                f"{rundir.keras_tuner_project(run_dir) / rundir.ORACLE_FILE} of a Hyperband search "
                "was unreadable (set aside) and cannot be rebuilt: its brackets are only in that "
                "file. Start again with --overwrite, or restore the file from a backup.")
        seed = oracle_seed(config.seed)  # what the search handed KerasTuner
        if config.tuner == "bayesian":
            # What BayesianOptimizationOracle.set_state reads: the search's own number of
            # initial points and KerasTuner's defaults.
            extra = {"num_initial_points": bayesian_initial_points(config),
                     "alpha": BAYESIAN_ALPHA, "beta": BAYESIAN_BETA}
    elif any("tuner/bracket" in (state.get("hyperparameters") or {}).get("values", {})
             for state in states):
        raise RunDirError("The oracle.json of a Hyperband project was unreadable (set aside) and "
                          "cannot be rebuilt: its brackets are only in that file.")
    space: dict[str, Any] = {}
    id_to_hash = {}
    for state in states:
        hyperparameters = state.get("hyperparameters") or {}
        for item in hyperparameters.get("space", []):
            space.setdefault(item["config"]["name"], item)
        id_to_hash[str(state["trial_id"])] = _values_hash(hyperparameters.get("values", {}))
    ids = [str(state["trial_id"]) for state in states]
    ended = [str(state["trial_id"]) for state in states if state.get("status") in rundir.ENDED_STATUSES]
    return {
        "ongoing_trials": {},
        "hyperparameters": {"space": list(space.values()), "values": {}},
        "start_order": ids,
        "end_order": ended,
        "run_times": {trial_id: 1 for trial_id in ended},
        "retry_queue": [trial_id for trial_id in ids if trial_id not in ended],
        "seed": seed,
        # KerasTuner advances the state once per value it draws (tens per trial): start beyond
        # what the lost oracle can have used, so new trials do not replay its random streams.
        "seed_state": seed + 1000 * (len(ids) + 1),
        "tried_so_far": sorted(set(id_to_hash.values())),
        "id_to_hash": id_to_hash,
        "display": {"search_start": None, "trial_start": {}, "trial_number": {}},
        **extra,
    }
