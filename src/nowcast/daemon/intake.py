"""Intake: which scan files are ready, and taking each one once.

Contract
--------
:class:`Intake` is the step's side of watching (the observer's side only queues,
:mod:`~nowcast.daemon.watcher`):

- :meth:`~Intake.collect` drains the :class:`~nowcast.daemon.watcher.PathQueue`:
  ``READY`` paths are ready; ``SEEN`` paths wait in the
  :class:`~nowcast.daemon.watcher.QuietTracker` until still for ``daemon.quiet_s``;
  a new ``FOLDER`` is listed. When :attr:`~Intake.next_reconcile` is due (at start,
  after a sequence restart, every ``daemon.reconcile_interval_s``) the newest scans
  on disk are listed too (:func:`~nowcast.daemon.watcher.reconcile`). A listed file
  whose mtime is older than the quiet time is ready at once, a newer one waits.
  It returns the ready files not yet taken, ordered by the time in their names.
- :meth:`~Intake.take` takes one version of a file (size, mtime, inode) at most
  once: reads and pools it (:func:`~nowcast.radar.pooled.read_pooled`), moves a
  refused file aside (:func:`~nowcast.daemon.ingest.reject`), and says whether its
  scan time was already taken (each scan time is taken once). What it remembers is
  bounded: versions too old for any reconcile to list, and scan times more than
  twice the buffer's reach before the newest, are forgotten.
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.daemon.ingest import reject
from nowcast.radar.pooled import read_pooled, reading_options
from nowcast.daemon.watcher import (
    Kind,
    PathQueue,
    QuietTracker,
    Signature,
    reconcile,
    stat_signature,
)
from nowcast.config import Settings
from nowcast.errors import ScanError
from nowcast.radar import Scan
from nowcast.radar.names import time_from_name


@dataclass
class Taken:
    """What :meth:`Intake.take` did with one file."""

    path: Path
    kind: str  # "scan", "duplicate", "rejected", "waiting" (young, unreadable)
    scan: Scan | None = None
    frame: np.ndarray | None = None
    closed: float | None = None  # the file's mtime
    taken_wall: float | None = None  # time.time() when read
    reason: str = ""  # rejected: why
    moved: Path | None = None  # rejected: where it went
    error: str | None = None  # rejected: why it could not be moved
    first: Path | None = None  # duplicate: the file that had this scan time
    new_wait: bool = False  # waiting: the first failure of this file (log it once)


class Intake:
    """Ready files and taking them (see the module contract)."""

    def __init__(
        self,
        queue: PathQueue,
        *,
        input_dir: Path,
        rejected_dir: Path,
        ignore: list[Path],
        pattern: str,
        quiet_s: float,
        reconcile_interval_s: float,
        horizon_s: float,
        pool_factor: int,
        read_options: dict[str, Any],
        max_future_s: float = 600.0,
        reject_after_s: float = 60.0,
    ) -> None:
        self.queue = queue
        self.input_dir = Path(input_dir)
        self.rejected_dir = Path(rejected_dir)
        self.ignore = list(ignore)
        self.pattern = pattern
        self.reconcile_interval_s = float(reconcile_interval_s)
        self.horizon_s = float(horizon_s)
        self.pool_factor = int(pool_factor)
        self.read_options = dict(read_options)
        self.max_future_s = float(max_future_s)
        self.reject_after_s = float(reject_after_s)
        self.tracker = QuietTracker(quiet_s)
        #: young files that did not read: path -> the version that failed
        self._young: dict[Path, Signature] = {}
        #: files not taken and why, for the daemon to log (drained each step)
        self.ignored: list[tuple[Path, str, str]] = []  # (path, level, reason)
        self._ignored_seen: dict[Path, str] = {}
        self.next_reconcile: datetime | None = None
        self._seen: dict[Path, Signature] = {}
        self._taken_times: dict[datetime, Path] = {}

    @classmethod
    def from_settings(cls, settings: Settings, queue: PathQueue) -> Intake:
        """The daemon's intake: ``[paths]``, ``[daemon]``, ``[grid]``, ``[radar]``."""
        d, g, p = settings.daemon, settings.grid, settings.paths
        return cls(
            queue,
            input_dir=p.input_dir,
            rejected_dir=p.rejected_dir,
            ignore=[p.rejected_dir, p.archive_dir, p.output_dir, p.state_dir],
            pattern=d.pattern,
            quiet_s=d.quiet_s,
            reconcile_interval_s=d.reconcile_interval_s,
            horizon_s=g.input_frames * g.interval_s * d.max_gap_factor,
            pool_factor=g.pool_factor,
            read_options=reading_options(settings.radar),
            max_future_s=d.max_future_s,
            reject_after_s=d.reject_after_s,
        )

    def adopt(self, old: Intake) -> None:
        """Carry over what ``old`` took and was waiting for (a reload)."""
        self._seen = dict(old._seen)
        self._taken_times = dict(old._taken_times)
        self._young = dict(old._young)
        self._ignored_seen = dict(old._ignored_seen)
        self.tracker.adopt(old.tracker)  # files still waiting for quiet

    @property
    def pending(self) -> int:
        """Paths queued or waiting for their quiet time."""
        return len(self.queue) + len(self.tracker)

    def collect(self, now: datetime, settle: bool = False) -> list[Path]:
        """The files ready to take now (see the module contract)."""
        ts = now.timestamp()
        quiet = self.tracker.quiet_s
        pattern = self.pattern
        ready: dict[Path, None] = {}

        def consider(path: Path, sig: Signature) -> None:
            if self._seen.get(path) == sig:
                return
            if settle or ts - sig.mtime_ns / 1e9 >= quiet:
                self.tracker.discard(path)
                ready[path] = None
            elif path not in self.tracker:
                self.tracker.observe(path, ts)

        for path, kind in self.queue.drain():
            if kind is Kind.IGNORED:
                self._ignore(path)
                continue
            if kind is Kind.READY:
                self.tracker.discard(path)
                ready[path] = None
            elif kind is Kind.SEEN:
                if path not in ready:
                    self.tracker.observe(path, ts)
            else:  # a new folder: what it holds raised no events
                for p, sig in reconcile(path, pattern, self.horizon_s, self.ignore):
                    consider(p, sig)
        if self.next_reconcile is not None and now >= self.next_reconcile:
            found = reconcile(
                self.input_dir, pattern, self.horizon_s, self.ignore,
                on_ignored=self._ignore,
            )
            for path, sig in found:
                consider(path, sig)
            if found:  # forget versions too old for any reconcile to list again
                oldest = found[0][1].mtime_ns - int(2 * self.horizon_s * 1e9)
                self._seen = {
                    p: s for p, s in self._seen.items() if s.mtime_ns >= oldest
                }
            interval = self.reconcile_interval_s
            self.next_reconcile = now + timedelta(seconds=interval)
        ready.update(dict.fromkeys(self.tracker.ready(ts, settle)))
        for path, failed in list(self._young.items()):  # retry young failures
            sig = stat_signature(path)
            if sig is None:
                del self._young[path]
            elif settle or sig != failed or self._still_for(sig) >= self.reject_after_s:
                ready[path] = None
        files = [p for p in ready if self._seen.get(p) != stat_signature(p)]
        far = datetime.max.replace(tzinfo=timezone.utc)
        return sorted(files, key=lambda p: (time_from_name(p) or far, str(p)))

    def take(self, path: Path, now: datetime, *, settle: bool = False) -> Taken | None:
        """Take one file (see the module contract); None when there is nothing
        to take (it vanished, or this version was taken already)."""
        sig = stat_signature(path)
        if sig is None or self._seen.get(path) == sig:
            if sig is None:
                self._young.pop(path, None)
            return None
        try:
            scan, frame = read_pooled(
                path, self.pool_factor, **self.read_options
            )
        except ScanError as exc:
            still = self._still_for(sig)
            if not settle and still < self.reject_after_s:
                new_wait = path not in self._young
                self._young[path] = sig  # may still be written: never moved now
                return Taken(path, "waiting", reason=exc.reason, new_wait=new_wait)
            self._young.pop(path, None)
            self._seen[path] = sig
            return self._reject(path, exc.reason, now)
        self._young.pop(path, None)
        self._seen[path] = sig
        ahead = (scan.time - now).total_seconds()
        if ahead > self.max_future_s:
            return self._reject(
                path,
                f"scan time {scan.time:%Y-%m-%d %H:%M:%S}Z is {ahead:.0f} s ahead of "
                f"the clock (daemon.max_future_s = {self.max_future_s:g}): a clock "
                "error at the radar?",
                now,
            )
        first = self._taken_times.get(scan.time)
        if first is not None:
            return Taken(path, "duplicate", scan=scan, first=first)
        self._taken_times[scan.time] = path
        return Taken(
            path, "scan", scan=scan, frame=frame, closed=sig.mtime_ns / 1e9,
            taken_wall=time.time(),
        )

    def _reject(self, path: Path, reason: str, now: datetime) -> Taken:
        moved, error = reject(path, reason, self.input_dir, self.rejected_dir, now)
        return Taken(path, "rejected", reason=reason, moved=moved, error=error)

    def set_aside(self, path: Path | None, when: datetime, reason: str, now) -> str:
        """Move a scan the buffer set aside to ``rejected/``; says where it went."""
        self._taken_times.pop(when, None)
        if path is None:
            return "not from a file"
        moved, error = reject(path, reason, self.input_dir, self.rejected_dir, now)
        return f"moved to {moved}" if moved else f"left in place ({error})"

    @staticmethod
    def _still_for(sig: Signature) -> float:
        """Seconds (wall clock) since the file last changed."""
        return time.time() - sig.mtime_ns / 1e9

    def _ignore(self, path: Path, reason: str | None = None) -> None:
        """Note a file not taken, once per path and reason (see ``ignored``)."""
        name = path.name
        level = "debug"
        if reason is None:
            hidden_scan = name.startswith(".") and fnmatch.fnmatch(
                name.lstrip("."), self.pattern
            )
            if os.path.islink(path) and not path.exists():
                target = os.readlink(path)
                reason, level = f"a dangling symbolic link (to {target})", "warning"
            elif hidden_scan:
                reason, level = (
                    "a hidden name (it starts with '.'): scans must have visible "
                    "names", "warning",
                )
            else:
                reason = f"the name does not match daemon.pattern {self.pattern!r}"
        if self._ignored_seen.get(path) == reason:
            return
        if len(self._ignored_seen) > 10000:
            self._ignored_seen.clear()
        self._ignored_seen[path] = reason
        self.ignored.append((path, level, reason))

    def forget_before(self, newest: datetime) -> None:
        """Forget scan times too old to matter (twice the reconcile horizon)."""
        limit = newest - timedelta(seconds=2 * self.horizon_s)
        self._taken_times = {t: p for t, p in self._taken_times.items() if t >= limit}
