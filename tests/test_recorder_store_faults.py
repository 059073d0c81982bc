"""The daemon's :class:`~nowcast.daemon.recorder.Recorder` against a real store
under attack: a real SQLite file, locked by a real separate process, deleted.

The lock is held by another Python process (``BEGIN EXCLUSIVE`` on its own
connection, kept open while it sleeps), for ``lock_s`` seconds: 3 s here to keep
the suite fast; the 60 s case (the ``slow`` parameter) takes exactly the same
path -- each recorder call tries the store at most once, for ``busy_s``, whatever
the lock's length, and the queue holds what the lock holds back.

Time bounds (each call well under the lock's length) are behavioural bounds,
measured with :func:`time.monotonic`, not benchmarks.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from daemon_support import T0, FakeClock
from nowcast.daemon.recorder import Recorder
from nowcast.store import SCHEMA_VERSION, MetricsReader, MetricsStore
from nowcast.store import schema as store_schema

# The most one recorder call (or one flush) may take while the store is locked.
# A call that waited for the lock would take the lock's length (2-60 s here) or
# the store's busy timeout (10 s); the recorder's own tries cost busy_s (0.1 s)
# and flush_s (0.25 s). The bound sits between the two with room for the
# machine's own stalls: one call took 0.53 s in a full run on CPU-2 (2026-12-08;
# the stall's cause was not caught) where a batch of the backlog takes 0.02 s.
CALL_S = 1.5

HOLD = """
import sqlite3, sys, time
flag, db, seconds, mode = sys.argv[1:]
conn = sqlite3.connect(db, isolation_level=None)
if mode == "readers_too":
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
if mode == "readers_too":
    conn.execute("SELECT COUNT(*) FROM events").fetchone()
    conn.execute("INSERT INTO events (time, level, level_no, kind, message) "
                 "VALUES ('2024-06-01T00:00:00Z', 'info', 20, 'x', 'x')")
    conn.execute("DELETE FROM events WHERE kind = 'x'")
open(flag, "w").close()
time.sleep(float(seconds))
conn.execute("COMMIT")
conn.close()
"""

READ = """
import sqlite3, sys, time
flag, db, seconds = sys.argv[1:]
conn = sqlite3.connect("file:" + db + "?mode=ro", uri=True)
conn.execute("SELECT COUNT(*) FROM events").fetchone()
open(flag, "w").close()
time.sleep(float(seconds))
"""


def _wait_for(cond, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _process(tmp_path: Path, script: str, *args: str) -> subprocess.Popen:
    """Runs ``script`` in another Python; returns once it has written its flag."""
    flag = tmp_path / f"flag-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", script, str(flag), *args])
    _wait_for(lambda: flag.exists() or proc.poll() is not None, 30, "the process")
    assert proc.poll() is None, "the helper process died"
    return proc


def hold_lock(tmp_path, db: Path, seconds: float, mode: str = "writers"):
    """Another process holds ``BEGIN EXCLUSIVE`` on ``db`` for ``seconds``."""
    return _process(tmp_path, HOLD, str(db), str(seconds), mode)


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("events", "forecasts", "scores")
        }


def score_rows(n: int, lead_s: int = 300) -> list[dict]:
    """``n`` distinct rows of one forecast (as ScoreAccumulator.table() gives)."""
    return [
        {"lead_s": lead_s, "kind": "3d" if k % 2 else "composite",
         "threshold": 20.0 + k // 2, "hits": k, "misses": 1, "false_alarms": 2,
         "correct_negatives": 100, "mae": 1.5}
        for k in range(n)
    ]


class Timed:
    """Times each recorder call; the slowest is checked against a bound."""

    def __init__(self) -> None:
        self.slowest = 0.0

    def __call__(self, fn, *args, **kwargs):
        t = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.slowest = max(self.slowest, time.monotonic() - t)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "state" / "nowcast.sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def _one_step(rec: Recorder, clock: FakeClock, i: int, timed: Timed) -> int:
    """What a daemon step records: a flush, events, a forecast, its scores."""
    clock.advance(60)
    issue = T0 + timedelta(minutes=5 * i)
    timed(rec.flush)
    timed(rec.event, "info", "scan_taken", f"scan {i}", time=clock.now)
    timed(rec.event, "warning", "rejected_scan", f"bad {i}", path=f"/in/{i}.nc")
    timed(rec.forecast, issue, "convlstm3d", "demo3d.pt", 7, 2.5,
          [Path(f"/out/{i}/f_{k}.nc") for k in range(7)])
    accepted = timed(rec.scores, issue, issue + timedelta(minutes=5),
                     "convlstm3d", "demo3d.pt", score_rows(6))
    accepted += timed(rec.scores, issue, issue + timedelta(minutes=5),
                      "persistence", None, score_rows(6))
    return accepted


@pytest.mark.parametrize(
    "lock_s", [3.0, pytest.param(60.0, marks=pytest.mark.slow)]
)
def test_a_locked_store_never_holds_a_call_and_loses_nothing(
    tmp_path, db, clock, lock_s
):
    rec = Recorder(db, clock)
    rec.event("info", "daemon_started", "started")  # the store open and written
    before = counts(db)
    assert before["events"] == 1

    timed = Timed()
    with structlog.testing.capture_logs() as logs:
        holder = hold_lock(tmp_path, db, lock_s)
        t_lock = time.monotonic()
        steps, accepted = 0, 0
        # steps through most of the lock (at least 5), each call timed
        while steps < 5 or time.monotonic() - t_lock < lock_s - 1.5:
            accepted += _one_step(rec, clock, steps, timed)
            steps += 1
            time.sleep(0.05)
        during = counts(db)  # WAL: a reader still reads under BEGIN EXCLUSIVE
        still_locked = holder.poll() is None
        queued = rec.queued
        holder.wait(lock_s + 30)
        timed(rec.flush)
        left = rec.flush(None)
    after = counts(db)

    assert still_locked, "the lock ended before the test was done with it"
    assert timed.slowest < CALL_S, timed.slowest
    assert during == before  # nothing written while locked
    assert accepted == steps * 12  # scores() counts the rows it accepted
    assert queued == steps * (2 + 1 + 12)  # events, forecast, score rows
    assert left == 0 and rec.queued == 0 and rec.store_error is None
    assert after == {
        "events": before["events"] + 2 * steps,
        "forecasts": steps,
        "scores": steps * 12,
    }
    # once the lock is gone, nothing is written twice: more flushes, a close
    rec.flush()
    rec.close()
    assert counts(db) == after
    with MetricsReader(db) as reader:
        messages = [e["message"] for e in reader.recent_events(limit=1000)]
    assert sorted(m for m in messages if m.startswith("scan")) == sorted(
        f"scan {i}" for i in range(steps)
    )
    # one error for the spell (logged and counted), one line when it ends
    spell = [e for e in logs if e["event"].startswith("metrics store unwritable")]
    again = [e for e in logs if e["event"].startswith("metrics store writable")]
    assert len(spell) == 1 and "locked" in spell[0]["error"]
    assert len(again) == 1
    assert rec.error_count == 1  # the spell; the warnings are not errors


def test_a_lock_that_blocks_opening_is_retried_at_the_next_flush(tmp_path, db, clock):
    """A lock that keeps readers out too (``locking_mode = EXCLUSIVE``) makes
    even opening the store fail: still no call waits, and the queued rows are
    written at the first flush after the lock, not ``retry_s`` later."""
    MetricsStore(db).close()
    holder = hold_lock(tmp_path, db, 2.0, "readers_too")
    rec = Recorder(db, clock, retry_s=3600)
    timed = Timed()
    for i in range(3):
        _one_step(rec, clock, i, timed)
    assert holder.poll() is None
    assert timed.slowest < CALL_S, timed.slowest
    assert rec.queued == 3 * 15 and rec.store_error is not None
    holder.wait(30)
    assert rec.flush() == 0
    assert counts(db) == {"events": 6, "forecasts": 3, "scores": 36}
    rec.close()


@pytest.mark.parametrize("files", ["main", "main+wal+shm"])
@pytest.mark.parametrize("reader", [False, True], ids=["alone", "monitor_reading"])
def test_a_deleted_store_is_recreated_and_writing_goes_on(
    tmp_path, db, clock, files, reader
):
    rec = Recorder(db, clock)
    for i in range(3):
        _one_step(rec, clock, i, Timed())
    assert counts(db) == {"events": 6, "forecasts": 3, "scores": 36}
    # the monitor (another process) may hold the old file and its -wal/-shm open
    monitor = _process(tmp_path, READ, str(db), "30") if reader else None
    try:
        suffixes = [""] if files == "main" else ["", "-wal", "-shm"]
        for suffix in suffixes:
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        assert not db.exists()
        timed = Timed()
        for i in range(3, 5):
            _one_step(rec, clock, i, timed)
        assert rec.flush() == 0 and rec.store_error is None
        assert timed.slowest < CALL_S, timed.slowest
        assert db.exists()
        conn = sqlite3.connect(db)
        try:
            assert store_schema.user_version(conn) == SCHEMA_VERSION
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            assert set(store_schema.TABLES) <= tables
        finally:
            conn.close()
        # the new file holds the rows recorded after the deletion, once each
        assert counts(db) == {"events": 4, "forecasts": 2, "scores": 24}
        with MetricsReader(db) as r:
            assert {e["message"] for e in r.recent_events(kind="scan_taken")} == {
                "scan 3", "scan 4"
            }
        # and it goes on
        _one_step(rec, clock, 5, Timed())
        assert counts(db) == {"events": 6, "forecasts": 3, "scores": 36}
    finally:
        if monitor is not None:
            monitor.kill()
            monitor.wait()
        rec.close()


def test_a_full_queue_drops_the_oldest_and_says_so(tmp_path, db, clock):
    rec = Recorder(db, clock, max_queued=50)
    rec.event("info", "daemon_started", "started")
    holder = hold_lock(tmp_path, db, 30.0)
    try:
        timed = Timed()
        for i in range(80):
            timed(rec.event, "info", "scan_taken", f"scan {i}")
        assert timed.slowest < CALL_S
        assert rec.queued == 50 and rec.dropped == 30
        assert [e["message"] for e in rec.errors if e["kind"] == "store"] == [
            f"{db}: cannot write queued metrics: database is locked",
            ("more than 50 metric rows queued for the metrics store; dropping "
             "the oldest"),
        ]
    finally:
        holder.kill()
        holder.wait()
    assert rec.flush() == 0
    with MetricsReader(db) as reader:
        events = reader.recent_events(limit=1000)
    kept = sorted(int(e["message"].split()[1]) for e in events
                  if e["kind"] == "scan_taken")
    assert kept == list(range(30, 80))  # the newest 50, once each
    assert [e["message"] for e in events if e["kind"] == "store"] == [
        ("30 metric rows dropped: more than 50 were queued while the metrics "
         "store was unwritable")
    ]
    rec.close()


def test_a_backlog_is_written_a_batch_at_a_time(tmp_path, db, clock):
    """A flush stops starting batches after its time budget: with a budget of 0
    each flush writes exactly one batch (one transaction), in order."""
    rec = Recorder(db, clock, batch_rows=10)
    rec.event("info", "daemon_started", "started")
    holder = hold_lock(tmp_path, db, 30.0)
    try:
        for i in range(25):
            rec.event("info", "scan_taken", f"scan {i}")
    finally:
        holder.kill()
        holder.wait()
    assert [rec.flush(0) for _ in range(4)] == [15, 5, 0, 0]
    assert counts(db)["events"] == 26
    rec.close()


def test_close_writes_what_is_left(tmp_path, db, clock):
    rec = Recorder(db, clock)
    rec.event("info", "daemon_started", "started")
    holder = hold_lock(tmp_path, db, 1.0)
    rec.scores(T0, T0, "convlstm3d", None, score_rows(4))
    rec.event("info", "daemon_stopped", "stopped")
    assert rec.queued == 5
    holder.wait(30)
    rec.close()
    assert counts(db) == {"events": 2, "forecasts": 0, "scores": 4}


def test_a_bad_score_row_is_refused_not_queued(db, clock):
    rec = Recorder(db, clock)
    assert rec.scores(T0, T0, "convlstm3d", None, [{"lead_s": 300}]) == 0
    assert rec.scores(T0, T0, "convlstm3d", None, score_rows(3)) == 3
    assert rec.queued == 0 and counts(db)["scores"] == 3
    assert rec.errors[-1]["kind"] == "store" and "lacks the key" in (
        rec.errors[-1]["message"]
    )
    rec.close()


def test_a_failed_batch_writes_nothing_and_its_retry_writes_once(db):
    """``MetricsStore.batch``: one transaction; a bad row inside undoes only its
    own savepoint; an exception out of the block undoes everything."""
    with MetricsStore(db) as store:
        with pytest.raises(RuntimeError, match="boom"), store.batch():
            store.record_event("info", "x", "one")
            store.record_scores(T0, None, "m", None, score_rows(4))
            raise RuntimeError("boom")
        assert counts(db) == {"events": 0, "forecasts": 0, "scores": 0}
        with store.batch():
            store.record_event("info", "x", "one")
            with pytest.raises(ValueError):
                store.record_event("loud", "x", "refused")
            store.record_scores(T0, None, "m", None, score_rows(4))
        assert counts(db) == {"events": 1, "forecasts": 0, "scores": 4}
        store.record_event("info", "x", "two")  # outside a batch: its own
        assert counts(db)["events"] == 2
