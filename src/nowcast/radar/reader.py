"""Read one radar scan file: the input contract.

Contract
--------
One NetCDF file (NetCDF-4 or classic) holds one scan on a Cartesian CF grid, as
gridding programs beside radars write it: LROSE Radx2Grid / Mdv2NetCDF, Py-ART's
``write_grid``, and the files of ``shared/data/radar-cases``. :func:`read_scan`
returns a :class:`~nowcast.radar.scan.Scan`:

- reflectivity: the variable named by ``variable``, else the first of ``DBZ``,
  ``DBZH``, ``reflectivity``, ``REF``, else a variable whose ``standard_name`` is
  ``equivalent_reflectivity_factor``;
- dimensions ``(time?, z?, y, x)``, recognised by the names ``x/y/z`` or
  ``x0/y0/z0`` (LROSE), else by the coordinate variable's ``standard_name``
  (``projection_x_coordinate``, ``projection_y_coordinate``), ``axis``, or (for z) a
  ``positive`` attribute; no z dimension means one level; a time dimension longer
  than one takes the first time;
- packed integers are unpacked (``scale_factor``, ``add_offset``, ``_Unsigned``);
  ``_FillValue`` and ``missing_value`` become NaN (no coverage); values below
  ``dbz_floor`` (no echo) are clipped to the floor;
- the scan time comes from the ``time`` variable (CF units), else from the first
  ``yyyymmdd?hhmmss`` in the file name;
- coordinates in ``m`` or ``km`` are returned in metres;
- the origin (the site Py-ART and TITAN place the grid at) is the file's
  ``origin_latitude/longitude/altitude``, else the grid mapping's
  ``latitude/longitude_of_projection_origin``, else the grid centre through the
  projection the mapping gives as text (``proj4_params``, ``crs_wkt``; pyproj).

Every failure (missing, empty, truncated, not NetCDF, no reflectivity, a grid of an
unexpected shape, an unreadable time, nothing but NaN, values that are not dBZ) is a
:class:`~nowcast.errors.ScanError` naming the file and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from nowcast.errors import ScanError
from nowcast.radar.grid_mapping import CRS_TEXT_ATTRS, crs_of
from nowcast.radar.names import time_from_name
from nowcast.radar.netcdf_lock import HDF5_LOCK
from nowcast.radar.scan import Grid, Origin, Scan

REFLECTIVITY_NAMES = ("DBZ", "DBZH", "reflectivity", "REF")
REFLECTIVITY_STANDARD_NAME = "equivalent_reflectivity_factor"
_X_NAMES = {"x", "x0", "x1"}
_Y_NAMES = {"y", "y0", "y1"}
_Z_NAMES = {"z", "z0", "z1", "level", "levels", "altitude", "height"}
_T_NAMES = {"time", "t", "time0"}
_MAX_PLAUSIBLE_DBZ = 130.0


def _attr(var: Any, name: str, default: Any = None) -> Any:
    try:
        return var.getncattr(name)
    except (AttributeError, KeyError):
        return default


def _find_reflectivity(ds: netCDF4.Dataset, wanted: str | None, path: Path) -> Any:
    if wanted:
        if wanted in ds.variables:
            return ds.variables[wanted]
        raise ScanError(
            path,
            f"no variable {wanted!r} (radar.reflectivity_name); "
            f"variables are {sorted(ds.variables)}",
        )
    for name in REFLECTIVITY_NAMES:
        if name in ds.variables:
            return ds.variables[name]
    for var in ds.variables.values():
        if _attr(var, "standard_name") == REFLECTIVITY_STANDARD_NAME:
            return var
    raise ScanError(
        path,
        "no reflectivity variable: none of "
        f"{', '.join(REFLECTIVITY_NAMES)} nor standard_name "
        f"{REFLECTIVITY_STANDARD_NAME!r}; variables are {sorted(ds.variables)} "
        "(set radar.reflectivity_name)",
    )


def _classify_dim(ds: netCDF4.Dataset, dim: str) -> str | None:
    coord = ds.variables.get(dim)
    std = str(_attr(coord, "standard_name", "")).lower() if coord is not None else ""
    axis = str(_attr(coord, "axis", "")).upper() if coord is not None else ""
    units = str(_attr(coord, "units", "")).lower() if coord is not None else ""
    low = dim.lower()
    if low in _T_NAMES or std == "time" or axis == "T" or " since " in units:
        return "t"
    if low in _X_NAMES or std == "projection_x_coordinate" or axis == "X":
        return "x"
    if low in _Y_NAMES or std == "projection_y_coordinate" or axis == "Y":
        return "y"
    if (
        low in _Z_NAMES
        or std in {"altitude", "height", "height_above_reference_ellipsoid"}
        or axis == "Z"
        or (coord is not None and _attr(coord, "positive") is not None)
    ):
        return "z"
    return None


def _to_metres(values: np.ndarray, units: str) -> np.ndarray:
    units = units.strip().lower()
    factor = 1000.0 if units in {"km", "kilometer", "kilometers", "kilometre"} else 1.0
    return values.astype(np.float64) * factor


def _coordinate(ds: netCDF4.Dataset, dim: str | None, n: int, axis: str, path: Path):
    if dim is None:
        return np.zeros(1) if axis == "z" else None
    coord = ds.variables.get(dim)
    if coord is None or coord.ndim != 1:
        if axis == "z":
            return np.arange(n, dtype=np.float64) * 1000.0
        raise ScanError(path, f"no coordinate variable for the {axis} dimension {dim!r}")
    coord.set_auto_mask(False)
    values = np.asarray(coord[:], dtype=np.float64)
    if values.size != n or not np.all(np.isfinite(values)):
        raise ScanError(path, f"coordinate {dim!r} is not {n} finite values")
    return _to_metres(values, str(_attr(coord, "units", "m")))


def _unpack(var: Any, raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw)
    if str(_attr(var, "_Unsigned", "false")).lower() == "true" and raw.dtype.kind == "i":
        raw = raw.view(raw.dtype.str.replace("i", "u"))
    invalid = np.zeros(raw.shape, dtype=bool)
    for name in ("_FillValue", "missing_value"):
        value = _attr(var, name)
        if value is not None:
            for v in np.atleast_1d(value):
                invalid |= raw == np.asarray(v, dtype=raw.dtype)
    scale = _attr(var, "scale_factor")
    offset = _attr(var, "add_offset")
    data = raw.astype(np.float32)
    if scale is not None:
        data *= np.float32(scale)
    if offset is not None:
        data += np.float32(offset)
    invalid |= ~np.isfinite(data)
    data[invalid] = np.nan
    return data


def _scan_time(ds: netCDF4.Dataset, path: Path) -> datetime:
    tvar = ds.variables.get("time")
    if tvar is not None and " since " in str(_attr(tvar, "units", "")):
        try:
            tvar.set_auto_mask(False)
            value = float(np.asarray(tvar[:]).ravel()[0])
            when = netCDF4.num2date(
                value,
                _attr(tvar, "units"),
                calendar=_attr(tvar, "calendar", "standard"),
                only_use_cftime_datetimes=False,
                only_use_python_datetimes=True,
            )
            return when.replace(tzinfo=timezone.utc, microsecond=0)
        except Exception as exc:  # noqa: BLE001 - any decoding failure falls back
            reason = f"time variable unreadable ({exc})"
    else:
        reason = "no time variable with CF units"
    when = time_from_name(path)
    if when is not None:
        return when
    raise ScanError(
        path, f"cannot tell the scan time: {reason} and no yyyymmdd_hhmmss in the name"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size > 1 else value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _grid_mapping(ds: netCDF4.Dataset, var: Any) -> tuple[str | None, dict[str, Any]]:
    name = _attr(var, "grid_mapping")
    if not name or name not in ds.variables:
        return None, {}
    mapping = ds.variables[name]
    return name, {k: _plain(mapping.getncattr(k)) for k in mapping.ncattrs()}


def _origin(ds: netCDF4.Dataset, mapping: dict[str, Any]) -> Origin | None:
    values = []
    for name in ("origin_latitude", "origin_longitude", "origin_altitude"):
        var = ds.variables.get(name)
        if var is None:
            values.append(None)
            continue
        var.set_auto_mask(False)
        values.append(float(np.asarray(var[:]).ravel()[0]))
    if values[0] is not None and values[1] is not None:
        return Origin(values[0], values[1], values[2] or 0.0)
    lat = mapping.get("latitude_of_projection_origin")
    lon = mapping.get("longitude_of_projection_origin")
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
        return Origin(float(lat), float(lon), 0.0)
    return None


#: grid-mapping attributes that may hold the projection as PROJ or WKT text
def _centre_origin(mapping: dict[str, Any], x_m, y_m) -> Origin | None:
    """The grid centre in latitude and longitude, through the projection the
    mapping states as text (``proj4_params`` and the like), for files that give
    no origin (Py-ART and TITAN need one). ``None`` when there is no such text or
    pyproj cannot read it."""
    if not any(isinstance(mapping.get(k), str) for k in CRS_TEXT_ATTRS):
        return None
    crs = crs_of(mapping)
    if crs is None:
        return None
    import pyproj

    try:
        to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lon, lat = to_lonlat.transform(
            (float(x_m[0]) + float(x_m[-1])) / 2, (float(y_m[0]) + float(y_m[-1])) / 2
        )
    except pyproj.exceptions.ProjError:  # an unusable projection: the file still reads
        return None
    if not (np.isfinite(lat) and np.isfinite(lon)):
        return None
    return Origin(float(lat), float(lon), 0.0)


def read_scan(
    path: str | Path,
    variable: str | None = None,
    dbz_floor: float = 0.0,
    expected_shape: Sequence[int] | None = None,
) -> Scan:
    """Read one scan file.

    Parameters
    ----------
    path
        The NetCDF file.
    variable
        The reflectivity variable's name; empty or ``None`` to look for one.
    dbz_floor
        No echo: values below it are clipped to it.
    expected_shape
        ``(z, y, x)`` the grid must have; a zero (or ``None``) entry accepts any size.

    Returns
    -------
    Scan

    Raises
    ------
    ScanError
        Naming the file and the reason.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ScanError(path, "no such file") from None
    except OSError as exc:
        raise ScanError(path, f"cannot stat: {exc.strerror}") from None
    if size == 0:
        raise ScanError(path, "empty file (0 bytes)")
    with HDF5_LOCK:  # HDF5 is not thread-safe (nowcast.radar.netcdf_lock)
        try:
            ds = netCDF4.Dataset(path, "r")
        except OSError as exc:
            raise ScanError(
                path, f"not a readable NetCDF file, or truncated ({exc})"
            ) from None
        try:
            with ds:
                return _read_open(ds, path, variable, dbz_floor, expected_shape)
        except ScanError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged file fails in many places
            raise ScanError(
                path, f"cannot read the data, file damaged or truncated ({exc})"
            ) from None


def _read_open(
    ds: netCDF4.Dataset,
    path: Path,
    variable: str | None,
    dbz_floor: float,
    expected_shape: Sequence[int] | None,
) -> Scan:
    var = _find_reflectivity(ds, variable, path)
    roles: dict[str, str] = {}
    index: list[Any] = []
    for dim, n in zip(var.dimensions, var.shape):
        role = _classify_dim(ds, dim)
        if role is None or role in roles:
            if n != 1:
                raise ScanError(
                    path,
                    f"{var.name} has an unexpected dimension {dim!r} of size {n} "
                    "(expected (time?, z?, y, x))",
                )
            index.append(0)
            continue
        if role == "t":
            index.append(0)
            continue
        roles[role] = dim
        index.append(slice(None))
    if "x" not in roles or "y" not in roles:
        raise ScanError(
            path,
            f"{var.name}{var.dimensions}: cannot find the x and y dimensions "
            "(names x/y or x0/y0, or standard_name projection_x/y_coordinate)",
        )
    var.set_auto_maskandscale(False)
    raw = var[tuple(index)]
    kept = [d for d, i in zip(var.dimensions, index) if isinstance(i, slice)]
    order = [kept.index(roles[r]) for r in ("z", "y", "x") if r in roles]
    data = _unpack(var, np.transpose(np.asarray(raw), order))
    if "z" not in roles:
        data = data[np.newaxis]
    shape = data.shape
    if expected_shape is not None:
        for got, want, axis in zip(shape, expected_shape, ("z", "y", "x")):
            if want and got != want:
                raise ScanError(
                    path,
                    f"unexpected grid shape (z, y, x) = {shape}, expected "
                    f"{tuple(expected_shape)} (radar.expected_*)",
                )
    valid = np.isfinite(data)
    if not valid.any():
        raise ScanError(path, f"{var.name} is all missing (no radar coverage at all)")
    peak = float(data[valid].max())
    if peak > _MAX_PLAUSIBLE_DBZ:
        raise ScanError(
            path,
            f"{var.name} reaches {peak:.0f}: not reflectivity in dBZ "
            "(linear Z, or a wrong scale_factor?)",
        )
    np.maximum(data, np.float32(dbz_floor), out=data)
    x = _coordinate(ds, roles.get("x"), shape[2], "x", path)
    y = _coordinate(ds, roles.get("y"), shape[1], "y", path)
    z = _coordinate(ds, roles.get("z"), shape[0], "z", path)
    name, attrs = _grid_mapping(ds, var)
    grid = Grid(
        x_m=x, y_m=y, z_m=z, mapping_name=name, mapping_attrs=attrs,
        origin=_origin(ds, attrs) or _centre_origin(attrs, x, y),
    )
    return Scan(
        time=_scan_time(ds, path), dbz=data, grid=grid, source=path, variable=var.name
    )
