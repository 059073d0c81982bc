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


def test_a_gap_restarts_only_when_the_next_scan_confirms_it():
    b = buffer()
    for m in (0, 5, 10):
        b.add(entry(m))
    assert b.add(entry(40)) is Outcome.HELD  # 30 min > 1.5 x 5 min: held aside
    assert b.fill == 3 and b.candidate[0].time.minute == 40
    assert b.add(entry(45)) is Outcome.RESTART  # confirmed: starts again
    assert [e.time.minute for e in b.run()] == [40, 45]
    assert b.candidate is None and b.set_aside == []


def test_a_late_scan_that_fills_the_gap_takes_the_held_one_in():
    b = buffer()
    for m in (0, 5, 10):
        b.add(entry(m))
    assert b.add(entry(20)) is Outcome.HELD  # 10 min > 1.5 x 5 min
    assert b.add(entry(15)) is Outcome.ADDED  # fits, and makes 20 fit too
    assert b.complete and b.candidate is None
    assert [e.time.minute for e in b.sequence()] == [5, 10, 15, 20]


def test_one_scan_far_ahead_cannot_poison_the_buffer():
    b = buffer()
    for m in (0, 5, 10):
        b.add(entry(m))
    assert b.add(entry(24 * 60)) is Outcome.HELD  # a day ahead: a clock error
    assert b.add(entry(15)) is Outcome.ADDED  # the next scan fits the sequence
    assert b.complete and b.newest.time.minute == 15
    (odd, why), = b.set_aside
    assert odd.time.day == 2 and "did not confirm" in why and "s after" in why
    assert b.add(entry(20)) is Outcome.ADDED


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
    assert b.add(entry(120)) is Outcome.HELD
    assert len(b) == 3
    assert b.add(entry(125)) is Outcome.RESTART
    assert [e.time.minute for e in b.entries] == [0, 5]


def test_scan_too_soon_breaks_the_run_as_find_sequences_does():
    b = buffer()
    for m in (0, 5, 10):
        b.add(entry(m))
    assert b.add(entry(11)) is Outcome.HELD
    assert b.add(entry(15)) is Outcome.ADDED  # fits 10: 11 was the odd one out
    assert b.fill == 4 and [e.time.minute for e, _ in b.set_aside] == [11]


def test_grid_change_starts_over():
    b = buffer()
    for m in (0, 5):
        b.add(entry(m))
    assert b.add(entry(10, size=8)) is Outcome.HELD
    assert b.add(entry(15, size=8)) is Outcome.GRID_CHANGE  # confirmed
    assert [e.time.minute for e in b.entries] == [10, 15]


def test_one_scan_on_another_grid_is_set_aside():
    b = buffer()
    for m in (0, 5):
        b.add(entry(m))
    assert b.add(entry(7.5, size=8)) is Outcome.HELD  # an extra file, other grid
    assert b.add(entry(10)) is Outcome.ADDED  # the old grid goes on
    assert [e.time.minute for e in b.run()] == [0, 5, 10]
    (odd, why), = b.set_aside
    assert odd.scan.dbz.shape == (1, 8, 8) and "grid" in why


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        ScanBuffer(0, 300)
    with pytest.raises(ValueError):
        ScanBuffer(8, 300, 0.5)
