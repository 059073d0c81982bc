"""Find forecast files and the observed scans valid at the same times.

Contract
--------
- :func:`find_forecasts` lists the forecast files under ``OUT`` in both layouts of
  :func:`nowcast.radar.write_forecast_set`, from their names alone:

  - ``OUT/yyyymmdd/g_hhmmss/f_%08d.nc``: issue time from the date and ``g_`` folders,
    lead in seconds from the eight digits, valid time = issue + lead;
  - ``OUT/yyyymmdd/hhmmss.nc``: the valid time; issue time and lead are unknown
    (``None``) until :func:`read_forecast_attrs` reads them from the file.

  Hidden files (the writer's temporaries) and other names are ignored.
- :func:`read_forecast_attrs` reads the global attributes the writer sets
  (``nowcast_method``, ``nowcast_model``, ``nowcast_issue_time``,
  ``nowcast_lead_seconds``, falling back on the ``forecast_period`` variable) without
  reading the data.
- :func:`index_observations` indexes the scans under a directory by scan time: the
  first ``yyyymmdd?hhmmss`` in the file name, else the time
  :func:`nowcast.radar.read_scan` reads from the file (unreadable files are listed,
  not fatal). :meth:`ObservationIndex.find` returns the scan nearest a valid time
  within a tolerance.
- Every time is timezone-aware UTC. Problems with whole directories raise
  :class:`VerificationError`, naming the directory.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from nowcast.errors import NowcastError, ScanError
from nowcast.radar.names import time_from_name
from nowcast.times import try_parse_time

_DATE = re.compile(r"^\d{8}$")
_GEN = re.compile(r"^g_(\d{6})$")
_LEAD = re.compile(r"^f_(\d{8})\.nc$")
_VALID = re.compile(r"^(\d{6})\.nc$")


class VerificationError(NowcastError):
    """Forecasts cannot be verified: a directory is missing or nothing matches."""


@dataclass(frozen=True)
class ForecastEntry:
    """One forecast file found under ``OUT``.

    Attributes
    ----------
    path
        The file.
    layout
        ``"forecast"`` or ``"valid_time"``.
    valid_time
        When the forecast is valid (UTC).
    issue_time, lead_s
        Known from the name in the ``"forecast"`` layout, else ``None``.
    """

    path: Path
    layout: str
    valid_time: datetime
    issue_time: datetime | None = None
    lead_s: int | None = None


@dataclass(frozen=True)
class ForecastAttrs:
    """What a forecast file says about itself (its global attributes)."""

    method: str | None
    model: str | None
    issue_time: datetime | None
    lead_s: int | None


def _parse_time(day: str, hms: str) -> datetime | None:
    try:
        return datetime.strptime(day + hms, "%Y%m%d%H%M%S").replace(
            tzinfo=timezone.utc
        )
    except ValueError:
        return None


def _require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise VerificationError(f"{path}: {what} directory does not exist")
    return path


def find_forecasts(out_dir: str | Path) -> list[ForecastEntry]:
    """Every forecast file under ``out_dir`` (both layouts), by valid time then path.

    Parameters
    ----------
    out_dir
        TITAN's input directory of the forecasts (``OUT``).

    Returns
    -------
    list of ForecastEntry

    Raises
    ------
    VerificationError
        When ``out_dir`` is not a directory.
    """
    out_dir = _require_dir(out_dir, "forecast")
    found: list[ForecastEntry] = []
    for day_dir in out_dir.iterdir():
        if not (day_dir.is_dir() and _DATE.match(day_dir.name)):
            continue
        for item in day_dir.iterdir():
            gen = _GEN.match(item.name)
            if gen and item.is_dir():
                issue = _parse_time(day_dir.name, gen.group(1))
                if issue is None:
                    continue
                for f in item.iterdir():
                    lead = _LEAD.match(f.name)
                    if lead and f.is_file():
                        lead_s = int(lead.group(1))
                        found.append(
                            ForecastEntry(
                                f, "forecast", issue + timedelta(seconds=lead_s),
                                issue, lead_s,
                            )
                        )
                continue
            valid = _VALID.match(item.name)
            if valid and item.is_file():
                when = _parse_time(day_dir.name, valid.group(1))
                if when is not None:
                    found.append(ForecastEntry(item, "valid_time", when))
    found.sort(key=lambda e: (e.valid_time, str(e.path)))
    return found


def read_forecast_attrs(path: str | Path) -> ForecastAttrs:
    """Read a forecast file's method, model, issue time and lead (no data).

    Raises
    ------
    ScanError
        When the file cannot be opened as NetCDF.
    """
    import netCDF4
    import numpy as np

    from nowcast.radar.netcdf_lock import HDF5_LOCK

    path = Path(path)
    with HDF5_LOCK:  # HDF5 is not thread-safe (nowcast.radar.netcdf_lock)
        try:
            ds = netCDF4.Dataset(path, "r")
        except OSError as exc:
            raise ScanError(path, f"not a readable NetCDF file ({exc})") from None
        with ds:
            attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
            lead = attrs.get("nowcast_lead_seconds")
            lead_s = int(lead) if isinstance(lead, (int, np.integer, float)) else None
            if lead_s is None and "forecast_period" in ds.variables:
                var = ds.variables["forecast_period"]
                var.set_auto_mask(False)
                value = float(np.asarray(var[:]).ravel()[0])
                if np.isfinite(value):
                    lead_s = int(round(value))
    method = attrs.get("nowcast_method")
    model = attrs.get("nowcast_model")
    return ForecastAttrs(
        method=str(method) if method is not None else None,
        model=str(model) if model is not None else None,
        issue_time=try_parse_time(attrs.get("nowcast_issue_time")),
        lead_s=lead_s,
    )


@dataclass
class ObservationIndex:
    """Observed scans by scan time, and the files that could not be indexed."""

    by_time: dict[datetime, Path] = field(default_factory=dict)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    _times: list[datetime] = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.by_time)

    def find(self, valid_time: datetime, tolerance_s: float = 0.0) -> Path | None:
        """The scan nearest ``valid_time`` within ``tolerance_s`` seconds, or None.

        On a tie the earlier scan wins.
        """
        exact = self.by_time.get(valid_time)
        if exact is not None or tolerance_s <= 0:
            return exact
        if len(self._times) != len(self.by_time):
            self._times = sorted(self.by_time)
        times = self._times
        i = bisect.bisect_left(times, valid_time)
        best: tuple[float, datetime] | None = None
        for j in (i - 1, i):
            if 0 <= j < len(times):
                gap = abs((times[j] - valid_time).total_seconds())
                if gap <= tolerance_s and (best is None or gap < best[0]):
                    best = (gap, times[j])
        return None if best is None else self.by_time[best[1]]


def index_observations(
    obs_dir: str | Path,
    pattern: str = "*.nc",
    exclude: str | Path | None = None,
) -> ObservationIndex:
    """Index the scans under ``obs_dir`` (recursively) by their scan time.

    Parameters
    ----------
    obs_dir
        The directory of observed scans.
    pattern
        File names to take (hidden files are always skipped).
    exclude
        A directory whose files are skipped (the forecasts, when they lie under
        ``obs_dir``).

    Returns
    -------
    ObservationIndex
        Where two files share a time, the first in path order is kept.

    Raises
    ------
    VerificationError
        When ``obs_dir`` is not a directory.
    """
    from nowcast.radar import read_scan

    obs_dir = _require_dir(obs_dir, "observation")
    skip = Path(exclude).resolve() if exclude is not None else None
    index = ObservationIndex()
    for path in sorted(obs_dir.rglob(pattern)):
        if path.name.startswith(".") or not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        when = time_from_name(path)
        if when is None:
            try:
                when = read_scan(path).time
            except ScanError as exc:
                index.unreadable.append((path, exc.reason))
                continue
        index.by_time.setdefault(when, path)
    return index
