"""One daemon per configuration: an exclusive lock in ``paths.state_dir``.

Contract
--------
:func:`hold_instance_lock` ``(state_dir)`` takes an exclusive, non-blocking
``flock`` on ``state_dir/nowcast.lock`` (created, with the folder, when missing)
and writes the holder's pid into it; it returns the open file, which holds the
lock for as long as it stays open (the kernel releases it when the holder dies,
however it dies, so a stale lock file never blocks a restart). When another
process holds it, :class:`AlreadyRunning` (a
:class:`~nowcast.errors.NowcastError`, so ``nowcast run`` exits 1) names the file
and the holder's pid. The file descriptor is not inherited by child processes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from nowcast.errors import ConfigError, NowcastError

LOCK_NAME = "nowcast.lock"


class AlreadyRunning(NowcastError):
    """Another daemon holds this configuration's state folder."""


def hold_instance_lock(state_dir: str | Path) -> IO[str]:
    """Lock ``state_dir`` for this process (see the module contract)."""
    state_dir = Path(state_dir)
    path = state_dir / LOCK_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"paths.state_dir: cannot create the lock {path}: {exc.strerror or exc}"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"{path}: another nowcast daemon (pid {holder}) already runs with this "
            "state folder (paths.state_dir); one daemon per configuration"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
