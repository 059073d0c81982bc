"""Field helpers and continuous scores: the column-maximum composite and the MAE.

Contract
--------
- :func:`column_max` reduces the level axis (third from the end) of ``(z, y, x)``
  or ``(..., z, y, x)`` volumes to their maximum, ignoring NaN; a column is NaN only
  when all its levels are (no coverage anywhere in it). No warning is emitted for
  such columns.
- :func:`mae` and :func:`mae_sums` use only the pixels where both fields are
  finite (the observation is covered and the forecast has a value). The sums add
  up across forecasts: ``MAE = abs_error / count``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def column_max(volume: np.ndarray) -> np.ndarray:
    """NaN-ignoring maximum over the level axis.

    Parameters
    ----------
    volume
        ``(z, y, x)`` or ``(..., z, y, x)`` dBZ, NaN for no coverage.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` or ``(..., y, x)``, the input's float dtype; NaN where every
        level of the column is NaN.
    """
    volume = np.asarray(volume)
    if volume.ndim < 3:
        raise ValueError(
            f"column_max needs (z, y, x) or (..., z, y, x), got shape {volume.shape}"
        )
    if not np.issubdtype(volume.dtype, np.floating):
        return volume.max(axis=-3)
    valid = np.isfinite(volume)
    out = np.where(valid, volume, -np.inf).max(axis=-3)
    out[~valid.any(axis=-3)] = np.nan
    return out


@dataclass(frozen=True)
class MaeSums:
    """Sum of absolute errors and the number of pixels, for a running MAE."""

    abs_error: float = 0.0
    count: int = 0

    def __add__(self, other: "MaeSums") -> "MaeSums":
        if not isinstance(other, MaeSums):
            return NotImplemented
        return MaeSums(self.abs_error + other.abs_error, self.count + other.count)

    @property
    def mae(self) -> float:
        """Mean absolute error in dBZ; NaN when no pixel was scored."""
        return self.abs_error / self.count if self.count else float("nan")


def mae_sums(forecast: np.ndarray, observed: np.ndarray) -> MaeSums:
    """Absolute-error sum and pixel count over pixels where both are finite."""
    forecast = np.asarray(forecast)
    observed = np.asarray(observed)
    if forecast.shape != observed.shape:
        raise ValueError(
            f"forecast shape {forecast.shape} does not match observed shape "
            f"{observed.shape}"
        )
    both = np.isfinite(forecast) & np.isfinite(observed)
    diff = np.abs(
        forecast[both].astype(np.float64) - observed[both].astype(np.float64)
    )
    return MaeSums(float(diff.sum()), int(both.sum()))


def mae(forecast: np.ndarray, observed: np.ndarray) -> float:
    """Mean absolute error in dBZ over the covered pixels.

    Parameters
    ----------
    forecast, observed
        dBZ arrays of the same shape; NaN in either excludes the pixel.

    Returns
    -------
    float
        NaN when no pixel is finite in both.
    """
    return mae_sums(forecast, observed).mae
