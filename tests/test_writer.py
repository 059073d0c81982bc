"""The TITAN contract: layout, attributes, packing, atomic writes, _latest_data_info."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import make_grid
from nowcast.errors import ForecastWriteError
from nowcast.radar import (
    Scan,
    forecast_rel_path,
    read_latest_data_info,
    read_scan,
    write_forecast_set,
    write_scan,
)
from nowcast.radar.ldata import ASCII_NAME, XML_NAME

ISSUE = datetime(2024, 6, 1, 12, 30, tzinfo=timezone.utc)
LEADS = [300 * k for k in range(1, 8)]


def _volumes(grid, n=7, seed=0):
    rng = np.random.default_rng(seed)
    vol = rng.uniform(0, 60, size=(n, *grid.shape)).astype(np.float32)
    vol[:, :, 0, 0] = np.nan  # no coverage
    return vol


def _write(tmp_path, layout="forecast", **kw):
    grid = make_grid(3, 20, 24)
    vols = _volumes(grid)
    files = write_forecast_set(
        tmp_path, ISSUE, LEADS, vols, grid, method="persistence", model="m.pt",
        layout=layout, **kw,
    )
    return grid, vols, files


def test_forecast_layout_paths(tmp_path):
    _, _, files = _write(tmp_path)
    rels = [f.rel_path for f in files]
    assert rels[0] == "20240601/g_123000/f_00000300.nc"
    assert rels[-1] == "20240601/g_123000/f_00002100.nc"
    assert all((tmp_path / r).is_file() for r in rels)
    assert [f.valid_time for f in files] == [
        ISSUE + timedelta(seconds=s) for s in LEADS
    ]
    leftovers = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert leftovers == []  # no temporary files left


def test_forecast_file_contents_netcdf4(tmp_path):
    grid, vols, files = _write(tmp_path)
    with netCDF4.Dataset(files[2].path) as ds:
        assert ds.Conventions == "CF-1.8"
        assert ds.nowcast_method == "persistence"
        assert ds.nowcast_model == "m.pt"
        assert ds.dimensions["time"].size == 1
        assert ds["x"].standard_name == "projection_x_coordinate"
        assert ds["y"].standard_name == "projection_y_coordinate"
        assert ds["z"].standard_name == "altitude"
        assert ds["z"].positive == "up"
        assert ds["x"].units == ds["z"].units == "m"
        assert ds["x"].axis == "X" and ds["z"].axis == "Z"
        dbz = ds["DBZ"]
        assert dbz.dimensions == ("time", "z", "y", "x")
        assert dbz.dtype == np.int16
        assert dbz.scale_factor == pytest.approx(0.01)
        assert dbz._FillValue == -32768
        assert dbz.units == "dBZ"
        assert dbz.standard_name == "equivalent_reflectivity_factor"
        assert dbz.grid_mapping == "grid_mapping"
        filters = dbz.filters()
        assert filters["zlib"] is True
        assert dbz.chunking() == [1, 1, 20, 24]
        assert ds["grid_mapping"].grid_mapping_name == "azimuthal_equidistant"
        t = netCDF4.num2date(ds["time"][0], ds["time"].units)
        ref = netCDF4.num2date(
            ds["forecast_reference_time"][0], ds["forecast_reference_time"].units
        )
        assert (t.year, t.hour, t.minute) == (2024, 12, 45)
        assert (ref.hour, ref.minute) == (12, 30)
        assert float(ds["forecast_period"][0]) == 900.0
        assert float(ds["origin_latitude"][0]) == 46.0
        assert "projection" in ds.variables
        data = dbz[0]
        assert np.ma.is_masked(data[:, 0, 0])
        np.testing.assert_allclose(data[:, 1:, 1:], vols[2][:, 1:, 1:], atol=0.006)


def test_forecast_file_contents_xarray(tmp_path):
    _, vols, files = _write(tmp_path)
    with xr.open_dataset(files[0].path) as ds:
        assert ds["DBZ"].dims == ("time", "z", "y", "x")
        assert ds["time"].values[0] == np.datetime64("2024-06-01T12:35:00")
        assert float(ds["forecast_period"].values[0]) == 300.0
        np.testing.assert_allclose(
            ds["DBZ"].values[0, :, 1:, 1:], vols[0][:, 1:, 1:], atol=0.006
        )
        assert np.isnan(ds["DBZ"].values[0, 0, 0, 0])


def test_forecast_read_back_through_scan_reader(tmp_path):
    grid, vols, files = _write(tmp_path)
    scan = read_scan(files[-1].path)
    assert scan.time == ISSUE + timedelta(seconds=2100)
    assert scan.dbz.shape == grid.shape
    np.testing.assert_allclose(scan.grid.x_m, grid.x_m)
    np.testing.assert_allclose(scan.grid.z_m, grid.z_m)
    np.testing.assert_allclose(scan.dbz[:, 1:, 1:], vols[-1][:, 1:, 1:], atol=0.006)


def test_latest_data_info_forecast(tmp_path):
    _, _, files = _write(tmp_path)
    info = read_latest_data_info(tmp_path)
    assert info.is_forecast
    assert info.time == ISSUE  # generation time; the lead is separate
    assert info.lead_s == 2100
    assert info.rel_data_path == files[-1].rel_path
    assert info.writer == "nowcast"
    text = (tmp_path / XML_NAME).read_text()
    for tag in (
        "unix_time", "year", "month", "day", "hour", "min", "sec", "rel_data_path",
        "file_ext", "data_type", "user_info1", "user_info2", "is_forecast",
        "forecast_lead_secs", "writer",
    ):
        assert f"<{tag}>" in text
    lines = (tmp_path / ASCII_NAME).read_text().splitlines()
    assert lines[0].split()[0] == str(int(ISSUE.timestamp()))
    assert lines[0].split()[1:] == ["2024", "06", "01", "12", "30", "00"]
    assert lines[1] == "nc"
    assert lines[2] == files[-1].rel_path
    assert lines[4:] == ["1", "2100"]


def test_stale_fmq_files_removed(tmp_path):
    for name in ("_latest_data_info.stat", "_latest_data_info.buf"):
        (tmp_path / name).write_bytes(b"x")
    _write(tmp_path)
    assert not (tmp_path / "_latest_data_info.stat").exists()
    assert not (tmp_path / "_latest_data_info.buf").exists()


def test_valid_time_layout(tmp_path):
    _, _, files = _write(tmp_path, layout="valid_time")
    assert files[0].rel_path == "20240601/123500.nc"
    info = read_latest_data_info(tmp_path)
    assert not info.is_forecast
    assert info.time == ISSUE + timedelta(seconds=2100)
    # a newer forecast for the same valid time wins
    grid = make_grid(3, 20, 24)
    newer = np.full((1, *grid.shape), 42.0, dtype=np.float32)
    write_forecast_set(
        tmp_path, ISSUE + timedelta(seconds=300), [300], newer, grid,
        method="titan", layout="valid_time",
    )
    scan = read_scan(tmp_path / "20240601/124000.nc")
    assert float(scan.dbz.max()) == pytest.approx(42.0)


def test_motion_fields(tmp_path):
    grid = make_grid(2, 10, 12)
    vols = _volumes(grid)
    motion = np.ones((7, 2, 10, 12), dtype=np.float32)
    motion[:, 1] = -3.0
    files = write_forecast_set(
        tmp_path, ISSUE, LEADS, vols, grid, method="model", motion=motion
    )
    with netCDF4.Dataset(files[0].path) as ds:
        assert ds["U"].units == "m s-1"
        assert ds["U"].dimensions == ("time", "z", "y", "x")
        assert float(ds["V"][0, 1, 5, 5]) == -3.0


def test_rel_path_layouts():
    assert forecast_rel_path(ISSUE, 60, "forecast") == "20240601/g_123000/f_00000060.nc"
    with pytest.raises(ValueError, match="unknown output layout"):
        forecast_rel_path(ISSUE, 60, "mdv")


def test_shape_mismatch_is_refused(tmp_path):
    grid = make_grid(3, 20, 24)
    with pytest.raises(ValueError, match="do not match grid"):
        write_forecast_set(
            tmp_path, ISSUE, [300], np.zeros((1, 3, 10, 10)), grid, method="x"
        )


def test_unwritable_output_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file where the output directory should be")
    with pytest.raises(ForecastWriteError, match="cannot write forecast"):
        _write(out)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [out]


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """A write that fails half way (disk full) leaves neither the file nor a temp."""
    import nowcast.radar.writer as writer

    real = writer._write_motion

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_write_motion", boom)
    grid = make_grid(2, 10, 12)
    with pytest.raises(ForecastWriteError, match="No space left"):
        write_forecast_set(
            tmp_path, ISSUE, LEADS, _volumes(grid), grid, method="m",
            motion=np.zeros((7, 2, 10, 12)),
        )
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(writer, "_write_motion", real)


def test_write_scan_input_contract(tmp_path):
    grid = make_grid(2, 10, 12)
    vol = np.full(grid.shape, 25.0, dtype=np.float32)
    vol[0, 0, 0] = np.nan
    path = write_scan(Scan(ISSUE, vol, grid), tmp_path)
    assert path == tmp_path / "20240601" / "ncf_20240601_123000.nc"
    back = read_scan(path)
    assert back.time == ISSUE
    assert np.isnan(back.dbz[0, 0, 0])
    assert back.dbz[1, 5, 5] == pytest.approx(25.0)


def test_pyart_reads_our_forecast(tmp_path):
    import pyart  # the test extra installs it: never a skip
    _, vols, files = _write(tmp_path)
    grid = pyart.io.read_grid(str(files[0].path))
    assert "DBZ" in grid.fields
    assert grid.fields["DBZ"]["data"].shape == (3, 20, 24)
    assert float(grid.origin_latitude["data"][0]) == 46.0
    np.testing.assert_allclose(
        np.ma.filled(grid.fields["DBZ"]["data"], np.nan)[:, 1:, 1:],
        vols[0][:, 1:, 1:], atol=0.006,
    )


def test_scan_roundtrip_real_case(fmi_files, tmp_path):
    scan = read_scan(fmi_files[0])
    path = write_scan(scan, tmp_path)
    back = read_scan(path)
    assert back.time == scan.time
    np.testing.assert_allclose(back.dbz, scan.dbz, atol=0.006, equal_nan=True)
    assert back.grid.mapping_attrs["proj4_params"] == scan.grid.mapping_attrs[
        "proj4_params"
    ]



THREADS_READING_AND_WRITING = """
import sys, threading
from datetime import datetime, timezone
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[2])
from conftest import make_grid
from nowcast.radar import Scan, read_scan, write_scan

out = Path(sys.argv[1])
grid = make_grid(4, 120, 120)
when = datetime(2024, 6, 1, 12, 30, tzinfo=timezone.utc)
vol = np.random.default_rng(0).uniform(0, 60, grid.shape).astype(np.float32)
path = write_scan(Scan(when, vol, grid), out / "in")
errors = []

def reader():
    try:
        for _ in range(40):
            assert read_scan(path).dbz.shape == grid.shape
    except BaseException as exc:
        errors.append(exc)

def writer(k):
    try:
        for _ in range(15):
            write_scan(Scan(when, vol, grid), out / f"w{k}")
    except BaseException as exc:
        errors.append(exc)

threads = [threading.Thread(target=reader) for _ in range(4)]
threads += [threading.Thread(target=writer, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("errors", errors)
sys.exit(1 if errors else 0)
"""


def test_threads_reading_and_writing_at_once_do_not_crash(tmp_path):
    """HDF5 is not thread-safe: the monitor's field loaders reading two
    forecasts at once killed a test run with a segmentation fault (2026-12-08).
    Every netCDF4 call of ours holds one lock (nowcast.radar.netcdf_lock)."""
    script = tmp_path / "threads.py"
    script.write_text(THREADS_READING_AND_WRITING)
    tests = str(Path(__file__).parent)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), tests],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
