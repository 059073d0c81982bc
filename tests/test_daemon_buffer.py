"""The rolling buffer: order, duplicates, late scans, gaps, grid changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from conftest import make_grid
from nowcast.daemon.buffer import Entry, Outcome, ScanBuffer
from nowcast.radar import Scan

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


def entry(minutes: float, size: int = 4) -> Entry:
    grid = make_grid(1, size, size)
    dbz = np.full((1, size, size), minutes, np.float32)
    scan = Scan(T0 + timedelta(minutes=minutes), dbz, grid)
    return Entry(scan, dbz[:, ::2, ::2])


def buffer(capacity: int = 4) -> ScanBuffer:
    return ScanBuffer(capacity, 300, 1.5)


def test_fills_in_order_and_keeps_the_newest():
    b = buffer()
    assert [b.add(entry(m)) for m in (0, 5, 10)] == [Outcome.ADDED] * 3
    assert b.fill == 3 and not b.complete and b.sequence() is None
    assert b.add(entry(15)) is Outcome.ADDED
    assert b.complete
    assert b.add(entry(20)) is Outcome.ADDED
    assert [e.time.minute for e in b.sequence()] == [5, 10, 15, 20]
    assert len(b) == 4


def test_duplicate_is_ignored():
    b = buffer()
    b.add(entry(0))
    b.add(entry(5))
    assert b.add(entry(5)) is Outcome.DUPLICATE
    assert len(b) == 2


def test_gap_restarts_and_a_late_scan_repairs_the_run():
    b = buffer()
    for m in (0, 5, 10):
        b.add(entry(m))
    assert b.add(entry(20)) is Outcome.RESTART  # 10 min > 1.5 x 5 min
    assert b.fill == 1
    assert b.add(entry(15)) is Outcome.LATE  # still fits: slotted in
    assert b.complete
    assert [e.time.minute for e in b.sequence()] == [0, 5, 10, 15, 20][-4:]


def test_late_scan_outside_the_buffer_is_too_old():
    b = buffer()
    for m in (10, 15, 20, 25):
        b.add(entry(m))
    assert b.add(entry(5)) is Outcome.TOO_OLD
    assert b.add(entry(-60)) is Outcome.TOO_OLD
    assert [e.time.minute for e in b.entries] == [10, 15, 20, 25]


def test_long_gap_drops_what_can_never_join():
    b = buffer()
    for m in (0, 5, 10):
        b.add(entry(m))
    assert b.add(entry(120)) is Outcome.RESTART
    assert len(b) == 1


def test_scan_too_soon_breaks_the_run_as_find_sequences_does():
    b = buffer()
    for m in (0, 5, 10):
        b.add(entry(m))
    assert b.add(entry(11)) is Outcome.RESTART
    assert b.fill == 1


def test_grid_change_starts_over():
    b = buffer()
    for m in (0, 5):
        b.add(entry(m))
    assert b.add(entry(10, size=8)) is Outcome.GRID_CHANGE
    assert len(b) == 1


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        ScanBuffer(0, 300)
    with pytest.raises(ValueError):
        ScanBuffer(8, 300, 0.5)
