"""LROSE's LdataWatcher, running as TITAN's realtime trigger does, sees each forecast
set a real daemon writes (gen time, lead, the newest file's path)."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import SHARED
from faults.conftest import record, scans

LDATA_WATCHER = SHARED / "lrose" / "bin" / "LdataWatcher"


@pytest.mark.skipif(not LDATA_WATCHER.exists(), reason=f"no {LDATA_WATCHER}")
def test_ldatawatcher_is_triggered_by_each_forecast_set(daemon_factory):
    d = daemon_factory().start()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    run = scans(9, start=now - timedelta(minutes=40))
    d.feed_run(run[:8], every=0.3)
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "a first set")
    log = d.root / "ldatawatcher.txt"
    with open(log, "wb") as out:
        # realtime mode: data older than its max age (1 h by default) is ignored,
        # so the scans are of now
        # its stdout is block-buffered into a file and it is stopped with a
        # signal: -debug (and stdbuf) make it print each trigger as it comes
        watcher = subprocess.Popen(["stdbuf", "-oL", str(LDATA_WATCHER), "-debug",
                                    "-dir", str(d.output)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)
        assert watcher.poll() is None, log.read_text()[-2000:]
        d.feed(run[8])
        d.wait_for(lambda: d.issue_of(run[8]) in d.complete_sets(), 60, "a new set")
        deadline = time.monotonic() + 20
        newest = f"{d.issue_of(run[-1])}/f_00002100.nc"
        while time.monotonic() < deadline and newest not in log.read_text():
            time.sleep(0.2)
    finally:
        watcher.terminate()
        watcher.wait(10)
    text = log.read_text()
    assert "error while loading shared libraries" not in text, text[-2000:]
    paths = re.findall(r"Data path: (\S+)", text)
    assert paths and paths[-1] == str(d.output / newest), text[-3000:]
    assert "<is_forecast>true</is_forecast>" in text
    assert "<forecast_lead_secs>2100</forecast_lead_secs>" in text
    t = run[-1].time
    assert f"<unix_time>{int(t.timestamp())}</unix_time>" in text  # the gen time
    assert d.stop() == 0
    record("LROSE's LdataWatcher on the output folder",
           "a forecast set written while it watched",
           "triggered; gen time, lead and the newest file's path")
