"""Where datasets are looked for, in order, and how the search is reported when it fails.

Order: the explicit data directories (``data_dir`` argument / ``--data-dir``, then the environment
variable ``HPSEARCH_DATA_DIR``, both may hold several directories separated by ``os.pathsep``), the
system-wide copy a Debian package installs, the Keras cache, and finally a Keras download.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

DATA_DIR_ENV = "HPSEARCH_DATA_DIR"
NO_DOWNLOAD_ENV = "HPSEARCH_NO_DOWNLOAD"


def explicit_data_dirs(
    data_dir: str | os.PathLike | Sequence[str | os.PathLike] | None,
) -> list[Path]:
    """The user's own data directories: the argument first, then ``$HPSEARCH_DATA_DIR``."""
    dirs: list[Path] = []
    if data_dir is not None:
        items: Iterable = [data_dir] if isinstance(data_dir, (str, os.PathLike)) else data_dir
        for item in items:
            dirs.extend(_split_path_list(os.fspath(item)))
    dirs.extend(_split_path_list(os.environ.get(DATA_DIR_ENV, "")))
    return dirs


def keras_cache_dir() -> Path:
    """Keras's own download cache (``$KERAS_HOME`` or ``~/.keras``) + ``datasets``."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(keras_home) / "datasets"


def keras_download_root() -> str:
    """The ``cache_dir`` for ``keras.utils.get_file``: the parent of ``keras_cache_dir()``,
    created. Keras reads ``$KERAS_HOME`` once, at import, and downloads into ``/tmp/.keras``
    when the folder is missing: in either case no later search would look there."""
    root = keras_cache_dir().parent
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def downloads_allowed(download: bool | None) -> bool:
    """A download is tried unless turned off by argument or by ``HPSEARCH_NO_DOWNLOAD=1``."""
    if download is not None:
        return download
    return os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower() not in {"1", "true", "yes"}


def searched_folders(data_dir, subdirs: Sequence[str]) -> list[Path]:
    """Every folder ``search_explicit_dirs`` probes, in its order: each user data directory and
    its ``subdirs`` ("" is the directory itself)."""
    return [base / sub if sub else base for base in explicit_data_dirs(data_dir) for sub in subdirs]


def search_explicit_dirs(
    data_dir, subdirs: Sequence[str], probe: Callable[[Path], T | None], tried: list[str]
) -> T | None:
    """The first ``probe(dir/sub)`` that finds something among the user's data directories.

    Every directory searched in vain is added to ``tried`` for the error message.
    """
    for base in explicit_data_dirs(data_dir):
        for sub in subdirs:
            found = probe(base / sub if sub else base)
            if found:
                return found
        tried.append(f"{base} (and its subfolders {', '.join(s for s in subdirs if s)})")
    return None


def try_download(
    download: bool | None, origin: str, fetch: Callable[[], T], tried: list[str]
) -> T | None:
    """``fetch()`` when downloads are allowed; a failure is recorded in ``tried``, not raised."""
    if not downloads_allowed(download):
        tried.append("Keras download (turned off by HPSEARCH_NO_DOWNLOAD or download=False)")
        return None
    try:
        return fetch()
    except Exception as error:  # noqa: BLE001 - any network failure means "not found here"
        tried.append(f"Keras download from {origin} (failed: {type(error).__name__}: {error})")
        return None


def _split_path_list(value: str) -> list[Path]:
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def format_not_found(dataset: str, tried: list[str], fixes: list[str]) -> str:
    """The message of a DatasetNotFoundError: every place tried, then how to fix it."""
    lines = [f"Dataset '{dataset}' was not found. Places tried, in order:"]
    lines += [f"  - {place}" for place in tried]
    lines.append("To fix it, do one of:")
    lines += [f"  - {fix}" for fix in fixes]
    return "\n".join(lines)


# hpsearch's own cache folder (rendered clock sets, the precision probe), outside any repository.
CACHE_DIR_ENV = "HPSEARCH_CACHE_DIR"


def default_cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$HPSEARCH_CACHE_DIR``, else ``~/.cache/hpsearch``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_DIR_ENV, "").strip():
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path.home() / ".cache" / "hpsearch"
