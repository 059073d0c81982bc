"""Reading the daemon's ``status.json`` tolerantly, and judging whether it is alive.

Contract
--------
- :func:`parse_status` turns the JSON object :mod:`nowcast.daemon.status_file` writes
  (version 1: ``pid``, ``state``, ``updated``, ``started``, ``last_scan``,
  ``buffer``, ``last_forecast``, ``model``, ``device``, ``queue_length``,
  ``errors``, ``next_retrain`` ...) into a :class:`DaemonStatus`. Every key may be
  missing, null or of the wrong type: that field is then ``None`` (the monitor
  shows "unknown"), never an exception. Unknown keys are ignored.
- :func:`read_status` reads the file: a missing file gives ``(None, None)``, an
  unreadable or malformed one ``(None, reason)``.
- :func:`judge_daemon` decides ``up``, ``stalled`` or ``down`` (and since when)
  from the status, the current time and the file's age: ``down`` when the daemon
  said it stopped, when its process is gone (checked when ``pid`` is given and
  ``host``, if given, is this host), or when ``updated`` is older than
  ``stale_after_s`` (the daemon rewrites the file every step) and the process
  cannot be checked; ``stalled`` when the file is that old but the process is
  still there (a step stuck on a slow disk or a long forecast).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nowcast.times import try_parse_time


def _get(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class StatusError:
    """One of the daemon's recent errors (a rejected file and its reason ...)."""

    time: datetime | None
    kind: str
    message: str
    path: str | None = None


@dataclass(frozen=True)
class DaemonStatus:
    """What ``status.json`` says; ``None`` wherever it says nothing usable."""

    version: int | None = None
    pid: int | None = None
    host: str | None = None
    state: str | None = None
    updated: datetime | None = None
    started: datetime | None = None
    config: str | None = None
    last_scan_time: datetime | None = None
    last_scan_path: str | None = None
    scans_taken: int | None = None
    scans_rejected: int | None = None
    buffer_fill: int | None = None
    buffer_capacity: int | None = None
    forecast_issue_time: datetime | None = None
    forecast_method: str | None = None
    forecast_model: str | None = None
    forecast_latency_s: float | None = None
    forecast_written: datetime | None = None
    fallback_reason: str | None = None
    forecasts_written: int | None = None
    model_method: str | None = None
    model_name: str | None = None
    checkpoint: str | None = None
    checkpoint_time: datetime | None = None
    device: str | None = None
    queue_length: int | None = None
    error_count: int | None = None
    errors: tuple[StatusError, ...] = ()
    next_retrain: datetime | None = None


def _errors(data: dict[str, Any]) -> tuple[StatusError, ...]:
    recent = _get(data, "errors.recent")
    if not isinstance(recent, list):
        recent = data.get("errors") if isinstance(data.get("errors"), list) else []
    out = []
    for item in recent:
        if isinstance(item, str):
            out.append(StatusError(None, "error", item))
        elif isinstance(item, dict):
            message = item.get("message") or item.get("reason") or ""
            out.append(
                StatusError(
                    try_parse_time(item.get("time")),
                    _str(item.get("kind")) or "error",
                    str(message),
                    _str(item.get("path")),
                )
            )
    return tuple(reversed(out))  # newest first


def parse_status(data: Any) -> DaemonStatus:
    """A :class:`DaemonStatus` from the decoded JSON (see the module contract)."""
    if not isinstance(data, dict):
        return DaemonStatus()
    return DaemonStatus(
        version=_int(data.get("version")),
        pid=_int(data.get("pid")),
        host=_str(data.get("host")) or _str(data.get("hostname")),
        state=_str(data.get("state")),
        updated=try_parse_time(data.get("updated")),
        started=try_parse_time(data.get("started")),
        config=_str(data.get("config")),
        last_scan_time=try_parse_time(_get(data, "last_scan.time")),
        last_scan_path=_str(_get(data, "last_scan.path")),
        scans_taken=_int(data.get("scans_taken")),
        scans_rejected=_int(data.get("scans_rejected")),
        buffer_fill=_int(_get(data, "buffer.fill")),
        buffer_capacity=_int(_get(data, "buffer.capacity")),
        forecast_issue_time=try_parse_time(_get(data, "last_forecast.issue_time")),
        forecast_method=_str(_get(data, "last_forecast.method")),
        forecast_model=_str(_get(data, "last_forecast.model")),
        forecast_latency_s=_float(_get(data, "last_forecast.latency_s")),
        forecast_written=try_parse_time(_get(data, "last_forecast.written")),
        fallback_reason=_str(_get(data, "last_forecast.fallback_reason"))
        or _str(_get(data, "model.fallback_reason")),
        forecasts_written=_int(data.get("forecasts_written")),
        model_method=_str(_get(data, "model.method")),
        model_name=_str(_get(data, "model.name")),
        checkpoint=_str(_get(data, "model.checkpoint")),
        checkpoint_time=try_parse_time(_get(data, "model.checkpoint_time")),
        device=_str(data.get("device")),
        queue_length=_int(data.get("queue_length")),
        error_count=_int(_get(data, "errors.count")),
        errors=_errors(data),
        next_retrain=try_parse_time(data.get("next_retrain")),
    )


def read_status(path: str | Path) -> tuple[DaemonStatus | None, str | None]:
    """``(status, None)``, ``(None, None)`` when missing, ``(None, why)`` if bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path}: cannot read: {exc.strerror or exc}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})"
    if not isinstance(data, dict):
        return None, f"{path}: not a JSON object"
    return parse_status(data), None


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (True when unsure)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


@dataclass(frozen=True)
class DaemonState:
    """``up``, ``down`` or ``never`` (no status yet), since when, and why."""

    state: str
    since: datetime | None
    reason: str


def judge_daemon(
    status: DaemonStatus | None,
    now: datetime,
    stale_after_s: float,
    file_mtime: datetime | None = None,
    *,
    alive: Any = process_alive,
) -> DaemonState:
    """Is the daemon up? See the module contract."""
    if status is None:
        return DaemonState("never", None, "no status.json yet")
    seen = status.updated or file_mtime
    if status.state in ("stopped", "stopping"):
        return DaemonState("down", seen, f"the daemon said {status.state}")
    same_host = status.host is None or status.host == socket.gethostname()
    checked = status.pid is not None and same_host
    if checked and not alive(status.pid):
        return DaemonState("down", seen, f"process {status.pid} is gone")
    if seen is None:
        return DaemonState("down", None, "status.json has no update time")
    age = (now - seen).total_seconds()
    if age > stale_after_s:
        if checked:
            return DaemonState(
                "stalled", seen,
                f"no update for {age:.0f} s, process {status.pid} still there",
            )
        return DaemonState("down", seen, f"status.json not updated for {age:.0f} s")
    return DaemonState("up", status.started, status.state or "running")
