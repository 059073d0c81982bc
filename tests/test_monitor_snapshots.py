"""Pictures of the dashboard (pytest-textual-snapshot), fixed in time.

Run ``pytest tests/test_monitor_snapshots.py --snapshot-update`` after a deliberate
change of the screen, look at the pictures (``__snapshots__``), and commit them.
"""

from __future__ import annotations

import pytest
from monitor_workspace import NOW, make_workspace, settle

from nowcast.monitor.app import MonitorApp


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("up"), daemon="up")


def monitor(settings) -> MonitorApp:
    return MonitorApp(
        settings, config_label="config.toml", clock=lambda: NOW, live=False
    )


def test_forecast_at_80x24(snap_compare, up):
    """The main screen on a small terminal: the scan beside the t+15 forecast."""
    assert snap_compare(monitor(up), terminal_size=(80, 24), run_before=settle)


def test_every_panel_on_a_large_terminal(snap_compare, up):
    """Forecast (three pictures), Health, Skill and Training at once."""
    assert snap_compare(monitor(up), terminal_size=(180, 52), run_before=settle)


def test_daemon_down_health(snap_compare, tmp_path):
    """A daemon that stopped three hours ago: red status line, last known state."""
    app = monitor(make_workspace(tmp_path, daemon="down"))

    async def health(pilot):
        await settle(pilot)
        await pilot.press("h")

    assert snap_compare(app, terminal_size=(80, 24), run_before=health)


def test_empty_system(snap_compare, tmp_path):
    """Nothing started yet: what to start."""
    app = monitor(make_workspace(tmp_path, daemon="none"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)
