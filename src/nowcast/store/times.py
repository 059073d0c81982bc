"""How the store writes times: UTC ISO-8601 text with second precision.

Contract
--------
- Every time column holds ``YYYY-MM-DDTHH:MM:SSZ`` (for example
  ``2024-06-01T12:30:00Z``): always UTC, always 20 characters, so that text order is
  time order and SQLite's date functions (``strftime('%s', t)``) read it.
- Fractions of a second are dropped (floored), so a scan at ``12:30:00.7`` is stored
  as ``12:30:00``.
- Parsing is :func:`nowcast.times.parse_time`'s. :func:`to_iso` accepts a
  timezone-aware :class:`~datetime.datetime` (any zone, converted to UTC),
  ISO-8601 text with an offset or ``Z``, or unix seconds (``int``/``float``). A naive datetime or text without an offset is refused with a
  :class:`ValueError` (another type with a :class:`TypeError`): the store never
  guesses a zone.
- :func:`from_iso` turns stored text back into an aware UTC datetime.
- Durations (``latency_s``, ``seconds``, ``lead_s``, ``bucket_s``) are seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nowcast.times import ISO_FORMAT, TimeLike, parse_time, utc_now

__all__ = [
    "ISO_FORMAT", "TimeLike", "cutoff", "from_iso", "to_datetime", "to_iso", "utc_now"
]


def to_datetime(value: TimeLike, name: str = "time") -> datetime:
    """An aware UTC datetime (:func:`nowcast.times.parse_time`; naive refused)."""
    return parse_time(value, name)


def to_iso(value: TimeLike, name: str = "time") -> str:
    """The stored form of ``value``: ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (see module)."""
    return to_datetime(value, name).strftime(ISO_FORMAT)


def from_iso(text: str | None) -> datetime | None:
    """An aware UTC datetime from stored text (``None`` stays ``None``)."""
    if text is None:
        return None
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=timezone.utc)


def cutoff(older_than: TimeLike | timedelta, now: datetime, name: str) -> str:
    """The stored form of a cutoff: a time, or an age before ``now``.

    Raises
    ------
    ValueError
        When a :class:`~datetime.timedelta` is negative, or the time is not one
        :func:`to_datetime` accepts.
    """
    if isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise ValueError(f"{name}: must not be negative (got {older_than})")
        return to_iso(to_datetime(now, "now") - older_than, name)
    return to_iso(older_than, name)
