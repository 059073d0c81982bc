"""Radar files in and out, and the grid operations between radar and model grids.

- :func:`read_scan`: the input contract (see :mod:`nowcast.radar.reader`).
- :func:`write_forecast_set`: the TITAN contract (see :mod:`nowcast.radar.writer`).
- :func:`write_scan`: scans in the input contract (the simulator's output).
- :func:`pool`, :func:`upsample`: model grid <-> radar grid
  (see :mod:`nowcast.radar.grid_ops`). They need torch, which is imported on
  first use of either name (``from nowcast.radar import pool`` works as ever), so
  that reading and writing files (the monitor, the CLI) never loads torch.
"""

from typing import Any

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

_LAZY = {"pool": "nowcast.radar.grid_ops", "upsample": "nowcast.radar.grid_ops"}


def __getattr__(name: str) -> Any:
    """Import the torch-using names (``pool``, ``upsample``) on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
