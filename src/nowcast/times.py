"""Times in nowcast: aware UTC datetimes, and the one ISO-8601 parser and format.

Contract
--------
- :data:`ISO_FORMAT` ``YYYY-MM-DDTHH:MM:SSZ`` is how every file we write
  (``status.json``, the store, ``.reason`` files, checkpoints) states a time;
  :func:`iso_z` formats an aware datetime that way (``None`` stays ``None``).
- :func:`parse_time` is the one parser: an aware datetime (any zone), ISO-8601
  text with an offset or ``Z``, or unix seconds become an aware UTC datetime.
  Text or a datetime without a zone is refused with a :class:`ValueError` naming
  the argument, unless ``naive="utc"`` says to read it as UTC (command-line
  options, files of other programs); another type is a :class:`TypeError`.
- :func:`try_parse_time` is the same for tolerant readers (the monitor, forecast
  attributes): ``None`` instead of an error.
- :func:`utc_now` is the current time, aware UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

TimeLike = datetime | str | int | float

__all__ = ["ISO_FORMAT", "TimeLike", "iso_z", "parse_time", "try_parse_time", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def iso_z(t: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC, or None."""
    if t is None:
        return None
    return t.astimezone(timezone.utc).strftime(ISO_FORMAT)


def parse_time(
    value: TimeLike, name: str = "time", *, naive: Literal["refuse", "utc"] = "refuse"
) -> datetime:
    """An aware UTC datetime from ``value`` (see the module contract).

    Raises
    ------
    ValueError
        For unparseable text, or a time without a zone when ``naive="refuse"``.
    TypeError
        For a value of another type.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a time, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ValueError(
                f"{name}: {value!r} is not a time in unix seconds"
            ) from None
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
        if naive != "utc":
            raise ValueError(
                f"{name}: {value.isoformat()} has no time zone; pass an aware UTC "
                "time (datetime(..., tzinfo=timezone.utc)) or text ending in Z"
            )
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def try_parse_time(value: object) -> datetime | None:
    """:func:`parse_time` with ``naive="utc"``, or None for anything it refuses."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value, naive="utc")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
