"""Signals, a second instance, a killed writer, bad configuration and checkpoints:
a real daemon process each time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from faults.conftest import record, scans
from nowcast.radar import read_latest_data_info


def _ldata_times(d) -> list[str]:
    """Each ``_latest_data_info`` issue time seen while polling (every 50 ms)."""
    info = read_latest_data_info(d.output)
    return [f"{info.time:%FT%T}"] if info is not None else []


def test_sighup_keeps_the_buffer_and_never_goes_back_in_time(daemon_factory):
    d = daemon_factory().start()
    run = scans(12)
    d.feed_run(run[:8])
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "the first set")
    seen: list[str] = []
    for _ in range(3):  # systemctl reload, three times
        os.kill(d.pid, signal.SIGHUP)
        for _ in range(20):
            seen += _ldata_times(d)
            time.sleep(0.05)
    assert d.lines("reload") and len(d.issues()) == 1
    for k in range(8, 12):  # 20 SIGHUPs in 2 s while scans arrive
        d.feed(run[k])
        for _ in range(5):
            os.kill(d.pid, signal.SIGHUP)
            seen += _ldata_times(d)
            time.sleep(0.1)
    d.wait_for(lambda: d.issue_of(run[11]) in d.complete_sets(), 60, "every set")
    seen += _ldata_times(d)
    assert seen == sorted(seen), "the latest data info went back in time"
    assert d.complete_sets() == [d.issue_of(s) for s in run[7:12]]
    forecasts = [e for e in d.events() if e.get("kind") == "forecast"]
    issued = [e["event"].split()[1] for e in forecasts]
    assert len(issued) == len(set(issued)) == 5, issued  # none issued twice
    assert d.stop() == 0
    record("SIGHUP (systemctl reload), 3 times, then 20 in 2 s with scans",
           "signals while the daemon runs",
           "the buffer is kept; no issue time written twice or out of order; "
           "_latest_data_info monotone; every scan forecast")


def test_a_second_daemon_on_the_same_config_exits_at_once(daemon_factory):
    d = daemon_factory().start()
    second = subprocess.run(
        [sys.executable, "-m", "nowcast.cli", "run", "--config", str(d.config)],
        capture_output=True, text=True, timeout=60,
    )
    assert second.returncode != 0
    assert f"pid {d.pid}" in second.stderr and "already runs" in second.stderr
    assert d.alive() and d.state_is("running")
    assert d.stop() == 0
    d.start()  # the lock died with the first: a restart takes it
    assert d.stop() == 0
    record("a second nowcast run on the same config", "started beside the first",
           "exits at once, non-zero, naming the running pid; the first runs on")


def test_sigkill_mid_write_leaves_nothing_and_restart_cleans(daemon_factory):
    d = daemon_factory().start()
    run = scans(9)
    d.feed_run(run[:7])
    # leave what a killed writer leaves: a staging folder and a temporary file
    day = d.output / "20240601"
    day.mkdir(parents=True, exist_ok=True)
    d.feed(run[7])
    time.sleep(0.05)
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(10)
    (day / ".g_123500.partial-99999").mkdir(exist_ok=True)
    (day / ".g_123500.partial-99999" / "f_00000300.nc").write_bytes(b"half")
    (d.output / "._latest_data_info.abc123.tmp").write_text("half")
    assert d.status()["state"] == "running"  # what a killed daemon leaves
    d.start(wait=False)
    states = []

    def new_status(state):
        status = d.status()
        if status.get("pid") == d.pid:
            states.append(status.get("state"))
        return status.get("pid") == d.pid and status.get("state") == state

    d.wait_for(lambda: new_status("running"), 60, "the new daemon running")
    stale = [p for p in d.hidden_in_output() if f"-{d.pid}" not in p.name]
    assert stale == []  # only the new daemon's own write in progress, if any
    assert all(len(list((d.output / s).glob("f_*.nc"))) == 7 for s in d.issues())
    assert "removed" in "".join(d.lines("output"))
    d.feed(run[8])
    d.wait_for(lambda: d.issue_of(run[8]) in d.complete_sets(), 60, "the next set")
    assert d.stop() == 0
    record("SIGKILL during a write, then restart", "kill -9 mid-step; start again",
           "only complete sets visible; our temporary files removed at start-up; "
           "status says starting, then running")


def test_sigterm_mid_step_finishes_it(daemon_factory):
    d = daemon_factory().start()
    run = scans(8)
    d.feed_run(run[:7], every=0.2)
    d.feed(run[7])
    time.sleep(0.3)
    assert d.stop(signal.SIGTERM) == 0
    assert d.hidden_in_output() == []
    assert all(len(list((d.output / s).glob("f_*.nc"))) == 7 for s in d.issues())
    assert d.status()["state"] == "stopped"
    record("SIGTERM mid-step", "SIGTERM just after the 8th scan",
           "the step in hand finishes or writes nothing; exit 0; status stopped")


@pytest.mark.parametrize(
    ("key", "value"),
    [("fallback", "no_such_method"), ("quiet_s", -1), ("verify_baselines", ["nope"])],
)
def test_bad_config_values_exit_78_naming_the_key(daemon_factory, key, value):
    d = daemon_factory()
    d.write_config({key: value})
    d.start(wait=False)
    rc = d.proc.wait(60)
    d.log.close()
    text = d.log_path.read_text()
    assert rc == 78, text
    assert f"daemon.{key}" in text
    record(f"daemon.{key} = {json.dumps(value)}", "in the config file",
           "exit 78 with one line naming the key")


def _checkpoint(path: Path, levels) -> Path:
    from nowcast.model import build_network
    from nowcast.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = build_network(hidden_channels=(4, 4), stem_channels=4, groups=2)
    return save_checkpoint(path, {
        "model": net.state_dict(), "init_kwargs": net.init_kwargs, "phase": 3,
        "epoch": 1, "data": {"levels": list(levels), "dbz_min": 0.0, "dbz_max": 70.0},
    })


def test_checkpoints_swapped_in_under_the_model(daemon_factory):
    d = daemon_factory(quiet_s=0.3)
    models = d.root / "models"
    models.mkdir()
    production = _checkpoint(models / "production.pt", levels=(3,))
    d.start()
    d.wait_for(lambda: (d.status().get("model") or {}).get("name") == "production.pt",
               60, "the model loaded")
    run = scans(10)
    d.feed_run(run[:8])
    d.wait_for(lambda: d.issue_of(run[7]) in d.complete_sets(), 60, "a model set")
    good = production.read_bytes()
    production.write_bytes(good[: len(good) // 2])  # corrupt
    time.sleep(1.5)
    one_level = _checkpoint(models / "one.pt", levels=(1,))
    os.replace(one_level, production)  # trained on 1 level: cannot run 3
    time.sleep(1.5)
    evil = models / "evil.pt"
    torch.save({"x": os.system}, evil)  # a pickle that would run code
    os.replace(evil, production)
    time.sleep(1.5)
    d.feed_run(run[8:10])
    d.wait_for(lambda: d.issue_of(run[9]) in d.complete_sets(), 60, "later sets")
    reloads = "\n".join(d.lines("model_reload"))
    assert "refused as unsafe" in reloads and "weights_only" not in reloads
    assert reloads.count("still running production.pt") >= 2, reloads
    assert d.status()["model"]["name"] == "production.pt"
    assert d.stop() == 0
    record("a corrupt, a 1-level and a pickling checkpoint swapped in",
           "replaced paths.production_model under the running 3D model",
           "each refused with its reason (the pickle 'refused as unsafe', never "
           "a hint to load it unsafely); the loaded model runs on")
