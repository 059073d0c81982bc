"""Bad input against a real daemon: every file it does not take is set aside or
logged with the reason, and no single scan breaks the sequence."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timedelta, timezone

import netCDF4
import numpy as np

from faults.conftest import SIZE, past, record, scans
from nowcast.radar import Scan, write_scan


def test_a_scan_a_day_ahead_is_rejected_and_poisons_nothing(daemon_factory):
    d = daemon_factory().start()
    run = scans(12)
    d.feed_run(run[:8])
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "the first set")
    tomorrow = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)
    ahead = Scan(tomorrow, run[8].dbz, run[8].grid)  # a day ahead of the wall clock
    bad = d.feed(ahead)
    d.feed_run(run[8:10])
    d.wait_for(lambda: d.issue_of(run[9]) in d.complete_sets(), 60, "the next sets")
    reasons = d.rejected_reasons()
    assert "ahead of the clock" in reasons[bad.name]
    assert "max_future_s" in reasons[bad.name]
    d.stop()
    again = d.start()  # a restart is not poisoned either
    d.feed_run(run[10:12])
    d.wait_for(lambda: d.issue_of(run[11]) in d.complete_sets(), 60, "after restart")
    assert again.stop() == 0
    record("one scan a day ahead (a clock error)", "fed among valid scans; restart",
           "rejected as ahead of the clock; every later scan forecast, also after "
           "a restart")


def test_one_scan_on_another_grid_is_set_aside_without_a_restart(daemon_factory):
    d = daemon_factory().start()
    run = scans(11)
    d.feed_run(run[:8])
    other = scans(1, start=run[7].time + timedelta(seconds=150), size=48)[0]
    odd = d.feed(other)  # an extra file, 48 x 48 among 32 x 32
    time.sleep(0.5)
    d.feed_run(run[8:11])
    d.wait_for(
        lambda: all(d.issue_of(s) in d.complete_sets() for s in run[7:11]), 60,
        "a forecast for every scan",
    )
    assert "another grid" in "".join(d.lines("rejected_scan")) or "grid" in (
        d.rejected_reasons()[odd.name]
    )
    assert "outlier" in d.rejected_reasons()[odd.name]
    assert d.lines("sequence_restart") == []
    d.stop()
    record("one scan on another grid (48 x 48 among 32 x 32)",
           "an extra file between two scans",
           "set aside to rejected/ with its reason; no restart, every scan forecast")


def test_bad_files_are_set_aside_with_their_reason(daemon_factory):
    """The cases that held before, kept: each bad file lands in rejected/ with a
    reason that names what is wrong, and the valid scans around it forecast."""
    d = daemon_factory(reject_after_s=1.0).start()
    run = scans(10)
    d.feed_run(run[:8])
    good = d.input / "20240601" / "ncf_20240601_123500.nc"
    stamp = iter(range(1, 100))

    def name():
        return f"ncf_20240601_12{35 + next(stamp) // 10:02d}{next(stamp) % 60:02d}.nc"

    day = d.input / "20240601"
    cases = {}
    cases["empty"] = day / name()
    cases["empty"].write_bytes(b"")
    cases["truncated"] = day / name()
    cases["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases["random bytes"] = day / name()
    cases["random bytes"].write_bytes(np.random.default_rng(0).bytes(5000))
    grid = run[0].grid
    nan = Scan(past(36.5), np.full((3, SIZE, SIZE), np.nan, np.float32), grid)
    cases["all NaN"] = write_scan(nan, d.root / "bad")
    big = Scan(past(37.5), np.full((3, SIZE, SIZE), 1.0e5, np.float32), grid)
    cases["out of range"] = write_scan(big, d.root / "bad")
    cases["no reflectivity"] = d.root / "bad" / "ncf_20240601_123830.nc"
    with netCDF4.Dataset(cases["no reflectivity"], "w") as ds:  # velocity only
        for dim, n in (("z", 3), ("y", SIZE), ("x", SIZE)):
            ds.createDimension(dim, n)
        ds.createVariable("VEL", "f4", ("z", "y", "x"))[:] = 1.0
    for key in ("all NaN", "out of range", "no reflectivity"):
        target = day / cases[key].name
        shutil.move(cases[key], target)
        cases[key] = target
    d.feed_run(run[8:10])
    d.wait_for(lambda: len(d.rejected_reasons()) >= len(cases), 60, "every rejection")
    d.wait_for(lambda: d.issue_of(run[9]) in d.complete_sets(), 60, "the next sets")
    reasons = d.rejected_reasons()
    words = {
        "empty": "empty", "truncated": "", "random bytes": "",
        "all NaN": "all missing", "out of range": "not reflectivity",
        "no reflectivity": "reflectivity",
    }
    for key, path in cases.items():
        assert path.name in reasons, (key, reasons)
        assert words[key].lower() in reasons[path.name].lower(), (key, reasons[path.name])
        assert not path.exists()
    d.stop()
    for key in cases:
        record(f"a scan that is {key}", "written into the input folder",
               "moved to rejected/ with the reason; the scans around it forecast")


def test_a_slow_writer_and_touch_then_fill_lose_nothing(daemon_factory):
    d = daemon_factory().start()  # reject_after_s: the default 60
    run = scans(10)
    d.feed_run(run[:8])
    data = {}
    for k in (8, 9):
        tmp = write_scan(run[k], d.root / "src")
        data[k] = (tmp.read_bytes(), d.input / tmp.relative_to(d.root / "src"))
    slow_bytes, slow = data[8]
    third = len(slow_bytes) // 3
    with open(slow, "wb") as fh:  # a third, 3 s, a third, 3 s, the rest
        fh.write(slow_bytes[:third])
        fh.flush()
        time.sleep(3)
        fh.write(slow_bytes[third : 2 * third])
        fh.flush()
        time.sleep(3)
        fh.write(slow_bytes[2 * third :])
    d.wait_for(lambda: d.issue_of(run[8]) in d.complete_sets(), 60, "the slow scan")
    fill_bytes, fill = data[9]
    fill.touch()  # create, pause, then write
    time.sleep(3)
    fill.write_bytes(fill_bytes)
    d.wait_for(lambda: d.issue_of(run[9]) in d.complete_sets(), 60, "the filled scan")
    assert d.rejected_reasons() == {}
    assert any("does not read yet" in line for line in d.lines("scan_waiting"))
    d.stop()
    record("a scan written slowly into its final name (3 s pauses)",
           "a third, pause, a third, pause, the rest",
           "retried, not rejected, while young; taken once complete")
    record("touch-then-fill", "create, 3 s pause, write",
           "not rejected as empty; taken once written")


def test_every_file_not_taken_gets_a_log_line(daemon_factory):
    d = daemon_factory().start()
    run = scans(9)
    d.feed_run(run[:8])
    hidden = d.feed(run[8], name="..ncf_20240601_124000.nc")
    dangling = d.input / "20240601" / "ncf_20240601_124500.nc"
    os.symlink(d.root / "nowhere.nc", dangling)
    (d.input / "notes.txt").write_text("not a scan")
    d.wait_for(lambda: len(d.lines("file_ignored")) >= 2, 30, "the log lines")
    text = "\n".join(d.lines("file_ignored"))
    assert f"{hidden.name}: not taken: a hidden name" in text
    assert f"{dangling.name}: not taken: a dangling symbolic link" in text
    d.stop()
    record("a valid scan named ..ncf_...nc; a dangling symlink", "put in the input",
           "a log line for each saying why it is not taken")


def test_a_symlinked_scan_is_archived_by_content(daemon_factory):
    d = daemon_factory().start()
    run = scans(8)
    d.feed_run(run[:7])
    real = write_scan(run[7], d.root / "elsewhere")
    link = d.input / "20240601" / real.name
    os.symlink(real, link)
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "its forecast")
    kept = d.archive / "20240601" / real.name
    assert kept.is_file() and not kept.is_symlink()
    assert kept.read_bytes() == real.read_bytes()
    assert os.stat(kept).st_ino != os.stat(real).st_ino  # a copy, not a link
    d.stop()
    record("a scan that is a symlink", "a symlink to a file outside the input",
           "the archive keeps the scan's content (a regular file)")


def test_hostile_names_never_reach_output_paths(daemon_factory):
    d = daemon_factory().start()
    run = scans(8)
    d.feed_run(run[:6])
    d.feed(run[6], name="$(touch PWNED)_ncf.nc")
    d.feed(run[7], name="a b;rm -rf x.nc")
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "its forecast")
    assert not list(d.root.rglob("PWNED"))
    names = {p.name for p in d.output.rglob("*.nc")}
    assert all(n.startswith("f_") for n in names)
    d.stop()
    record("odd and hostile file names ($(...), spaces, ;)", "scans named so",
           "taken by their content; output paths come only from scan times")
