"""How the store writes times: UTC ISO-8601 text with second precision.

Contract
--------
- Every time column holds ``YYYY-MM-DDTHH:MM:SSZ`` (for example
  ``2024-06-01T12:30:00Z``): always UTC, always 20 characters, so that text order is
  time order and SQLite's date functions (``strftime('%s', t)``) read it.
- Fractions of a second are dropped (floored), so a scan at ``12:30:00.7`` is stored
  as ``12:30:00``.
- :func:`to_iso` accepts a timezone-aware :class:`~datetime.datetime` (any zone,
  converted to UTC), ISO-8601 text with an offset or ``Z``, or unix seconds
  (``int``/``float``). A naive datetime or text without an offset is refused with a
  :class:`ValueError` (another type with a :class:`TypeError`): the store never
  guesses a zone.
- :func:`from_iso` turns stored text back into an aware UTC datetime.
- Durations (``latency_s``, ``seconds``, ``lead_s``, ``bucket_s``) are seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

TimeLike = datetime | str | int | float


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def to_datetime(value: TimeLike, name: str = "time") -> datetime:
    """Turn ``value`` into an aware UTC datetime.

    Parameters
    ----------
    value
        An aware datetime, ISO-8601 text with an offset or ``Z``, or unix seconds.
    name
        The argument's name, for the error message.

    Raises
    ------
    ValueError
        When ``value`` is naive or unparseable text.
    TypeError
        When ``value`` is of another type.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a time, got {value!r}")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), timezone.utc)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{name}: {value!r} is not ISO-8601 (like 2024-06-01T12:30:00Z)"
            ) from None
    if not isinstance(value, datetime):
        raise TypeError(
            f"{name}: expected a datetime, ISO-8601 text or unix seconds, "
            f"got {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name}: {value.isoformat()} has no time zone; pass an aware UTC time "
            "(datetime(..., tzinfo=timezone.utc)) or text ending in Z"
        )
    return value.astimezone(timezone.utc)


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
