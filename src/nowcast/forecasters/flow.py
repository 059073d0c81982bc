"""The optical-flow prior: the motion the advection network starts from.

Contract
--------
- Every motion here is in **pixels a time step** of the model grid, ``(2, y, x)``
  with channel 0 along x (the last axis, columns) and channel 1 along y (rows):
  pysteps' order and :mod:`nowcast.model.warp`'s. In px/step the network does not
  care about the grid spacing: the 240 m Cagliari grid and the 2 km composites
  are seen the same way (a storm simply moves more pixels a step on the fine
  grid).
- :func:`flow_prior` is what the network gets at inference as its starting
  motion: pysteps' dense Lucas-Kanade
  (:func:`nowcast.forecasters.pysteps_methods.lucas_kanade_motion`) on the column
  maximum of the given frames (the newest ``3`` input frames by default), NaN (no
  coverage) filled with the floor first. A field without echo gives zeros.
  float32. Needs pysteps and OpenCV (a :class:`~nowcast.errors.ForecasterError`
  naming the extra otherwise).
- :func:`filled_composite` is the column maximum it is computed on, with no
  coverage filled as no echo (the regime classes of :mod:`nowcast.curriculum`
  use the same composite).
- Training (:mod:`nowcast.curriculum.datasets`) and forecasting
  (:mod:`nowcast.forecasters.model`) both call :func:`flow_prior`, so the network
  sees the same motion in both.
"""

from __future__ import annotations

import warnings

import numpy as np

#: input frames the optical-flow prior is computed from (the newest ones)
FLOW_FRAMES = 3


def filled_composite(frames: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """``(t, z, y, x)`` dBZ -> ``(t, y, x)`` column maximum; NaN -> ``floor``."""
    x = np.asarray(frames, dtype=np.float32)
    filled = np.where(np.isfinite(x), x, np.float32(floor))
    return np.maximum(filled.max(axis=1), np.float32(floor))


def flow_prior(frames: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Lucas-Kanade motion ``(2, y, x)`` px/step of ``(t, z, y, x)`` dBZ frames.

    Parameters
    ----------
    frames
        At least two frames, oldest first (the newest :data:`FLOW_FRAMES` inputs).
    floor
        No echo (``radar.dbz_floor``).
    """
    from nowcast.forecasters.pysteps_methods import lucas_kanade_motion

    composite = filled_composite(frames, floor)
    with warnings.catch_warnings():
        # pysteps' outlier detection warns on flat neighbourhoods; the result holds
        warnings.filterwarnings("ignore", "Singular matrix", UserWarning)
        return lucas_kanade_motion(composite, floor).astype(np.float32)
