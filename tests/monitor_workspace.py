"""Workspaces for the monitor's tests: real files written by the real writers.

:func:`make_workspace` lays out what a running system leaves behind, under one
folder with a ``config.toml`` (relative paths, as ``nowcast demo`` writes): scans
from the simulator, forecast sets from the forecast writer (TITAN layout), a
metrics store written through :class:`~nowcast.store.MetricsStore` (forecasts,
scores with known counts, a training run, a retrain decision, a rejected scan),
and ``status.json`` as :mod:`nowcast.daemon.status_file` writes it. Everything is
fixed in time around :data:`NOW`, so the screen does not depend on the clock.
"""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from nowcast.config import Settings, load_config
from nowcast.radar import write_forecast_set, write_scan
from nowcast.store import MetricsStore
from nowcast.synthetic import generate_sequence
from nowcast.verification import Counts

NOW = datetime(2024, 6, 1, 12, 41, 0, tzinfo=timezone.utc)
LAST_SCAN = datetime(2024, 6, 1, 12, 40, 0, tzinfo=timezone.utc)
INTERVAL = 300
LEADS = tuple(k * INTERVAL for k in range(1, 8))
METHODS = ("convlstm3d", "persistence", "titan")
MODEL = "demo3d.pt"
ALIVE_PID = 1  # init: always there (a fixed number keeps pictures identical)
GONE_PID = 4_194_304 + 4321  # above Linux's largest pid_max: never a process

CONFIG = """\
[paths]
input_dir = "scans"
output_dir = "titan/nowcast"
state_dir = "state"
archive_dir = "archive"
rejected_dir = "rejected"
checkpoints_dir = "checkpoints"
store = "state/nowcast.sqlite"
status_file = "state/status.json"
production_model = "models/demo3d.pt"

[monitor]
refresh_s = 60.0
skill_refresh_s = 60.0
"""


def counts(
    method: str,
    lead_index: int,
    threshold: float,
    hours_ago: int = 0,
    kind: str = "3d",
) -> Counts:
    """The contingency counts of the forecast issued ``hours_ago`` before the last.

    The newest, convlstm3d, t+5, 35 dBZ, 3d: H 8, M 2, F 2 -> CSI 0.67, POD 0.8,
    FAR 0.2 (composite: H 6, M 3, F 3 -> CSI 0.5). Older ones wiggle with an
    eight-hour period (for the chart).
    """
    skill = {"convlstm3d": 8, "persistence": 6, "titan": 5}[method]
    skill += (0, 1, 2, 1, 0, -1, -2, -1)[hours_ago % 8] if hours_ago else 0
    hits = max(skill - lead_index, 1) + (2 if threshold < 30 else 0)
    misses = 2 + lead_index // 2
    false_alarms = 2 + lead_index // 3
    if kind == "composite":
        hits, misses, false_alarms = max(hits - 2, 1), misses + 1, false_alarms + 1
    return Counts(hits, misses, false_alarms, 1000)


def write_config(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.toml"
    path.write_text(CONFIG)
    return path


def status_json(
    pid: int, updated: datetime, *, state: str = "running", errors: int = 1
) -> dict:
    """status.json in the keys of :mod:`nowcast.daemon.status_file` (version 1)."""
    iso = "%Y-%m-%dT%H:%M:%SZ"
    scan = LAST_SCAN
    if updated < LAST_SCAN:  # the daemon stopped before the newest scan came
        scan = updated.replace(minute=updated.minute // 5 * 5, second=0)
    return {
        "version": 1,
        "pid": pid,
        "state": state,
        "updated": updated.strftime(iso),
        "started": (updated - timedelta(hours=2)).strftime(iso),
        "config": "config.toml",
        "last_scan": {
            "time": scan.strftime(iso),
            "path": f"scans/{scan:%Y%m%d}/ncf_{scan:%Y%m%d_%H%M%S}.nc",
            "age_s": (updated - scan).total_seconds(),
            "taken": scan.strftime(iso),
        },
        "scans_taken": 12,
        "scans_rejected": 1,
        "buffer": {"fill": 8, "capacity": 8, "complete": True},
        "last_forecast": {
            "issue_time": scan.strftime(iso),
            "method": "convlstm3d",
            "model": MODEL,
            "latency_s": 4.2,
            "files": 7,
        },
        "forecasts_written": 8,
        "model": {
            "method": "convlstm3d",
            "name": MODEL,
            "checkpoint": "models/demo3d.pt",
            "checkpoint_time": "2024-05-30T02:31:00Z",
            "fallback": False,
        },
        "device": "cuda",
        "queue_length": 0,
        "errors": {
            "count": errors,
            "recent": [
                {
                    "time": "2024-06-01T12:20:03Z",
                    "kind": "rejected_scan",
                    "message": "ncf_20240601_122000.nc: empty file (0 bytes)",
                }
            ][:errors],
        },
        "next_retrain": "2024-06-02T02:30:00Z",
    }


def write_scans(settings: Settings) -> list:
    seq = generate_sequence(
        "mixed", 12, seed=2, size=48, levels=4,
        start=LAST_SCAN - timedelta(seconds=11 * INTERVAL),
    )
    scans = seq.scans()
    for scan in scans:
        write_scan(scan, settings.paths.input_dir)
    return scans


def write_forecasts(settings: Settings, scans: list) -> None:
    """A set for each of the last 8 scans: the scan moved one pixel east a lead."""
    for scan in scans[-8:]:
        volumes = np.zeros((7, *scan.dbz.shape), dtype=np.float32)
        for k in range(1, 8):
            volumes[k - 1, :, :, k:] = scan.dbz[:, :, :-k]
        write_forecast_set(
            settings.paths.output_dir, scan.time, LEADS, volumes, scan.grid,
            method="convlstm3d", model=MODEL,
        )


def write_store(settings: Settings) -> None:
    with MetricsStore(settings.paths.store, clock=lambda: NOW) as store:
        for hours in range(47, -1, -1):  # an issue every hour for two days
            issue = LAST_SCAN - timedelta(hours=hours)
            for method in METHODS:
                rows = [
                    (lead, kind, thr, counts(method, i, thr, hours, kind))
                    for i, lead in enumerate(LEADS)
                    for thr in (20.0, 35.0, 45.0)
                    for kind in ("3d", "composite")
                ]
                store.record_scores(
                    issue, None, method, MODEL if method == "convlstm3d" else None,
                    rows,
                )
            store.record_forecast(issue, "convlstm3d", MODEL, 7, 4.2)
        store.record_event(
            "warning", "rejected_scan", "empty file (0 bytes)",
            path="scans/20240601/ncf_20240601_122000.nc",
            time=datetime(2024, 6, 1, 12, 20, 3, tzinfo=timezone.utc),
        )
        run = store.start_training_run(
            "nowcast train", {"seed": 0}, started=NOW - timedelta(days=1, hours=10)
        )
        for epoch in range(30):
            phase = 1 + epoch // 10
            for split, scale in (("train", 1.0), ("val", 1.2)):
                loss = scale * (1.0 / (1 + epoch)) * (1 + 0.5 * (phase - 1))
                store.record_epoch(
                    run, phase, epoch, split, loss,
                    terms={"huber": loss * 0.7, "ssim": loss * 0.3},
                    lr=1e-3 / 10 ** (phase - 1),
                    csi35={300: 0.3 + 0.01 * epoch, 2100: 0.1 + 0.01 * epoch}
                    if split == "val" else None,
                    time=NOW - timedelta(days=1, hours=9) + timedelta(minutes=epoch),
                )
        store.finish_training_run(
            run, "completed", "phase3_best.pt written",
            finished=NOW - timedelta(days=1, hours=8),
        )
        store.record_retrain_decision(
            "checkpoints/phase3_best.pt", "models/demo3d.pt", 0.52, 0.49, 0.01,
            True, "beats production by 0.03", run_id=run,
            time=NOW - timedelta(days=1, hours=7),
        )


def make_workspace(root: Path, *, daemon: str = "up") -> Settings:
    """A workspace under ``root``: ``daemon`` is ``up``, ``down`` or ``none``.

    ``none`` leaves nothing but ``config.toml`` (a system not started yet).
    """
    settings = load_config(write_config(root), environ={})
    if daemon == "none":
        return settings
    scans = write_scans(settings)
    write_forecasts(settings, scans)
    write_store(settings)
    if daemon == "up":
        status = status_json(ALIVE_PID, NOW - timedelta(seconds=1))
    else:
        status = status_json(GONE_PID, NOW - timedelta(hours=3))
    settings.paths.status_file.write_text(json.dumps(status))
    return settings


async def settle(pilot) -> None:
    """Wait until no worker runs and every message they posted is handled."""
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                return
    raise AssertionError("the monitor's workers did not settle")


def screen_text(app) -> str:
    """What the terminal shows, as plain text (one line a row)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def run_async(test):
    """Run an ``async def`` test in its own event loop (no asyncio plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper
