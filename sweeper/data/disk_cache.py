"""A node-wide file cache of generated data sets, so that a costly generator runs once per machine, not once per
worker process (MNIST-1D: ≈ 3 CPU s for 5 000 examples; every Ray worker of a launch would pay it).

Arrays are kept as ``<dir>/<kind>-<sha256>.npz``, the hash over the generator's parameters and ``version`` (the
generating package's version and this format's), so a changed generator never reads an old file. Writes are atomic
(a temporary file renamed into place) and serialised by an exclusive ``flock`` on ``<file>.lock``: workers that ask at
once wait for the first one's build instead of each building. An unreadable file is rebuilt; a folder that cannot be
written, or a write that fails, only means building without the file cache.

The folder is ``$SWEEPER_CACHE_DIR`` if set (empty: no file cache, always build), else
``$XDG_CACHE_HOME/sweeper`` or ``~/.cache/sweeper``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DIR_ENV = "SWEEPER_CACHE_DIR"
FORMAT = 1  # bump when what a generator's arrays mean changes


def cache_dir() -> Path | None:
    """The cache folder, or None when ``$SWEEPER_CACHE_DIR`` is set empty."""
    if DIR_ENV in os.environ:
        return Path(os.environ[DIR_ENV]).expanduser() if os.environ[DIR_ENV] else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sweeper"


def cached_arrays(kind: str, params: dict[str, Any], version: str,
                  make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``make()``'s arrays for ``params``, from the file cache when it holds them, else made and stored."""
    folder = cache_dir()
    if folder is None:
        return make()
    canonical = json.dumps({"kind": kind, "params": params, "version": version, "format": FORMAT}, sort_keys=True)
    path = folder / f"{kind}-{hashlib.sha256(canonical.encode()).hexdigest()}.npz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "w")  # noqa: SIM115  (held across the build below)
    except OSError:
        return make()  # a folder that cannot be written (read-only home on a node): no file cache, same arrays
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # absent, or unreadable: (re)build
        arrays = make()
        _store(path, arrays)
        return arrays


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically; a failed write (disk full) leaves no file and is not an error."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    except OSError:
        return
    try:
        named: dict[str, Any] = dict(arrays)  # (numpy's stub types ** like its allow_pickle flag)
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **named)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
