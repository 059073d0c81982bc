"""dBZ <-> the network's unit range.

Contract
--------
- :func:`to_unit` maps dBZ linearly so that ``dbz_min -> 0`` and ``dbz_max -> 1``,
  clips to ``[0, 1]`` and turns NaN (no radar coverage) into 0 (no echo): the
  network never sees NaN.
- :func:`from_unit` is the inverse map (no clipping below; NaN stays NaN).
- Both accept a NumPy array or a torch tensor and return the same kind (float32
  for arrays).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


def _check_range(dbz_min: float, dbz_max: float) -> float:
    span = float(dbz_max) - float(dbz_min)
    if not span > 0:
        raise ValueError(
            f"dbz_max ({dbz_max}) must be above dbz_min ({dbz_min}) to normalise"
        )
    return span


def to_unit(dbz: ArrayLike, dbz_min: float = 0.0, dbz_max: float = 70.0) -> ArrayLike:
    """dBZ -> ``[0, 1]``; NaN -> 0 (no echo).

    Parameters
    ----------
    dbz
        Reflectivity in dBZ, any shape.
    dbz_min, dbz_max
        The values mapped to 0 and 1; values outside are clipped.

    Returns
    -------
    Same type as ``dbz``: float32 array or a tensor of ``dbz``'s floating dtype.
    """
    span = _check_range(dbz_min, dbz_max)
    if isinstance(dbz, torch.Tensor):
        x = dbz if dbz.is_floating_point() else dbz.float()
        x = ((x - dbz_min) / span).clamp(0.0, 1.0)
        return torch.nan_to_num(x, nan=0.0)
    x = (np.asarray(dbz, dtype=np.float32) - np.float32(dbz_min)) / np.float32(span)
    x = np.clip(x, 0.0, 1.0)
    return np.nan_to_num(x, nan=0.0).astype(np.float32, copy=False)


def from_unit(
    unit: ArrayLike, dbz_min: float = 0.0, dbz_max: float = 70.0
) -> ArrayLike:
    """``[0, 1]`` -> dBZ (the inverse of :func:`to_unit` inside the range)."""
    span = _check_range(dbz_min, dbz_max)
    if isinstance(unit, torch.Tensor):
        return unit * span + dbz_min
    u = np.asarray(unit, dtype=np.float32)
    return (u * np.float32(span) + np.float32(dbz_min)).astype(np.float32, copy=False)
