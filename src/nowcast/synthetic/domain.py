"""The simulated radar's domain: where the storms are drawn, in kilometres.

Contract
--------
- :class:`Domain` holds the pixel-centre coordinates of the grid in km, ``x`` and
  ``y`` ascending with spacing ``dx_km`` and centred on the radar (0, 0), and the
  level heights ``z`` in km above the radar. Array index ``[k, j, i]`` is level
  ``z[k]``, northing ``y[j]``, easting ``x[i]``.
- :meth:`Domain.grid` gives the :class:`nowcast.radar.Grid` scans are written on:
  the same coordinates in metres, an ``azimuthal_equidistant`` grid mapping centred
  on the site and the site as :class:`~nowcast.radar.Origin`.
- :meth:`Domain.coverage` is the radar's range ring: True where a pixel is within
  ``range_km`` of the radar (the circle inscribed in the grid when 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nowcast.radar import Grid, Origin


@dataclass(frozen=True)
class Domain:
    """A square grid of ``size`` x ``size`` pixels, ``dx_km`` apart, and its levels."""

    size: int
    dx_km: float
    z: np.ndarray

    @classmethod
    def make(
        cls, size: int, levels: int, dx_km: float, bottom_km: float, top_km: float
    ) -> "Domain":
        """Build a domain; ``levels`` heights evenly spaced from bottom to top."""
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if levels < 1:
            raise ValueError(f"levels must be at least 1, got {levels}")
        if dx_km <= 0:
            raise ValueError(f"dx_km must be positive, got {dx_km}")
        z = np.linspace(bottom_km, top_km, levels) if levels > 1 else [bottom_km]
        return cls(int(size), float(dx_km), np.asarray(z, dtype=np.float32))

    @property
    def nz(self) -> int:
        return int(self.z.size)

    @property
    def x0(self) -> float:
        """Easting (and northing) of pixel 0 in km."""
        return -(self.size - 1) / 2 * self.dx_km

    @property
    def x(self) -> np.ndarray:
        return (self.x0 + self.dx_km * np.arange(self.size)).astype(np.float32)

    @property
    def y(self) -> np.ndarray:
        return self.x

    @property
    def half_km(self) -> float:
        """Distance from the centre to the outermost pixel centres."""
        return (self.size - 1) / 2 * self.dx_km

    @property
    def area_km2(self) -> float:
        return (self.size * self.dx_km) ** 2

    @property
    def dz_km(self) -> float:
        return float(np.diff(self.z).mean()) if self.nz > 1 else 1.0

    def index_range(self, low_km: float, high_km: float) -> tuple[int, int]:
        """Pixel indices ``[i0, i1)`` whose centres fall in ``[low_km, high_km]``."""
        i0 = int(np.ceil((low_km - self.x0) / self.dx_km))
        i1 = int(np.floor((high_km - self.x0) / self.dx_km)) + 1
        return max(i0, 0), min(i1, self.size)

    def coverage(self, range_km: float = 0.0) -> np.ndarray:
        """``(y, x)`` bool: pixels within ``range_km`` of the radar."""
        radius = range_km if range_km > 0 else self.half_km
        x = self.x
        return (x[None, :] ** 2 + x[:, None] ** 2) <= radius**2

    def grid(self, latitude: float, longitude: float, altitude_m: float) -> Grid:
        """The scan grid: metres, azimuthal equidistant about the site."""
        metres = self.x.astype(np.float64) * 1000.0
        return Grid(
            x_m=metres,
            y_m=metres.copy(),
            z_m=self.z.astype(np.float64) * 1000.0,
            mapping_name="grid_mapping",
            mapping_attrs={
                "grid_mapping_name": "azimuthal_equidistant",
                "latitude_of_projection_origin": float(latitude),
                "longitude_of_projection_origin": float(longitude),
                "false_easting": 0.0,
                "false_northing": 0.0,
            },
            origin=Origin(float(latitude), float(longitude), float(altitude_m)),
        )
