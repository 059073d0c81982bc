"""`nowcast health`'s rules on status.json contents (the real daemon is attacked in
tests/faults/test_health_live.py)."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone

import pytest

from nowcast.cli import main
from nowcast.daemon.health import (
    CRITICAL, OK, UNKNOWN, WARNING, Thresholds, check_health,
)
from nowcast.times import iso_z

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def _status(**over) -> dict:
    ago = lambda s: iso_z(NOW - timedelta(seconds=s))  # noqa: E731
    status = {
        "state": "running", "pid": os.getpid(), "host": socket.gethostname(),
        "updated": ago(1),
        "last_scan": {"time": ago(90), "taken": ago(80)},
        "last_forecast": {"written": ago(75), "latency_s": 4.2},
        "model": {"name": "production.pt", "fallback": "extrapolation",
                  "fallback_reason": None},
        "errors": {"count": 0, "recent": []},
    }
    status.update(over)
    return status


def test_a_healthy_daemon_is_ok_with_perfdata():
    h = check_health(_status(), NOW, Thresholds())
    assert h.code == OK
    assert h.line.startswith("NOWCAST OK - running, newest scan 90 s old")
    assert "| scan_age=90s;600;1200 forecast_age=75s;600;1200 latency=4.20s;60;120" \
        in h.line


@pytest.mark.parametrize("over, code, text", [
    ({"state": "stopped"}, CRITICAL, "daemon stopped"),
    ({"state": "starting"}, WARNING, "daemon starting"),
    ({"updated": iso_z(NOW - timedelta(seconds=300))}, CRITICAL, "not updated for"),
    ({"pid": 2**22 + 12345}, CRITICAL, "is not running"),
    ({"last_scan": {"time": iso_z(NOW - timedelta(seconds=700))}}, WARNING,
     "newest scan 12 min old"),
    ({"last_scan": {"time": iso_z(NOW - timedelta(seconds=1300))}}, CRITICAL,
     "newest scan 22 min old"),
    ({"last_scan": None}, WARNING, "no scan taken yet"),
    ({"last_forecast": {"written": iso_z(NOW - timedelta(seconds=1300)),
                        "latency_s": 2.0}}, CRITICAL, "last forecast 22 min ago"),
    ({"last_forecast": {"written": iso_z(NOW), "latency_s": 75.0}}, WARNING,
     "forecast latency 75.0 s"),
    ({"model": {"name": None, "fallback_reason": "checkpoint refused"}}, WARNING,
     "model not in use (checkpoint refused)"),
    ({"model": {"name": None, "fallback_reason": None}}, WARNING,
     "model not in use (no model loaded)"),
    ({"errors": {"recent": [{"time": iso_z(NOW - timedelta(seconds=60)),
                             "level": "error", "message": "store: locked"}]}},
     WARNING, "1 error(s) in the last 60 min: store: locked"),
])
def test_each_rule(over, code, text):
    h = check_health(_status(**over), NOW, Thresholds())
    assert (h.code, text in h.line) == (code, True), h.line


def test_old_errors_and_warnings_do_not_count():
    recent = [{"time": iso_z(NOW - timedelta(hours=2)), "level": "error"},
              {"time": iso_z(NOW), "level": "warning"}]
    health = check_health(_status(errors={"recent": recent}), NOW, Thresholds())
    assert health.code == OK


def test_the_worst_check_wins():
    h = check_health(_status(state="starting", last_scan={
        "time": iso_z(NOW - timedelta(hours=1))}), NOW, Thresholds())
    assert h.code == CRITICAL
    assert h.line.index("newest scan") < h.line.index("daemon starting")


def test_a_replay_of_old_scans_can_age_from_when_they_were_taken():
    old = {"time": iso_z(NOW - timedelta(days=900)), "taken": iso_z(NOW)}
    assert check_health(_status(last_scan=old), NOW, Thresholds()).code == CRITICAL
    assert check_health(_status(last_scan=old), NOW,
                        Thresholds(age_from="taken")).code == OK


def test_the_command_exit_statuses(tmp_path, capsys):
    path = tmp_path / "status.json"
    assert main(["health", "--status", str(path)]) == CRITICAL
    assert "no status file" in capsys.readouterr().out
    path.write_text("{not json")
    assert main(["health", "--status", str(path)]) == UNKNOWN
    assert capsys.readouterr().out.startswith(f"NOWCAST UNKNOWN - cannot read {path}")
    path.write_text(json.dumps(_status(updated=iso_z(datetime.now(timezone.utc)))))
    assert main(["health", "--status", str(path), "--age-from", "taken",
                 "--scan-crit", "1e9", "--scan-warn", "1e9",
                 "--forecast-warn", "1e9", "--forecast-crit", "1e9"]) == OK
    assert capsys.readouterr().out.count("\n") == 1
