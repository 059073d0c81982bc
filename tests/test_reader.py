"""The input contract: every file family read right, every bad input rejected by name."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from conftest import RADAR_CASES, RADAR_CASES_MORE
from nowcast.errors import ScanError
from nowcast.radar import read_scan

T0 = datetime(2024, 6, 1, 12, 30, tzinfo=timezone.utc)
EPOCH_S = T0.timestamp()


def _field(nz=4, ny=30, nx=40):
    z, y, x = np.meshgrid(
        np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij"
    )
    return (10.0 + z * 5 + 0.5 * y + 0.25 * x).astype(np.float32)


def write_lrose(path: Path, nz=4, ny=30, nx=40, packed=True) -> np.ndarray:
    """LROSE Radx2Grid / Mdv2NetCDF style: x0/y0/z0 in km, packed short DBZ."""
    data = _field(nz, ny, nx)
    data[0, 0, 0] = np.nan  # no coverage
    data[1, 2, 3] = -20.0  # below the floor
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.Conventions = "CF-1.5"
        ds.createDimension("time", None)
        ds.createDimension("z0", nz)
        ds.createDimension("y0", ny)
        ds.createDimension("x0", nx)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "seconds since 1970-01-01T00:00:00Z"
        t.standard_name = "time"
        t[:] = [EPOCH_S]
        for name, n, std in (
            ("x0", nx, "projection_x_coordinate"),
            ("y0", ny, "projection_y_coordinate"),
        ):
            v = ds.createVariable(name, "f4", (name,))
            v.units = "km"
            v.standard_name = std
            v[:] = np.arange(n) * 0.5 - n * 0.25
        z = ds.createVariable("z0", "f4", ("z0",))
        z.units = "km"
        z.positive = "up"
        z[:] = 0.5 + np.arange(nz)
        gm = ds.createVariable("grid_mapping_0", "i4", ())
        gm.grid_mapping_name = "azimuthal_equidistant"
        gm.latitude_of_projection_origin = 40.0
        gm.longitude_of_projection_origin = -105.0
        if packed:
            var = ds.createVariable(
                "DBZ", "i2", ("time", "z0", "y0", "x0"), fill_value=np.int16(-32768)
            )
            var.scale_factor = np.float32(0.5)
            var.add_offset = np.float32(10.0)
            var.missing_value = np.int16(-32767)
            var.set_auto_maskandscale(False)
            raw = np.round((np.nan_to_num(data, nan=0) - 10.0) / 0.5).astype(np.int16)
            raw[0, 0, 0] = -32768
            raw[0, 0, 1] = -32767  # missing_value
            var[0] = raw
        else:
            var = ds.createVariable(
                "DBZ", "f4", ("time", "z0", "y0", "x0"), fill_value=np.float32(-9999)
            )
            var[0] = np.nan_to_num(data, nan=-9999)
        var.units = "dBZ"
        var.grid_mapping = "grid_mapping_0"
    return data


def write_pyart(path: Path, nz=3, ny=20, nx=24, fmt="NETCDF4") -> np.ndarray:
    """Py-ART ``write_grid`` style: x/y/z in m, float reflectivity, origin_*."""
    data = _field(nz, ny, nx)
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", 1)
        ds.createDimension("z", nz)
        ds.createDimension("y", ny)
        ds.createDimension("x", nx)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = f"seconds since {T0:%Y-%m-%dT%H:%M:%S}Z"
        t[:] = [0.0]
        for name, n, std in (
            ("x", nx, "projection_x_coordinate"),
            ("y", ny, "projection_y_coordinate"),
            ("z", nz, None),
        ):
            v = ds.createVariable(name, "f8", (name,))
            v.units = "m"
            if std:
                v.standard_name = std
            else:
                v.positive = "up"
            v[:] = np.arange(n) * 1000.0
        for name, value in (
            ("origin_latitude", 36.5),
            ("origin_longitude", -97.5),
            ("origin_altitude", 320.0),
        ):
            v = ds.createVariable(name, "f8", ("time",))
            v[:] = [value]
        var = ds.createVariable(
            "reflectivity", "f4", ("time", "z", "y", "x"), fill_value=-9999.0
        )
        var.standard_name = "equivalent_reflectivity_factor"
        var[0] = data
    return data


def test_lrose_family_km_coordinates_and_packing(tmp_path):
    path = tmp_path / "ncf_20240601_123000.nc"
    data = write_lrose(path)
    scan = read_scan(path)
    assert scan.time == T0
    assert scan.dbz.shape == (4, 30, 40)
    assert scan.dbz.dtype == np.float32
    np.testing.assert_allclose(scan.grid.x_m[:2], [-10000.0, -9500.0])
    np.testing.assert_allclose(scan.grid.z_m, [500, 1500, 2500, 3500])
    assert np.isnan(scan.dbz[0, 0, 0]) and np.isnan(scan.dbz[0, 0, 1])
    assert scan.dbz[1, 2, 3] == 0.0  # clipped to the floor
    expect = np.maximum(data, 0)
    np.testing.assert_allclose(scan.dbz[2], expect[2], atol=0.26)
    assert scan.grid.mapping_name == "grid_mapping_0"
    assert scan.grid.mapping_attrs["grid_mapping_name"] == "azimuthal_equidistant"
    assert scan.grid.origin.latitude == 40.0


def test_lrose_float_variable(tmp_path):
    path = tmp_path / "scan.nc"
    write_lrose(path, packed=False)
    scan = read_scan(path)
    assert np.isnan(scan.dbz[0, 0, 0])
    assert scan.dbz.shape == (4, 30, 40)


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_pyart_family_by_standard_name(tmp_path, fmt):
    path = tmp_path / "grid.nc"
    data = write_pyart(path, fmt=fmt)
    scan = read_scan(path)
    assert scan.variable == "reflectivity"
    assert scan.time == T0
    np.testing.assert_allclose(scan.dbz, data, rtol=1e-6)
    assert scan.grid.origin.longitude == -97.5
    assert scan.grid.origin.altitude_m == 320.0


def test_configured_variable_name_and_floor(tmp_path):
    path = tmp_path / "grid.nc"
    write_pyart(path)
    scan = read_scan(path, variable="reflectivity", dbz_floor=20.0)
    assert float(np.nanmin(scan.dbz)) == 20.0
    with pytest.raises(ScanError, match="no variable 'DBZH'"):
        read_scan(path, variable="DBZH")


def test_time_from_file_name_when_no_time_variable(tmp_path):
    path = tmp_path / "radar_20230102-030405.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", 5)
        ds.createDimension("x", 6)
        for n, size in (("x", 6), ("y", 5)):
            ds.createVariable(n, "f4", (n,))[:] = np.arange(size)
        ds.createVariable("DBZH", "f4", ("y", "x"))[:] = np.full((5, 6), 30.0)
    scan = read_scan(path)
    assert scan.time == datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert scan.dbz.shape == (1, 5, 6)  # no z: one level


def test_shared_radar_case_reads(fmi_files):
    scan = read_scan(fmi_files[0])
    assert scan.dbz.shape == (1, 500, 500)
    assert scan.time == datetime(2016, 9, 28, 14, 45, tzinfo=timezone.utc)
    assert scan.grid.dx_m == pytest.approx(1000.0, rel=1e-3)
    assert np.isnan(scan.dbz).any()  # outside the composite
    assert float(np.nanmin(scan.dbz)) == 0.0  # -32 dBZ no echo clipped


@pytest.mark.skipif(not RADAR_CASES_MORE.is_dir(), reason="radar-cases-more missing")
def test_cagliari_120m_case_reads():
    files = sorted(RADAR_CASES_MORE.glob("unica-*/*/*.nc"))
    scan = read_scan(files[0])
    assert scan.grid.dx_m == pytest.approx(120.0, rel=0.01)
    assert np.isnan(scan.dbz[0, 0, 0])  # corner outside the radar's range


# ---- bad input: a ScanError naming the file and the reason -----------------------


def _good_copy(fmi_files, tmp_path) -> Path:
    target = tmp_path / fmi_files[0].name
    shutil.copy(fmi_files[0], target)
    return target


def test_missing_file(tmp_path):
    with pytest.raises(ScanError, match="no such file") as info:
        read_scan(tmp_path / "nope.nc")
    assert "nope.nc" in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "ncf_20240601_120000.nc"
    path.touch()
    with pytest.raises(ScanError, match="empty file") as info:
        read_scan(path)
    assert str(path) in str(info.value)


def test_truncated_file(fmi_files, tmp_path):
    path = _good_copy(fmi_files, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ScanError, match="truncated") as info:
        read_scan(path)
    assert info.value.path == path


def test_not_netcdf(tmp_path):
    path = tmp_path / "ncf_20240601_120000.nc"
    path.write_text("this is not a radar scan\n")
    with pytest.raises(ScanError, match="not a readable NetCDF"):
        read_scan(path)


def test_missing_variable(tmp_path):
    path = tmp_path / "scan.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("VEL", "f4", ("x",))[:] = [1, 2, 3]
    with pytest.raises(ScanError, match="no reflectivity variable"):
        read_scan(path)


def test_unexpected_grid_shape(tmp_path):
    path = tmp_path / "grid.nc"
    write_pyart(path)
    with pytest.raises(ScanError, match="unexpected grid shape"):
        read_scan(path, expected_shape=(18, 500, 500))
    assert read_scan(path, expected_shape=(0, 20, 24)).dbz.shape == (3, 20, 24)


def test_unexpected_dimension(tmp_path):
    path = tmp_path / "scan.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("sweep", 3)
        ds.createDimension("range", 4)
        ds.createVariable("DBZ", "f4", ("sweep", "range"))[:] = np.zeros((3, 4))
    with pytest.raises(ScanError, match="unexpected dimension 'sweep'"):
        read_scan(path)


def _tiny_2x2(path: Path, dtype: str = "f4", values=None, fill=None) -> None:
    """A 2 x 2 one-level file with x/y coordinates and a DBZ variable."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", 2)
        ds.createDimension("x", 2)
        for n in "xy":
            ds.createVariable(n, "f4", (n,))[:] = [0, 1]
        var = ds.createVariable("DBZ", dtype, ("y", "x"), fill_value=fill)
        var.set_auto_maskandscale(False)
        var[:] = np.ones((2, 2)) if values is None else values


def test_unreadable_time(tmp_path):
    path = tmp_path / "scan_without_time.nc"
    _tiny_2x2(path)
    with netCDF4.Dataset(path, "a") as ds:
        t = ds.createVariable("time", "f8", ())
        t.units = "seconds since not-a-date"
        t.assignValue(0.0)
    with pytest.raises(ScanError, match="cannot tell the scan time"):
        read_scan(path)


def test_all_missing(tmp_path):
    path = tmp_path / "ncf_20240601_120000.nc"
    _tiny_2x2(
        path, "i2", np.full((2, 2), -32768, dtype=np.int16), fill=np.int16(-32768)
    )
    with pytest.raises(ScanError, match="all missing"):
        read_scan(path)


def test_linear_reflectivity_is_refused(tmp_path):
    path = tmp_path / "ncf_20240601_120000.nc"
    _tiny_2x2(path, values=np.full((2, 2), 1e5))
    with pytest.raises(ScanError, match="not reflectivity in dBZ"):
        read_scan(path)


@pytest.mark.skipif(not RADAR_CASES.is_dir(), reason="shared radar cases missing")
def test_every_shared_case_file_is_accepted():
    files = sorted(RADAR_CASES.glob("*/*/*.nc"))
    assert len(files) == 160
    for path in files:
        scan = read_scan(path)
        assert scan.dbz.shape == (1, 500, 500)
