"""Heartbeats of a distributed search's workers: the file ``workers/<id>.json`` each worker
rewrites while it runs (``_Heartbeat``), and how a worker is told gone from it
(``heartbeat_gone``).

The chief (``tuner.chief``) gives a gone worker's trial back to the queue, ``hpsearch status``
(``tuner.status``) shows the workers, and a worker counts the live ones; each reads these files.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tuner import rundir
from tuner.errors import RunDirError
from tuner.rundir import WORKERS_DIR

# How often a worker rewrites its heartbeat file, and how often the chief looks at them.
HEARTBEAT_SECONDS = 2.0


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
