"""The in-memory radar scan: a time, a ``(z, y, x)`` dBZ volume and its grid.

Contract
--------
- ``Scan.dbz`` is float32, shape ``(z, y, x)``, in dBZ; NaN means no radar coverage;
  values below the configured floor have been clipped to it (no echo).
- ``Grid`` holds what is needed to write a forecast on the same grid: coordinates in
  metres (x, y ascending as stored; z in metres above the reference), the grid-mapping
  variable's name and attributes, and the radar origin when known.
- ``Scan.time`` is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Origin:
    """The radar site (or grid origin): degrees and metres above sea level."""

    latitude: float
    longitude: float
    altitude_m: float = 0.0


@dataclass(frozen=True)
class Grid:
    """Coordinates and projection of a scan's grid."""

    x_m: np.ndarray
    y_m: np.ndarray
    z_m: np.ndarray
    mapping_name: str | None = None
    mapping_attrs: dict[str, Any] = field(default_factory=dict)
    origin: Origin | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z_m.size, self.y_m.size, self.x_m.size)

    @property
    def dx_m(self) -> float:
        """Horizontal spacing in metres (mean absolute step along x)."""
        return float(np.abs(np.diff(self.x_m)).mean()) if self.x_m.size > 1 else 1000.0

    @property
    def dy_m(self) -> float:
        return float(np.abs(np.diff(self.y_m)).mean()) if self.y_m.size > 1 else 1000.0

    def pooled(self, factor: int) -> "Grid":
        """The grid after ``factor x factor`` average pooling (block-mean coordinates)."""
        if factor == 1:
            return self
        nx = self.x_m.size // factor * factor
        ny = self.y_m.size // factor * factor
        x = self.x_m[:nx].reshape(-1, factor).mean(axis=1)
        y = self.y_m[:ny].reshape(-1, factor).mean(axis=1)
        return replace(self, x_m=x, y_m=y)

    def same_horizontal(self, other: "Grid", atol_m: float = 1.0) -> bool:
        return (
            self.x_m.shape == other.x_m.shape
            and self.y_m.shape == other.y_m.shape
            and bool(np.allclose(self.x_m, other.x_m, atol=atol_m))
            and bool(np.allclose(self.y_m, other.y_m, atol=atol_m))
        )


@dataclass(frozen=True)
class Scan:
    """One radar volume: the unit the daemon, the simulator and training share."""

    time: datetime
    dbz: np.ndarray
    grid: Grid
    source: Path | None = None
    variable: str = "DBZ"

    def __post_init__(self) -> None:
        if self.dbz.ndim != 3:
            raise ValueError(f"Scan.dbz must be (z, y, x), got shape {self.dbz.shape}")
        if self.dbz.shape != self.grid.shape:
            raise ValueError(
                f"Scan.dbz shape {self.dbz.shape} does not match grid {self.grid.shape}"
            )
