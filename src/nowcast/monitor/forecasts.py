"""Finding the latest forecast set and its observations, and reading fields to show.

Contract
--------
- :func:`find_forecast_set` names the files the Forecast panel shows, from names
  and listings alone (no data read): the newest forecast (issue time from
  ``_latest_data_info.xml`` in ``paths.output_dir``, else from the store), its file
  for each lead (``grid.output_frames`` leads ``grid.interval_s`` apart, in
  ``output.layout``), the newest observed scan in ``paths.input_dir``, and for each
  lead the earlier forecast valid at that scan's time (issued one lead before it,
  within ``verification.match_tolerance_s``), which that scan verifies. What is
  missing is ``None`` and, for the whole set, a note saying what to start.
- :class:`FieldCache` reads one file with :func:`nowcast.radar.read_scan` (torch
  free) and returns a 2D :class:`Field`, north up: the column maximum
  (``level=None``) or one level. Reading a volume caches its column maximum too;
  the cache keeps the latest ``maxsize`` fields, keyed by path, modification time
  and level, and is shared safely by worker threads.
- Nothing here imports Textual or writes anything.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from nowcast.errors import ScanError
from nowcast.monitor.data import Workspace, latest_scan, open_store
from nowcast.radar.ldata import read_latest_data_info
from nowcast.radar.reader import read_scan
from nowcast.radar.writer import forecast_rel_path
from nowcast.verification.continuous import column_max
from nowcast.verification.matching import read_forecast_attrs


@dataclass(frozen=True)
class LeadFile:
    """One forecast file: issue time, lead, and the path (None: not there)."""

    issue_time: datetime
    lead_s: int
    path: Path | None

    @property
    def valid_time(self) -> datetime:
        return self.issue_time + timedelta(seconds=self.lead_s)


@dataclass(frozen=True)
class ForecastSet:
    """What the Forecast panel shows; see the module contract."""

    issue_time: datetime | None = None
    method: str | None = None
    model: str | None = None
    leads: tuple[LeadFile, ...] = ()
    observed_time: datetime | None = None
    observed_path: Path | None = None
    earlier: tuple[LeadFile | None, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[datetime | None, datetime | None]:
        """Changes when a new forecast or a new scan arrives."""
        return (self.issue_time, self.observed_time)


def _latest_issue(ws: Workspace) -> datetime | None:
    out = ws.settings.paths.output_dir
    try:
        info = read_latest_data_info(out)
    except (OSError, ET.ParseError, ValueError):
        info = None
    if info is not None:
        if info.is_forecast:
            return info.time
        try:
            attrs = read_forecast_attrs(out / info.rel_data_path)
        except ScanError:
            attrs = None
        if attrs is not None and attrs.issue_time is not None:
            return attrs.issue_time
    reader, _ = open_store(ws)
    if reader is None:
        return None
    with reader:
        row = reader.latest_forecast()
    return row["issue_time"] if row else None


class _Listing:
    """Names in the day folders of ``OUT``, listed once a call."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._days: dict[str, list[str]] = {}

    def names(self, day: str) -> list[str]:
        if day not in self._days:
            try:
                self._days[day] = sorted(p.name for p in (self.out / day).iterdir())
            except OSError:
                self._days[day] = []
        return self._days[day]

    def nearest(self, when: datetime, prefix: str, suffix: str, tol_s: float):
        """The ``prefix hhmmss suffix`` entry nearest ``when`` within ``tol_s``."""
        best: tuple[float, datetime, str] | None = None
        for day in {f"{when - timedelta(seconds=tol_s):%Y%m%d}", f"{when:%Y%m%d}",
                    f"{when + timedelta(seconds=tol_s):%Y%m%d}"}:
            for name in self.names(day):
                if not (name.startswith(prefix) and name.endswith(suffix)):
                    continue
                hms = name[len(prefix) : len(name) - len(suffix)]
                try:
                    t = datetime.strptime(day + hms, "%Y%m%d%H%M%S").replace(
                        tzinfo=when.tzinfo
                    )
                except ValueError:
                    continue
                gap = abs((t - when).total_seconds())
                if gap <= tol_s and (best is None or gap < best[0]):
                    best = (gap, t, f"{day}/{name}")
        return None if best is None else best[1:]


def _earlier(
    ws: Workspace, listing: _Listing, observed: datetime, lead: int
) -> LeadFile | None:
    cfg = ws.settings
    tol = cfg.verification.match_tolerance_s
    issue = observed - timedelta(seconds=lead)
    if cfg.output.layout == "forecast":
        found = listing.nearest(issue, "g_", "", tol)
        if found is None:
            return None
        path = listing.out / found[1] / f"f_{lead:08d}.nc"
        return LeadFile(found[0], lead, path) if path.is_file() else None
    found = listing.nearest(observed, "", ".nc", tol)
    if found is None:
        return None
    path = listing.out / found[1]
    try:
        attrs = read_forecast_attrs(path)
    except ScanError:
        return None
    if attrs.lead_s != lead or attrs.issue_time is None:
        return None
    return LeadFile(attrs.issue_time, lead, path)


def find_forecast_set(ws: Workspace) -> ForecastSet:
    """The newest forecast, the newest scan and the earlier forecasts it verifies."""
    cfg = ws.settings
    out = cfg.paths.output_dir
    notes: list[str] = []
    issue = _latest_issue(ws)
    leads: list[LeadFile] = []
    method = model = None
    if issue is None:
        notes.append(
            f"No forecasts in {ws.show(out)}/ yet: the daemon writes one a scan once "
            f"it holds {cfg.grid.input_frames} scans (`{ws.command('run')}`)."
        )
    else:
        for lead in ws.leads_s():
            path = out / forecast_rel_path(issue, lead, cfg.output.layout)
            leads.append(LeadFile(issue, lead, path if path.is_file() else None))
        first = next((f.path for f in leads if f.path is not None), None)
        if first is not None:
            try:
                attrs = read_forecast_attrs(first)
                method, model = attrs.method, attrs.model or None
            except ScanError as exc:
                notes.append(str(exc))
    newest = latest_scan(cfg.paths.input_dir, cfg.daemon.pattern)
    earlier: list[LeadFile | None] = []
    if newest is None:
        notes.append(
            f"No scans in {ws.show(cfg.paths.input_dir)}/ yet: point paths.input_dir "
            f"at the radar's files, or feed it with `{ws.command('simulate')}`."
        )
    elif out.is_dir():
        listing = _Listing(out)
        earlier = [_earlier(ws, listing, newest[0], lead) for lead in ws.leads_s()]
    return ForecastSet(
        issue_time=issue,
        method=method,
        model=model,
        leads=tuple(leads),
        observed_time=None if newest is None else newest[0],
        observed_path=None if newest is None else newest[1],
        earlier=tuple(earlier),
        notes=tuple(notes),
    )


# -- fields ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Field:
    """One 2D field to show: north up, dBZ, NaN where the radar did not see.

    Compared by identity (``eq=False``): dataclass equality would compare the
    ``values`` arrays element-wise and raise when a view checks for a change.
    """

    path: Path
    time: datetime
    level: int | None
    values: np.ndarray
    n_levels: int
    height_m: float | None
    peak_dbz: float


class FieldCache:
    """Fields read from files, the latest ``maxsize`` kept (thread-safe)."""

    def __init__(self, maxsize: int = 48) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[str, int, int | None], Field] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def _key(self, path: Path, level: int | None) -> tuple[str, int, int | None]:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = -1
        return (str(path), mtime, level)

    def _put(self, key: tuple[str, int, int | None], item: Field) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def get(
        self,
        path: Path,
        level: int | None = None,
        *,
        variable: str | None = None,
        dbz_floor: float = 0.0,
    ) -> Field:
        """The column maximum (``level=None``) or one level of ``path``.

        Raises
        ------
        ScanError
            When the file cannot be read (naming it and why).
        """
        path = Path(path)
        key = self._key(path, level)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        scan = read_scan(path, variable=variable or None, dbz_floor=dbz_floor)
        volume = scan.dbz
        flip = scan.grid.y_m.size > 1 and scan.grid.y_m[-1] > scan.grid.y_m[0]
        n = volume.shape[0]

        def make(lev: int | None) -> Field:
            if lev is None:
                values, height = column_max(volume), None
            else:
                lev = min(max(lev, 0), n - 1)
                values, height = volume[lev], float(scan.grid.z_m[lev])
            values = np.ascontiguousarray(values[::-1] if flip else values)
            finite = values[np.isfinite(values)]
            peak = float(finite.max()) if finite.size else float("nan")
            return Field(path, scan.time, lev, values, n, height, peak)

        result = make(level)
        self._put(key, result)
        composite = self._key(path, None)
        if level is not None and composite not in self._items:
            self._put(composite, make(None))
        return result
