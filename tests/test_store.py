"""nowcast.store: schema and migrations, write-then-read of every table, skill from
summed counts, the read-only reader beside live writers, pruning."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from nowcast.errors import NowcastError
from nowcast.store import (
    SCHEMA_VERSION,
    MetricsReader,
    MetricsStore,
    StoreError,
    from_iso,
    migrate,
    to_iso,
)
from nowcast.store import schema as store_schema
from nowcast.verification import Counts, ScoreAccumulator

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(tmp_path):
    return tmp_path / "state" / "nowcast.sqlite"


@pytest.fixture
def store(db):
    with MetricsStore(db, clock=FakeClock()) as s:
        yield s


def _raw(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- times and schema -----------------------------------------------------------


def test_time_convention():
    assert to_iso(T0) == "2024-06-01T12:00:00Z"
    cest = timezone(timedelta(hours=2))
    assert to_iso(datetime(2024, 6, 1, 14, 30, 5, 700000, tzinfo=cest)) == (
        "2024-06-01T12:30:05Z"
    )
    assert to_iso("2024-06-01T12:30:00+00:00") == "2024-06-01T12:30:00Z"
    assert to_iso(T0.timestamp()) == "2024-06-01T12:00:00Z"
    assert from_iso("2024-06-01T12:00:00Z") == T0
    with pytest.raises(ValueError, match="no time zone"):
        to_iso(datetime(2024, 6, 1, 12))
    with pytest.raises(ValueError, match="no time zone"):
        to_iso("2024-06-01T12:00:00")
    with pytest.raises(TypeError, match="issue_time"):
        to_iso([2024], "issue_time")


def test_schema_created_with_user_version_and_wal(store, db):
    assert isinstance(StoreError("x"), NowcastError)
    conn = _raw(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert set(store_schema.TABLES) <= tables
    assert {"scores_by_method", "events_by_time", "forecasts_by_method"} <= tables
    conn.close()


def test_migrate_from_empty_and_is_idempotent(tmp_path):
    conn = _raw(tmp_path / "m.sqlite")
    assert migrate(conn) == 0
    assert migrate(conn) == SCHEMA_VERSION
    assert store_schema.user_version(conn) == SCHEMA_VERSION
    conn.close()


def test_migrate_runs_a_later_step(db, monkeypatch):
    MetricsStore(db).close()
    step = ("ALTER TABLE events ADD COLUMN host TEXT",)
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_schema.MIGRATIONS, 2, step)
    MetricsStore(db).close()
    conn = _raw(db)
    assert store_schema.user_version(conn) == 2
    assert "host" in {r[1] for r in conn.execute("PRAGMA table_info(events)")}
    conn.close()


def test_future_version_is_refused(db):
    MetricsStore(db).close()
    conn = _raw(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="version 99.*upgrade nowcast"):
        MetricsStore(db)
    with pytest.raises(StoreError, match="upgrade nowcast"):
        MetricsReader(db)


def test_foreign_file_and_missing_file(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        MetricsStore(junk)
    with pytest.raises(StoreError, match="junk.sqlite"):
        MetricsReader(junk)
    missing = tmp_path / "none.sqlite"
    with pytest.raises(StoreError) as info:
        MetricsReader(missing)
    assert str(info.value) == (
        f"no metrics store at {missing} yet: start the daemon or a training run"
    )
    assert not missing.exists()


def test_empty_file_is_not_ready(tmp_path):
    empty = tmp_path / "empty.sqlite"
    _raw(empty).execute("PRAGMA user_version").fetchone()
    empty.touch()
    with pytest.raises(StoreError, match="empty"):
        MetricsReader(empty)


# -- write then read ------------------------------------------------------------


def test_forecasts_write_read(store, db, tmp_path):
    out = tmp_path / "out" / "20240601"
    files = [out / f"lead{i}.nc" for i in range(3)]
    first = store.record_forecast(T0, "convlstm3d", "demo3d.pt", 7, 2.5, files)
    store.record_forecast(T0, "persistence", None, 7)
    store.record_forecast(T0 - timedelta(minutes=5), "convlstm3d", "demo3d.pt", 7)
    again = store.record_forecast(T0, "convlstm3d", "demo3d.pt", 7, 3.0, files)
    assert again == first
    with MetricsReader(db) as reader:
        latest = reader.latest_forecast("convlstm3d")
        assert latest["issue_time"] == T0
        assert latest["model"] == "demo3d.pt"
        assert latest["latency_s"] == 3.0
        assert latest["output_dir"] == str(out)
        assert latest["n_outputs"] == 3
        assert latest["created_at"] == T0
        assert reader.latest_forecast("persistence")["model"] == ""
        assert reader.latest_forecast("nothing") is None
        assert len(reader.recent_forecasts(10)) == 3


def test_events_write_read(store, db):
    store.record_event("info", "started", "daemon started")
    store.record_event("WARNING", "rejected_scan", "no DBZ", path="/s/a.nc")
    store.record_event(40, "error", "forecast failed", time=T0 + timedelta(1))
    with pytest.raises(ValueError, match="unknown level"):
        store.record_event("loud", "x", "y")
    with MetricsReader(db) as reader:
        events = reader.recent_events()
        assert [e["kind"] for e in events] == ["error", "rejected_scan", "started"]
        assert events[1]["path"] == "/s/a.nc" and events[1]["level"] == "warning"
        assert events[0]["time"] == T0 + timedelta(1)
        bad = reader.recent_events(min_level="warning")
        assert [e["level"] for e in bad] == ["error", "warning"]
        assert len(reader.recent_events(limit=1)) == 1
        assert reader.recent_events(kind="started")[0]["message"] == "daemon started"


def test_training_write_read(store, db):
    config = {"curriculum": {"phase1": {"lr": 1e-3}}}
    run = store.start_training_run("nowcast train", config)
    for epoch in range(2):
        store.record_epoch(
            run,
            1,
            epoch,
            "train",
            1.0 / (epoch + 1),
            terms={"huber": 0.5, "ssim": 0.1},
            lr=1e-3,
            seconds=12.5,
        )
        store.record_epoch(
            run,
            1,
            epoch,
            "val",
            float("nan"),
            csi35={600: 0.4, 300: 0.5},
            area_ratio=1.1,
        )
    store.record_epoch(run, 1, 1, "val", 0.7, csi35={300: 0.55})  # replaces
    with pytest.raises(StoreError, match="no training run 999"):
        store.record_epoch(999, 1, 0, "train", 1.0)
    with pytest.raises(ValueError, match="split"):
        store.record_epoch(run, 1, 0, "test", 1.0)
    with MetricsReader(db) as reader:
        (row,) = reader.training_runs()
        assert row["status"] == "running" and row["finished"] is None
        assert row["config"] == config and row["n_epochs"] == 2
        store.finish_training_run(run, "completed", message="best.pt")
        second = store.start_training_run("nowcast retrain")
        runs = reader.training_runs()
        assert [r["run_id"] for r in runs] == [second, run]
        assert runs[1]["status"] == "completed" and runs[1]["finished"] == T0
        assert runs[1]["last_epoch"] == 1
        assert reader.epochs() == []  # the latest run has none yet
        epochs = reader.epochs(run)
        assert [(e["epoch"], e["split"]) for e in epochs] == [
            (0, "train"),
            (0, "val"),
            (1, "train"),
            (1, "val"),
        ]
        assert epochs[0]["terms"] == {"huber": 0.5, "ssim": 0.1}
        assert epochs[0]["lr"] == 1e-3 and epochs[0]["seconds"] == 12.5
        assert math.isnan(epochs[1]["loss"])
        assert epochs[1]["csi35"] == {300: 0.5, 600: 0.4}
        assert epochs[1]["area_ratio"] == pytest.approx(1.1)
        assert epochs[3]["loss"] == 0.7 and epochs[3]["csi35"] == {300: 0.55}
        assert math.isnan(epochs[0]["area_ratio"])
    with pytest.raises(ValueError, match="status"):
        store.finish_training_run(run, "running")


def test_retrain_decisions_write_read(store, db):
    run = store.start_training_run()
    store.record_retrain_decision(
        "cand.pt", "prod.pt", 0.41, 0.42, 0.01, False, "not better", run_id=run
    )
    store.record_retrain_decision(
        "cand2.pt",
        "prod.pt",
        0.45,
        0.42,
        0.01,
        True,
        "better by 0.03",
        time=T0 + timedelta(days=1),
    )
    with MetricsReader(db) as reader:
        last = reader.last_retrain_decision()
        assert last["candidate"] == "cand2.pt" and last["promoted"] is True
        assert last["time"] == T0 + timedelta(days=1) and last["run_id"] is None
        first = reader.retrain_decisions()[1]
        assert first["promoted"] is False and first["run_id"] == run
        assert first["candidate_score"] == 0.41 and first["margin"] == 0.01


# -- scores and skill -------------------------------------------------------------


def _accumulator(seed: int) -> ScoreAccumulator:
    rng = np.random.default_rng(seed)
    acc = ScoreAccumulator([20, 35])
    for lead in (300, 600):
        obs = rng.uniform(0, 60, (2, 8, 8))
        acc.add(lead, obs + rng.normal(0, 8, obs.shape), obs)
    return acc


def test_skill_sums_counts_across_issue_times(store, db):
    a = Counts(hits=10, misses=0, false_alarms=10, correct_negatives=80)  # CSI 0.5
    b = Counts(hits=0, misses=1, false_alarms=0, correct_negatives=99)  # CSI 0
    store.record_scores(T0, None, "m", None, [(300, "3d", 35, a, 2.0)])
    store.record_scores(
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=10),
        "m",
        None,
        [(300, "3d", 35, b, 4.0)],
    )
    with MetricsReader(db) as reader:
        (row,) = reader.skill("m")
        assert row["hits"] == 10 and row["misses"] == 1 and row["false_alarms"] == 10
        assert row["forecasts"] == 2
        assert row["csi"] == pytest.approx(10 / 21)  # not (0.5 + 0) / 2
        assert row["pod"] == pytest.approx(10 / 11)
        assert row["far"] == pytest.approx(0.5)
        assert row["bias"] == pytest.approx(20 / 11)
        assert row["mae"] == pytest.approx(3.0)  # both rows cover 100 pixels
        valid = reader.query("SELECT valid_time FROM scores ORDER BY issue_time")
        assert [v["valid_time"] for v in valid] == [
            "2024-06-01T12:05:00Z",
            "2024-06-01T12:10:00Z",
        ]


def test_record_accumulator_matches_merged_accumulator(store, db):
    accs = [_accumulator(seed) for seed in range(3)]
    for i, acc in enumerate(accs):
        n = store.record_accumulator(T0 + timedelta(minutes=5 * i), "m", "x.pt", acc)
        assert n == len(acc.table()) == 8
    merged = accs[0] + accs[1] + accs[2]
    with MetricsReader(db) as reader:
        rows = reader.skill("m", model="x.pt")
    expected = {(r["lead_s"], r["kind"], r["threshold"]): r for r in merged.table()}
    assert len(rows) == len(expected)
    for row in rows:
        want = expected[(row["lead_s"], row["kind"], row["threshold"])]
        for key in ("forecasts", "hits", "misses", "false_alarms", "correct_negatives"):
            assert row[key] == want[key]
        assert row["csi"] == pytest.approx(want["csi"])
        assert row["mae"] == pytest.approx(want["mae"])  # no NaN: exact weights


def test_scores_rerecorded_replace_and_reject_bad_rows(store, db):
    c = Counts(1, 2, 3, 4)
    rows = [{"lead_s": 300, "kind": "composite", "threshold": 20.0, **c.scores()}]
    store.record_scores(T0, None, "m", None, rows)
    store.record_scores(T0, None, "m", None, rows)
    with pytest.raises(ValueError, match="kind"):
        store.record_scores(T0, None, "m", None, [(300, "2d", 20, c)])
    with pytest.raises(ValueError, match="lacks the key 'threshold'"):
        store.record_scores(T0, None, "m", None, [{"lead_s": 1, "kind": "3d"}])
    assert store.record_scores(T0, None, "m", None, []) == 0
    with MetricsReader(db) as reader:
        (row,) = reader.skill()
        assert row["hits"] == 1 and row["forecasts"] == 1
        assert math.isnan(row["mae"])


def test_time_filters_and_timeseries(store, db):
    hit, miss = Counts(1, 0, 0, 9), Counts(0, 1, 0, 9)
    for minute in range(0, 120, 10):  # 12 forecasts over two hours
        c = hit if minute < 60 else miss
        store.record_scores(
            T0 + timedelta(minutes=minute),
            None,
            "m",
            None,
            [(300, "3d", 35, c), (300, "3d", 20, hit)],
        )
    store.record_scores(T0, None, "other", None, [(300, "3d", 35, miss)])
    with MetricsReader(db) as reader:
        first_hour = reader.skill("m", since=T0, until=T0 + timedelta(hours=1))
        assert {r["threshold"]: r["csi"] for r in first_hour} == {20.0: 1.0, 35.0: 1.0}
        later = reader.skill("m", since="2024-06-01T13:00:00Z", threshold=35)
        assert [r["csi"] for r in later] == [0.0]
        assert later[0]["forecasts"] == 6
        assert {r["method"] for r in reader.skill()} == {"m", "other"}
        series = reader.csi_timeseries(35, "m", bucket_s=3600)
        assert [(r["bucket"], r["csi"], r["forecasts"]) for r in series] == [
            (T0, 1.0, 6),
            (T0 + timedelta(hours=1), 0.0, 6),
        ]
        half = reader.csi_timeseries(35, bucket_s=1800, since=T0 + timedelta(hours=1))
        assert [r["bucket"] for r in half] == [
            T0 + timedelta(hours=1),
            T0 + timedelta(minutes=90),
        ]
        assert reader.csi_timeseries(35, "m", kind="composite") == []


# -- read-only, concurrency, pruning -------------------------------------------------


def test_reader_is_read_only_and_sees_live_commits(store, db):
    store.record_event("info", "a", "first")
    reader = MetricsReader(db)
    with pytest.raises(StoreError, match="readonly|read-only|query_only"):
        reader.query(
            "INSERT INTO events (time, level, level_no, kind, message) "
            "VALUES ('2024-01-01T00:00:00Z', 'info', 20, 'x', 'y')"
        )
    ro = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.execute("DELETE FROM events")
    ro.close()
    assert len(reader.recent_events()) == 1
    store.record_event("info", "b", "second")  # the writer stays open
    assert [e["kind"] for e in reader.recent_events()] == ["b", "a"]
    reader.close()
    with pytest.raises(StoreError, match="closed"):
        reader.recent_events()


def test_reader_opens_after_every_writer_closed(db):
    with MetricsStore(db) as store:
        store.record_event("info", "a", "x")
    with MetricsReader(db) as reader:
        assert len(reader.recent_events()) == 1


def test_closed_store_and_other_thread(db):
    store = MetricsStore(db)
    errors = []
    thread = threading.Thread(
        target=lambda: errors.append(_catch(store.record_event, "info", "a", "b"))
    )
    thread.start()
    thread.join()
    assert isinstance(errors[0], sqlite3.ProgrammingError)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.record_event("info", "a", "b")


def _catch(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - returned to the test
        return exc
    return None


WRITER_SCRIPT = """
import sys
from nowcast.store import MetricsStore
with MetricsStore(sys.argv[1], timeout_s=30) as store:
    for i in range(int(sys.argv[2])):
        store.record_event("info", "subprocess", str(i))
"""


def test_concurrent_writers_and_reader(db):
    MetricsStore(db).close()
    n = 40
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(db), str(n)])
    failures: list[BaseException] = []

    def thread_writer() -> None:
        try:
            with MetricsStore(db, timeout_s=30) as mine:
                for i in range(n):
                    mine.record_scores(
                        T0 + timedelta(minutes=i),
                        None,
                        "t",
                        None,
                        [(300, "3d", 35, Counts(1, 1, 1, 1))],
                    )
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=thread_writer)
    thread.start()
    seen = []
    with MetricsReader(db) as reader:
        while thread.is_alive() or proc.poll() is None:
            seen.append(len(reader.recent_events(limit=1000)))
            reader.skill("t")
        thread.join()
        assert proc.wait(timeout=60) == 0
        assert not failures
        assert len(reader.recent_events(limit=1000)) == n
        (row,) = reader.skill("t")
        assert row["forecasts"] == n and row["csi"] == pytest.approx(1 / 3)
    assert seen == sorted(seen)  # counts only grow, never a torn read


def test_prune(db):
    clock = FakeClock(T0 + timedelta(days=10))
    with MetricsStore(db, clock=clock) as store:
        for day in (0, 5, 9):
            when = T0 + timedelta(days=day)
            store.record_forecast(when, "m", None, 7)
            store.record_scores(when, None, "m", None, [(300, "3d", 35, Counts(1))])
            store.record_event("info", "x", str(day), time=when)
        old = store.start_training_run(started=T0)
        store.record_epoch(old, 1, 0, "train", 1.0)
        store.finish_training_run(old, finished=T0)
        running = store.start_training_run(started=T0)
        store.record_retrain_decision("c", "p", 1, 0, 0, True, time=T0)
        deleted = store.prune(timedelta(days=5))  # the cutoff is day 5: day 5 stays
        assert deleted == {"scores": 1, "forecasts": 1, "events": 1}
        deleted = store.prune(T0 + timedelta(days=1), training=True)
        assert deleted == {
            "scores": 0,
            "forecasts": 0,
            "events": 0,
            "epochs": 1,
            "retrain_decisions": 1,
            "training_runs": 1,
        }
    with MetricsReader(db) as reader:
        assert [r["run_id"] for r in reader.training_runs()] == [running]
        assert [e["message"] for e in reader.recent_events()] == ["9", "5"]
        assert reader.skill()[0]["forecasts"] == 2
        assert reader.query("SELECT COUNT(*) AS n FROM epochs") == [{"n": 0}]
