"""Searches on several processes or machines, on KerasTuner's own chief/worker mode.

The chief (``run_search(..., serve=ServeSettings(...))``) serves the oracle over KerasTuner's gRPC
protocol and trains nothing; each worker (``run_worker``) asks it for trials and trains them. All
of them work in one run directory, which must be on storage they share: trial checkpoints (which
Hyperband continues from) and trial files are written by whoever runs the trial.
``tuner.parallel.run_parallel_search`` starts a chief on loopback and N workers on this machine
and waits for them: the CLI's ``hpsearch tune --workers N``.

What KerasTuner's distributed mode alone does not do, and these modules add:

* a worker that dies (killed, out of memory, a gRPC error: keras-tuner #915) is noticed by the
  chief from its heartbeat file (``workers/<id>.json``: its process is gone, or it was not seen for
  ``worker_timeout`` seconds) and its trial goes back to the queue, so no trial is lost and the
  chief does not wait for it forever; ``run_parallel_search`` also restarts it;
* every wait of a worker is bounded (``connect_timeout`` for the chief to answer at all,
  ``call_timeout`` per call; KerasTuner waits an hour, keras-tuner #990) and ends in a clear error;
* the chief stops its server with a grace period, so a worker's last call is answered before it
  goes (keras-tuner PR #645);
* a distributed Hyperband stops at its schedule's trial count (keras-tuner #256);
* a worker checks over the wire that its run directory is the chief's (a run id);
* only the run's own workers reach its chief (``_ChiefGuard``, a gRPC server interceptor that
  sees each call before KerasTuner's servicer does): every call carries the run's token
  (``run_token``: made by the chief and kept in the run directory, mode 0600, or given by
  ``HPSEARCH_RUN_TOKEN``), the chief's run id and the worker's id; a worker asks for trials under
  its own id only, reports only for the trial the chief handed to it while that trial runs, and
  cannot change its hyperparameters (KerasTuner's ``end_trial`` copies the sender's over them);
* the chief binds loopback unless told otherwise, and speaks gRPC's TLS with the user's
  certificate and key (``ServeSettings.tls_cert``/``tls_key``), which workers check
  (``tls_ca``);
* a worker whose chief has not answered for ``chief_timeout`` seconds (30 by default), or whose
  port now answers for another run, stops within that bound (``_ChiefWatch``), even in the
  middle of an epoch: its heartbeat says "lost chief" and the process exits with one line;
* the chief rewrites ``trials.csv`` and ``top_configs/`` after every trial that ends, as a
  one-process search does, so a killed parallel search keeps its table;
* what KerasTuner prints while answering a call (``conditions.py`` prints a conditional
  hyperparameter's value with a bare ``print`` whenever a trial is sent) stays out of the chief's
  output; its progress lines stay in.

The parts, whose public names this module re-exports (``from tuner.distributed import ...``;
their internals are imported from their own modules): ``tuner.chief`` serves, ``tuner.worker``
joins, ``tuner.chief_protocol`` holds what both agree on (the address, the call metadata, the
run's token, the errors), and ``tuner.heartbeats`` the workers' heartbeat files, which
``hpsearch status`` reads too.
"""

from tuner.chief import STOP_GRACE_SECONDS, ServeSettings, check_bind, is_loopback, serve_oracle
from tuner.chief_protocol import (
    TOKEN_ENV,
    ChiefRefusedError,
    ChiefUnreachableError,
    parse_address,
    run_token,
)
from tuner.heartbeats import HEARTBEAT_SECONDS, heartbeat_gone, read_heartbeats
from tuner.worker import CHIEF_TIMEOUT_SECONDS, check_same_run, run_worker

__all__ = [
    "CHIEF_TIMEOUT_SECONDS",
    "HEARTBEAT_SECONDS",
    "STOP_GRACE_SECONDS",
    "TOKEN_ENV",
    "ChiefRefusedError",
    "ChiefUnreachableError",
    "ServeSettings",
    "check_bind",
    "check_same_run",
    "heartbeat_gone",
    "is_loopback",
    "parse_address",
    "read_heartbeats",
    "run_token",
    "run_worker",
    "serve_oracle",
]
