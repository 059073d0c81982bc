"""How the monitor writes times, ages, leads and scores (pure functions).

Times are UTC with a ``Z``; ages are relative to the time the caller passes (the
app's clock), so that a picture of the screen does not depend on the wall clock.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

UNKNOWN = "unknown"


def hms(t: datetime | None) -> str:
    """``12:35:00Z``."""
    return UNKNOWN if t is None else f"{t.astimezone(timezone.utc):%H:%M:%SZ}"


def hm(t: datetime | None) -> str:
    """``12:35Z``."""
    return UNKNOWN if t is None else f"{t.astimezone(timezone.utc):%H:%MZ}"


def stamp(t: datetime | None, now: datetime | None = None) -> str:
    """``12:35:00Z`` today (relative to ``now``), else ``2024-06-01 12:35Z``."""
    if t is None:
        return UNKNOWN
    t = t.astimezone(timezone.utc)
    if now is not None and t.date() == now.astimezone(timezone.utc).date():
        return hms(t)
    return f"{t:%Y-%m-%d %H:%MZ}"


def duration(seconds: float | None) -> str:
    """``4.2 s``, ``42 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    if seconds is None or not math.isfinite(seconds):
        return UNKNOWN
    s = abs(seconds)
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 36 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def age(t: datetime | None, now: datetime) -> str:
    """``12 min ago`` (or ``in 3.5 h`` for a time ahead of ``now``)."""
    if t is None:
        return UNKNOWN
    seconds = (now - t).total_seconds()
    if seconds < 0:
        return f"in {duration(-seconds)}"
    return f"{duration(seconds)} ago"


def lead(lead_s: int) -> str:
    """``t+15`` (minutes)."""
    return f"t+{lead_s // 60}" if lead_s % 60 == 0 else f"t+{lead_s}s"


def score(value: float | None, width: int = 4) -> str:
    """``0.71`` or a dash for NaN (a score with no events to count)."""
    if value is None or not math.isfinite(value):
        return "-".rjust(width)
    return f"{value:.2f}".rjust(width)


def number(value: float | None, fmt: str = ".3g") -> str:
    """A measurement, or ``-`` for NaN / None."""
    if value is None or not math.isfinite(value):
        return "-"
    return format(value, fmt)


def threshold(value: float) -> str:
    """``35`` or ``37.5`` (dBZ)."""
    return f"{value:g}"
