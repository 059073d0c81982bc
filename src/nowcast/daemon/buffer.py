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
- ``RESTART``: newer, but after a gap over ``f x interval_s`` (or sooner than
  ``interval_s / f``): the sequence starts again from this scan. Older entries
  that can never join a run with it are dropped; the others stay, so a late scan
  that fills the gap can still complete the run;
- ``LATE``: older than the newest and still inside the buffer's span: slotted in
  by time;
- ``DUPLICATE``: a scan of the same time is held: ignored;
- ``TOO_OLD``: older than everything a run ending at the newest scan could use:
  ignored (the daemon still uses it to verify);
- ``GRID_CHANGE``: on another grid than the held scans: they are dropped and the
  sequence starts again from this one.

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

    # -- adding ---------------------------------------------------------------

    def _fits(self, step_s: float) -> bool:
        return consecutive(step_s, self.interval_s, self.max_gap_factor)

    @property
    def span_s(self) -> float:
        """The longest time a run of ``capacity`` scans can cover."""
        return (self.capacity - 1) * self.interval_s * self.max_gap_factor

    def add(self, entry: Entry) -> Outcome:
        """Add one scan; returns what happened (see the module contract)."""
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
