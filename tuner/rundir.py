"""The on-disk contract of every kind of run: file names, kinds, lock, atomic writes, readers.

Four kinds of folder are read, three of them written by hpsearch::

    search        run.yaml, search_space.json, trial_log.jsonl, trials.csv, top_configs/,
                  kt/ (the KerasTuner project)                         written by ``run_search``
    transfer      transfer.yaml, transfer.csv, summary.csv, configs/,    ``run_transfer``
                  predictions/ (each training's test-set probabilities)
    comparison    config.yaml, heads/, comparison.csv/.json/.md         ``compare_heads``
    keras_tuner   oracle.json, trial_*/trial.json: a KerasTuner project written by a user's
                  own code (``directory/project_name``); read, never resumed

Every file is written whole or not at all (a temporary file, fsync, rename), so a kill never
leaves a half-written file. A command that works in a folder holds its lock; a refused command
leaves neither the lock file nor a folder it created behind. Every reader names the file it could
not read. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from tuner.errors import CorruptRunError, RunDirError, RunLockedError

SEARCH, TRANSFER, COMPARISON, KERAS_TUNER = "search", "transfer", "comparison", "keras_tuner"

LOCK_FILE = ".lock"
# The statuses of a KerasTuner trial that has ended (trained to its end, or given up on).
ENDED_STATUSES = ("COMPLETED", "FAILED", "INVALID")
# A search run.
RUN_FILE = "run.yaml"
SPACE_FILE = "search_space.json"
TRIAL_LOG = "trial_log.jsonl"
TRIALS_CSV = "trials.csv"
TOP_DIR = "top_configs"
PROJECT_NAME = "kt"
TENSORBOARD_DIR = "tensorboard"  # --tensorboard: one folder per trial, HParams plugin data
# A distributed search (tuner/distributed.py): the chief's address and run id, and one
# heartbeat file per worker (what it runs, since when, last seen).
DISTRIBUTED_FILE = "distributed.json"
WORKERS_DIR = "workers"
# The run's secret that every call of a worker carries (mode 0600; ``write_private_text``).
RUN_TOKEN_FILE = "run_token"
# A KerasTuner project (``kt/`` of a search run, or a user's own).
ORACLE_FILE = "oracle.json"
TRIAL_FILE = "trial.json"
TRIAL_CHECKPOINT = "checkpoint.weights.h5"  # KerasTuner's: the weights of a trial's best epoch
MODELS_DIR = "models"  # --keep-models: rank_<n>.keras and models.yaml
MODELS_INDEX = "models.yaml"
TRIAL_DIR_PREFIX = "trial_"
SET_ASIDE_DIR = "set_aside"  # unreadable trial files moved here by ``hpsearch repair``
# A transfer run.
TRANSFER_FILE = "transfer.yaml"
TRANSFER_CSV = "transfer.csv"
TRANSFER_SUMMARY = "summary.csv"
TRANSFER_CONFIGS = "configs"
# One .npy per configuration and seed: the test images' class probabilities (float32, images x
# classes), so seeds can be ensembled and errors analysed without retraining.
TRANSFER_PREDICTIONS = "predictions"
# A clock comparison.
COMPARISON_FILE = "config.yaml"
COMPARISON_CSV = "comparison.csv"
COMPARISON_JSON = "comparison.json"
COMPARISON_MD = "comparison.md"
HEADS_DIR = "heads"

_KIND_FILES = {
    SEARCH: f"{RUN_FILE} (a search)",
    TRANSFER: f"{TRANSFER_CSV} (a transfer run)",
    COMPARISON: f"{COMPARISON_CSV} (a clock comparison)",
    KERAS_TUNER: f"{ORACLE_FILE} (a KerasTuner project)",
}


class SettingsMismatchError(RunDirError, ValueError):
    """A folder holds a run made with other settings than the command asks for."""


# ---------------------------------------------------------------- kinds
def is_keras_tuner_project(path: str | os.PathLike) -> bool:
    """A KerasTuner project folder: ``oracle.json`` or ``trial_*/trial.json`` directly inside."""
    path = Path(path)
    return (path / ORACLE_FILE).is_file() or any(path.glob(f"{TRIAL_DIR_PREFIX}*/{TRIAL_FILE}"))


def keras_tuner_project(path: str | os.PathLike) -> Path | None:
    """The KerasTuner project of a search run (``kt/``) or a plain KerasTuner project itself."""
    path = Path(path)
    if (path / RUN_FILE).is_file():
        return path / PROJECT_NAME
    return path if is_keras_tuner_project(path) else None


def nested_projects(path: str | os.PathLike) -> list[Path]:
    """KerasTuner projects one level below ``path`` (``my_dir`` holding ``my_dir/my_project``)."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(child for child in path.iterdir() if child.is_dir() and
                  is_keras_tuner_project(child))


def run_kinds(path: str | os.PathLike) -> list[str]:
    """The kinds of run ``path`` holds (``SEARCH``, ``TRANSFER``, ``COMPARISON``,
    ``KERAS_TUNER``); a search run's own ``kt/`` is not listed separately. Empty: not a run."""
    path = Path(path)
    kinds = []
    if (path / RUN_FILE).is_file():
        kinds.append(SEARCH)
    elif is_keras_tuner_project(path):
        kinds.append(KERAS_TUNER)
    if (path / TRANSFER_CSV).is_file():
        kinds.append(TRANSFER)
    if (path / COMPARISON_CSV).is_file() and SEARCH not in kinds:
        kinds.append(COMPARISON)
    return kinds


def require_run(path: str | os.PathLike, accepted: Sequence[str], command: str) -> list[str]:
    """The kinds of ``path`` among ``accepted``.

    Raises:
        RunDirError: ``path`` is not a folder or holds none of the accepted kinds; the message
            lists what was expected and points at a KerasTuner project one level below.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory. Pass a run directory.")
    kinds = [kind for kind in run_kinds(path) if kind in accepted]
    if kinds:
        return kinds
    expected = [_KIND_FILES[kind] for kind in accepted]
    listed = ", ".join(expected[:-1]) + " or " + expected[-1] if len(expected) > 1 else expected[0]
    message = (f"{path} is not a run directory for `hpsearch {command}`: expected {listed}.")
    below = nested_projects(path)
    if below and KERAS_TUNER in accepted:
        message += (" It holds the KerasTuner project(s) "
                    + ", ".join(str(project) for project in below) + ": pass that folder.")
    raise RunDirError(message)


# ---------------------------------------------------------------- folders and the lock
def make_dirs(path: str | os.PathLike, what: str = "run directory") -> list[Path]:
    """Create ``path`` and its missing parents; returns the folders created, outermost first.

    Raises:
        RunDirError: a parent is a regular file, or the folder cannot be created.
    """
    path = Path(path)
    missing, probe = [], path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RunDirError(f"Cannot use {path} as a {what}: {probe} is a file, not a folder. "
                          "Choose another path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"Cannot create the {what} {path}: {error.strerror or error}. "
                          "Choose a folder you can write to.") from None
    return list(reversed(missing))


def remove_empty_dirs(created: Sequence[Path]) -> None:
    """Remove the folders ``make_dirs`` created, innermost first, as long as they are empty."""
    for folder in reversed(list(created)):
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, what: str = "run directory") -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` (created when missing; the OS releases the lock even
    on kill -9). On leaving, the lock file goes, and so do the folders this call created if
    nothing was written into them, so a refused command leaves nothing behind.

    Raises:
        RunLockedError: another process holds it.
        RunDirError: the folder cannot be created or written.
    """
    run_dir = Path(run_dir)
    created = make_dirs(run_dir, what)
    try:
        handle = _acquire(run_dir / LOCK_FILE, run_dir)
    except BaseException:
        remove_empty_dirs(created)
        raise
    try:
        yield run_dir
    finally:
        # Unlinked while held: a process that opened the old file re-checks after locking.
        with contextlib.suppress(OSError):
            (run_dir / LOCK_FILE).unlink()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
        remove_empty_dirs(created)


def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds ``run_dir``'s lock now ("pid 123, since ..."), or None when no process does
    (never locked, finished, or killed: the OS drops a dead process's lock)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        handle = open(path)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                return handle.read().strip() or "unknown"
            return None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def _acquire(path: Path, run_dir: Path):
    while True:
        try:
            handle = open(path, "a+")
        except OSError as error:
            raise _write_error(path, error) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                handle.close()
                raise _write_error(path, error) from None
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunLockedError(
                f"Run directory {run_dir} is in use by another hpsearch process ({holder}). "
                "Wait for it to finish, stop it, or choose another --run-dir."
            ) from None
        try:
            same_file = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        handle.close()  # the holder removed it between our open and our lock: try again
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
    except OSError as error:
        handle.close()
        raise _write_error(path, error) from None
    return handle


# ---------------------------------------------------------------- atomic writes
def _write_error(path: Path, error: OSError) -> RunDirError:
    return RunDirError(f"Cannot write {path}: {error.strerror or error}. Check that the folder is "
                       "writable and the disk has space, or choose another folder.")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all (temporary file, fsync, rename).

    Raises:
        RunDirError: the file cannot be written (names it and says why).
    """
    return _write_whole(path, lambda handle: handle.write(text.encode("utf-8")))


def _write_whole(path: str | os.PathLike, write, private: bool = False) -> Path:
    """Write through ``write(handle)`` into a temporary file of the same folder, fsync it, and
    rename it over ``path``; remove it and raise ``RunDirError`` if anything fails. ``private``:
    readable and writable by the owner only, from the first byte (a secret such as a run's
    token)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        # One left by a killed writer may carry wider permissions: never written into.
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(os.open(temporary, flags, 0o600 if private else 0o666), "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise _write_error(path, error) from None
    return path


def write_private_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all, readable and writable by its owner only
    (mode 0600 from the first byte: a secret such as a run's token).

    Raises:
        RunDirError: the file cannot be written (names it and says why).
    """
    return _write_whole(path, lambda handle: handle.write(text.encode("utf-8")), private=True)


def write_json(path: str | os.PathLike, value: Any, indent: int | None = None) -> Path:
    """``value`` as JSON, atomically (see ``write_text``)."""
    return write_text(path, json.dumps(value, indent=indent))


def write_yaml(path: str | os.PathLike, value: Any) -> Path:
    """``value`` as YAML (key order kept), atomically (see ``write_text``)."""
    return write_text(path, yaml.safe_dump(value, sort_keys=False))


def write_csv(path: str | os.PathLike, frame) -> Path:
    """A DataFrame as CSV without its index, atomically (see ``write_text``)."""
    return write_text(path, frame.to_csv(index=False))


def prediction_file(run_dir: str | os.PathLike, config_id: str, seed: int) -> Path:
    """Where a transfer keeps the test-set probabilities of one configuration and seed."""
    return Path(run_dir) / TRANSFER_PREDICTIONS / f"{config_id}_seed{int(seed)}.npy"


def transfer_model_file(run_dir: str | os.PathLike, config: str, seed: int) -> Path:
    """Where ``transfer --keep-models`` keeps one training's model."""
    return Path(run_dir) / MODELS_DIR / f"{config.replace('/', '__')}_seed{seed}.keras"


def save_model(path: str | os.PathLike, model) -> Path:
    """``model.save`` to ``path`` (.keras) atomically: a kill never leaves half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    os.replace(partial, path)
    return path


def write_array(path: str | os.PathLike, array) -> Path:
    """A NumPy array as ``.npy``, whole or not at all (see ``write_text``)."""
    import numpy as np

    return _write_whole(path, lambda handle: np.save(handle, np.asarray(array),
                                                     allow_pickle=False))


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line and fsync it (a line cut short by a kill is skipped by its reader)."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise _write_error(path, error) from None


# ---------------------------------------------------------------- readers
def read_text(path: str | os.PathLike, what: str) -> str:
    """The text of ``path``, ``what`` saying what it should hold (for the message).

    Raises:
        CorruptRunError: the file cannot be read or is not text.
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorruptRunError(f"{path} is not a text file; expected {what}.") from None
    except OSError as error:
        raise CorruptRunError(f"Cannot read {path} ({what}): {error.strerror or error}.") from None


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON value of ``path``; ``CorruptRunError`` naming the file when it is not JSON."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CorruptRunError(f"{path} is not valid JSON ({what}): {error}.") from None


def read_yaml(path: str | os.PathLike, what: str, mapping: bool = True) -> Any:
    """The YAML value of ``path`` (a mapping unless ``mapping=False``); ``CorruptRunError``
    naming the file when it is not YAML or not a mapping."""
    text = read_text(path, what)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CorruptRunError(f"{path} is not valid YAML ({what}): {error}") from None
    if mapping and not isinstance(value, dict):
        raise CorruptRunError(f"{path} should hold a mapping ({what}), found "
                              f"{type(value).__name__}.")
    return value


def read_csv(path: str | os.PathLike, what: str, **options):
    """A CSV table; ``CorruptRunError`` naming the file when it cannot be parsed."""
    import pandas as pd

    read_text(path, what)  # names the file when it is missing, unreadable or binary
    try:
        return pd.read_csv(path, **options)
    except (ValueError, pd.errors.ParserError) as error:
        raise CorruptRunError(f"{path} is not a readable CSV table ({what}): {error}") from None


def read_array(path: str | os.PathLike, what: str):
    """A NumPy array saved by ``write_array``; ``CorruptRunError`` naming the file when it is
    missing or not a readable ``.npy``."""
    import numpy as np

    path = Path(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise CorruptRunError(f"Cannot read {path} ({what}): {error}.") from None


# ---------------------------------------------------------------- settings
def differences(saved: dict[str, Any], requested: dict[str, Any],
                ignore: Sequence[str] = ()) -> list[str]:
    """``"name: run directory has X, this command asks for Y"`` for every differing setting."""
    return [
        f"{name}: run directory has {saved.get(name)!r}, this command asks for {value!r}"
        for name, value in requested.items()
        if name not in ignore and saved.get(name) != value
    ]


def check_settings(path: str | os.PathLike, key: str | None, requested: dict[str, Any],
                   consequence: str, fix: str, ignore: Sequence[str] = (),
                   defaults: dict[str, Any] | None = None) -> bool:
    """Refuse when the settings saved in ``path`` (its ``key`` mapping; the whole file when
    ``key`` is None) differ from ``requested``.

    Settings missing from the file (added to hpsearch since it was written) count as
    ``defaults``.

    Returns:
        True when ``path`` exists (and holds the same settings): a resume.

    Raises:
        SettingsMismatchError: the saved settings differ; the message lists each one, saved and
            requested, then ``fix``.
        CorruptRunError: the saved file cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        return False
    saved = read_yaml(path, "the settings of this run")
    saved = saved if key is None else saved.get(key)
    if not isinstance(saved, dict):
        raise CorruptRunError(f"{path} has no '{key}' mapping; it was not written by hpsearch.")
    found = differences({**(defaults or {}), **saved}, requested, ignore)
    if found:
        raise SettingsMismatchError(
            f"Run directory {path.parent} was created with other settings, so {consequence}:\n  - "
            + "\n  - ".join(found) + f"\n{fix}")
    return True


def write_or_check_settings(path: str | os.PathLike, document: dict[str, Any], key: str | None,
                            consequence: str, fix: str, ignore: Sequence[str] = (),
                            defaults: dict[str, Any] | None = None) -> bool:
    """``check_settings`` against ``document[key]``, then write ``document``; True on a resume."""
    requested = document if key is None else document[key]
    resumed = check_settings(path, key, requested, consequence, fix, ignore, defaults)
    write_yaml(path, document)
    return resumed


# ---------------------------------------------------------------- KerasTuner trial files
def trial_sort_key(trial_id: Any) -> tuple:
    """Creation order of KerasTuner trial ids: "5" < "06" < "10" (numbers, not text)."""
    text = str(trial_id)
    return (0, int(text), text) if text.isdigit() else (1, 0, text)


def trial_files(project: str | os.PathLike) -> list[Path]:
    """``trial_*/trial.json`` of a KerasTuner project in creation order."""
    files = Path(project).glob(f"{TRIAL_DIR_PREFIX}*/{TRIAL_FILE}")
    return sorted(files, key=lambda path: trial_sort_key(path.parent.name[len(TRIAL_DIR_PREFIX):]))


def read_trial_states(project: str | os.PathLike, repair_hint: str = "") -> list[dict[str, Any]]:
    """Every trial's state (``trial.json``) of a KerasTuner project, in creation order.

    Raises:
        CorruptRunError: a trial file cannot be read; the message names each such file and
            ``repair_hint`` (how to repair the project without losing the good trials).
    """
    states, broken = [], []
    for path in trial_files(project):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or "trial_id" not in state:
                raise ValueError("no trial_id")
        except (OSError, ValueError) as error:
            broken.append(f"{path} ({type(error).__name__}: {str(error)[:80]})")
            continue
        states.append(state)
    if broken:
        raise CorruptRunError(
            f"{len(broken)} trial file(s) of {project} cannot be read:\n  - "
            + "\n  - ".join(broken) + (f"\n{repair_hint}" if repair_hint else ""))
    return states


def read_oracle_state(project: str | os.PathLike) -> dict[str, Any] | None:
    """``oracle.json`` of a KerasTuner project (None when missing)."""
    path = Path(project) / ORACLE_FILE
    if not path.is_file():
        return None
    state = read_json(path, "KerasTuner's oracle state")
    if not isinstance(state, dict):
        raise CorruptRunError(f"{path} should hold a JSON object (KerasTuner's oracle state).")
    return state


def repair_hint(run_dir: str | os.PathLike) -> str:
    """How to repair a run whose KerasTuner files are damaged (used in error messages)."""
    return (f"Run `hpsearch repair {run_dir}` to set the unreadable file(s) aside and rebuild "
            "the search state from the good trials (they are kept), or --overwrite to start again.")


_TRIAL_DIR = re.compile(rf"^{TRIAL_DIR_PREFIX}(.+)$")


def trial_id_of_dir(path: Path) -> str | None:
    """``trial_0007`` -> ``"0007"``."""
    match = _TRIAL_DIR.match(path.name)
    return match.group(1) if match else None
