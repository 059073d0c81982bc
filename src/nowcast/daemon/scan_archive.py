"""The scan archive: what the daemon took, kept for retraining, pruned by age and size.

Contract
--------
- :meth:`Archive.keep` puts a taken scan at ``archive_dir/yyyymmdd/NAME`` (date of
  the scan time): a hard link (``daemon.archive = "link"``: no second copy, and the
  scan survives whatever cleans the input directory), falling back to a copy when
  the two folders are on different file systems; ``"copy"`` always copies;
  ``"off"`` keeps nothing. A scan that is a symbolic link is always copied (its
  content, never a link that points outside the archive). Copies go through a
  hidden temporary file, so the archive never holds a partial scan. An existing file of that name is kept.
- :meth:`Archive.prune` deletes archived files older than ``archive_keep_days``
  (by mtime; 0 = no age limit), then the oldest until the archive is under
  ``archive_max_gb`` (0 = no size limit), and empty date folders. It walks only
  the archive folder and never enters the input directory, so scans in the input
  directory are never deleted.
- Failures raise :class:`OSError`; the daemon logs them and goes on.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nowcast.fsutil import atomic_path

_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


@dataclass
class PruneReport:
    removed: int = 0
    freed_bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0


class Archive:
    """Scans kept for retraining (see the module contract)."""

    def __init__(
        self,
        root: Path,
        mode: str = "link",
        keep_days: float = 30.0,
        max_gb: float = 50.0,
        input_dir: Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.mode = mode
        self.keep_days = float(keep_days)
        self.max_bytes = int(float(max_gb) * 1e9)
        self.input_dir = Path(input_dir) if input_dir is not None else None
        if self.input_dir is not None and _same(self.root, self.input_dir):
            self.mode = "off"  # archiving a folder into itself would prune it

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def keep(self, path: Path, scan_time: datetime) -> Path | None:
        """Archive one scan; returns where it is (None when archiving is off)."""
        if not self.enabled:
            return None
        day = scan_time.astimezone(timezone.utc).strftime("%Y%m%d")
        target = self.root / day / path.name
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.mode == "link" and not path.is_symlink():  # a link keeps content
            # only when it is the file itself: a hard link to a symlink would
            # point outside the archive
            try:
                os.link(path, target)
                return target
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
            shutil.copystat(path, tmp)
        return target

    def _files(self) -> list[tuple[Path, os.stat_result]]:
        skip = os.path.abspath(self.input_dir) if self.input_dir is not None else None
        out = []
        for folder, dirs, files in os.walk(self.root):
            if skip is not None:
                dirs[:] = [d for d in dirs if os.path.join(folder, d) != skip]
            for name in files:
                if name.startswith("."):
                    continue
                p = Path(folder) / name
                try:
                    out.append((p, p.stat()))
                except OSError:
                    continue
        return out

    def prune(self, now: datetime) -> PruneReport:
        """Delete by age, then by size (see the module contract)."""
        report = PruneReport()
        if not self.root.is_dir():
            return report
        files = sorted(self._files(), key=lambda item: item[1].st_mtime)
        cutoff = now.timestamp() - self.keep_days * 86400.0
        kept = []
        for p, st in files:
            if self.keep_days > 0 and st.st_mtime < cutoff:
                self._remove(p, st, report)
            else:
                kept.append((p, st))
        total = sum(st.st_size for _, st in kept)
        while self.max_bytes > 0 and kept and total > self.max_bytes:
            p, st = kept.pop(0)
            self._remove(p, st, report)
            total -= st.st_size
        report.kept, report.kept_bytes = len(kept), total
        for folder in sorted(
            (d for d in self.root.iterdir() if d.is_dir()), reverse=True
        ):
            if self.input_dir is not None and _same(folder, self.input_dir):
                continue
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass
        return report

    @staticmethod
    def _remove(path: Path, st: os.stat_result, report: PruneReport) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        report.removed += 1
        report.freed_bytes += st.st_size


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
