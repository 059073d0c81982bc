"""Motion for training: the optical-flow prior and the simulator's true motion.

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
  (:func:`nowcast.baselines.pysteps_methods.lucas_kanade_motion`) on the column
  maximum of the given frames (the newest ``3`` input frames by default), NaN (no
  coverage) filled with the floor first. A field without echo gives zeros.
  float32. Needs pysteps and OpenCV (a :class:`~nowcast.errors.ForecasterError`
  naming the extra otherwise).
- :func:`motion_to_px` turns the simulator's m/s into px/step:
  ``motion * interval_s / dx_m``.
"""

from __future__ import annotations

import warnings

import numpy as np

#: input frames the optical-flow prior is computed from (the newest ones)
FLOW_FRAMES = 3


def column_max(frames: np.ndarray, floor: float = 0.0) -> np.ndarray:
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
    from nowcast.baselines.pysteps_methods import lucas_kanade_motion

    composite = column_max(frames, floor)
    with warnings.catch_warnings():
        # pysteps' outlier detection warns on flat neighbourhoods; the result holds
        warnings.filterwarnings("ignore", "Singular matrix", UserWarning)
        return lucas_kanade_motion(composite, floor).astype(np.float32)


def motion_to_px(motion_ms: np.ndarray, interval_s: float, dx_m: float) -> np.ndarray:
    """m/s -> px/step (float32), for the simulator's ``(..., 2, y, x)`` motion."""
    scale = np.float32(float(interval_s) / float(dx_m))
    return (np.asarray(motion_ms, dtype=np.float32) * scale).astype(np.float32)
