"""`nowcast health` against a real daemon: running and fed, a stalled feed, stopped,
and killed (a status file left saying "running")."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from faults.conftest import record, scans
from faults.test_process_faults import _checkpoint


def _health(d, *args: str) -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-m", "nowcast.cli", "health", "--config", str(d.config),
         *args], capture_output=True, text=True, timeout=60,
    )
    return run.returncode, run.stdout.strip()


def test_health_of_a_running_a_stalled_a_stopped_and_a_killed_daemon(daemon_factory):
    d = daemon_factory()
    (d.root / "models").mkdir()
    _checkpoint(d.root / "models" / "production.pt", levels=(3,))
    d.start()
    d.wait_for(lambda: (d.status().get("model") or {}).get("name") == "production.pt",
               60, "the model loaded")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    run = scans(8, start=now - timedelta(minutes=35))
    d.feed_run(run, every=0.2)
    d.wait_for(lambda: d.issue_of(run[-1]) in d.complete_sets(), 60, "a forecast")
    code, line = _health(d)
    assert (code, line.split(" - ")[0]) == (0, "NOWCAST OK"), line
    assert "| scan_age=" in line and "latency=" in line

    # the feed stalls: nothing new for longer than the thresholds
    time.sleep(3)
    code, line = _health(d, "--scan-warn", "1", "--scan-crit", "2")
    assert code == 2 and "newest scan" in line, line
    code, line = _health(d, "--scan-warn", "1", "--scan-crit", "600")
    assert code == 1 and "newest scan" in line, line

    assert d.stop() == 0
    code, line = _health(d)
    assert code == 2 and "daemon stopped" in line, line

    d.start()
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(30)
    code, line = _health(d, "--stale", "60")
    assert code == 2 and "is not running" in line, line
    time.sleep(2.5)
    code, line = _health(d, "--stale", "2")
    assert code == 2 and "not updated for" in line, line
    record("nowcast health against a real daemon",
           "running and fed; feed stalled; SIGTERM; SIGKILL",
           "0 OK; 1/2 on scan age; 2 stopped; 2 pid gone, 2 status stale")
