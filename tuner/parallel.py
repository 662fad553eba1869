"""``hpsearch tune --workers N``: a search whose trials N worker processes on this machine train.

``run_parallel_search`` starts a chief on loopback (``run_search`` serving, see
``tuner.distributed``) and N workers (``tuner.distributed.run_worker``) as child processes
(``tuner.children``), relays their output, restarts a worker that died (its trial is run again),
replaces a worker that retired (``tuner.recycling``: nothing is run again), and exports the
results when they are done. This process trains nothing and never imports TensorFlow.
"""

from __future__ import annotations

import collections
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from search_spaces.devices import keras_backend, shared_gpu_env, visible_gpus
from tuner.children import (
    _Child,
    _child_env,
    _describe_exit,
    _result_of_children,
    _stopped_error,
    _trial_log_lines,
)
from tuner.distributed import CHIEF_TIMEOUT_SECONDS, STOP_GRACE_SECONDS
from tuner.errors import SearchError, UsageError
from tuner.recycling import RETIRED_EXIT_CODE


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
