"""The archive split: older scans to train on, the newest days held out to decide.

Contract
--------
- :func:`split_archive` indexes the scans under ``paths.archive_dir`` (the
  daemon's ``yyyymmdd/NAME`` layout, any depth; ``daemon.pattern``; hidden names
  skipped) by scan time with
  :func:`nowcast.verification.index_observations` (the time in the file name,
  else the file's own; two files of one time: the first path). With ``newest``
  the newest scan time, a scan is **held out** when its time is after
  ``newest - retrain.heldout_days`` and **trained on** otherwise, so no scan is
  in both. A missing or empty archive, or one with nothing older than the
  held-out days, raises :class:`~nowcast.errors.RetrainError` saying so.
- :func:`stage_links` makes the training half visible to ``nowcast train
  --data``: a folder of symbolic links, one a training scan, at the scan's path
  below the archive (so the cache's cases stay one a day). The folder is emptied
  first; it holds links only, so removing it never touches a scan.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nowcast.errors import RetrainError

if TYPE_CHECKING:
    from nowcast.config import Settings


@dataclass
class ArchiveSplit:
    """Scans by time, oldest first: the training part and the held-out part."""

    root: Path
    train: list[tuple[datetime, Path]]
    heldout: list[tuple[datetime, Path]]
    cutoff: datetime  # held out: time > cutoff
    unreadable: int = 0

    @property
    def newest(self) -> datetime:
        return self.heldout[-1][0]

    def describe(self) -> dict[str, Any]:
        first = self.heldout[0][0] if self.heldout else None
        return {
            "train_scans": len(self.train),
            "heldout_scans": len(self.heldout),
            "heldout_from": first,
            "heldout_to": self.newest if self.heldout else None,
            "unreadable": self.unreadable,
        }


def split_archive(settings: Settings) -> ArchiveSplit:
    """Index ``paths.archive_dir`` and split it (see the module contract)."""
    from nowcast.verification import index_observations

    root = Path(settings.paths.archive_dir)
    if not root.is_dir():
        raise RetrainError(
            f"{root}: no scan archive (paths.archive_dir; the daemon fills it when "
            'daemon.archive is not "off")'
        )
    index = index_observations(root, pattern=settings.daemon.pattern)
    scans = sorted(index.by_time.items())
    if not scans:
        raise RetrainError(f"{root}: the scan archive holds no scans")
    days = float(settings.retrain.heldout_days)
    cutoff = scans[-1][0] - timedelta(days=days)
    train = [(t, p) for t, p in scans if t <= cutoff]
    heldout = [(t, p) for t, p in scans if t > cutoff]
    if not train:
        span = (scans[-1][0] - scans[0][0]).total_seconds() / 86400.0
        raise RetrainError(
            f"{root}: the archive spans {span:.2f} days, all of them within "
            f"retrain.heldout_days = {days:g}: nothing to train on yet"
        )
    return ArchiveSplit(root, train, heldout, cutoff, len(index.unreadable))


def stage_links(scans: list[tuple[datetime, Path]], root: Path, staging: Path) -> Path:
    """Links to ``scans`` (under ``root``) in ``staging``; returns ``staging``."""
    if staging.is_symlink() or staging.is_file():
        staging.unlink()
    elif staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for _, path in scans:
        try:
            rel = path.relative_to(root)
        except ValueError:
            rel = Path(path.name)
        link = staging / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), link)
    return staging
