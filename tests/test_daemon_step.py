"""Daemon.step with a fake clock on real directories: forecast, verify, status."""

from __future__ import annotations

import json
import time

import netCDF4
import pytest

from daemon_support import (
    FakeClock,
    cell_scans,
    copy_in,
    forecast_files,
    hidden_files,
    workspace,
    write,
)
from nowcast.daemon import Daemon
from nowcast.daemon.buffer import Outcome
from nowcast.daemon.status_file import read_status
from nowcast.daemon.watcher import Kind
from nowcast.radar import read_latest_data_info
from nowcast.store import MetricsReader


def started(settings, clock=None, **kw) -> tuple[Daemon, FakeClock]:
    clock = clock or FakeClock()
    daemon = Daemon(settings, clock=clock, **kw)
    daemon.initialize(clock.now)
    return daemon, clock


def arrive(daemon, *paths) -> None:
    """What the watcher does when files are closed or moved into place."""
    for path in paths:
        daemon.queue.put(path, Kind.READY)


def test_eight_scans_one_forecast_then_the_ninth_verifies(tmp_path):
    s = workspace(tmp_path)
    scans = cell_scans(9)
    for scan in scans[:8]:
        write(s, scan)
    d, clock = started(s)  # takes the newest scans on disk
    assert d.counts["taken"] == 8 and d.buffer.complete
    r = d.step(clock.now)
    assert not r.errors
    assert len(r.forecasts) == 1
    files = forecast_files(s)
    assert [f.name for f in files] == [f"f_{300 * k:08d}.nc" for k in range(1, 8)]
    assert files[0].parent.name == "g_123500"
    with netCDF4.Dataset(files[0]) as ds:
        assert ds.nowcast_method == "extrapolation"
        assert ds["DBZ"].shape == (1, 3, 32, 32)  # upsampled back to the scans
    info = read_latest_data_info(s.paths.output_dir)
    assert info.is_forecast and info.lead_s == 2100
    status = read_status(s.paths.status_file)
    assert status["buffer"]["fill"] == 8 and status["buffer"]["complete"]
    assert status["last_forecast"]["method"] == "extrapolation"
    assert "no checkpoint" in status["model"]["fallback_reason"]

    # nothing new: no second forecast
    assert d.step(clock.advance(1)).forecasts == []

    path = write(s, scans[8])
    d.queue.put(path, Kind.READY)  # what the watcher does
    r = d.step(clock.advance(1))
    assert r.taken == [path]
    assert [f.issue_time for f in r.forecasts] == [scans[8].time]
    assert r.scored > 0
    with MetricsReader(s.paths.store) as db:
        rows = db.query(
            "SELECT method, issue_time, valid_time, lead_s, kind, threshold "
            "FROM scores ORDER BY method, kind, threshold"
        )
        forecasts = db.query("SELECT issue_time, method FROM forecasts")
    assert {row["method"] for row in rows} == {"extrapolation", "persistence", "titan"}
    assert {(r["issue_time"], r["valid_time"], r["lead_s"]) for r in rows} == {
        ("2024-06-01T12:35:00Z", "2024-06-01T12:40:00Z", 300)
    }
    assert {r["threshold"] for r in rows} == {20.0, 35.0, 45.0}
    assert len(forecasts) == 2
    status = read_status(s.paths.status_file)
    assert set(status["verification"]["csi"]) == {
        "extrapolation", "persistence", "titan"
    }
    assert status["scans_taken"] == 9 and status["forecasts_written"] == 2
    d.shutdown(clock.now)


def test_status_json_holds_the_state(tmp_path):
    s = workspace(tmp_path)
    for scan in cell_scans(8):
        write(s, scan)
    d, clock = started(s)
    d.step(clock.now)
    status = json.loads(s.paths.status_file.read_text())
    for key in (
        "state", "updated", "last_scan", "buffer", "last_forecast", "model",
        "device", "queue_length", "errors", "next_retrain", "verification",
    ):
        assert key in status, key
    assert status["state"] == "running"
    assert status["last_scan"]["time"] == "2024-06-01T12:35:00Z"
    assert status["last_scan"]["age_s"] > 0
    # from the newest scan's close (its mtime) to the forecast: inside that span
    newest = max(s.paths.input_dir.rglob("*.nc"), key=lambda p: p.stat().st_mtime)
    since_close = time.time() - newest.stat().st_mtime
    assert 0 < status["last_forecast"]["latency_s"] <= since_close
    assert status["last_forecast"]["files"] == 7
    assert status["device"] == "cpu"
    assert status["queue_length"] == 0
    assert status["errors"]["count"] == 0
    assert status["next_retrain"].endswith("Z")
    assert hidden_files(s.paths.status_file.parent) == []
    d.shutdown(clock.now)
    assert read_status(s.paths.status_file)["state"] == "stopped"


def test_duplicate_gap_restart_and_late_scans(tmp_path):
    s = workspace(tmp_path)
    scans = cell_scans(8)
    d, clock = started(s)
    arrive(d, *[write(s, scans[k]) for k in range(5)])
    d.step(clock.now)
    # the same scan time again, under another name: ignored
    dup = copy_in(s, s.paths.input_dir / "20240601/ncf_20240601_121000.nc", "x/a.nc")
    d.queue.put(dup, Kind.READY)
    r = d.step(clock.advance(1))
    assert r.outcomes[str(dup)] is Outcome.DUPLICATE and not r.forecasts
    # 12:35 after 12:20: a gap; the scan is held until the next one decides
    p7 = write(s, scans[7])
    d.queue.put(p7, Kind.READY)
    r = d.step(clock.advance(1))
    assert r.outcomes[str(p7)] is Outcome.HELD
    assert d.buffer.fill == 5
    # the missing scans arrive late: added, the held one joins, the run is complete
    late = [write(s, scans[k]) for k in (6, 5)]
    for p in late:
        d.queue.put(p, Kind.READY)
    r = d.step(clock.advance(1))
    assert {r.outcomes[str(p)] for p in late} == {Outcome.ADDED}
    assert d.buffer.complete and d.buffer.candidate is None
    assert [f.issue_time for f in r.forecasts] == [scans[7].time]
    with MetricsReader(s.paths.store) as db:
        kinds = {e["kind"] for e in db.query("SELECT kind FROM events")}
    assert {"duplicate_scan", "scan_held"} <= kinds


def test_restart_rebuilds_the_buffer_from_disk(tmp_path):
    s = workspace(tmp_path)
    for scan in cell_scans(10):
        write(s, scan)
    d, clock = started(s)
    d.step(clock.now)
    d.shutdown(clock.now)
    again, clock = started(s, clock)
    r = again.step(clock.advance(5))
    assert again.buffer.complete
    assert [f.issue_time for f in r.forecasts] == [cell_scans(10)[-1].time]


def _corrupt(path):
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)


def _truncated(path, good):
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "empty", "wrong_grid"])
def test_bad_file_is_moved_aside_with_its_reason_once(tmp_path, kind):
    s = workspace(tmp_path)
    d, clock = started(s)
    good = write(s, cell_scans(1)[0])
    bad = s.paths.input_dir / "20240601" / "ncf_20240601_130000.nc"
    if kind == "corrupt":
        _corrupt(bad)
    elif kind == "truncated":
        _truncated(bad, good)
    elif kind == "empty":
        bad.write_bytes(b"")
    else:
        from conftest import moving_cell_scans
        from nowcast.radar import write_scan

        scan = moving_cell_scans(n=1, nz=3, size=40)[0]
        bad = write_scan(scan, tmp_path / "elsewhere")
        bad = copy_in(s, bad, "20240601/ncf_20240601_130000.nc")
    arrive(d, good, bad)
    r = d.step(clock.now)
    assert [p for p, _ in r.rejected] == [bad]
    assert not bad.exists()
    moved = s.paths.rejected_dir / "20240601" / bad.name
    assert moved.exists()
    reason = moved.with_name(bad.name + ".reason").read_text()
    assert reason.splitlines()[0] == r.rejected[0][1]
    if kind == "wrong_grid":
        assert "unexpected grid shape" in reason
    assert good.exists() and r.taken == [good]
    # never again: later steps and reconcile scans do not see it
    for _ in range(3):
        assert d.step(clock.advance(61)).rejected == []
    assert read_status(s.paths.status_file)["scans_rejected"] == 1
    with MetricsReader(s.paths.store) as db:
        events = db.query("SELECT path FROM events WHERE kind = 'rejected_scan'")
    assert [e["path"] for e in events] == [str(bad)]


def test_bad_file_that_cannot_be_moved_is_not_retried(tmp_path):
    s = workspace(tmp_path)
    d, clock = started(s)
    s.paths.rejected_dir.rmdir()  # made at start; now nowhere to move to
    s.paths.rejected_dir.write_text("not a folder")
    bad = s.paths.input_dir / "x.nc"
    bad.write_bytes(b"")
    arrive(d, bad)
    assert len(d.step(clock.now).rejected) == 1
    assert bad.exists()  # left in place, remembered
    for _ in range(3):
        assert d.step(clock.advance(61)).rejected == []
    assert d.counts["rejected"] == 1


def test_unwritable_output_is_retried_and_leaves_no_partial_file(tmp_path):
    s = workspace(tmp_path)
    for scan in cell_scans(8):
        write(s, scan)
    d, clock = started(s)
    s.paths.output_dir.rmdir()
    s.paths.output_dir.write_text("a file where the output folder should be")
    r = d.step(clock.now)
    assert r.forecasts == [] and len(r.write_failures) == 1
    assert "cannot write forecast" in r.write_failures[0]
    assert hidden_files(tmp_path) == []  # no temporary file left anywhere
    assert s.paths.output_dir.read_text().startswith("a file")
    status = read_status(s.paths.status_file)
    assert status["errors"]["count"] >= 1
    assert status["errors"]["recent"][-1]["kind"] == "forecast_failed"
    # not before retry_interval_s
    assert d.step(clock.advance(1)).write_failures == []
    s.paths.output_dir.unlink()
    r = d.step(clock.advance(5))
    assert len(r.forecasts) == 1 and len(forecast_files(s)) == 7
    assert hidden_files(s.paths.output_dir) == []


def test_archive_keeps_taken_scans_and_prunes_by_age_and_size(tmp_path):
    import os
    from datetime import timedelta

    s = workspace(tmp_path, archive_keep_days=1.0, archive_max_gb=0.0)
    scans = cell_scans(3)
    paths = [write(s, scan) for scan in scans]
    d, clock = started(s)
    d.step(clock.now)
    archived = sorted((s.paths.archive_dir / "20240601").iterdir())
    assert [p.name for p in archived] == [p.name for p in paths]
    assert archived[0].stat().st_ino == paths[0].stat().st_ino  # a hard link
    old = (clock.now - timedelta(days=2)).timestamp()
    os.utime(archived[0], (old, old))
    d.step(clock.advance(200))  # past the prune interval
    assert not archived[0].exists() and archived[1].exists()
    assert all(p.exists() for p in paths)  # the input directory is never pruned


def test_motion_goes_out_as_u_and_v_when_configured(tmp_path):
    s = workspace(tmp_path, extra="[output]\nwrite_motion = true\n")
    for scan in cell_scans(8):
        write(s, scan)
    d, clock = started(s)
    assert len(d.step(clock.now).forecasts) == 1
    with netCDF4.Dataset(forecast_files(s)[0]) as ds:
        assert {"U", "V"} <= set(ds.variables)
        assert ds["U"].units == "m s-1"


def test_the_live_scores_are_nowcast_evals_scores_of_the_written_files(tmp_path):
    """The daemon verifies the set as written (clamped, as stored), so its scores
    in the store and ``nowcast eval`` on the same files and scans are the same
    counts, threshold by threshold."""
    from nowcast.cli import main

    s = workspace(tmp_path)
    scans = cell_scans(9)
    for scan in scans[:8]:
        write(s, scan)
    d, clock = started(s)
    d.step(clock.now)
    arrive(d, write(s, scans[8]))
    assert d.step(clock.advance(1)).scored > 0
    d.shutdown(clock.now)
    with MetricsReader(s.paths.store) as db:
        live = {
            (r["kind"], r["threshold"]): (
                r["hits"], r["misses"], r["false_alarms"], r["correct_negatives"]
            )
            for r in db.query(
                "SELECT * FROM scores WHERE method = 'extrapolation' AND lead_s = 300"
            )
        }
    report = tmp_path / "eval.json"
    status = main([
        "eval", "--obs", str(s.paths.input_dir), "--forecasts",
        str(s.paths.output_dir), "--method", "extrapolation", "--json", str(report),
        "--config", str(tmp_path / "config.toml"),
    ])
    assert status == 0
    counts = json.loads(report.read_text())["scores"]["counts"]
    offline = {
        (kind, thr): (h, m, fa, cn) for lead, kind, thr, h, m, fa, cn in counts
        if lead == 300
    }
    assert live and live == offline
    assert any(h > 0 for h, *_ in live.values())  # the cell was forecast and seen


def test_status_says_starting_while_it_starts_and_stopping_when_asked(tmp_path):
    s = workspace(tmp_path)
    s.paths.status_file.parent.mkdir(parents=True, exist_ok=True)
    s.paths.status_file.write_text('{"version": 1, "state": "running"}')  # stale
    clock = FakeClock()
    d = Daemon(s, clock=clock)
    seen = []
    real_start = d.models.start

    def start(now):
        seen.append(read_status(s.paths.status_file)["state"])
        return real_start(now)

    d.models.start = start
    d.initialize(clock.now)
    assert seen == ["starting"]
    assert read_status(s.paths.status_file)["state"] == "running"
    d.stopping(clock.now)
    assert read_status(s.paths.status_file)["state"] == "stopping"
    d.shutdown(clock.now)
    assert read_status(s.paths.status_file)["state"] == "stopped"
