"""Scan times in file names: the first ``yyyymmdd?hhmmss`` (``ncf_20240601_123000.nc``).

Contract: :func:`time_from_name` returns that time as aware UTC, or ``None`` when
the name holds no valid one. Pure string work (no netCDF, no torch), so the daemon's
intake, ``nowcast predict``, verification matching and the monitor can order files
without opening them. The reader falls back to it when a file has no time variable.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

_NAME_TIME = re.compile(r"(\d{8})\D?(\d{6})")


def time_from_name(path: str | Path) -> datetime | None:
    """The first ``yyyymmdd?hhmmss`` in the file name, as UTC; None if there is none."""
    match = _NAME_TIME.search(Path(path).name)
    if match is None:
        return None
    try:
        when = datetime.strptime("".join(match.groups()), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc)
