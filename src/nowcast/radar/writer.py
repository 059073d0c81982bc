"""Write radar grids: forecasts in the layout TITAN reads, and scans (input contract).

Contract
--------
:func:`write_forecast_set` writes one forecast (an issue time, several leads) under
``OUT``:

- layout ``"forecast"`` (LROSE's forecast layout): ``OUT/yyyymmdd/g_hhmmss/f_%08d.nc``,
  date and ``g_`` time from the issue (generation) time, the eight digits the lead in
  seconds; ``_latest_data_info`` marks each file as a forecast (gen time + lead);
- layout ``"valid_time"``: ``OUT/yyyymmdd/hhmmss.nc`` named by valid time (the newest
  forecast for a time wins), marked as observations, for a TITAN run fed forecasts as
  if they were scans.

Each file: dims ``time`` (1, the valid time), ``z``, ``y``, ``x``; coordinates with
units, ``standard_name``, ``axis`` (and ``positive = "up"`` on z);
``forecast_reference_time`` and ``forecast_period``; ``DBZ(time, z, y, x)`` int16
packed with scale 0.01, ``_FillValue`` -32768, zlib, one chunk a level, its
``grid_mapping`` copied from the input scan; ``origin_latitude/longitude/altitude``
and a scalar ``projection`` so that Py-ART's ``read_grid`` opens it; optional ``U``
and ``V`` motion (m/s); global ``Conventions = "CF-1.8"`` and
``nowcast_method`` / ``nowcast_model`` saying what made it.

Every file is written to a hidden temporary file in its own folder and moved into
place with ``os.replace``: TITAN never sees a partial file, and a failure (full disk,
no permission) leaves nothing behind and raises
:class:`~nowcast.errors.ForecastWriteError`.

:func:`write_scan` writes a :class:`~nowcast.radar.scan.Scan` in the input contract
(``DIR/yyyymmdd/ncf_yyyymmdd_hhmmss.nc``), the same way; the simulator uses it.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from nowcast import __version__
from nowcast.errors import ForecastWriteError
from nowcast.fsutil import atomic_path
from nowcast.radar.ldata import LatestDataInfo, write_latest_data_info
from nowcast.radar.scan import Grid, Origin, Scan

TIME_UNITS = "seconds since 1970-01-01T00:00:00Z"
PACK_SCALE = 0.01
PACK_FILL = np.int16(-32768)


@dataclass(frozen=True)
class ForecastFile:
    """One file written by :func:`write_forecast_set`."""

    path: Path
    rel_path: str
    lead_s: int
    valid_time: datetime


def _epoch(t: datetime) -> float:
    return float(calendar.timegm(t.astimezone(timezone.utc).timetuple()))


def _pack(volume: np.ndarray) -> np.ndarray:
    """dBZ -> int16 hundredths; NaN -> the fill value (in as few passes as we can)."""
    scaled = np.multiply(volume, np.float32(1.0 / PACK_SCALE), dtype=np.float32)
    missing = np.isnan(scaled)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32767, 32767, out=scaled)
    scaled[missing] = PACK_FILL
    return scaled.astype(np.int16)


def as_stored(volumes: np.ndarray) -> np.ndarray:
    """The dBZ a reader gets back from ``volumes`` written by this module.

    Values are stored as int16 hundredths of a dBZ (NaN as the fill value), so
    this is ``volumes`` rounded to 0.01 dBZ, NaN kept: what ``nowcast eval`` and
    TITAN read, and what the daemon verifies.
    """
    packed = _pack(np.asarray(volumes, dtype=np.float32))
    values = packed.astype(np.float32)
    values *= np.float32(PACK_SCALE)
    values[packed == PACK_FILL] = np.nan
    return values


def _coord(ds, name: str, values: np.ndarray, std: str, axis: str, long: str):
    var = ds.createVariable(name, "f4", (name,))
    var[:] = values.astype(np.float32)
    var.units = "m"
    var.standard_name = std
    var.long_name = long
    var.axis = axis
    return var


def _write_grid_file(
    path: Path,
    valid_time: datetime,
    volume: np.ndarray,
    grid: Grid,
    *,
    field_name: str = "DBZ",
    complevel: int = 1,
    origin: Origin | None = None,
    issue_time: datetime | None = None,
    motion: np.ndarray | None = None,
    global_attrs: Mapping[str, Any] | None = None,
) -> None:
    nz, ny, nx = volume.shape
    with atomic_path(path) as tmp:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
            ds.Conventions = "CF-1.8"
            ds.title = "Radar reflectivity"
            ds.source = f"nowcast {__version__}"
            ds.history = (
                f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} written by nowcast"
            )
            for key, value in (global_attrs or {}).items():
                ds.setncattr(key, value)
            ds.createDimension("time", 1)
            ds.createDimension("z", nz)
            ds.createDimension("y", ny)
            ds.createDimension("x", nx)
            _write_times(ds, valid_time, issue_time)
            _write_coords(ds, grid)
            mapping_name = _write_mapping(ds, grid, origin)
            _write_dbz(ds, volume, field_name, complevel, mapping_name)
            if motion is not None:
                _write_motion(ds, motion, nz, complevel, mapping_name)


def _time_var(ds, name: str, standard_name: str, long_name: str):
    var = ds.createVariable(name, "f8", ("time",))
    var.units = TIME_UNITS
    var.standard_name = standard_name
    var.long_name = long_name
    var.calendar = "standard"
    return var


def _write_times(ds, valid_time: datetime, issue_time: datetime | None) -> None:
    """``time`` (valid); for a forecast also its reference time and period."""
    tvar = _time_var(ds, "time", "time", "valid time")
    tvar.axis = "T"
    tvar[:] = [_epoch(valid_time)]
    if issue_time is None:
        return
    ref = _time_var(
        ds, "forecast_reference_time", "forecast_reference_time",
        "issue (generation) time",
    )
    ref[:] = [_epoch(issue_time)]
    period = ds.createVariable("forecast_period", "f8", ("time",))
    period.units = "seconds"
    period.standard_name = "forecast_period"
    period.long_name = "lead time"
    period[:] = [_epoch(valid_time) - _epoch(issue_time)]


def _write_coords(ds, grid: Grid) -> None:
    _coord(ds, "x", grid.x_m, "projection_x_coordinate", "X",
           "x distance on the projection plane from the origin")
    _coord(ds, "y", grid.y_m, "projection_y_coordinate", "Y",
           "y distance on the projection plane from the origin")
    zvar = _coord(ds, "z", grid.z_m, "altitude", "Z", "height above the radar")
    zvar.positive = "up"


def _write_mapping(ds, grid: Grid, origin: Origin | None) -> str:
    """The grid mapping (the scan's, else about the origin) and the origin
    variables Py-ART reads; returns the mapping variable's name."""
    mapping_name = grid.mapping_name or "grid_mapping"
    mapping = ds.createVariable(mapping_name, "i4", ())
    attrs = dict(grid.mapping_attrs)
    if not attrs and origin is not None:
        attrs = {
            "grid_mapping_name": "azimuthal_equidistant",
            "latitude_of_projection_origin": origin.latitude,
            "longitude_of_projection_origin": origin.longitude,
            "false_easting": 0.0,
            "false_northing": 0.0,
        }
    for key, value in attrs.items():
        mapping.setncattr(key, value)
    if origin is not None:
        for name, value, units in (
            ("origin_latitude", origin.latitude, "degrees_north"),
            ("origin_longitude", origin.longitude, "degrees_east"),
            ("origin_altitude", origin.altitude_m, "m"),
        ):
            var = ds.createVariable(name, "f8", ("time",))
            var.units = units
            var.long_name = name.replace("_", " ") + " of the grid"
            var[:] = [value]
        proj = ds.createVariable("projection", "i4", ())
        proj.setncattr("proj", "pyart_aeqd")
        proj.setncattr("_include_lon_0_lat_0", "true")
    return mapping_name


def _write_dbz(
    ds, volume: np.ndarray, field_name: str, complevel: int, mapping_name: str
) -> None:
    """The reflectivity, packed as int16 hundredths (:func:`as_stored`)."""
    ny, nx = volume.shape[1:]
    dbz = ds.createVariable(
        field_name, "i2", ("time", "z", "y", "x"), zlib=complevel > 0,
        complevel=max(complevel, 1), shuffle=True, chunksizes=(1, 1, ny, nx),
        fill_value=PACK_FILL,
    )
    dbz.set_auto_maskandscale(False)
    dbz.scale_factor = np.float32(PACK_SCALE)
    dbz.add_offset = np.float32(0.0)
    dbz.units = "dBZ"
    dbz.standard_name = "equivalent_reflectivity_factor"
    dbz.long_name = "equivalent reflectivity factor"
    dbz.grid_mapping = mapping_name
    dbz.coordinates = "time z y x"
    dbz[0] = _pack(volume)


def _write_motion(ds, motion: np.ndarray, nz: int, complevel: int, mapping: str):
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim == 3:
        motion = np.broadcast_to(motion[:, None], (2, nz, *motion.shape[1:]))
    for i, (name, std) in enumerate(
        (("U", "eastward_wind"), ("V", "northward_wind"))
    ):
        var = ds.createVariable(
            name, "f4", ("time", "z", "y", "x"), zlib=complevel > 0,
            complevel=max(complevel, 1), chunksizes=(1, 1, *motion.shape[2:]),
        )
        var.units = "m s-1"
        var.long_name = f"storm motion, {'x' if i == 0 else 'y'} component on the grid"
        var.comment = f"{std.split('_')[0]} component along the projection axis"
        var.grid_mapping = mapping
        var[0] = motion[i]


def forecast_rel_path(issue_time: datetime, lead_s: int, layout: str) -> str:
    """The path of one forecast file under ``OUT`` for ``layout``."""
    issue_time = issue_time.astimezone(timezone.utc)
    if layout == "forecast":
        return f"{issue_time:%Y%m%d}/g_{issue_time:%H%M%S}/f_{lead_s:08d}.nc"
    if layout == "valid_time":
        valid = issue_time + timedelta(seconds=lead_s)
        return f"{valid:%Y%m%d}/{valid:%H%M%S}.nc"
    raise ValueError(f"unknown output layout {layout!r}: 'forecast' or 'valid_time'")


def write_forecast_set(
    output_dir: str | Path,
    issue_time: datetime,
    leads_s: Sequence[int],
    volumes: np.ndarray,
    grid: Grid,
    *,
    method: str,
    model: str = "",
    layout: str = "forecast",
    field_name: str = "DBZ",
    complevel: int = 1,
    origin: Origin | None = None,
    motion: np.ndarray | None = None,
    writer: str = "nowcast",
    data_type: str = "nc",
) -> list[ForecastFile]:
    """Write one forecast set and its ``_latest_data_info`` (see module doc).

    Parameters
    ----------
    output_dir
        TITAN's input directory for this data set (``OUT``).
    issue_time
        The forecast's generation time (the time of the newest scan it used).
    leads_s
        Lead of each volume in seconds.
    volumes
        ``(lead, z, y, x)`` dBZ on ``grid``; NaN for no coverage.
    grid
        The grid to write on (the input scan's grid).
    method, model
        What made the forecast (``nowcast_method``, ``nowcast_model`` attributes).
    origin
        Radar site; defaults to ``grid.origin``.
    motion
        Optional ``(lead, 2, [z,] y, x)`` motion in m/s, written as ``U`` and ``V``.

    Returns
    -------
    list of ForecastFile, one a lead, in lead order.
    """
    output_dir = Path(output_dir)
    volumes = np.asarray(volumes)
    if volumes.ndim != 4 or volumes.shape[0] != len(leads_s):
        raise ValueError(
            f"volumes must be (lead, z, y, x) with {len(leads_s)} leads, "
            f"got {volumes.shape}"
        )
    if volumes.shape[1:] != grid.shape:
        raise ValueError(f"volumes {volumes.shape[1:]} do not match grid {grid.shape}")
    origin = origin or grid.origin
    issue_time = issue_time.astimezone(timezone.utc)
    written: list[ForecastFile] = []
    for i, lead in enumerate(leads_s):
        lead = int(lead)
        valid = issue_time + timedelta(seconds=lead)
        rel = forecast_rel_path(issue_time, lead, layout)
        target = output_dir / rel
        attrs = {
            "nowcast_method": method,
            "nowcast_model": model,
            "nowcast_issue_time": f"{issue_time:%Y-%m-%dT%H:%M:%SZ}",
            "nowcast_lead_seconds": lead,
        }
        try:
            _write_grid_file(
                target, valid, volumes[i], grid, field_name=field_name,
                complevel=complevel, origin=origin, issue_time=issue_time,
                motion=None if motion is None else motion[i], global_attrs=attrs,
            )
            write_latest_data_info(
                output_dir,
                LatestDataInfo(
                    time=issue_time if layout == "forecast" else valid,
                    rel_data_path=rel,
                    is_forecast=layout == "forecast",
                    lead_s=lead,
                    data_type=data_type,
                    writer=writer,
                ),
            )
        except (OSError, RuntimeError) as exc:  # netCDF4: HDF errors (disk full)
            raise ForecastWriteError(
                f"{target}: cannot write forecast: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from exc
        written.append(ForecastFile(target, rel, lead, valid))
    return written


def scan_rel_path(time: datetime) -> str:
    """``yyyymmdd/ncf_yyyymmdd_hhmmss.nc``: where a scan goes under its directory."""
    time = time.astimezone(timezone.utc)
    return f"{time:%Y%m%d}/ncf_{time:%Y%m%d_%H%M%S}.nc"


def write_scan(
    scan: Scan,
    directory: str | Path,
    *,
    complevel: int = 1,
    global_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``scan`` in the input contract under ``directory``; return its path."""
    target = Path(directory) / scan_rel_path(scan.time)
    try:
        _write_grid_file(
            target, scan.time, scan.dbz, scan.grid, field_name=scan.variable,
            complevel=complevel, origin=scan.grid.origin, global_attrs=global_attrs,
        )
    except OSError as exc:
        raise ForecastWriteError(
            f"{target}: cannot write scan: {exc.strerror or exc}"
        ) from exc
    return target
