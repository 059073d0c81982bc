"""Promotion: the candidate replaces the production checkpoint, atomically.

Contract
--------
:func:`promote` ``(candidate, production)``:

1. when ``production`` exists, copies it to :func:`previous_path` (``NAME.previous.pt``
   beside it: the rollback is ``mv NAME.previous.pt NAME.pt``), replacing an older one;
2. copies ``candidate`` to a hidden temporary file beside ``production``, fsyncs
   it, and moves it into place with ``os.replace`` (:func:`nowcast.fsutil.atomic_path`),
   then fsyncs the folder.

A reader (the daemon's hot reload) sees the old file or the whole new one, never
part of one; the new file has a new inode and mtime, which is how
:class:`~nowcast.daemon.models.ModelManager` notices it and reloads (after its test
forecast). On any error the temporary file is removed, ``production`` is untouched
and the :class:`OSError` propagates. The candidate is left where it was.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nowcast.fsutil import atomic_path


def previous_path(production: Path) -> Path:
    """``models/production.pt`` -> ``models/production.previous.pt``."""
    production = Path(production)
    return production.with_name(f"{production.stem}.previous{production.suffix}")


def _copy_synced(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def promote(candidate: Path, production: Path) -> Path | None:
    """Make ``candidate`` the production model; returns the kept previous one."""
    candidate, production = Path(candidate), Path(production)
    previous = None
    if production.is_file():
        previous = previous_path(production)
        _copy_synced(production, previous)
    _copy_synced(candidate, production)
    _sync_folder(production.parent)
    return previous
