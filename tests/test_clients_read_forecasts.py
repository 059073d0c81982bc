"""Real clients read the forecasts we make from every source family in ../shared
and from simulated 18-level volumes: Py-ART's ``read_grid`` (it needs an origin:
derived from the grid mapping when the scan states none), xarray with pyproj, and
LROSE's own reader Mdvx through ``PrintMdv`` (what TITAN reads its grids with)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from datetime import datetime, timezone
from pathlib import Path

import netCDF4
import numpy as np
import pyproj
import pytest
import xarray as xr

from conftest import SHARED
from nowcast.cli import main
from nowcast.radar import read_scan
from nowcast.radar.grid_mapping import crs_of

#: one case a source family (the scan interval is read from the file names)
FAMILIES = {
    "fmi": "radar-cases/fmi-20160928",
    "meteoswiss": "radar-cases/mch-20150515",
    "knmi": "radar-cases-more/knmi-20210101",
    "cagliari": "radar-cases-more/unica-20180505_1745",
    "bom": "radar-cases-steps/bom2-20180616",
    "mrms": "radar-cases-steps/mrms-20190610-1",
}
ALL = sorted([*FAMILIES, "simulated"])

PRINT_MDV = SHARED / "lrose" / "bin" / "PrintMdv"

#: the projection Mdvx must report for each family (what the writer chooses)
MDVX_PROJECTION = {
    "fmi": "Polar Stereographic",
    "knmi": "Polar Stereographic",
    "bom": "Albers Equal Area",
    "meteoswiss": "Flat",  # oblique Mercator: Mdvx does not know it
    "mrms": "Flat",  # equidistant cylindrical: likewise
    "cagliari": "Flat",  # Mdvx's spherical transverse Mercator is 23 km off
    "simulated": "Flat",
}


def _interval_s(files: list[Path]) -> int:
    from nowcast.radar.names import time_from_name

    a, b = time_from_name(files[0]), time_from_name(files[1])
    return int((b - a).total_seconds())


def _simulated_scans(root: Path) -> list[Path]:
    out = root / "simulated-scans"
    assert main(["simulate", "--out", str(out), "--scans", "8", "--levels", "18",
                 "--size", "120", "--regime", "supercell", "--seed", "3"]) == 0
    return sorted(out.rglob("*.nc"))


@pytest.fixture(scope="module")
def forecasts(tmp_path_factory) -> dict[str, tuple[Path, Path, int]]:
    """``{family: (first forecast file, newest scan, interval)}`` by `nowcast
    predict`."""
    out = {}
    root = tmp_path_factory.mktemp("clients")
    for family in ALL:
        if family == "simulated":
            files = _simulated_scans(root)
        else:
            case = FAMILIES[family]
            files = sorted((SHARED / "data" / case).glob("*/*.nc"))[:8]
            if len(files) < 8:
                pytest.skip(f"shared case {case} not found under {SHARED}")
        interval = _interval_s(files)
        scans = root / family / "scans"
        for f in files:
            (scans / f.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, scans / f.parent.name / f.name)
        os.environ["NOWCAST_GRID__INTERVAL_S"] = str(interval)
        try:
            status = main(["predict", "--input", str(scans), "--output",
                           str(root / family / "out"), "--method", "persistence",
                           "--limit", "1"])
        finally:
            del os.environ["NOWCAST_GRID__INTERVAL_S"]
        assert status == 0, family
        first = sorted((root / family / "out").rglob("f_*.nc"))[0]
        out[family] = (first, files[-1], interval)
    return out


def _exact_lonlat(scan_path: Path, ix, iy):
    """Longitude and latitude of grid points by the scan's own projection."""
    scan = read_scan(scan_path)
    crs = crs_of(scan.grid.mapping_attrs)
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return to_lonlat.transform(scan.grid.x_m[ix], scan.grid.y_m[iy])


def _probe_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row indices of the corners and two inner points of an n x n grid."""
    return np.array([0, n - 1, 0, n - 1, n // 2, n // 3]), np.array(
        [0, 0, n - 1, n - 1, n // 2, 2 * n // 3])


@pytest.mark.parametrize("family", ALL)
def test_pyart_reads_the_forecast_of_every_source_family(forecasts, family):
    import pyart

    path, scan_path, _ = forecasts[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = pyart.io.read_grid(str(path))
    scan = read_scan(scan_path)
    assert scan.grid.origin is not None
    lat = float(np.ravel(grid.origin_latitude["data"])[0])
    lon = float(np.ravel(grid.origin_longitude["data"])[0])
    assert lat == pytest.approx(scan.grid.origin.latitude, abs=1e-6)
    assert lon == pytest.approx(scan.grid.origin.longitude, abs=1e-6)
    assert -90 < lat < 90 and -180 <= lon <= 180
    dbz = grid.fields["DBZ"]["data"]
    assert dbz.shape == scan.dbz.shape
    # persistence of the newest scan, pooled 2 x 2 and upsampled back: the peak
    # is the scan's, smoothed by at most a few dBZ
    peak = np.nanmax(np.ma.filled(dbz.astype(float), np.nan))
    assert np.nanmax(scan.dbz) - 8.0 < peak <= np.nanmax(scan.dbz) + 0.01


@pytest.mark.parametrize("family", ALL)
def test_xarray_reads_the_forecast_with_cf_times(forecasts, family):
    path, scan_path, interval = forecasts[family]
    with xr.open_dataset(path) as ds:
        assert ds["DBZ"].attrs["units"] == "dBZ"
        assert ds["DBZ"].shape[1:] == read_scan(scan_path).dbz.shape
        assert np.issubdtype(ds["time"].dtype, np.datetime64)
        period = ds["forecast_period"].values.ravel()[0]
        if np.issubdtype(np.asarray(period).dtype, np.timedelta64):
            period = period / np.timedelta64(1, "s")
        assert float(period) == interval


@pytest.mark.parametrize("family", ALL)
def test_pyart_places_the_grid_where_the_scan_is(forecasts, family):
    """Py-ART's longitude and latitude of grid points are the scan's own projection's
    (to a metre), although x and y were written less the false origin."""
    import pyart

    path, scan_path, _ = forecasts[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = pyart.io.read_grid(str(path))
    lon, lat = grid.get_point_longitude_latitude(level=0)
    ix, iy = _probe_points(lon.shape[1])
    lon_e, lat_e = _exact_lonlat(scan_path, ix, iy)
    _, _, dist = pyproj.Geod(ellps="WGS84").inv(lon[iy, ix], lat[iy, ix], lon_e, lat_e)
    assert np.max(dist) < 1.0


@pytest.mark.parametrize("family", ALL)
def test_cf_readers_place_the_grid_where_the_scan_is(forecasts, family):
    """pyproj's CF reader on the written grid mapping (crs_wkt first, as CF says)
    and the written x, y give the scan's own places."""
    path, scan_path, _ = forecasts[family]
    with xr.open_dataset(path) as ds:
        name = ds["DBZ"].attrs.get("grid_mapping") or ds["DBZ"].encoding.get(
            "grid_mapping")
        crs = pyproj.CRS.from_cf(ds[name].attrs)
        x, y = ds["x"].values.astype(float), ds["y"].values.astype(float)
    ix, iy = _probe_points(x.size)
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(x[ix], y[iy])
    lon_e, lat_e = _exact_lonlat(scan_path, ix, iy)
    _, _, dist = pyproj.Geod(ellps="WGS84").inv(lon, lat, lon_e, lat_e)
    assert np.max(dist) < 1.0


# -- LROSE ------------------------------------------------------------------------

def _print_mdv(*args: str) -> str:
    if not PRINT_MDV.exists():
        pytest.skip(f"LROSE's PrintMdv is not under {PRINT_MDV.parent}")
    run = subprocess.run([str(PRINT_MDV), *args], capture_output=True, text=True,
                         timeout=120)
    assert "error while loading shared libraries" not in run.stderr, (
        "PrintMdv cannot start: install its Debian runtime packages "
        "(scripts/setup.sh does as root): " + run.stderr)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


def _field(text: str, key: str) -> str:
    match = re.search(rf"^\s*{re.escape(key)}:?\s+(.*?)\s*$", text, re.MULTILINE)
    assert match, f"no {key!r} in PrintMdv's output"
    return match.group(1)


def _numbers(text: str, key: str) -> list[float]:
    return [float(v) for v in _field(text, key).split(",")]


def _planes(text: str) -> np.ndarray:
    """The ``-data -float`` planes: run-length ``n*value`` tokens, ``MISS`` = NaN."""
    planes, current = [], None
    for line in text.splitlines():
        if re.match(r"FLOAT32 data for plane \d+:", line):
            current = []
            planes.append(current)
            continue
        if current is None:
            continue
        if not line.strip():
            if current:
                current = None
            continue
        for token in line.split():
            count, _, value = token.rpartition("*")
            current += [np.nan if value == "MISS" else float(value)] * int(count or 1)
    return np.array(planes, dtype=float)


@pytest.mark.parametrize("family", ALL)
def test_lrose_reads_the_forecast_headers(forecasts, family):
    """Mdvx's master and field headers: a forecast, its gen time and lead, DBZ
    in dBZ, the grid and levels as written, the projection we chose for it."""
    path, scan_path, interval = forecasts[family]
    text = _print_mdv("-f", str(path))
    with netCDF4.Dataset(path) as ds:
        issue = datetime.fromtimestamp(
            float(ds["forecast_reference_time"][0]), timezone.utc)
        x, y, z = (ds[v][:].astype(float) for v in ("x", "y", "z"))
        nz = ds["DBZ"].shape[1]
    assert _field(text, "data_collection_type") == "Forecast"
    assert _field(text, "time_gen") == f"{issue:%Y/%m/%d %H:%M:%S}"
    assert int(_field(text, "forecast_delta")) == interval
    assert _field(text, "field_name") == "DBZ"
    assert _field(text, "units") == "dBZ"
    assert _numbers(text, "nx, ny, nz") == [x.size, y.size, nz]
    assert nz == (18 if family == "simulated" else 1)
    levels = [float(v) for v in re.findall(r"vlevel\[\s*\d+\]:\s+(\S+)", text)]
    np.testing.assert_allclose(levels, z / 1000.0, atol=1e-3)
    minx, miny, _ = _numbers(text, "minx, miny, minz")
    dx, dy, _ = _numbers(text, "dx, dy, dz")
    assert minx == pytest.approx(x[0] / 1000.0, abs=1e-3)
    assert miny == pytest.approx(y[0] / 1000.0, abs=1e-3)
    assert dx == pytest.approx((x[-1] - x[0]) / (x.size - 1) / 1000.0, rel=1e-4)
    assert dy == pytest.approx((y[-1] - y[0]) / (y.size - 1) / 1000.0, rel=1e-4)
    assert _field(text, "proj_type").startswith(MDVX_PROJECTION[family])


@pytest.mark.parametrize("family", ALL)
def test_lrose_places_the_grid_within_the_stated_error(forecasts, family):
    """Mdvx's latitude and longitude range of the grid is the exact one, within
    the distance the file's ``nowcast_mapping_note`` states (Mdvx computes on a
    sphere and knows fewer projections); without a false origin taken out it is
    thousands of km away."""
    path, scan_path, _ = forecasts[family]
    text = _print_mdv("-f", str(path))
    min_lat, min_lon = _numbers(text, "minLat, minLon")
    max_lat, max_lon = _numbers(text, "maxLat, maxLon")
    scan = read_scan(scan_path)
    n = scan.grid.x_m.size
    edge = np.r_[np.arange(n), np.full(n, n - 1), np.arange(n)[::-1], np.zeros(n, int)]
    other = np.r_[np.zeros(n, int), np.arange(n), np.full(n, n - 1), np.arange(n)[::-1]]
    lon, lat = _exact_lonlat(scan_path, edge, other)
    with netCDF4.Dataset(path) as ds:
        note = ds[ds["DBZ"].grid_mapping].getncattr("nowcast_mapping_note")
    stated_m = float(re.search(r"at most (\d+) m apart", note).group(1))
    tolerance_deg = (stated_m + 600.0) / 111_000.0  # + a grid step of rounding
    assert min_lat == pytest.approx(np.min(lat), abs=tolerance_deg)
    assert max_lat == pytest.approx(np.max(lat), abs=tolerance_deg)
    cos = np.cos(np.radians(np.mean(lat)))
    assert min_lon == pytest.approx(np.min(lon), abs=tolerance_deg / cos)
    assert max_lon == pytest.approx(np.max(lon), abs=tolerance_deg / cos)


@pytest.mark.parametrize("family", ALL)
def test_lrose_reads_the_values_netcdf4_reads(forecasts, family):
    path, _, _ = forecasts[family]
    planes = _planes(_print_mdv("-f", str(path), "-data", "-float"))
    with netCDF4.Dataset(path) as ds:
        expected = ds["DBZ"][0].filled(np.nan).astype(float)
    assert planes.shape == (expected.shape[0], expected[0].size)
    got = planes.reshape(expected.shape)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.nanmax(np.abs(got - expected)) < 1e-3
    assert np.nanmax(expected) > 10.0  # a real field, not an empty one
