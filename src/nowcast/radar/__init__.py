"""Radar files in and out, and the grid operations between radar and model grids.

- :func:`read_scan`: the input contract (see :mod:`nowcast.radar.reader`).
- :func:`write_forecast_set`: the TITAN contract (see :mod:`nowcast.radar.writer`).
- :func:`write_scan`: scans in the input contract (the simulator's output).
- :func:`pool`, :func:`upsample`: model grid <-> radar grid
  (see :mod:`nowcast.radar.grid_ops`).
"""

from nowcast.radar.grid_ops import pool, upsample
from nowcast.radar.ldata import LatestDataInfo, read_latest_data_info
from nowcast.radar.reader import read_scan
from nowcast.radar.scan import Grid, Origin, Scan
from nowcast.radar.writer import (
    ForecastFile,
    forecast_rel_path,
    scan_rel_path,
    write_forecast_set,
    write_scan,
)

__all__ = [
    "ForecastFile",
    "Grid",
    "LatestDataInfo",
    "Origin",
    "Scan",
    "forecast_rel_path",
    "pool",
    "read_latest_data_info",
    "read_scan",
    "scan_rel_path",
    "upsample",
    "write_forecast_set",
    "write_scan",
]
