"""Searches whose trials run in child processes of this one: ``hpsearch tune --workers N``, and a
long one-process ``hpsearch tune``.

``run_parallel_search`` starts a chief on loopback (``run_search`` serving, see
``tuner.distributed``) and N workers (``tuner.distributed.run_worker``) as child processes, relays
their output, restarts a worker that died (its trial is run again), replaces a worker that
retired (``tuner.recycling``: nothing is run again), and exports the results when they are done.
``run_recycled_search`` runs a one-process search in a child process, and goes on in a fresh one
each time it retires. This process trains nothing and never imports TensorFlow.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from search_spaces.devices import keras_backend, shared_gpu_env, visible_gpus
from tuner import rundir
from tuner.distributed import (
    CHIEF_TIMEOUT_SECONDS,
    STOP_GRACE_SECONDS,
    ServeSettings,
    run_worker,
)
from tuner.errors import HpsearchError, SearchError, UsageError
from tuner.recycling import RETIRED_EXIT_CODE, ProcessRetired, Retirement

# Marks a line of a child's output as an event of its Retirement (JSON), for this process only.
_EVENT_MARK = "\x1ehpsearch-event "


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_device_env(index: int, workers: int, gpus: list, threads: int,
                      backend: str) -> dict[str, str]:
    """Environment of worker ``index`` of ``workers``: its GPU (round robin), else its CPU threads.

    Workers that share a GPU take its memory as they need it instead of all of it at start.
    """
    if not gpus:
        return {"OMP_NUM_THREADS": str(threads)}
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID",  # number the GPUs as nvidia-smi does
            "CUDA_VISIBLE_DEVICES": str(gpus[index % len(gpus)].index),
            **(shared_gpu_env(backend) if workers > len(gpus) else {})}


class _Child:
    """A chief, worker or search process whose output lines are relayed, the last ones kept.

    ``prefixed``: each line is shown as ``name | line`` (several processes share the output);
    else as it is, except the ``Error:`` message the process ends with, which its caller raises.
    ``on_event``: told of the process's ``tuner.recycling.Retirement`` events.
    """

    def __init__(self, name: str, spec: dict[str, Any], env: dict[str, str],
                 progress: Callable[[str], None], prefixed: bool = True,
                 on_event: Callable[[str, dict[str, Any]], None] | None = None):
        self.name, self.spec, self.env, self.progress = name, spec, env, progress
        self.prefixed = prefixed
        self.on_event = on_event or (lambda name, event: None)
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.process: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None

    def start(self) -> "_Child":
        code = "from tuner.parallel import process_main; process_main()"
        spec = {**self.spec, "launcher_pid": os.getpid()}
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(spec)], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, bufsize=1,
        )
        self.reader = threading.Thread(target=self._relay, daemon=True)
        self.reader.start()
        return self

    def _relay(self):
        erring = False
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if line.startswith(_EVENT_MARK):
                self.on_event(self.name, json.loads(line[len(_EVENT_MARK):]))
                continue
            self.tail.append(line)
            if self.prefixed:
                self.progress(f"{self.name} | {line}")
                continue
            erring = erring or line.startswith("Error: ")
            if not erring:
                self.progress(line)

    def wait(self) -> int:
        """The process's exit status, once it has exited and its output is all relayed."""
        code = self.process.wait()
        self.reader.join()
        return code

    def poll(self) -> int | None:
        return self.process.poll()

    def error_line(self) -> str:
        message = self.error_message()
        return message.splitlines()[0] if message else "\n".join(list(self.tail)[-5:])

    def error_message(self) -> str | None:
        """The whole ``Error:`` message the process printed last (it may span lines), or None."""
        lines = list(self.tail)
        starts = [index for index, line in enumerate(lines) if line.startswith("Error: ")]
        if not starts:
            return None
        return "\n".join([lines[starts[-1]][len("Error: "):]] + lines[starts[-1] + 1:])

    def stop(self, seconds: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(seconds)
        if self.reader is not None:
            self.reader.join(seconds)


def _describe_exit(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def run_parallel_search(
    config,
    run_dir: str | os.PathLike,
    workers: int = 2,
    data_dir=None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = print,
    force_direction: bool = False,
    threads_per_worker: int | None = None,
    worker_timeout: float = 120.0,
    connect_timeout: float = 300.0,
    call_timeout: float = 600.0,
    max_restarts: int = 2,
    chief_timeout: float = CHIEF_TIMEOUT_SECONDS,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
):
    """Run (or resume) a search with ``workers`` processes training trials on this machine.

    A chief on 127.0.0.1 (a free port) and ``workers`` worker processes named ``worker0``...
    Each worker gets its share of the CPU threads or, where the NVIDIA driver lists GPUs, one GPU
    through ``CUDA_VISIBLE_DEVICES``, round robin; workers that share a GPU take its memory as they
    need it instead of all at start (``worker_device_env``). A worker that dies is started again
    (its trial is run again) up to ``max_restarts`` times. A worker that retires
    (``config.recycle_after`` trials run, or above ``config.max_memory_mb``: ``tuner.recycling``)
    is replaced by a fresh process under its id at once, with nothing run again. The run
    directory ends like a one-process search's: ``trials.csv``, ``top_configs/``, and the same
    resume.

    Args:
        config: the RunConfig, as for ``run_search``.
        run_dir, data_dir, overwrite, progress, force_direction: as for ``run_search``.
        workers: worker processes (at least 1).
        threads_per_worker: TensorFlow threads of each worker (default: CPU cores / workers).
        worker_timeout, connect_timeout, call_timeout, chief_timeout: see ``ServeSettings`` and
            ``run_worker``.
        max_restarts: restarts of each worker after it died (default 2).
        on_event: called with (worker name, event) for each ``tuner.recycling.Retirement``
            event of the workers (their first trial, each trial's resident memory, retirement).

    This process trains nothing and never imports TensorFlow: the chief checks the settings
    (``run_search``'s checks, reported as its own error with its exit code), resolves the
    objective and a fine-tune's source, and writes them to ``run.yaml``, which the export at the
    end reads.

    Returns:
        A ``tuner.export.SearchResult`` (its ``training_seconds`` summed over the workers).

    Raises:
        As ``run_search`` (the chief's error, with its exit code); SearchError when the chief
        crashes or every worker failed.
    """
    started = time.monotonic()
    progress = progress or (lambda line: None)
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}.")
    if config.strategy is not None:
        raise UsageError(
            "--workers and --strategy cannot be combined: --strategy mirrored trains one trial "
            "on every GPU of the host, --workers N trains N trials at once, one GPU each. "
            "Pick one.")
    run_dir = Path(run_dir)
    log_before = len(_trial_log_lines(run_dir)) if not overwrite else 0
    port = _free_port()
    gpus = visible_gpus()
    threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
    backend = keras_backend()
    base_env = _child_env()
    chief = _Child("chief", {
        "role": "chief", "config": config.to_dict(), "run_dir": str(run_dir),
        "data_dir": [str(d) for d in data_dir or []], "overwrite": overwrite,
        "force_direction": force_direction,
        "serve": {"host": "127.0.0.1", "port": port, "worker_timeout": worker_timeout},
    }, {**base_env, "CUDA_VISIBLE_DEVICES": "",  # the chief trains nothing
        **({"JAX_PLATFORMS": "cpu"} if backend == "jax" else {})}, progress)

    # The elapsed time of each worker's first process, which its replacements go on with.
    clocks: dict[str, float] = {}

    def event(name: str, fields: dict[str, Any]) -> None:
        if fields["event"] == "ready":
            clocks.setdefault(name, fields["search_started"])
        if on_event is not None:
            on_event(name, fields)

    def worker_child(index: int, replacement: bool = False) -> _Child:
        env = {**base_env, **worker_device_env(index, workers, gpus, threads, backend)}
        name = f"worker{index}"
        return _Child(name, {
            "role": "worker", "address": f"127.0.0.1:{port}", "run_dir": str(run_dir),
            "tuner_id": name, "data_dir": [str(d) for d in data_dir or []],
            "threads": None if gpus else threads, "connect_timeout": connect_timeout,
            "call_timeout": call_timeout, "chief_timeout": chief_timeout,
            "config": config.to_dict(), "replacement": replacement,
            "search_started": clocks.get(name),
        }, env, progress, on_event=event)

    children = [chief.start()] + [worker_child(i).start() for i in range(workers)]
    restarts = collections.Counter()
    try:
        chief_done_at = None
        while True:
            time.sleep(0.2)
            chief_code = chief.poll()
            running = 0
            for index, child in enumerate(children[1:], start=1):
                code = child.poll()
                if code is None:
                    running += 1
                    continue
                if code == RETIRED_EXIT_CODE and chief_code is None:
                    # Its trials are saved: a fresh process under its id goes on, not a restart.
                    child.wait()
                    children[index] = worker_child(index - 1, replacement=True).start()
                    running += 1
                    continue
                if code == 0 or chief_code is not None or restarts[child.name] >= max_restarts:
                    continue
                if child.tail and any("is not the run directory" in line
                                      or "refused this worker (UNAUTHENTICATED)" in line
                                      for line in child.tail):
                    continue  # started again, it would be refused again
                restarts[child.name] += 1
                progress(f"{child.name} stopped ({_describe_exit(code)}); starting it again "
                         "(a trial it was running is run again).")
                children[index] = worker_child(index - 1).start()
                running += 1
            if chief_code is not None:
                if chief_code != 0:
                    raise _stopped_error(chief, chief_code)
                chief_done_at = chief_done_at or time.monotonic()
                if not running or time.monotonic() - chief_done_at > STOP_GRACE_SECONDS * 4:
                    break
            elif not running:
                failed = [c for c in children[1:] if c.poll() != 0]
                if failed:
                    raise SearchError(
                        f"Every worker stopped and {len(failed)} failed; the last said: "
                        f"{failed[-1].error_line()}. Finished trials are saved: run the same "
                        "command again to resume.")
                chief_done_at = chief_done_at or time.monotonic()
                if time.monotonic() - chief_done_at > worker_timeout + 30:
                    raise SearchError("The workers finished but the chief did not stop; "
                                      "run the same command again to resume.")
    finally:
        for child in reversed(children):
            child.stop()
    return _result_of_children(run_dir, log_before, started)


def run_recycled_search(
    config,
    run_dir: str | os.PathLike,
    data_dir=None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = print,
    force_direction: bool = False,
    accept_changed_space: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
):
    """Run (or resume) a search as ``run_search`` does, its trials in a child process that is
    replaced by a fresh one whenever it retires (``config.recycle_after`` trials, or above
    ``config.max_memory_mb``; see ``tuner.recycling``): what ``hpsearch tune`` does when
    ``tuner.recycling.replaces_processes(config)``.

    Each child runs ``run_search``, which resumes what its predecessor saved: no trial is lost or
    trained again. The progress lines are those of one ``run_search`` (a replacement's set-up
    lines are left out, its elapsed time goes on). Ctrl-C or SIGTERM stops the child, which
    leaves the run directory as a kill does (resumable).

    Args:
        config, run_dir, data_dir, overwrite, progress, force_direction, accept_changed_space:
            as for ``run_search`` (a space, data or observers of this process cannot cross
            into a child: name them in ``config``).
        on_event: called with ("search", event) for each ``tuner.recycling.Retirement`` event
            of the children (their first trial, each trial's resident memory, retirement).

    Returns:
        A ``tuner.export.SearchResult``, as ``run_search``'s.

    Raises:
        As ``run_search`` (the child's error, with its exit code); SearchError when the child
        crashes.
    """
    started = time.monotonic()
    progress = progress or (lambda line: None)
    run_dir = Path(run_dir)
    log_before = len(_trial_log_lines(run_dir)) if not overwrite else 0
    env = _child_env()
    spec = {"role": "search", "config": config.to_dict(), "run_dir": str(run_dir),
            "data_dir": [str(d) for d in data_dir or []], "force_direction": force_direction,
            "accept_changed_space": accept_changed_space}
    clock: dict[str, float] = {}

    def event(name: str, fields: dict[str, Any]) -> None:
        if fields["event"] == "ready":
            clock.setdefault("search_started", fields["search_started"])
        if on_event is not None:
            on_event(name, fields)

    replacement = False
    with _stopping_on_sigterm():
        while True:
            child = _Child("search", {
                **spec, "overwrite": overwrite and not replacement, "replacement": replacement,
                "search_started": clock.get("search_started"),
            }, env, progress, prefixed=False, on_event=event).start()
            try:
                code = child.wait()
            finally:
                child.stop()
            if code != RETIRED_EXIT_CODE:
                break
            replacement = True
    if code != 0:
        raise _stopped_error(child, code, "search process")
    return _result_of_children(run_dir, log_before, started)


@contextlib.contextmanager
def _stopping_on_sigterm():
    """SIGTERM raises KeyboardInterrupt here, as Ctrl-C does, so that the child is stopped on
    the way out (SIGTERM's default would end this process alone; the kernel would then kill the
    child, see ``_die_with_launcher``). Only the main thread can set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _child_env() -> dict[str, str]:
    """The environment of a child process: this one's, with hpsearch importable, unbuffered
    output, and none of KerasTuner's distribution variables (each child sets its own)."""
    package_root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        env.pop(name, None)
    return env


def _result_of_children(run_dir: Path, log_before: int, started: float):
    """The SearchResult of a search its children ran: the results exported again from the run
    directory, the trials of this call and their time inside fit from the trial log."""
    from tuner.config import read_run_config
    from tuner.export import export_results, search_result

    # As the chief or child resolved it (objective, direction, a fine-tune's head and image size).
    config, document = read_run_config(run_dir)
    trials, top = export_results(run_dir, config, document.get("textbook_values"))
    new_entries = [json.loads(line) for line in _trial_log_lines(run_dir)[log_before:]]
    return search_result(run_dir, config, trials, top, len(new_entries), started,
                         sum(float(e.get("fit_seconds") or 0) for e in new_entries),
                         document.get("precision", config.precision))


def _stopped_error(child: "_Child", code: int, what: str = "chief") -> HpsearchError:
    """The error of a chief or search process that stopped: its own message and exit code when it
    reported one (a usage error stays exit code 2), else what it printed last."""
    message = child.error_message()
    if message is None:
        return SearchError(f"The {what} stopped ({_describe_exit(code)}); finished trials are "
                           "saved: run the same command again to resume. It said last: "
                           f"{child.error_line()}")
    return UsageError(message) if code == UsageError.exit_code else SearchError(message)


def _trial_log_lines(run_dir: Path) -> list[str]:
    path = Path(run_dir) / rundir.TRIAL_LOG
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip().endswith("}")]


def _die_with_launcher(launcher_pid: int | None) -> None:
    """Have the kernel kill this process when its launcher dies (Linux).

    Without it, ``kill -9`` of ``hpsearch tune --workers N`` alone left its chief and workers
    running on: the chief holding the run's lock, so that running the command again was refused
    until they were found and killed by hand.
    """
    if launcher_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != launcher_pid:  # it died before prctl took effect
        os._exit(1)


def _stop_on_signals() -> None:
    """Ctrl-C or SIGTERM ends a search process as Ctrl-C ends ``run_search`` in a terminal: its
    ``finally`` blocks run (the observers end their runs, the lock goes). Once: a second signal
    (the launcher's SIGTERM after the terminal's Ctrl-C) does not cut that short."""

    def interrupt(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def process_main() -> None:
    """Entry point of a chief, worker or search process started by ``run_parallel_search`` or
    ``run_recycled_search``."""
    from tuner.cli_errors import import_tensorflow, user_message

    spec = json.loads(sys.argv[-1])
    _die_with_launcher(spec.get("launcher_pid"))
    # KerasTuner prints (its trial display, a stray print in conditions.py): only progress lines,
    # the Retirement's events and the error line reach the launcher.
    shown = sys.stdout
    sys.stdout = open(os.devnull, "w")

    def show(line: str) -> None:
        shown.write(line + "\n")
        shown.flush()

    def report(event: dict[str, Any]) -> None:
        show(_EVENT_MARK + json.dumps(event))

    if spec["role"] == "search":
        _stop_on_signals()
    try:
        import_tensorflow()
        from tuner.config import RunConfig

        if spec["role"] == "chief":
            from tuner.search import run_search

            run_search(RunConfig.from_dict(spec["config"]), spec["run_dir"],
                       data_dir=spec["data_dir"] or None, overwrite=spec["overwrite"],
                       progress=show, force_direction=spec["force_direction"],
                       serve=ServeSettings(**spec["serve"]))
            return
        config = RunConfig.from_dict(spec["config"])
        retirement = Retirement(config, spec["run_dir"], report, spec["search_started"],
                                show_set_up=not spec["replacement"])
        if spec["role"] == "search":
            from tuner.search import run_search

            run_search(config, spec["run_dir"], data_dir=spec["data_dir"] or None,
                       overwrite=spec["overwrite"], progress=retirement.progress(show),
                       force_direction=spec["force_direction"],
                       accept_changed_space=spec["accept_changed_space"], retirement=retirement)
        else:
            run_worker(spec["address"], spec["run_dir"], spec["tuner_id"],
                       data_dir=spec["data_dir"] or None, progress=retirement.progress(show),
                       connect_timeout=spec["connect_timeout"],
                       call_timeout=spec["call_timeout"], threads=spec["threads"],
                       chief_timeout=spec.get("chief_timeout", CHIEF_TIMEOUT_SECONDS),
                       retirement=retirement)
    except ProcessRetired:
        # Everything is saved and flushed: skipping the interpreter's teardown with TensorFlow
        # loaded (seconds) lets the fresh process start that much sooner.
        sys.stderr.flush()
        os._exit(RETIRED_EXIT_CODE)
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    except Exception as error:  # noqa: BLE001 - shown as one line; a bug keeps its traceback
        message = user_message(error)
        if message is None:
            raise
        show(f"Error: {message[0]}")
        sys.exit(message[1])
