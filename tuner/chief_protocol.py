"""What a distributed search's chief and its workers agree on: the form of the chief's address,
the gRPC metadata every call of a worker carries, the run's token, and the errors a worker meets.

``tuner.chief`` (which serves) and ``tuner.worker`` (which joins) both import it; it imports
neither.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

from tuner import rundir
from tuner.errors import HpsearchError, RunDirError, UsageError
from tuner.rundir import RUN_TOKEN_FILE

# Gives the run's token to a chief and its workers instead of the run directory's file.
TOKEN_ENV = "HPSEARCH_RUN_TOKEN"
# The gRPC metadata every call of a worker carries (keys in lower case, as gRPC requires).
_TOKEN_KEY, _RUN_ID_KEY, _WORKER_KEY = "hpsearch-token", "hpsearch-run-id", "hpsearch-worker"


class ChiefUnreachableError(HpsearchError, RuntimeError):
    """A worker cannot reach the chief, or lost it."""


class ChiefRefusedError(HpsearchError, RuntimeError):
    """The chief refused a worker's call: not the run's token, another run, or a report for a
    trial that is not the worker's to report. The worker stops; it does not ask again."""


def parse_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:PORT"`` for IPv6) as (host, port).

    Raises:
        UsageError: not of that form, or the port is not 1 to 65535.
    """
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"Expected an address like 127.0.0.1:8000 (HOST:PORT, port 1 to 65535), got {text!r}."
        )
    return host, int(port)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _read_pem(path: str | os.PathLike, option: str) -> bytes:
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"Cannot read {option} {path}: {error.strerror or error}.") from None
    if b"-----BEGIN " not in content:
        raise UsageError(f"{option} {path} is not a PEM file (no '-----BEGIN' line): give the "
                         "certificate or key in PEM form, as openssl writes it.")
    return content


# ---------------------------------------------------------------- the run's token
def _checked_token(token: str, where: str) -> str:
    token = token.strip()
    if len(token) < 16 or not (token.isascii() and token.isprintable()):
        raise UsageError(
            f"The run token from {where} must be at least 16 printable ASCII characters, got "
            f"{len(token)} character(s). Make one with: python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\"")
    return token


def run_token(run_dir: str | os.PathLike, progress: Callable[[str], None] | None = None) -> str:
    """The token every call of the run's workers carries: ``HPSEARCH_RUN_TOKEN`` when set, else
    the run directory's ``run_token`` file, made on first use (``secrets.token_urlsafe(32)``,
    written atomically, readable by its owner only) and kept for later chiefs of the same run.

    A file that others may read is replaced by a new token (``progress`` says so).

    Raises:
        UsageError: ``HPSEARCH_RUN_TOKEN`` is too short or not printable ASCII.
        RunDirError: the file cannot be written.
    """
    given = os.environ.get(TOKEN_ENV, "")
    if given.strip():
        return _checked_token(given, TOKEN_ENV)
    path = Path(run_dir) / RUN_TOKEN_FILE
    try:
        exposed = path.stat().st_mode & 0o077
        kept = "" if exposed else path.read_text(encoding="utf-8").strip()
    except OSError:
        exposed, kept = 0, ""
    if kept:
        return kept
    if exposed and progress is not None:
        progress(f"Warning: {path} could be read by other users; it now holds a new token "
                 "(workers given the old one must be given the new one).")
    token = secrets.token_urlsafe(32)
    rundir.write_private_text(path, token + "\n")
    return token


def _worker_token(run_dir: Path) -> str:
    given = os.environ.get(TOKEN_ENV, "")
    if given.strip():
        return _checked_token(given, TOKEN_ENV)
    path = Path(run_dir) / RUN_TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RunDirError(
            f"Cannot read the run's token {path} ({error.strerror or error}). The chief writes it "
            "when it starts serving, readable by its owner only: run this worker as the same "
            f"user on the chief's run directory, or give it the token in {TOKEN_ENV} (the "
            "file's content, or the chief's own HPSEARCH_RUN_TOKEN)."
        ) from None
    return _checked_token(token, str(path))
