"""Real clients read the forecasts we make from every source family in ../shared:
Py-ART's ``read_grid`` (it needs an origin: derived from the grid mapping when the
scan states none) and xarray."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conftest import SHARED
from nowcast.cli import main
from nowcast.radar import read_scan

#: one case a source family (the scan interval is read from the file names)
FAMILIES = {
    "fmi": "radar-cases/fmi-20160928",
    "meteoswiss": "radar-cases/mch-20150515",
    "knmi": "radar-cases-more/knmi-20210101",
    "cagliari": "radar-cases-more/unica-20180505_1745",
    "bom": "radar-cases-steps/bom2-20180616",
    "mrms": "radar-cases-steps/mrms-20190610-1",
}


def _interval_s(files: list[Path]) -> int:
    from nowcast.radar.names import time_from_name

    a, b = time_from_name(files[0]), time_from_name(files[1])
    return int((b - a).total_seconds())


@pytest.fixture(scope="module")
def forecasts(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """``{family: (first forecast file, newest scan, interval)}`` by `nowcast
    predict`."""
    import os

    out = {}
    root = tmp_path_factory.mktemp("clients")
    for family, case in FAMILIES.items():
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


@pytest.mark.parametrize("family", sorted(FAMILIES))
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


@pytest.mark.parametrize("family", sorted(FAMILIES))
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
