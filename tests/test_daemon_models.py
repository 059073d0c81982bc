"""The production model in the daemon: loading, fallback, hot reload (fake provider)."""

from __future__ import annotations

import netCDF4

from daemon_support import (
    FakeClock,
    cell_scans,
    fake_provider,
    forecast_files,
    workspace,
    write,
    write_checkpoint,
)
from nowcast.daemon import Daemon
from nowcast.daemon.status_file import read_status
from nowcast.daemon.watcher import Kind
from nowcast.store import MetricsReader


def started(settings, provider, clock=None) -> tuple[Daemon, FakeClock]:
    clock = clock or FakeClock()
    daemon = Daemon(settings, clock=clock, provider=provider)
    daemon.initialize(clock.now)
    return daemon, clock


def methods(settings) -> set[str]:
    out = set()
    for f in forecast_files(settings):
        with netCDF4.Dataset(f) as ds:
            out.add((ds.nowcast_method, ds.nowcast_model))
    return out


def test_the_model_forecasts_when_its_checkpoint_loads(tmp_path):
    s = workspace(tmp_path)
    write_checkpoint(s, "good")
    loads = []
    for scan in cell_scans(8):
        write(s, scan)
    d, clock = started(s, fake_provider(loads=loads))
    assert loads == [("good", "cpu")]
    r = d.step(clock.now)
    assert len(r.forecasts) == 1
    assert methods(s) == {("convlstm3d", "production.pt")}
    status = read_status(s.paths.status_file)
    assert status["model"]["method"] == "convlstm3d"
    assert status["model"]["name"] == "production.pt"
    assert status["model"]["checkpoint_time"].endswith("Z")
    assert status["model"]["fallback_reason"] is None


def test_hot_reload_keeps_the_old_model_when_the_new_one_fails(tmp_path):
    s = workspace(tmp_path)
    write_checkpoint(s, "good first")
    loads = []
    d, clock = started(s, fake_provider(loads=loads))
    first = d.models.current
    assert first is not None

    write_checkpoint(s, "bad shape")  # loads, but fails its test forecast
    r = d.step(clock.advance(1))
    assert r.reload is not None and not r.reload["ok"]
    assert "test forecast" in r.reload["message"]
    assert d.models.current is first
    assert d.models.fallback_reason is None  # the old model still runs
    n = len(loads)
    for _ in range(3):  # the failed version is not tried again
        assert d.step(clock.advance(1)).reload is None
    assert len(loads) == n

    write_checkpoint(s, "boom")  # cannot even load
    r = d.step(clock.advance(1))
    assert not r.reload["ok"] and "cannot load" in r.reload["message"]
    assert d.models.current is first

    write_checkpoint(s, "good second")
    r = d.step(clock.advance(1))
    assert r.reload["ok"]
    assert d.models.current is not first
    with MetricsReader(s.paths.store) as db:
        events = db.query("SELECT level FROM events WHERE kind = 'model_reload'")
    assert [e["level"] for e in events] == ["error", "error", "info"]


def test_reload_waits_for_a_still_checkpoint(tmp_path):
    s = workspace(tmp_path, quiet_s=2.0)
    write_checkpoint(s, "good first")
    d, clock = started(s, fake_provider())
    write_checkpoint(s, "good second")
    assert d.step(clock.advance(1)).reload is None  # noticed
    assert d.step(clock.advance(1)).reload is None  # still for 1 s of 2
    r = d.step(clock.advance(1.5))
    assert r.reload is not None and r.reload["ok"]


def test_a_model_that_fails_at_forecast_time_falls_back(tmp_path):
    s = workspace(tmp_path)
    write_checkpoint(s, "flaky")  # passes its test forecast, then runs out of memory
    scans = cell_scans(9)
    for scan in scans[:8]:
        write(s, scan)
    d, clock = started(s, fake_provider())
    r = d.step(clock.now)
    assert len(r.forecasts) == 1 and not r.write_failures
    assert methods(s) == {("extrapolation", "")}
    status = read_status(s.paths.status_file)
    assert "out of memory" in status["last_forecast"]["fallback_reason"]
    assert d.models.current is not None  # tried again on the next forecast
    with MetricsReader(s.paths.store) as db:
        kinds = [e["kind"] for e in db.query("SELECT kind FROM events")]
    assert "fallback" in kinds


def test_no_model_yet_means_the_fallback(tmp_path):
    """The real provider: ``get_forecaster("model")`` refuses the file today."""
    s = workspace(tmp_path, fallback="titan")
    write_checkpoint(s, "not a torch checkpoint")
    d = Daemon(s, clock=FakeClock())
    d.initialize()
    assert d.models.current is None
    assert "cannot load" in d.models.fallback_reason
    assert d.models.fallback().name == "titan"
    path = write(s, cell_scans(1)[0])
    d.queue.put(path, Kind.READY)
    d.step()
