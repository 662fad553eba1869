"""``hpsearch board``: TensorBoard's HParams dashboard on one or several runs.

``start_board`` (callable from a notebook) writes the HParams data a run lacks from its own
files (``tuner.hparams_files.write_summaries``), then starts the ``tensorboard`` program of this
Python environment on the runs; the command prints its address and stops it on Ctrl-C, writing
the trials that end meanwhile every ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

import click

from tuner import rundir
from tuner.cli_errors import cli_errors
from tuner.errors import HpsearchError, RunDirError
from tuner.hparams_files import write_summaries

__all__ = ["Board", "board", "board_logdirs", "start_board"]

# How often a running board writes the trials that ended since it started (a search run without
# --tensorboard; one run with it writes its own, live).
REFRESH_SECONDS = 30.0
# How long TensorBoard may take to answer (it imports TensorFlow when installed: ~10 s here).
START_TIMEOUT = 120.0


@dataclasses.dataclass
class Board:
    """A running TensorBoard: its process, its address, and the runs it shows (name -> folder)."""

    process: subprocess.Popen
    url: str
    logdirs: dict[str, Path]

    def refresh(self) -> int:
        """Write the trials that ended since (``write_summaries``); returns how many."""
        return sum(write_summaries(Path(folder).parent) for folder in self.logdirs.values())

    def stop(self, seconds: float = 10.0) -> None:
        """Stop TensorBoard (SIGTERM, then SIGKILL after ``seconds``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def board_logdirs(runs: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Write what each run lacks and return the folders TensorBoard reads, by display name
    (the run folder's name; made unique with its parent's when two share one).

    Raises:
        RunDirError: a path is not a run with TensorBoard data to show.
    """
    folders: dict[str, Path] = {}
    for run in runs:
        run_dir = Path(run)
        write_summaries(run_dir)
        logdir = run_dir / rundir.TENSORBOARD_DIR
        if not logdir.is_dir():
            kinds = rundir.run_kinds(run_dir)
            raise RunDirError(
                f"{run_dir} has nothing TensorBoard can show: expected a search run (run.yaml), "
                f"a transfer run (transfer.csv), a clock comparison with a finished head "
                f"(heads/) or a folder with {rundir.TENSORBOARD_DIR}/, found "
                f"{', '.join(kinds) if kinds else 'none of them'}. Pass a directory written by "
                "`hpsearch tune`, `hpsearch transfer` or `hpsearch clock compare`.")
        name = run_dir.resolve().name
        if name in folders:
            name = f"{run_dir.resolve().parent.name}/{name}"
        while name in folders:
            name += "_"
        folders[name] = logdir
    return folders


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_board(runs: Sequence[str | os.PathLike], host: str = "127.0.0.1",
                port: int | None = None, timeout: float = START_TIMEOUT) -> Board:
    """Start TensorBoard on runs, after writing the HParams data they lack.

    Args:
        runs: search, transfer or clock comparison run directories (``hpsearch tune``,
            ``hpsearch transfer``, ``hpsearch clock compare``).
        host: the address to bind (default 127.0.0.1: this machine only).
        port: default: a free port.
        timeout: seconds to wait for TensorBoard to answer.

    Returns:
        The running ``Board``; call ``stop()`` when done.

    Raises:
        RunDirError: a path is not a run with anything to show.
        HpsearchError: TensorBoard exited, or did not answer within ``timeout``.
    """
    logdirs = board_logdirs(runs)
    port = port or free_port(host)
    if len(logdirs) == 1:
        where = ["--logdir", str(next(iter(logdirs.values())))]
    else:
        where = ["--logdir_spec", ",".join(f"{name}:{path}" for name, path in logdirs.items())]
    command = [sys.executable, "-m", "tensorboard.main", *where, "--host", host,
               "--port", str(port), "--reload_interval", "5"]
    environment = {**os.environ,
                   "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=environment, start_new_session=True)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else shown_host}:{port}/"
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            error = (process.stderr.read() or b"").decode(errors="replace").strip().splitlines()
            raise HpsearchError(f"TensorBoard exited with code {process.returncode}: "
                                f"{error[-1] if error else 'no message'}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except (urllib.error.URLError, OSError):
            if time.monotonic() - started > timeout:
                Board(process, url, logdirs).stop()
                raise HpsearchError(f"TensorBoard did not answer at {url} within {timeout:.0f} s.")
            time.sleep(0.5)
    # Its later warnings are not ours to show; a full pipe must not block it.
    process.stderr.close()
    return Board(process, url, logdirs)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _hold_interrupts() -> dict:
    """Defer Ctrl-C, SIGTERM and SIGHUP; returns what ``_release_interrupts`` needs."""
    held = {"signals": [], "handlers": {}}
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        held["handlers"][stop_signal] = signal.signal(
            stop_signal, lambda signum, frame: held["signals"].append(signum))
    return held


def _release_interrupts(held: dict) -> None:
    """Restore the handlers and raise a deferred stop, if one came."""
    for stop_signal, handler in held["handlers"].items():
        signal.signal(stop_signal, handler)
    if held["signals"]:
        raise KeyboardInterrupt


@click.command(short_help="Show runs in TensorBoard's HParams dashboard.")
@click.argument("runs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 shows the runs to your whole network.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to serve on (default: a free one).")
@cli_errors
def board(runs, host, port):
    """Start TensorBoard on one or several runs and print its address; Ctrl-C stops it.

    RUN is a search (`hpsearch tune`), a transfer (`hpsearch transfer`: one row per
    configuration and seed) or a clock comparison (`hpsearch clock compare`: one row per head,
    its mean error in minutes as the score). A run made without --tensorboard (or by an earlier
    version) is
    shown too: its trials' values, best-epoch metrics, scores and statuses are first written
    into RUN/tensorboard/ from its own files, and trials that end while the board runs are added
    every 30 s. The HPARAMS tab holds the table, parallel coordinates and scatter plots.

    Example: hpsearch board runs/demo/mlp
    """
    written = sum(write_summaries(Path(run)) for run in runs)
    if written:
        click.echo(f"Wrote the HParams data of {written} trial(s) from the runs' files.")
    board_logdirs(runs)  # refuses a folder with nothing to show before TensorBoard starts
    click.echo("Starting TensorBoard ...")
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):  # stopped like Ctrl-C: TensorBoard too
        signal.signal(stop_signal, _interrupt)
    started = start_board(runs, host=host, port=port)
    click.echo(f"TensorBoard: {started.url}#hparams (Ctrl-C to stop)")
    try:
        last = time.monotonic()
        while started.process.poll() is None:
            time.sleep(0.5)
            if time.monotonic() - last >= REFRESH_SECONDS:
                last = time.monotonic()
                # Ctrl-C waits for the refresh to end: interrupted inside the imports and file
                # writes it makes, the process could hang on its way out.
                held = _hold_interrupts()
                try:
                    started.refresh()
                except HpsearchError as error:  # a file caught mid-write: next time
                    click.echo(f"Warning: {error}", err=True)
                finally:
                    _release_interrupts(held)
        raise HpsearchError(f"TensorBoard exited with code {started.process.returncode}.")
    except KeyboardInterrupt:
        click.echo("Stopping TensorBoard.")
    finally:
        started.stop()
