"""Watching: the handler only queues; real observers on real folders; reconcile."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from watchdog.events import (
    DirCreatedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from daemon_support import (
    FakeClock,
    cell_scans,
    workspace,
    write,
)
from nowcast.daemon import Daemon
from nowcast.daemon.loop import default_observer_factory
from nowcast.daemon.watcher import (
    Kind,
    PathQueue,
    QuietTracker,
    ScanEventHandler,
    reconcile,
)
from nowcast.radar import write_scan


def test_handler_only_queues_scan_paths(tmp_path):
    q = PathQueue()
    h = ScanEventHandler(q, "*.nc", ignore=[tmp_path / "rejected"])
    h.dispatch(FileClosedEvent(str(tmp_path / "a.nc")))
    h.dispatch(FileMovedEvent(str(tmp_path / ".a.nc.tmp"), str(tmp_path / "b.nc")))
    h.dispatch(FileCreatedEvent(str(tmp_path / "c.nc")))
    h.dispatch(FileModifiedEvent(str(tmp_path / "c.nc")))
    h.dispatch(DirCreatedEvent(str(tmp_path / "20240601")))
    h.dispatch(FileClosedEvent(str(tmp_path / ".hidden.nc")))
    h.dispatch(FileClosedEvent(str(tmp_path / "notes.txt")))
    h.dispatch(FileClosedEvent(str(tmp_path / "rejected" / "x.nc")))
    h.dispatch(FileClosedNoWriteEvent(str(tmp_path / "d.nc")))  # our own reads
    assert q.drain() == [
        (tmp_path / "a.nc", Kind.READY),
        (tmp_path / "b.nc", Kind.READY),
        (tmp_path / "c.nc", Kind.SEEN),
        (tmp_path / "20240601", Kind.FOLDER),
        (tmp_path / ".hidden.nc", Kind.IGNORED),  # the step logs why, once
        (tmp_path / "notes.txt", Kind.IGNORED),
    ]
    assert len(q) == 0 and not q.wait(0)


def test_quiet_tracker_waits_for_size_and_mtime_to_be_still(tmp_path):
    f = tmp_path / "a.nc"
    f.write_bytes(b"12")
    t = QuietTracker(2.0)
    t.observe(f, 100.0)
    assert t.ready(101.0) == []
    with open(f, "ab") as fh:
        fh.write(b"34")
    assert t.ready(102.5) == []  # changed: the wait starts again
    assert t.ready(104.0) == []
    assert t.ready(104.6) == [f]
    assert len(t) == 0
    t.observe(f, 200.0)
    assert t.ready(200.0, settle=True) == [f]
    t.observe(tmp_path / "gone.nc", 0.0)
    assert t.ready(10.0) == [] and len(t) == 0


def test_reconcile_lists_only_the_newest_scans(tmp_path):
    import os

    old = write_scan(cell_scans(1)[0], tmp_path)
    os.utime(old, (1e9, 1e9))
    new = [write_scan(s, tmp_path) for s in cell_scans(3)[1:]]
    (tmp_path / ".hidden.nc").write_bytes(b"")
    found = [p for p, _ in reconcile(tmp_path, "*.nc", 3600.0)]
    assert found == new


def _take_until(d: Daemon, want: Path, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    taken = []
    while time.monotonic() < deadline:
        d.queue.wait(0.1)
        r = d.step(datetime.now(timezone.utc))
        taken += r.taken
        if want in taken or r.rejected:
            return taken, r
    return taken, None


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_observer_picks_up_a_scan_moved_into_place(tmp_path, polling):
    s = workspace(tmp_path, polling=polling, poll_interval_s=0.1, quiet_s=5.0,
                  reconcile_interval_s=600.0)
    d = Daemon(s)
    d.initialize()
    d.step()
    src = write_scan(cell_scans(1)[0], tmp_path / "staging")
    observer = default_observer_factory(d)()
    observer.start()
    try:
        time.sleep(0.2)
        folder = s.paths.input_dir / "20240601"  # a new folder, as radars make
        folder.mkdir()
        hidden = folder / ".incoming.tmp"
        shutil.copyfile(src, hidden)
        time.sleep(0.3)  # the polling observer must see it before the rename
        path = folder / src.name
        os.rename(hidden, path)
        moved = time.monotonic()
        taken, r = _take_until(d, path)
    finally:
        observer.stop()
        observer.join()
    assert taken == [path]
    assert r.rejected == []
    assert time.monotonic() - moved < 4.0  # ready on the move, not the quiet time


def test_observer_and_quiet_time_take_a_slowly_written_scan(tmp_path):
    s = workspace(tmp_path, quiet_s=0.6, reconcile_interval_s=600.0)
    d = Daemon(s)
    d.initialize()
    d.step()
    src = write_scan(cell_scans(1)[0], tmp_path / "staging")
    data = src.read_bytes()
    target = s.paths.input_dir / "ncf_20240601_120000.nc"
    observer = default_observer_factory(d)()
    observer.start()
    try:
        time.sleep(0.2)
        with open(target, "wb") as fh:  # a writer that keeps the file open
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(0.3)
            assert d.step().taken == []  # not still long enough
            fh.write(data[len(data) // 2 :])
            fh.flush()
            written = time.monotonic()
            taken, r = _take_until(d, target)
            assert time.monotonic() - written >= 0.6
    finally:
        observer.stop()
        observer.join()
    assert taken == [target] and r.rejected == []


def test_reconcile_finds_a_file_the_observer_missed(tmp_path):
    s = workspace(tmp_path, reconcile_interval_s=60.0)
    clock = FakeClock()
    d = Daemon(s, clock=clock)
    d.initialize(clock.now)
    assert d.step(clock.now).taken == []
    # written while no observer was running: no event
    path = write(s, cell_scans(1)[0])
    assert d.step(clock.advance(1)).taken == []
    assert d.step(clock.advance(30)).taken == []
    assert d.step(clock.advance(30)).taken == [path]
    assert d.step(clock.advance(61)).taken == []  # once only
