"""The metrics store under attack: locked by another process, deleted."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from faults.conftest import record, scans
from nowcast.radar import forecast_rel_path

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
open(sys.argv[3], "w").close()
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _rows(path, table: str) -> int:
    with sqlite3.connect(path, timeout=30) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def _lock_for(d, seconds: float) -> subprocess.Popen:
    flag = d.root / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(d.state / "nowcast.sqlite"), str(seconds),
         str(flag)]
    )
    d.wait_for(flag.exists, 30, "the lock")
    return holder


@pytest.mark.parametrize("seconds", [10.0, pytest.param(60.0, marks=pytest.mark.slow)])
def test_a_locked_store_delays_no_forecast_and_loses_no_score(daemon_factory, seconds):
    d = daemon_factory().start()
    run = scans(12)
    d.feed_run(run[:9])
    d.wait_for(lambda: d.issue_of(run[8]) in d.complete_sets(), 60, "the first sets")
    time.sleep(1.0)
    store = d.state / "nowcast.sqlite"
    before = {t: _rows(store, t) for t in ("forecasts", "scores")}
    holder = _lock_for(d, seconds)
    late = []
    for scan in run[9:12]:
        d.feed(scan)
        fed = time.monotonic()
        last = d.output / forecast_rel_path(scan.time, 2100, "forecast")
        d.wait_for(last.exists, 30, "a forecast while the store is locked")
        late.append(time.monotonic() - fed)
        time.sleep(0.5)
    still_locked = holder.poll() is None
    holder.wait(seconds + 30)
    d.wait_for(lambda: _rows(store, "forecasts") == before["forecasts"] + 3, 30,
               "the queued forecasts rows")
    time.sleep(1.0)
    scores = _rows(store, "scores")
    assert still_locked and max(late) < 5.0, late
    # before the lock one lead was verified (issue 8 by scan 9); after scans 10-12
    # the issues of scans 8..12 have 4 + 3 + 2 + 1 + 0 = 10 leads verified, each
    # with as many rows (methods x kinds x thresholds) as that first one
    assert before["scores"] > 0 and scores == 10 * before["scores"]
    assert d.stop() == 0
    with sqlite3.connect(store) as conn:
        issues = conn.execute(
            "SELECT COUNT(DISTINCT issue_time) FROM forecasts").fetchone()[0]
    assert issues == 5
    record(f"the SQLite store locked by another process for {seconds:g} s",
           "BEGIN EXCLUSIVE held while 3 scans arrive",
           f"forecasts on time (slowest {max(late):.1f} s); queued rows written "
           "once the lock is gone, none lost")


def test_a_deleted_store_is_recreated(daemon_factory):
    d = daemon_factory().start()
    run = scans(10)
    d.feed_run(run[:9])
    d.wait_for(lambda: d.issue_of(run[8]) in d.complete_sets(), 60, "the sets")
    store = d.state / "nowcast.sqlite"
    for suffix in ("", "-wal", "-shm"):
        (d.state / f"nowcast.sqlite{suffix}").unlink(missing_ok=True)
    d.feed(run[9])
    d.wait_for(lambda: d.issue_of(run[9]) in d.complete_sets(), 60, "the next set")
    d.wait_for(lambda: store.exists() and _rows(store, "forecasts") >= 1, 30,
               "a recreated store")
    assert d.stop() == 0
    record("the store file deleted while running", "rm nowcast.sqlite*",
           "noticed at the next write; recreated with its schema; rows go on")
