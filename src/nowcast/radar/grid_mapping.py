"""The grid mapping a forecast file carries, in the forms its readers understand.

Contract
--------
:func:`client_mapping` takes a scan's :class:`~nowcast.radar.scan.Grid` (its own
mapping attributes as read) and the origin the forecast is written about, and
returns a :class:`ClientMapping`:

- ``cf``: the attributes of the CF grid-mapping variable. A scan's own attributes
  are always kept. When the scan states its projection (as text: ``proj4_params``,
  ``crs_wkt``, ...; or as CF without ``earth_radius``), a mapping LROSE's Mdvx
  reads is added: Mdvx knows only the kinds in :data:`MDVX_MAPPINGS` (from
  ``Ncf2MdvField::_setProjType``) and places a grid on a sphere of 6378137 m, so
  of the projection's own CF form (pyproj's ``CRS.to_cf()``, when Mdvx knows the
  kind) and an ``azimuthal_equidistant`` mapping about the origin, both with that
  ``earth_radius``, the one Mdvx places closest to the exact projection is
  written, with ``crs_wkt`` (exact, which CF readers such as pyproj prefer) and
  ``nowcast_mapping_note`` giving the largest
  distance, over the grid, between where Mdvx and the exact projection put a
  point (measured with pyproj; :attr:`ClientMapping.note` repeats it when over
  100 m). With no mapping and an origin: ``azimuthal_equidistant`` about the
  origin (the grid's x and y are then distances from it). With neither: empty
  (:attr:`ClientMapping.note` says the forecasts cannot be placed on a map).
- ``pyart``: the attributes of the scalar ``projection`` variable Py-ART's
  ``read_grid`` uses to place the grid: the exact projection as PROJ parameters
  (with ``_include_lon_0_lat_0 = "false"``) when the scan states one, else
  Py-ART's own ``pyart_aeqd`` about the origin; empty without an origin.
- A false easting or northing is taken out of the mapping and out of the grid's
  x and y (:attr:`ClientMapping.x_offset_m`, ``y_offset_m``, for the writer to
  subtract): Mdvx reads ``false_easting`` as kilometres while it converts x and y
  from metres, so TITAN would place such a grid thousands of km away. The
  projection text written then describes the shifted grid; the scans' own is kept
  as ``source_<attribute>`` and ``nowcast_offset_note`` says what was done.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nowcast.radar.scan import Grid, Origin

#: the CF ``grid_mapping_name`` values LROSE's Mdvx translates (PROJ_UNKNOWN otherwise)
MDVX_MAPPINGS = frozenset({
    "albers_conical_equal_area", "azimuthal_equidistant",
    "lambert_azimuthal_equal_area", "lambert_conformal_conic", "latitude_longitude",
    "polar_stereographic", "stereographic", "transverse_mercator", "mercator",
    "vertical_perspective",
})

#: attributes that state a projection as text, in the order they are tried
CRS_TEXT_ATTRS = ("proj4_params", "proj4", "proj4text", "crs_wkt", "spatial_ref")

#: the sphere (m) of an azimuthal equidistant mapping about an origin, no projection
_EARTH_RADIUS_M = 6371000.0


@dataclass(frozen=True)
class ClientMapping:
    """See the module contract."""

    cf: dict[str, Any] = field(default_factory=dict)
    pyart: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    #: subtracted from the scans' x and y when written (their false easting and
    #: northing, which Mdvx would read as kilometres)
    x_offset_m: float = 0.0
    y_offset_m: float = 0.0


def crs_of(attrs: dict[str, Any]):
    """The ``pyproj.CRS`` a mapping's attributes state (as text, else as CF), or
    ``None`` when they state none pyproj can read."""
    import pyproj

    for key in CRS_TEXT_ATTRS:
        text = attrs.get(key)
        if isinstance(text, str) and text.strip():
            try:
                return pyproj.CRS.from_user_input(text.strip())
            except pyproj.exceptions.CRSError:
                continue
    if "grid_mapping_name" in attrs:
        try:
            return pyproj.CRS.from_cf(dict(attrs))
        except (pyproj.exceptions.CRSError, KeyError, ValueError, TypeError):
            return None
    return None


def _attr_value(value: Any) -> Any:
    """A value netCDF can hold as an attribute."""
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    if isinstance(value, bool):
        return str(value).lower()
    return value


def _proj_params(crs) -> dict[str, Any]:
    """The PROJ parameters of ``crs`` (pyproj warns that the form is lossy: the
    exact CRS is kept as text beside them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return crs.to_dict()


def _proj4_of(crs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return crs.to_proj4()


def _cf_of(crs) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cf = crs.to_cf()
    cf = {k: _attr_value(v) for k, v in cf.items() if v is not None}
    if cf.get("grid_mapping_name") == "polar_stereographic":
        # Mdvx needs the pole as latitude_of_projection_origin (CF allows it)
        lat_0 = _proj_params(crs).get("lat_0", 90)
        cf.setdefault("latitude_of_projection_origin", 90.0 if lat_0 >= 0 else -90.0)
    return cf


def _pyart_of(crs) -> dict[str, Any]:
    out = {}
    for key, value in _proj_params(crs).items():
        if value is None or key == "type":
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(repr(float(v)) for v in value)
        out[key] = value
    out["_include_lon_0_lat_0"] = "false"
    return out


def _aeqd(origin: Origin, x0: float, y0: float) -> dict[str, Any]:
    return {
        "grid_mapping_name": "azimuthal_equidistant",
        "latitude_of_projection_origin": float(origin.latitude),
        "longitude_of_projection_origin": float(origin.longitude),
        "false_easting": float(x0),
        "false_northing": float(y0),
        "earth_radius": _EARTH_RADIUS_M,
    }


def _border(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Points along the grid's edges and through its centre (x, y in metres)."""
    x, y = np.asarray(grid.x_m, float), np.asarray(grid.y_m, float)
    xs = np.linspace(x[0], x[-1], 21)
    ys = np.linspace(y[0], y[-1], 21)
    px = np.concatenate([xs, xs, np.full(21, x[0]), np.full(21, x[-1]), xs])
    py = np.concatenate([np.full(21, y[0]), np.full(21, y[-1]), ys, ys,
                         np.full(21, (y[0] + y[-1]) / 2)])
    return px, py


#: the CF parameters Mdvx reads (besides ``grid_mapping_name`` and ``earth_radius``)
_MDVX_PARAMS = frozenset({
    "standard_parallel", "straight_vertical_longitude_from_pole",
    "latitude_of_projection_origin", "longitude_of_projection_origin",
    "longitude_of_central_meridian", "scale_factor_at_central_meridian",
    "scale_factor_at_projection_origin", "false_easting", "false_northing",
    "perspective_point_height",
})

#: the sphere Mdvx assumes when a mapping gives no ``earth_radius`` (m)
MDVX_DEFAULT_RADIUS_M = 6378137.0


def as_mdvx_reads(cf: dict[str, Any]):
    """The ``pyproj.CRS`` Mdvx computes with for the CF mapping ``cf``: the
    parameters it reads, on a sphere of ``earth_radius`` (its default when unset)."""
    import pyproj

    sphere = {k: v for k, v in cf.items() if k in _MDVX_PARAMS}
    sphere["grid_mapping_name"] = cf["grid_mapping_name"]
    sphere["earth_radius"] = float(cf.get("earth_radius", MDVX_DEFAULT_RADIUS_M))
    return pyproj.CRS.from_cf(sphere)


def approximation_error_m(grid: Grid, crs, cf: dict[str, Any]) -> float:
    """The largest distance (m), over the grid's edges and centre line, between
    where the exact ``crs`` and Mdvx reading the mapping ``cf``
    (:func:`as_mdvx_reads`) put the same x, y."""
    import pyproj

    px, py = _border(grid)
    exact = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon_e, lat_e = exact.transform(px, py)
    approx = pyproj.Transformer.from_crs(as_mdvx_reads(cf), "EPSG:4326",
                                         always_xy=True)
    lon_a, lat_a = approx.transform(px, py)
    _, _, dist = pyproj.Geod(ellps="WGS84").inv(lon_e, lat_e, lon_a, lat_a)
    dist = np.asarray(dist, float)
    return float(np.nanmax(dist)) if np.isfinite(dist).all() else math.inf


def _best_for_mdvx(grid: Grid, crs, origin: Origin | None):
    """``(cf, error_m, same_kind)``: of the projection's own CF form (when Mdvx
    knows the kind) and an azimuthal equidistant mapping about ``origin``, both
    on Mdvx's sphere (it does not use ``earth_radius`` when it places a grid:
    PrintMdv's latitudes match 6378137 m whatever the file says), the one Mdvx
    places closest to the exact projection."""
    translated = _cf_of(crs)
    candidates = []
    if translated.get("grid_mapping_name") in MDVX_MAPPINGS:
        candidates.append({**translated, "earth_radius": MDVX_DEFAULT_RADIUS_M})
    if origin is not None:
        candidates.append({**_aeqd(origin, *_origin_xy(crs, origin)),
                           "earth_radius": MDVX_DEFAULT_RADIUS_M})
    if not candidates:
        return None, math.inf, False
    scored = [(approximation_error_m(grid, crs, cf), i, cf)
              for i, cf in enumerate(candidates)]
    error, _, best = min(scored)
    return best, error, best.get("grid_mapping_name") == translated.get(
        "grid_mapping_name")


def _origin_xy(crs, origin: Origin) -> tuple[float, float]:
    import pyproj

    to_xy = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x0, y0 = to_xy.transform(origin.longitude, origin.latitude)
    return float(x0), float(y0)


def client_mapping(
    grid: Grid, origin: Origin | None, *, keep_coordinates: bool = False
) -> ClientMapping:
    """See the module contract (computed once for each grid and origin: a
    forecast set writes the same mapping into every file). ``keep_coordinates``
    leaves a false origin in place (a scan written in the input contract keeps
    its own x and y)."""
    x, y = np.asarray(grid.x_m, float), np.asarray(grid.y_m, float)
    key = (
        repr(sorted((k, repr(v)) for k, v in grid.mapping_attrs.items())),
        (x.size, float(x[0]), float(x[-1])) if x.size else (),
        (y.size, float(y[0]), float(y[-1])) if y.size else (),
        origin,
        keep_coordinates,
    )
    return _client_mapping(key, grid, origin, keep_coordinates)


@functools.lru_cache(maxsize=32)
def _cached(key) -> list:
    return []


def _client_mapping(
    key, grid: Grid, origin: Origin | None, keep: bool
) -> ClientMapping:
    slot = _cached(key)
    if not slot:
        own = {k: _attr_value(v) for k, v in grid.mapping_attrs.items()}
        crs = crs_of(own) if own else None
        mapping = _mapping(grid, origin, own, crs)
        slot.append(mapping if keep else _without_false_origin(mapping, crs, own))
    return slot[0]


def _shifted_crs(crs, dx: float, dy: float):
    """``crs`` with its false easting and northing lowered by ``dx``, ``dy``."""
    import pyproj

    params = _proj_params(crs)
    params.pop("type", None)
    params["x_0"] = float(params.get("x_0", 0.0)) - dx
    params["y_0"] = float(params.get("y_0", 0.0)) - dy
    return pyproj.CRS.from_dict(params)


def _without_false_origin(mapping: ClientMapping, crs, own: dict) -> ClientMapping:
    """The mapping with a zero false easting and northing, the grid's x and y
    lowered by them instead: Mdvx reads ``false_easting`` and ``false_northing``
    as kilometres while it converts x and y from metres, so any other value
    puts the grid in the wrong place for TITAN. The scans' own projection text
    is kept as ``source_<name>``, the one written describes the shifted grid."""
    dx = float(mapping.cf.get("false_easting", 0.0) or 0.0)
    dy = float(mapping.cf.get("false_northing", 0.0) or 0.0)
    if dx == 0.0 and dy == 0.0:
        return mapping
    cf = {**mapping.cf, "false_easting": 0.0, "false_northing": 0.0}
    pyart = mapping.pyart
    if crs is not None:
        shifted = _shifted_crs(crs, dx, dy)
        for key in CRS_TEXT_ATTRS:
            if key in own:
                cf[f"source_{key}"] = own[key]
                cf[key] = (shifted.to_wkt() if key in ("crs_wkt", "spatial_ref")
                           else _proj4_of(shifted))
        if "crs_wkt" in cf:
            cf["crs_wkt"] = shifted.to_wkt()
        pyart = _pyart_of(shifted)
    cf["nowcast_offset_note"] = (
        f"x and y are the scans' own less {dx:.3f} m and {dy:.3f} m (their false "
        f"easting and northing), so that LROSE's Mdvx, which reads false_easting "
        f"in km, places the grid right"
    )
    return ClientMapping(cf=cf, pyart=pyart, note=mapping.note,
                         x_offset_m=dx, y_offset_m=dy)


def _mapping(grid: Grid, origin: Origin | None, own: dict, crs) -> ClientMapping:
    """The mapping before its false origin is taken out."""
    if crs is not None:
        pyart = _pyart_of(crs)
    elif origin is not None:
        pyart = {"proj": "pyart_aeqd", "_include_lon_0_lat_0": "true"}
    else:
        pyart = {}

    if own.get("grid_mapping_name") in MDVX_MAPPINGS and (
        crs is None or "earth_radius" in own
    ):
        return ClientMapping(cf=own, pyart=pyart)
    if crs is not None:
        best, error, same_kind = _best_for_mdvx(grid, crs, origin)
        if best is not None:
            return _described(own, crs, best, error, same_kind, pyart)
    if origin is None:
        if own:
            note = ("the scans' grid mapping names no projection LROSE reads and the "
                    "scans state no origin: set [radar] site_latitude and "
                    "site_longitude to place the forecasts")
        else:
            note = ("the scans carry no grid mapping and no origin: forecasts cannot "
                    "be placed on a map (set [radar] site_latitude and site_longitude)")
        return ClientMapping(cf=own, pyart=pyart, note=note)
    aeqd = _aeqd(origin, 0.0, 0.0)
    if not own:
        return ClientMapping(cf=aeqd, pyart=pyart)
    return ClientMapping(cf={**own, **aeqd}, pyart=pyart,
                         note="the scans' grid mapping states no projection "
                              "pyproj reads: written as azimuthal equidistant "
                              "about the origin")


#: how far (m) Mdvx may place a point from the exact projection before we say so
_NOTE_ABOVE_M = 100.0


def _described(own: dict, crs, best: dict, error: float, same_kind: bool,
               pyart: dict) -> ClientMapping:
    """The chosen Mdvx mapping with the scan's own attributes and the exact WKT,
    and a note when Mdvx will place the grid more than 100 m off."""
    # the sphere Mdvx uses replaces the ellipsoid's CF parameters (crs_wkt keeps it)
    cf = {k: v for k, v in best.items()
          if k not in ("semi_major_axis", "semi_minor_axis", "inverse_flattening")}
    cf = {**own, **cf, "crs_wkt": crs.to_wkt()}
    name = _cf_of(crs).get("grid_mapping_name") or _proj_params(crs).get(
        "proj", "this projection")
    exact_name = next((k for k in CRS_TEXT_ATTRS if k in own), "crs_wkt")
    centre = (f"azimuthal_equidistant about "
              f"{best.get('latitude_of_projection_origin', 0.0):.4f}N "
              f"{best.get('longitude_of_projection_origin', 0.0):.4f}E")
    if same_kind:
        what = f"{name} on a sphere of 6378137 m, as LROSE/TITAN compute it"
    elif _cf_of(crs).get("grid_mapping_name") in MDVX_MAPPINGS:
        what = (f"{centre}, which LROSE/TITAN place closer to the exact grid than "
                f"their spherical {name}")
    else:
        what = f"{centre}, for LROSE/TITAN, which do not know {name}"
    comment = (f"grid_mapping_name is {what}; {exact_name} is the grid's exact "
               f"projection; the two place a point at most {error:.0f} m apart "
               f"over this grid")
    cf["nowcast_mapping_note"] = comment
    note = comment if error > _NOTE_ABOVE_M else ""
    return ClientMapping(cf=cf, pyart=pyart, note=note)
