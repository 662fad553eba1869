"""The child processes of hpsearch's launchers, which train nothing themselves: the chief and
workers of ``hpsearch tune --workers N`` (``tuner.parallel``) and the search process of a long
one-process ``hpsearch tune`` (``tuner.recycled_search``).

``_Child`` starts one (``process_main`` is its entry point, run as ``python -c``) and relays its
output; the rest is what both launchers share: the children's environment, the error of a child
that stopped, and the search result read back from the run directory. The launcher's side imports
no TensorFlow; a child imports it in ``process_main``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from tuner import rundir
from tuner.distributed import CHIEF_TIMEOUT_SECONDS, ServeSettings, run_worker
from tuner.errors import HpsearchError, SearchError, UsageError
from tuner.recycling import RETIRED_EXIT_CODE, ProcessRetired, Retirement

# Marks a line of a child's output as an event of its Retirement (JSON), for this process only.
_EVENT_MARK = "\x1ehpsearch-event "


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
        code = "from tuner.children import process_main; process_main()"
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
