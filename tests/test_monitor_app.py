"""The dashboard driven with Pilot against real files and a real store."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import timedelta

import pytest
from monitor_workspace import (
    LEADS,
    NOW,
    make_workspace,
    run_async,
    screen_text,
    settle,
)

from nowcast.monitor.app import MonitorApp, main
from nowcast.monitor.forecast_panel import ForecastPanel
from nowcast.monitor.forecasts import LeadFile
from nowcast.monitor.help_screen import HelpScreen
from nowcast.monitor.radar_view import RadarView
from nowcast.monitor.skill_panel import SkillPanel
from nowcast.monitor.training_panel import TrainingPanel
from nowcast.radar import forecast_rel_path


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("up"), daemon="up")


@pytest.fixture(scope="module")
def down(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("down"), daemon="down")


@pytest.fixture
def empty(tmp_path):
    return make_workspace(tmp_path, daemon="none")


def monitor(settings) -> MonitorApp:
    return MonitorApp(
        settings, config_label="config.toml", clock=lambda: NOW, live=False
    )


@run_async
async def test_forecast_panel_shows_scan_and_forecast(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "daemon up" in text and "scan 12:40:00Z 60 s ago" in text
        assert "Issued 12:40:00Z  convlstm3d (demo3d.pt)  column max" in text
        assert "[t+15]" in text and "valid 12:55Z" in text
        observed = app.query_one("#view-observed", RadarView)
        forecast = app.query_one("#view-forecast", RadarView)
        assert observed.caption == "Observed 12:40:00Z"
        assert forecast.caption == "Forecast t+15 \u2192 12:55Z"
        assert forecast.field is not None and forecast.field.level is None
        assert forecast.field.path.name == "f_00000900.nc"
        assert "\u2580" in text  # the pictures are drawn
        assert not app.query_one("#view-earlier", RadarView).display  # 80 columns: two
        assert app.load_errors == []


@run_async
async def test_keys_step_lead_and_level(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = app.query_one(ForecastPanel)
        forecast = app.query_one("#view-forecast", RadarView)
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert panel.lead_index == 3
        assert forecast.field.path.name == "f_00001200.nc"
        assert "[t+20]" in screen_text(app)
        await pilot.press("left", "left", "left", "left")
        await settle(pilot)
        assert panel.lead_index == 6  # wraps round to t+35
        assert forecast.caption == "Forecast t+35 \u2192 13:15Z"
        await pilot.press("c")
        await settle(pilot)
        assert panel.level == 0 and forecast.field.level == 0
        assert "level 1/4 0.5 km" in screen_text(app)
        await pilot.press("up", "up")
        await settle(pilot)
        assert forecast.field.level == 2 and "level 3/4" in screen_text(app)
        await pilot.press("up", "up")  # stops at the top
        await settle(pilot)
        assert panel.level == 3
        await pilot.press("c")
        await settle(pilot)
        assert panel.level is None and forecast.field.level is None
        await pilot.press("v")  # the earlier forecast and the scan verifying it
        await settle(pilot)
        earlier = app.query_one("#view-earlier", RadarView)
        assert earlier.display and not forecast.display
        assert earlier.caption == "t+35 from 12:05Z \u2192 12:40Z"
        assert earlier.field.path.parent.name == "g_120500"


@run_async
async def test_a_new_forecast_replaces_the_pictures(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = app.query_one(ForecastPanel)
        forecast = app.query_one("#view-forecast", RadarView)
        assert forecast.field.path.parent.name == "g_124000"
        out = up.paths.output_dir
        issue = panel.forecast_set.issue_time - timedelta(minutes=5)
        other = replace(
            panel.forecast_set,
            issue_time=issue,
            leads=tuple(
                LeadFile(issue, lead, out / forecast_rel_path(issue, lead, "forecast"))
                for lead in LEADS
            ),
        )
        panel.update_set(other)
        assert forecast.field is not None  # the old picture stays until then
        await settle(pilot)
        assert forecast.field.path.parent.name == "g_123500"
        assert forecast.caption == "Forecast t+15 \u2192 12:50Z"
        assert all(k[0].count("g_123500") or "scans" in k[0] for k in panel.fields)


@run_async
async def test_loop_plays_the_leads(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = app.query_one(ForecastPanel)
        await pilot.press("space")
        assert panel.playing and "\u25b6 loop" in screen_text(app)
        start = panel.lead_index
        panel._tick()
        panel._tick()
        assert panel.lead_index == (start + 2) % 7
        await pilot.press("space")
        assert not panel.playing


@run_async
async def test_skill_panel_numbers_and_keys(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        text = screen_text(app)
        assert "\u226535 dBZ \u00b7 last hour \u00b7 3d \u00b7 1 verified" in text
        assert "convlstm3d      persistence     titan" in text
        assert "t+5   0.67 0.80 0.20  0.60 0.75 0.25  0.56 0.71 0.29" in text
        assert "0.4\u2524" in text  # the operational bar on the chart
        await pilot.press("w")
        assert "last day \u00b7 3d \u00b7 24 verified" in screen_text(app)
        await pilot.press("d")
        panel = app.query_one(SkillPanel)
        assert panel.threshold == 45.0
        assert "\u226545 dBZ" in screen_text(app)
        await pilot.press("w", "w", "d", "d", "k")  # last hour, 35 dBZ, composite
        text = screen_text(app)
        assert "\u226535 dBZ \u00b7 last hour \u00b7 composite" in text
        assert "t+5   0.50 0.67 0.33" in text


@run_async
async def test_training_panel(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("t")
        text = screen_text(app)
        assert "Run #1 completed \u00b7 epoch 29 (phase 3)" in text
        assert "Loss (total, log)" in text and "P2@10 P3@20" in text
        assert "promoted phase3_best.pt" in text
        assert "val CSI35" in text and "0.49" in text
        await pilot.press("l")
        assert app.query_one(TrainingPanel).term == "huber"
        assert "Loss (huber, log)" in screen_text(app)


@run_async
async def test_health_panel_of_a_running_daemon(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("h")
        text = screen_text(app)
        assert "\u25cf up since 10:40:59Z (2.0 h ago)" in text
        assert "Buffer     8/8" in text
        assert "latency 4.2 s" in text and "Device     cuda" in text
        assert "Queue      0 files" in text
        assert "2024-06-02 02:30Z (in 13.8 h)" in text
        assert "rejected_scan ncf_20240601_122000.nc: empty file" in text


@run_async
async def test_a_daemon_that_is_down_is_shown_as_down(down):
    app = monitor(down)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "DAEMON DOWN since 09:41:00Z" in text.splitlines()[0]
        assert app.query_one("#status-line").has_class("-down")
        await pilot.press("h")
        text = screen_text(app)
        assert "DOWN since 09:41:00Z (3.0 h ago)" in text and "is gone" in text
        assert "values below are the last known state" in text
        assert "\u26a0 late" in text
        assert "newer in input: 12:40:00Z (not taken)" in text


@run_async
async def test_an_empty_system_says_what_to_start(empty):
    app = monitor(empty)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "daemon not started: nowcast run --config config.toml" in text
        assert "No forecasts in titan/nowcast/ yet" in text
        assert "no scans yet" in text
        await pilot.press("s")
        assert "no metrics store at state/nowcast.sqlite" in screen_text(app)
        await pilot.press("h")
        text = screen_text(app)
        assert "not started" in text and "No daemon status at state/status.json" in text
        assert app.load_errors == []


@run_async
async def test_a_large_terminal_shows_every_panel(up):
    app = monitor(up)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        for title in ("Forecast", "Health", "Skill", "Training"):
            assert f"\u256d\u2500 {title} " in text
        assert not app.query_one("#tabs").display
        earlier = app.query_one("#view-earlier", RadarView)
        assert earlier.display and earlier.field is not None  # three pictures
        assert "t+5   0.67 0.80 0.20" in text and "Run #1 completed" in text


@run_async
async def test_help_and_quit(up):
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "play the leads as a loop" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0


@run_async
async def test_a_failing_loader_is_shown(up, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("nowcast.monitor.app.load_skill", broken)
    app = monitor(up)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.load_errors == [
            "Cannot read skill scores: RuntimeError: disk on fire"
        ]
        await pilot.press("s")
        assert "Cannot read skill scores: RuntimeError: disk on fire" in screen_text(
            app
        )


def test_cli_rejects_a_bad_config(tmp_path, capsys):
    bad = tmp_path / "config.toml"
    bad.write_text("[monitor]\nrefresh_s = -1\n")
    assert main(["--config", str(bad)]) == 78
    assert "monitor.refresh_s" in capsys.readouterr().err


def test_import_does_not_load_torch_or_pysteps():
    code = textwrap.dedent(
        """
        import sys
        import nowcast.monitor.app
        heavy = [m for m in ("torch", "pysteps") if m in sys.modules]
        print(",".join(heavy) or "none")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"
