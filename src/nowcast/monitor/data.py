"""The monitor's loaders: the workspace, the newest scan, the daemon's health.

Contract
--------
- :func:`load_health` (here), :func:`~.history.load_skill` and
  :func:`~.history.load_training` read ``status.json``, the metrics store (through
  the read-only :class:`~nowcast.store.MetricsReader`) and directory listings, and
  return frozen dataclasses. They run in the monitor's worker threads: they never
  import Textual, never write a file, and take the current time as an argument (a
  fixed clock in tests). The forecast and scan files are read by
  :mod:`.forecasts`.
- What is merely absent (no status yet, no store yet, no scans, no training run)
  is not an error: the result carries ``notes``, each a line saying what is
  missing and what to start. A store that exists but cannot be read is a note
  too (with the store's own message). Anything unexpected raises; the worker
  shows it.
- :class:`Workspace` holds the settings and how to name things for the operator:
  paths relative to the config file's folder, commands with the same
  ``--config`` the monitor was given.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from nowcast.config import Settings
from nowcast.monitor.daemon_status import (
    DaemonState,
    DaemonStatus,
    StatusError,
    judge_daemon,
    read_status,
)
from nowcast.radar.names import time_from_name
from nowcast.store import MetricsReader, StoreError


@dataclass(frozen=True)
class Workspace:
    """The settings, and how paths and commands are shown to the operator."""

    settings: Settings
    config_label: str | None = None

    @property
    def root(self) -> Path:
        source = self.settings.source
        return source.parent if source is not None else Path.cwd()

    def show(self, path: str | os.PathLike[str] | None) -> str:
        """``path`` relative to the config file's folder when inside it."""
        if path is None:
            return "?"
        path = Path(path)
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def command(self, sub: str) -> str:
        """``nowcast SUB --config FILE`` as the operator would type it."""
        config = f" --config {self.config_label}" if self.config_label else ""
        return f"nowcast {sub}{config}"

    def leads_s(self) -> tuple[int, ...]:
        grid = self.settings.grid
        return tuple(k * grid.interval_s for k in range(1, grid.output_frames + 1))


def open_store(ws: Workspace) -> tuple[MetricsReader | None, str | None]:
    """The read-only store, or ``(None, note)`` saying why there is none."""
    try:
        return MetricsReader(ws.settings.paths.store), None
    except StoreError as exc:
        store = ws.settings.paths.store
        return None, str(exc).replace(str(store), ws.show(store))


# -- files -----------------------------------------------------------------------------


def latest_scan(directory: Path, pattern: str = "*.nc") -> tuple[datetime, Path] | None:
    """The newest scan under ``directory`` by the time in its name (else mtime).

    Walks folders newest name first (``yyyymmdd`` folders sort by date) and stops
    in the first one that holds a scan, so a long archive costs one listing a
    level. Hidden files are skipped.
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return None
    best: tuple[datetime, Path] | None = None
    folders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            folders.append(entry.path)
        elif fnmatch(entry.name, pattern) and entry.is_file():
            path = Path(entry.path)
            when = time_from_name(path) or datetime.fromtimestamp(
                entry.stat().st_mtime, timezone.utc
            )
            if best is None or when > best[0]:
                best = (when, path)
    for folder in sorted(folders, reverse=True):
        found = latest_scan(Path(folder), pattern)
        if found is not None:
            return found if best is None or found[0] > best[0] else best
    return best


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    except OSError:
        return None


# -- health ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """The daemon's state and everything the Health panel shows."""

    daemon: DaemonState
    status: DaemonStatus | None
    status_error: str | None
    last_scan_time: datetime | None
    last_scan_path: str | None
    scan_age_s: float | None
    scan_late: bool
    newest_in_input: datetime | None
    buffer_fill: int | None
    buffer_capacity: int
    forecast_time: datetime | None
    forecast_method: str | None
    forecast_model: str | None
    forecast_latency_s: float | None
    device: str | None
    checkpoint: str | None
    checkpoint_time: datetime | None
    queue_length: int | None
    errors: tuple[StatusError, ...]
    next_retrain: datetime | None
    retrain_schedule: str
    now: datetime
    notes: tuple[str, ...] = ()


def _store_errors(reader: MetricsReader, limit: int) -> list[StatusError]:
    return [
        StatusError(row["time"], row["kind"], row["message"], row["path"])
        for row in reader.recent_events(limit, min_level="warning")
    ]


def _merge_errors(
    first: Iterable[StatusError], second: Iterable[StatusError], limit: int
) -> tuple[StatusError, ...]:
    seen: set[tuple[Any, str]] = set()
    merged = []
    for err in [*first, *second]:
        key = (err.time, err.kind)
        if key not in seen:
            seen.add(key)
            merged.append(err)
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    merged.sort(key=lambda e: e.time or oldest, reverse=True)
    return tuple(merged[:limit])


def load_health(ws: Workspace, now: datetime, max_errors: int = 10) -> Health:
    """Read ``status.json``, the store's latest forecast and events, the inputs."""
    cfg = ws.settings
    paths = cfg.paths
    notes: list[str] = []
    status, status_error = read_status(paths.status_file)
    daemon = judge_daemon(
        status, now, cfg.monitor.stale_after_s, _mtime(paths.status_file)
    )
    if status is None and status_error is None:
        notes.append(
            f"No daemon status at {ws.show(paths.status_file)} yet: start the "
            f"daemon with `{ws.command('run')}`."
        )
    newest = latest_scan(paths.input_dir, cfg.daemon.pattern)
    if newest is None:
        notes.append(
            f"No scans in {ws.show(paths.input_dir)}/ yet: point paths.input_dir at "
            f"the radar's files, or feed it with `{ws.command('simulate')}`."
        )
    s = status or DaemonStatus()
    scan_time, scan_path = s.last_scan_time, s.last_scan_path
    if scan_time is None and newest is not None:
        scan_time, scan_path = newest[0], str(newest[1])
    scan_age = None if scan_time is None else (now - scan_time).total_seconds()
    late = scan_age is not None and scan_age > 2 * cfg.grid.interval_s

    forecast = (s.forecast_issue_time, s.forecast_method, s.forecast_model)
    latency = s.forecast_latency_s
    errors: list[StatusError] = []
    reader, store_note = open_store(ws)
    if reader is not None:
        with reader:
            if forecast[0] is None:
                row = reader.latest_forecast()
                if row is not None:
                    forecast = (row["issue_time"], row["method"], row["model"] or None)
                    latency = None if math.isnan(row["latency_s"]) else row["latency_s"]
            errors = _store_errors(reader, max_errors)
    elif status is not None or paths.store.exists():
        notes.append(store_note or "")
    checkpoint = s.checkpoint or str(paths.production_model)
    checkpoint_time = s.checkpoint_time or _mtime(Path(checkpoint))
    retrain = cfg.retrain
    schedule = f"cron '{retrain.cron}' local time" if retrain.enabled else "off"
    return Health(
        daemon=daemon,
        status=status,
        status_error=status_error,
        last_scan_time=scan_time,
        last_scan_path=None if scan_path is None else ws.show(scan_path),
        scan_age_s=scan_age,
        scan_late=late,
        newest_in_input=None if newest is None else newest[0],
        buffer_fill=s.buffer_fill,
        buffer_capacity=s.buffer_capacity or cfg.grid.input_frames,
        forecast_time=forecast[0],
        forecast_method=forecast[1],
        forecast_model=forecast[2],
        forecast_latency_s=latency,
        device=s.device,
        checkpoint=ws.show(checkpoint),
        checkpoint_time=checkpoint_time,
        queue_length=s.queue_length,
        errors=_merge_errors(errors, s.errors, max_errors),
        next_retrain=s.next_retrain,
        retrain_schedule=schedule,
        now=now,
        notes=tuple(n for n in notes if n),
    )


__all__ = [
    "Health",
    "Workspace",
    "latest_scan",
    "load_health",
    "open_store",
]
