"""The rolling buffer: the newest scans, ordered by scan time, pooled as they arrive.

Contract
--------
:class:`ScanBuffer` holds at most ``capacity`` (``grid.input_frames``) entries, each
a scan read once (full resolution, for the forecast pipeline and its upsampling)
and its pooled frame (the model grid, for verification and the baselines), keyed
by scan time. :meth:`~ScanBuffer.add` says what it did with a scan
(:class:`Outcome`):

- ``ADDED``: newer than the newest, one interval on (within
  ``[interval_s / f, interval_s * f]``, ``f = daemon.max_gap_factor``);
- ``HELD``: it would break the sequence (newer, but after a gap over
  ``f x interval_s`` or sooner than ``interval_s / f``; or on another grid than
  the held scans): no single scan may do that, so it is held aside
  (:attr:`~ScanBuffer.candidate`) until the next scan says which is right:
- ``RESTART`` / ``GRID_CHANGE``: the next scan confirms the held one (on its
  grid, and one interval after it): the held scan is applied (after a gap the
  sequence starts again from it, older entries that can never join a run with it
  are dropped and the others stay, so a late scan that fills the gap can still
  complete the run; on a new grid the old scans are dropped), then the new scan
  is added; the outcome names what happened;
- a scan that fits the held sequence is added as usual; when late scans fill the
  gap before the held one, it joins the run; when the sequence goes past the
  held scan's time, or the held scan lies further ahead than the buffer's span
  (no late scan can reach it), it was an outlier: it goes to
  :attr:`~ScanBuffer.set_aside` with the reason (the daemon moves its file to
  ``rejected/``); a next scan that fits neither replaces it as the held one (the
  old one set aside);
- ``LATE``: older than the newest and still inside the buffer's span: slotted in
  by time;
- ``DUPLICATE``: a scan of the same time is held: ignored;
- ``TOO_OLD``: older than everything a run ending at the newest scan could use:
  ignored (the daemon still uses it to verify).

The *run* is the longest chain of consecutive scans (each step within the
tolerance, as :func:`nowcast.radar.sequences.consecutive` counts them) ending at the
newest; :attr:`~ScanBuffer.fill` is its length and :meth:`~ScanBuffer.sequence`
its newest ``capacity`` entries once it is that long. After a daemon restart the
buffer is rebuilt by adding the newest scans on disk again (the step does that).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path

import numpy as np

from nowcast.radar import Scan
from nowcast.radar.sequences import consecutive


class Outcome(str, Enum):
    ADDED = "added"
    RESTART = "restart"
    LATE = "late"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"
    GRID_CHANGE = "grid_change"
    HELD = "held"


@dataclass
class Entry:
    """One buffered scan."""

    scan: Scan
    frame: np.ndarray  # pooled (z, y, x) float32 dBZ
    path: Path | None = None
    taken: datetime | None = None  # the step clock when it was read
    closed: float | None = None  # the file's mtime (unix seconds)
    extra: dict = field(default_factory=dict)

    @property
    def time(self) -> datetime:
        return self.scan.time


class ScanBuffer:
    """Newest ``capacity`` scans by time (see the module contract)."""

    def __init__(
        self, capacity: int, interval_s: float, max_gap_factor: float = 1.5
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if max_gap_factor < 1:
            raise ValueError(f"max_gap_factor must be >= 1, got {max_gap_factor}")
        self.capacity = int(capacity)
        self.interval_s = float(interval_s)
        self.max_gap_factor = float(max_gap_factor)
        self._entries: list[Entry] = []
        #: the scan that would break the sequence, and why, until the next decides
        self.candidate: tuple[Entry, str] | None = None
        #: outliers the next scan did not confirm, with the reason (drained by
        #: the daemon)
        self.set_aside: list[tuple[Entry, str]] = []

    # -- adding ---------------------------------------------------------------

    def _fits(self, step_s: float) -> bool:
        return consecutive(step_s, self.interval_s, self.max_gap_factor)

    @property
    def span_s(self) -> float:
        """The longest time a run of ``capacity`` scans can cover."""
        return (self.capacity - 1) * self.interval_s * self.max_gap_factor

    def _breaks(self, entry: Entry) -> tuple[Outcome, str] | None:
        """Whether ``entry`` would break the held sequence, and how."""
        entries = self._entries
        if not entries:
            return None
        ref = entries[-1].scan
        if entry.scan.dbz.shape != ref.dbz.shape or not (
            entry.scan.grid.same_horizontal(ref.grid)
        ):
            return Outcome.GRID_CHANGE, (
                f"grid {entry.scan.dbz.shape} differs from the sequence's "
                f"{ref.dbz.shape}"
            )
        step = (entry.time - entries[-1].time).total_seconds()
        if step > 0 and not self._fits(step):
            return Outcome.RESTART, (
                f"{step:.0f} s after the newest scan (expected {self.interval_s:g} s)"
            )
        return None

    def add(self, entry: Entry) -> Outcome:
        """Add one scan; returns what happened (see the module contract)."""
        breaks = self._breaks(entry)
        if self.candidate is None:
            if breaks is not None:
                self.candidate = (entry, breaks[1])
                return Outcome.HELD
            return self._apply(entry)
        held, why = self.candidate
        if breaks is None:  # it fits the held sequence
            outcome = self._apply(entry)
            newest = self._entries[-1].time
            if held.time > newest and self._breaks(held) is None:
                self.candidate = None  # it filled the gap before the held one
                self._apply(held)
            elif (
                entry.time >= held.time
                or (held.time - newest).total_seconds() > self.span_s
            ):  # the sequence went past it, or no late scan can reach it: odd one
                self.candidate = None
                self.set_aside.append(
                    (held, f"{why}, and the next scan did not confirm it")
                )
            return outcome
        if (
            entry.scan.dbz.shape == held.scan.dbz.shape
            and entry.scan.grid.same_horizontal(held.scan.grid)
            and self._fits((entry.time - held.time).total_seconds())
        ):  # the next scan confirms the held one: the sequence starts again
            self.candidate = None
            restart = self._apply(held)
            self._apply(entry)
            return restart
        self.set_aside.append((held, f"{why}, and the next scan did not confirm it"))
        self.candidate = (entry, breaks[1])
        return Outcome.HELD

    def _apply(self, entry: Entry) -> Outcome:
        entries = self._entries
        if entries:
            ref = entries[-1].scan
            if entry.scan.dbz.shape != ref.dbz.shape or not (
                entry.scan.grid.same_horizontal(ref.grid)
            ):
                entries[:] = [entry]
                return Outcome.GRID_CHANGE
        times = [e.time for e in entries]
        t = entry.time
        if t in times:
            return Outcome.DUPLICATE
        if not entries:
            entries.append(entry)
            return Outcome.ADDED
        newest = times[-1]
        if t > newest:
            outcome = (
                Outcome.ADDED
                if self._fits((t - newest).total_seconds())
                else Outcome.RESTART
            )
            entries.append(entry)
            horizon = self.span_s
            entries[:] = [e for e in entries if (t - e.time).total_seconds() <= horizon]
        else:
            if (newest - t).total_seconds() > self.span_s or (
                len(entries) >= self.capacity and t < times[0]
            ):
                return Outcome.TOO_OLD
            entries.insert(bisect.bisect(times, t), entry)
            outcome = Outcome.LATE
        del entries[: max(0, len(entries) - self.capacity)]
        return outcome

    def clear(self) -> None:
        self._entries.clear()
        self.candidate = None

    # -- reading --------------------------------------------------------------

    @property
    def entries(self) -> list[Entry]:
        """Held entries, oldest first (a copy)."""
        return list(self._entries)

    def run(self) -> list[Entry]:
        """The consecutive entries ending at the newest, oldest first."""
        entries = self._entries
        if not entries:
            return []
        start = len(entries) - 1
        while start > 0 and self._fits(
            (entries[start].time - entries[start - 1].time).total_seconds()
        ):
            start -= 1
        return entries[start:]

    @property
    def fill(self) -> int:
        return len(self.run())

    @property
    def complete(self) -> bool:
        return self.fill >= self.capacity

    def sequence(self) -> list[Entry] | None:
        """The newest ``capacity`` consecutive entries, or None when incomplete."""
        run = self.run()
        return run[-self.capacity :] if len(run) >= self.capacity else None

    @property
    def newest(self) -> Entry | None:
        return self._entries[-1] if self._entries else None

    @property
    def oldest(self) -> Entry | None:
        return self._entries[0] if self._entries else None

    def times(self) -> list[datetime]:
        return [e.time for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, t: object) -> bool:
        return any(e.time == t for e in self._entries)
