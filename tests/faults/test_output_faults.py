"""The output under attack: a full disk, an immutable folder, the folder deleted,
and a reader polling it: a forecast set is complete or absent, always."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time

import pytest

from faults.conftest import record, scans

ROOT = os.geteuid() == 0


def _can(cmd: list[str]) -> bool:
    return ROOT and shutil.which(cmd[0]) is not None


@contextlib.contextmanager
def tmpfs(path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _sets_complete_or_absent(d) -> None:
    for s in d.issues():
        assert len(list((d.output / s).glob("f_*.nc"))) == 7, s


@pytest.mark.skipif(not _can(["mount"]), reason="needs root to mount a small tmpfs")
def test_a_full_disk_says_so_leaks_nothing_and_recovers(daemon_factory, tmp_path):
    d = daemon_factory(retry_interval_s=0.5)
    with tmpfs(d.output, "600k"):
        d.start()
        run = scans(11)
        d.feed_run(run[:8])
        d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "a set")
        filler = d.output / "filler"
        with contextlib.suppress(OSError):  # fill the disk
            with open(filler, "wb") as fh:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
        d.feed_run(run[8:10])
        d.wait_for(lambda: len(d.lines("forecast_failed")) >= 2, 60, "failures")
        failed = "\n".join(d.lines("forecast_failed"))
        assert "No space left on device" in failed and str(d.output) in failed
        assert "Permission denied" not in failed and "strerror" not in failed
        assert d.deleted_fds() == []
        _sets_complete_or_absent(d)
        assert [p for p in d.hidden_in_output() if p.name != "filler"] == []
        filler.unlink()  # space comes back: the daemon catches up
        d.feed(run[10])
        d.wait_for(lambda: d.issue_of(run[10]) in d.complete_sets(), 60, "recovery")
        _sets_complete_or_absent(d)
        assert d.stop() == 0
    record("full disk on the output (600 kB tmpfs)", "filled while running",
           "'No space left on device' with the path; no descriptor to a deleted "
           "file; sets complete or absent; forecasts resume when space returns")


@pytest.mark.skipif(not _can(["chattr"]), reason="needs root and chattr")
def test_an_immutable_output_folder_leaves_no_partial_set(daemon_factory):
    d = daemon_factory(retry_interval_s=0.5).start()
    run = scans(10)
    d.feed_run(run[:8])
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "a set")
    day = d.output / "20240601"
    if subprocess.run(["chattr", "+i", str(day)], capture_output=True).returncode:
        pytest.skip("this file system does not take chattr +i")
    try:
        d.feed(run[8])
        d.wait_for(lambda: d.lines("forecast_failed"), 60, "the failure")
        failed = d.lines("forecast_failed")[0]
        assert "Operation not permitted" in failed and "g_124000" in failed
        _sets_complete_or_absent(d)
    finally:
        subprocess.run(["chattr", "-i", str(day)], capture_output=True)
    d.feed(run[9])
    d.wait_for(lambda: d.issue_of(run[9]) in d.complete_sets(), 60, "recovery")
    _sets_complete_or_absent(d)
    assert d.stop() == 0
    record("output made immutable (chattr +i) after the first set",
           "chattr +i on the day folder",
           "no partial set; the error names the folder and the reason")


def test_the_output_folder_deleted_while_running(daemon_factory):
    d = daemon_factory().start()
    run = scans(10)
    d.feed_run(run[:8])
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "a set")
    shutil.rmtree(d.output)
    d.feed_run(run[8:10])
    d.wait_for(lambda: d.issue_of(run[9]) in d.complete_sets(), 60, "sets again")
    assert (d.output / "_latest_data_info").exists()
    assert d.stop() == 0
    record("the output folder deleted while running", "rm -rf OUT",
           "recreated; the next forecasts and _latest_data_info are written")


POLLER = """
import sys, time, pathlib, netCDF4
out, stop, report = map(pathlib.Path, sys.argv[1:4])
bad = []
while not stop.exists():
    for folder in out.glob("*/g_*"):
        files = sorted(folder.glob("f_*.nc"))
        if len(files) not in (0, 7):
            bad.append(f"{folder.name}: {len(files)} files")
        for f in files[:1]:
            try:
                with netCDF4.Dataset(f) as ds:
                    ds["DBZ"][:]
            except FileNotFoundError:
                pass  # swapped out between the listing and the open
            except OSError as exc:
                bad.append(f"{f}: {exc}")
    time.sleep(0.05)
report.write_text("\\n".join(bad))
"""


def test_a_reader_polling_every_50_ms_never_sees_a_partial_set(daemon_factory):
    """The reader is another process (as TITAN is; HDF5 is not thread-safe)."""
    import sys

    d = daemon_factory().start()
    run = scans(14)
    stop, report = d.root / "stop-poller", d.root / "poller.txt"
    d.output.mkdir(parents=True, exist_ok=True)
    reader = subprocess.Popen(
        [sys.executable, "-c", POLLER, str(d.output), str(stop), str(report)]
    )
    try:
        d.feed_run(run, every=0.3)
        d.wait_for(lambda: d.issue_of(run[-1]) in d.complete_sets(), 60, "all sets")
    finally:
        stop.touch()
        reader.wait(30)
    assert reader.returncode == 0
    assert report.read_text() == ""
    assert len(d.complete_sets()) == 7
    assert d.stop() == 0
    record("a reader polling the output every 50 ms", "listing and opening files",
           "never a partial set, never a half-written file")


@pytest.mark.skipif(not _can(["mount"]), reason="needs root for a read-only bind mount")
def test_a_read_only_input_folder(daemon_factory, tmp_path):
    """The radar's folder mounted read-only: scans are taken, a bad one cannot be
    moved aside, so it is left in place with its reason and never read again."""
    d = daemon_factory()
    source = tmp_path / "radar"
    source.mkdir()
    run = scans(9)
    from nowcast.radar import write_scan

    for scan in run[:8]:
        write_scan(scan, source)
    (source / "20240601" / "ncf_20240601_124500.nc").write_bytes(b"junk")
    d.input.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "--bind", str(source), str(d.input)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d.input)], check=True)
        d.write_config({"quiet_s": 0.3, "reconcile_interval_s": 1.0,
                        "poll_interval_s": 0.2, "reject_after_s": 0.5})
        d.start()
        d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "a set")
        d.wait_for(lambda: any("left in place" in x for x in d.lines("rejected_scan")),
                   30, "the bad file's reason")
        time.sleep(3)  # reconcile scans come and go: it is not read again
        assert sum("ncf_20240601_124500" in x for x in d.lines("rejected_scan")) == 1
        assert d.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(d.input)], capture_output=True)
    record("a read-only input folder (bind mount, ro)", "scans and one bad file",
           "scans forecast; the bad file left in place with its reason, once")
