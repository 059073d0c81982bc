"""How scans arrive: duplicates, disorder, gaps, bursts, whole folders moved in."""

from __future__ import annotations

import os
import shutil
import time

from faults.conftest import record, scans
from nowcast.radar import write_scan


def test_a_duplicate_under_another_name_is_ignored(daemon_factory):
    d = daemon_factory().start()
    run = scans(9)
    paths = d.feed_run(run[:8])
    copy = d.input / "20240601" / "copy_of_the_newest.nc"
    shutil.copy(paths[-1], copy)
    d.feed(run[8])
    d.wait_for(lambda: d.issue_of(run[8]) in d.complete_sets(), 60, "the sets")
    assert any("already taken" in line for line in d.lines("duplicate_scan"))
    assert len(d.complete_sets()) == 2
    assert d.stop() == 0
    record("the same scan under another name", "a copy of the newest scan",
           "ignored with a log line; no second forecast")


def test_scans_out_of_order_and_a_30_minute_gap(daemon_factory):
    d = daemon_factory().start()
    run = scans(26)
    order = [0, 1, 3, 2, 5, 4, 6, 7]  # two pairs swapped
    for k in order:
        d.feed(run[k])
        time.sleep(0.3)
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "the first set")
    # a 30-minute gap: scans 8-13 never come; 14-21 make a new run
    d.feed_run(run[14:22])
    d.wait_for(lambda: d.issue_of(run[21]) in d.complete_sets(), 60, "after the gap")
    assert any("restarts the sequence" in line for line in d.lines("sequence_restart"))
    assert d.issue_of(run[13]) not in d.issues()
    assert d.stop() == 0
    record("scans out of order (two pairs swapped)", "fed 0 1 3 2 5 4 6 7",
           "slotted in by time: the first forecast as in order")
    record("a 30-minute gap", "six scans never arrive",
           "the sequence restarts once the next scan confirms it; forecasts resume "
           "after 8 scans")


def test_300_files_at_once_and_a_day_folder_moved_in(daemon_factory):
    d = daemon_factory().start()
    run = scans(300)
    staging = d.root / "burst"
    for scan in run[:150]:
        write_scan(scan, staging)
    day = next(staging.iterdir())  # yyyymmdd with 150 scans inside
    os.rename(day, d.input / day.name)  # a whole day folder moved in
    for scan in run[150:]:  # then 150 more, renamed in as fast as they come
        d.feed(scan)
    d.wait_for(lambda: d.issue_of(run[-1]) in d.complete_sets(), 120, "the newest")
    # the queue holds each path once and drains: bounded by the files, then empty
    assert d.status()["queue_length"] <= len(run)
    d.wait_for(lambda: d.status().get("queue_length") == 0, 60, "the queue to drain")
    taken = [e for e in d.events() if e.get("kind") == "scan"]
    assert len({e["scan_time"] for e in taken}) == len(taken)  # each once
    assert d.rejected_reasons() == {}
    assert d.stop() == 0
    record("300 files at once; a day folder moved in with 150 inside",
           "a folder renamed into the input, then 150 renames without pause",
           "each scan taken once, none rejected, the newest forecast")
