"""The reflectivity colour scale for matplotlib, and one map panel of a field.

Contract
--------
- :func:`colour_scale` ``-> (cmap, norm)``: the classes of
  :mod:`nowcast.monitor.palette` (5 dBZ steps from 5 to 75 dBZ, NWS-like colours),
  below 5 dBZ white (no echo), NaN light grey (no coverage), above 80 dBZ the top
  colour. The monitor and the pictures therefore show the same colours.
- :func:`draw_field` draws a 2D dBZ field on an axes with x/y in km (north up:
  rows in increasing y), returns the image for the colour bar.
- :func:`composite` is the column maximum of a ``(z, y, x)`` volume (NaN where the
  whole column has no coverage).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from nowcast.monitor.palette import BOUNDS, CLASS_COLOURS

NO_ECHO_COLOUR = "#ffffff"
NO_COVERAGE_COLOUR = "#d0d0d0"
TOP_DBZ = 80.0


def colour_scale() -> tuple[Any, Any]:
    """``(ListedColormap, BoundaryNorm)`` of the reflectivity classes."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap(list(CLASS_COLOURS), name="nowcast_dbz")
    cmap = cmap.with_extremes(
        under=NO_ECHO_COLOUR, over=CLASS_COLOURS[-1], bad=NO_COVERAGE_COLOUR
    )
    norm = BoundaryNorm([*BOUNDS, TOP_DBZ], cmap.N)
    return cmap, norm


def composite(volume: np.ndarray) -> np.ndarray:
    """Column maximum of ``(z, y, x)`` dBZ; NaN where the column is all NaN."""
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim == 2:
        return volume
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return np.nanmax(volume, axis=0)


def draw_field(
    ax: Any, dbz: np.ndarray, x_km: np.ndarray, y_km: np.ndarray, title: str = ""
) -> Any:
    """Draw ``dbz`` (y, x) on ``ax`` with km axes; return the image artist."""
    cmap, norm = colour_scale()
    field = np.ma.masked_invalid(np.asarray(dbz, dtype=np.float32))
    x_km = np.asarray(x_km, dtype=float)
    y_km = np.asarray(y_km, dtype=float)
    dx = abs(x_km[1] - x_km[0]) if x_km.size > 1 else 1.0
    dy = abs(y_km[1] - y_km[0]) if y_km.size > 1 else 1.0
    if y_km.size > 1 and y_km[0] > y_km[-1]:  # rows north to south: flip to south up
        field, y_km = field[::-1], y_km[::-1]
    if x_km.size > 1 and x_km[0] > x_km[-1]:
        field, x_km = field[:, ::-1], x_km[::-1]
    extent = (
        x_km[0] - dx / 2, x_km[-1] + dx / 2, y_km[0] - dy / 2, y_km[-1] + dy / 2
    )
    image = ax.imshow(
        field, origin="lower", extent=extent, cmap=cmap, norm=norm,
        interpolation="nearest",
    )
    ax.set_aspect("equal")
    if title:
        ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return image
