"""The daemon's health from ``status.json``, by the Nagios/Icinga plugin convention.

Contract
--------
:func:`check_health` takes the status file's content (``None``: no such file), the
time now and :class:`Thresholds`, and returns a :class:`Health`: ``code`` (0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN, the worst of its checks) and ``line``, one line
``NOWCAST <STATE> - <what is wrong, or a summary> | <perfdata>``:

- no status file: CRITICAL (the daemon never ran here); unreadable: UNKNOWN;
- ``state`` not ``running``: CRITICAL (``stopped``, ``stopping``), WARNING
  (``starting``);
- the status not rewritten for ``stale_s`` (the daemon rewrites it every step,
  about once a second): CRITICAL, hung or killed;
- ``pid`` not alive when the status was written on this host: CRITICAL;
- the newest scan older than ``scan_warn_s`` / ``scan_crit_s`` (age from the scan's
  time, or from when the daemon took it with ``age_from = "taken"``, for a replay
  of old scans): WARNING / CRITICAL, the feed has stalled; no scan yet: WARNING;
- the last forecast written longer ago than ``forecast_warn_s`` / ``forecast_crit_s``,
  or its latency over ``latency_warn_s`` / ``latency_crit_s``: WARNING / CRITICAL;
- the model not in use (none loaded, or a ``fallback_reason``): WARNING;
- errors logged in the last ``error_window_s``: WARNING.

Perfdata: ``scan_age``, ``forecast_age``, ``latency``, ``errors`` (seconds or counts,
with their warning and critical thresholds).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nowcast.times import parse_time

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class Thresholds:
    scan_warn_s: float = 600.0
    scan_crit_s: float = 1200.0
    forecast_warn_s: float = 600.0
    forecast_crit_s: float = 1200.0
    latency_warn_s: float = 60.0
    latency_crit_s: float = 120.0
    stale_s: float = 30.0
    error_window_s: float = 3600.0
    age_from: str = "time"  # or "taken"


@dataclass
class Health:
    code: int
    line: str
    problems: list[str] = field(default_factory=list)


def _age(now: datetime, value: Any) -> float | None:
    if not value:
        return None
    try:
        return (now - parse_time(str(value))).total_seconds()
    except ValueError:
        return None


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # another user's process, or nothing to check
    return True


def _level(value: float | None, warn: float, crit: float) -> int:
    if value is None:
        return OK
    return CRITICAL if value > crit else WARNING if value > warn else OK


def _fmt(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def check_health(status: dict | None, now: datetime, t: Thresholds) -> Health:
    """See the module contract."""
    if status is None:
        return Health(CRITICAL, "NOWCAST CRITICAL - no status file: the daemon has "
                                "not run here", ["no status file"])
    if not isinstance(status, dict):
        return Health(UNKNOWN, "NOWCAST UNKNOWN - the status file is not a JSON object")
    found: list[tuple[int, str]] = []
    state = status.get("state")
    if state in ("stopped", "stopping"):
        found.append((CRITICAL, f"daemon {state}"))
    elif state == "starting":
        found.append((WARNING, "daemon starting"))
    elif state != "running":
        found.append((UNKNOWN, f"unknown daemon state {state!r}"))
    updated = _age(now, status.get("updated"))
    if state == "running":
        if updated is None or updated > t.stale_s:
            found.append((CRITICAL, "status not updated for "
                          + (_fmt(updated) if updated is not None else "ever")
                          + " (hung or killed)"))
        elif status.get("host") == socket.gethostname() and not _pid_alive(
                status.get("pid")):
            found.append((CRITICAL, f"daemon pid {status.get('pid')} is not running"))
    last = status.get("last_scan") or {}
    scan_age = _age(now, last.get("taken" if t.age_from == "taken" else "time"))
    if scan_age is None:
        found.append((WARNING, "no scan taken yet"))
    else:
        level = _level(scan_age, t.scan_warn_s, t.scan_crit_s)
        if level:
            found.append((level, f"newest scan {_fmt(scan_age)} old"))
    forecast = status.get("last_forecast") or {}
    forecast_age = _age(now, forecast.get("written"))
    latency = forecast.get("latency_s")
    if forecast_age is not None:
        level = _level(forecast_age, t.forecast_warn_s, t.forecast_crit_s)
        if level:
            found.append((level, f"last forecast {_fmt(forecast_age)} ago"))
    if isinstance(latency, (int, float)):
        level = _level(float(latency), t.latency_warn_s, t.latency_crit_s)
        if level:
            found.append((level, f"forecast latency {latency:.1f} s"))
    model = status.get("model") or {}
    if model and (model.get("fallback_reason") or not model.get("name")):
        reason = model.get("fallback_reason") or "no model loaded"
        found.append((WARNING, f"model not in use ({reason})"))
    recent = (status.get("errors") or {}).get("recent") or []
    errors = [e for e in recent if e.get("level") == "error"
              and (_age(now, e.get("time")) or 0.0) <= t.error_window_s]
    if errors:
        found.append((WARNING, f"{len(errors)} error(s) in the last "
                      f"{_fmt(t.error_window_s)}: {errors[-1].get('message', '')}"))
    code = max((c for c, _ in found), default=OK)
    if found:
        summary = "; ".join(m for c, m in sorted(found, key=lambda f: -f[0]))
    else:
        summary = (f"running, newest scan {_fmt(scan_age or 0.0)} old"
                   + (f", last forecast {_fmt(forecast_age)} ago"
                      if forecast_age is not None else "")
                   + (f" (latency {latency:.1f} s)"
                      if isinstance(latency, (int, float)) else ""))
    perf = [
        f"scan_age={scan_age:.0f}s;{t.scan_warn_s:.0f};{t.scan_crit_s:.0f}"
        if scan_age is not None else "scan_age=U",
        f"forecast_age={forecast_age:.0f}s;{t.forecast_warn_s:.0f};"
        f"{t.forecast_crit_s:.0f}" if forecast_age is not None else "forecast_age=U",
        f"latency={float(latency):.2f}s;{t.latency_warn_s:.0f};{t.latency_crit_s:.0f}"
        if isinstance(latency, (int, float)) else "latency=U",
        f"errors={len(errors)};1",
    ]
    return Health(code, f"NOWCAST {NAMES[code]} - {summary} | {' '.join(perf)}",
                  [m for _, m in found])
