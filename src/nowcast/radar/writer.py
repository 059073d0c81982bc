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
``grid_mapping`` the input scan's with a CF ``grid_mapping_name`` LROSE's Mdvx reads
(:mod:`nowcast.radar.grid_mapping`); ``origin_latitude/longitude/altitude`` and a
scalar ``projection`` (the exact projection) so that Py-ART's ``read_grid`` opens
and places it; optional ``U``
and ``V`` motion (m/s); global ``Conventions = "CF-1.8"`` and
``nowcast_method`` / ``nowcast_model`` saying what made it.

A set is complete or absent. Each file is built in memory and written with plain
file I/O (a full disk is ``No space left on device``, and no descriptor is left
open on a failure). In the ``forecast`` layout every lead goes into a hidden
staging folder ``.g_hhmmss.partial-PID`` beside its ``g_hhmmss``, which is then
renamed into place (a set of the same issue time already there is swapped out and
removed); in the ``valid_time`` layout every file goes to a hidden temporary beside
its target before any is renamed. ``_latest_data_info`` is written after the set
is in place, lead by lead. A failure (full disk, no permission, an immutable
folder) leaves nothing partial and raises
:class:`~nowcast.errors.ForecastWriteError` naming the file or folder that failed
and the reason. :func:`remove_stale_temporaries` removes what a killed writer left
(the daemon runs it at start-up).

:func:`write_scan` writes a :class:`~nowcast.radar.scan.Scan` in the input contract
(``DIR/yyyymmdd/ncf_yyyymmdd_hhmmss.nc``), the same way, its own x and y kept (no
false origin taken out); the simulator uses it.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import shutil
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
from nowcast.radar.grid_mapping import ClientMapping, client_mapping
from nowcast.radar.ldata import LatestDataInfo, write_latest_data_info
from nowcast.radar.netcdf_lock import HDF5_LOCK
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


def _write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Plain file I/O: a full disk is ``OSError(ENOSPC)`` naming the file, and no
    descriptor outlives the call (HDF5 writing to disk leaks one on ENOSPC)."""
    with open(path, "wb") as fh:
        fh.write(data)


def _grid_file_bytes(
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
    as_scan: bool = False,
) -> memoryview:
    """One grid file, built in memory (netCDF4's diskless ``memory=`` mode)."""
    with HDF5_LOCK:  # HDF5 is not thread-safe (nowcast.radar.netcdf_lock)
        nz, ny, nx = volume.shape
        ds = netCDF4.Dataset("forecast.nc", "w", format="NETCDF4", memory=1 << 20)
        try:
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
            mapping = client_mapping(grid, origin, keep_coordinates=as_scan)
            _write_coords(ds, grid, mapping)
            mapping_name = _write_mapping(ds, grid, origin, mapping)
            _write_dbz(ds, volume, field_name, complevel, mapping_name)
            if motion is not None:
                _write_motion(ds, motion, nz, complevel, mapping_name)
        except BaseException:
            with contextlib.suppress(Exception):
                ds.close()
            raise
        return _trim_hdf5_image(ds.close())


def _trim_hdf5_image(image: memoryview) -> memoryview:
    """The file without the in-memory image's padding (HDF5 grows the image in
    64 KiB steps): cut at the end-of-file address of the superblock (versions
    2 and 3: offsets size at byte 9, base, extension and end-of-file addresses
    from byte 12), as the same file written to disk would end."""
    head = bytes(image[:12])
    if head[:8] != b"\x89HDF\r\n\x1a\n" or head[8] not in (2, 3):
        return image
    size = head[9]
    base = int.from_bytes(image[12 : 12 + size], "little")
    eof = int.from_bytes(image[12 + 2 * size : 12 + 3 * size], "little") - base
    return image[:eof] if 0 < eof <= len(image) else image


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


def _write_coords(ds, grid: Grid, mapping: ClientMapping) -> None:
    """x and y less the false origin the mapping took out (see
    :mod:`nowcast.radar.grid_mapping`)."""
    _coord(ds, "x", np.asarray(grid.x_m, np.float64) - mapping.x_offset_m,
           "projection_x_coordinate", "X",
           "x distance on the projection plane from the origin")
    _coord(ds, "y", np.asarray(grid.y_m, np.float64) - mapping.y_offset_m,
           "projection_y_coordinate", "Y",
           "y distance on the projection plane from the origin")
    zvar = _coord(ds, "z", grid.z_m, "altitude", "Z", "height above the radar")
    zvar.positive = "up"


def _write_mapping(
    ds, grid: Grid, origin: Origin | None, mapping: ClientMapping
) -> str | None:
    """The grid mapping in the forms CF readers, LROSE's Mdvx and Py-ART read
    (:func:`~nowcast.radar.grid_mapping.client_mapping`) and the origin variables
    Py-ART needs; returns the mapping variable's name (``None``: no mapping)."""
    mapping_name = None
    if mapping.cf:
        mapping_name = grid.mapping_name or "grid_mapping"
        var = ds.createVariable(mapping_name, "i4", ())
        for key, value in mapping.cf.items():
            var.setncattr(key, value)
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
    if mapping.pyart:
        proj = ds.createVariable("projection", "i4", ())
        for key, value in mapping.pyart.items():
            proj.setncattr(key, value)
    return mapping_name


def _write_dbz(
    ds, volume: np.ndarray, field_name: str, complevel: int, mapping_name: str | None
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
    if mapping_name:
        dbz.grid_mapping = mapping_name
    dbz.coordinates = "time z y x"
    dbz[0] = _pack(volume)


def _write_motion(
    ds, motion: np.ndarray, nz: int, complevel: int, mapping: str | None
) -> None:
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
        if mapping:
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
    planned = []
    for i, lead in enumerate(leads_s):
        lead = int(lead)
        rel = forecast_rel_path(issue_time, lead, layout)
        attrs = {
            "nowcast_method": method,
            "nowcast_model": model,
            "nowcast_issue_time": f"{issue_time:%Y-%m-%dT%H:%M:%SZ}",
            "nowcast_lead_seconds": np.int32(lead),
        }
        planned.append((i, lead, issue_time + timedelta(seconds=lead), rel, attrs))

    def build(i, valid, attrs) -> memoryview:
        return _grid_file_bytes(
            valid, volumes[i], grid, field_name=field_name, complevel=complevel,
            origin=origin, issue_time=issue_time,
            motion=None if motion is None else motion[i], global_attrs=attrs,
        )

    if layout == "forecast":
        _write_set_folder(output_dir, planned, build)
    else:
        _write_set_files(output_dir, planned, build)
    written: list[ForecastFile] = []
    for _, lead, valid, rel, _ in planned:
        target = output_dir / rel
        try:
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
        except OSError as exc:
            raise ForecastWriteError(
                f"{output_dir}/_latest_data_info: cannot write: "
                f"{exc.strerror or exc} (the forecast set {target.parent} is in place)"
            ) from exc
        written.append(ForecastFile(target, rel, lead, valid))
    return written


#: our temporary names: a set's staging folder, a replaced set, a file's temp
_STAGING = ".partial-"
_REPLACED = ".replaced-"


def _write_set_folder(output_dir: Path, planned, build) -> None:
    """The ``forecast`` layout: every lead into a hidden staging folder beside
    ``g_hhmmss``, then one rename: the set is complete or absent."""
    final = output_dir / Path(planned[0][3]).parent
    staging = final.parent / f".{final.name}{_STAGING}{os.getpid()}"
    current = staging
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        for i, _, valid, rel, attrs in planned:
            current = staging / Path(rel).name
            _write_bytes(current, build(i, valid, attrs))
            os.chmod(current, 0o644)
        current = final
        _replace_folder(staging, final)
    except (OSError, RuntimeError) as exc:  # RuntimeError: netCDF (HDF) errors
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise ForecastWriteError(
            f"{current}: cannot write forecast set {final}: {_why(exc)}"
        ) from exc


def _replace_folder(staging: Path, final: Path) -> None:
    """Move ``staging`` to ``final``; a set already there (the same issue time,
    written again) is swapped out first and removed after."""
    if not final.exists():
        os.rename(staging, final)
        return
    old = final.parent / f".{final.name}{_REPLACED}{os.getpid()}"
    if old.exists():
        shutil.rmtree(old)
    os.rename(final, old)
    try:
        os.rename(staging, final)
    except OSError:
        os.rename(old, final)  # the previous set stays
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_set_files(output_dir: Path, planned, build) -> None:
    """The ``valid_time`` layout (files in several folders): every file to a
    hidden temporary beside its target first, then the renames; a failure
    before the renames leaves nothing."""
    temps: list[tuple[Path, Path]] = []
    current = output_dir
    try:
        for i, _, valid, rel, attrs in planned:
            target = output_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            current = target.parent / f".{target.name}{_STAGING}{os.getpid()}.tmp"
            _write_bytes(current, build(i, valid, attrs))
            os.chmod(current, 0o644)
            temps.append((current, target))
        for tmp, target in temps:
            current = target
            os.replace(tmp, target)
    except (OSError, RuntimeError) as exc:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if current.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                current.unlink()
        raise ForecastWriteError(
            f"{current}: cannot write forecast: {_why(exc)}"
        ) from exc


def _why(exc: BaseException) -> str:
    """The reason in words: the OS's (``No space left on device``), else the
    library's message."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def remove_stale_temporaries(output_dir: str | Path) -> list[Path]:
    """Remove what an interrupted :func:`write_forecast_set` of ours left under
    ``output_dir`` (staging folders, swapped-out sets, hidden temporary files);
    returns what was removed. Nothing else is touched."""
    output_dir = Path(output_dir)
    removed: list[Path] = []
    if not output_dir.is_dir():
        return removed
    folders = [output_dir, *(p for p in output_dir.iterdir() if _is_dir(p))]
    for folder in folders:
        for path in list(folder.iterdir()) if _is_dir(folder) else []:
            name = path.name
            temp_file = name.endswith(".tmp") and (
                ".nc." in name or "_latest_data_info" in name
            )
            ours = name.startswith(".") and (
                _STAGING in name or _REPLACED in name or temp_file
            )
            if not ours:
                continue
            with contextlib.suppress(OSError):
                if _is_dir(path):
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
    return removed


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


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
    data = _grid_file_bytes(
        scan.time, scan.dbz, scan.grid, field_name=scan.variable,
        complevel=complevel, origin=scan.grid.origin, global_attrs=global_attrs,
        as_scan=True,
    )
    try:
        with atomic_path(target) as tmp:
            _write_bytes(tmp, data)
    except OSError as exc:
        raise ForecastWriteError(
            f"{target}: cannot write scan: {exc.strerror or exc}"
        ) from exc
    return target
