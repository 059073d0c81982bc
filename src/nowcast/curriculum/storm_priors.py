"""The storm-tracked prior of a training window: train with the prior you forecast with.

Contract
--------
At forecast time :class:`~nowcast.forecasters.model.ModelForecaster` moves the
last scan along the storm-tracked prior (:func:`nowcast.forecasters.storm_prior.
cell_prior`: the optical flow, and TITAN's track motion over tracked storms),
and the network adds its residual motion and intensity change to that. Trained
with the flow alone, the residual learns corrections to a motion it never runs
on. With ``[curriculum] storm_prior = true`` each training window carries the
same prior the forecaster would build for it, and the trainer passes it to the
network (:class:`nowcast.model.network.MotionPrior`).

- :func:`window_prior` is the one place both build it: the input frames
  ``(t, z, y, x)`` dBZ, their times (seconds), the grid spacing, the step, the
  flow ``(2, y, x)`` px/step, the tracker and the :class:`CellPriorParams` give
  the sample arrays

  ================= ========================= ===================================
  key               shape (float32)           meaning
  ================= ========================= ===================================
  ``prior_disp``    ``(T, 2, Y, X)``          backward displacement of each lead, px
  ``prior_motion``  ``(T, 2, Y, X)``          motion of each step, px/step
  ``prior_mask``    ``(T, Y, X)``             1 where the pixel moves with a storm
  ``prior_ceiling`` ``(Y, X)``                unit-range cap of the field the flow
                                              moves (1: no cap)
  ================= ========================= ===================================

  ``prior_disp`` and ``prior_motion`` are vector fields (x then y): the
  augmentation turns them with the field (:mod:`.augment`), a crop cuts them
  like the frames.
- :func:`batch_prior` is the :class:`MotionPrior` of a collated batch (``None``
  when the batch carries none; its ceiling ``None`` where nothing is capped).
- :func:`prior_key` names the settings a cached prior was made with (the cell
  prior's parameters and the tracker's), so a cache never serves a prior made
  otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nowcast.model.normalise import to_unit

#: the sample keys of a window's prior
PRIOR_KEYS = ("prior_disp", "prior_motion", "prior_mask", "prior_ceiling")


def window_prior(
    past: np.ndarray,
    times_s: Sequence[float],
    *,
    dx_m: float,
    step_s: float,
    flow: np.ndarray,
    n_leads: int,
    params: Any,
    tracker: Any,
    dbz_min: float = 0.0,
    dbz_max: float = 70.0,
    context: Any = None,
) -> tuple[dict[str, np.ndarray], int]:
    """The prior's sample arrays of ``past`` (module contract) and its storm count."""
    from nowcast.forecasters.storm_prior import cell_prior

    cp = cell_prior(
        np.asarray(past, dtype=np.float32),
        list(times_s),
        dx_m=float(dx_m),
        step_s=float(step_s),
        flow=np.asarray(flow, dtype=np.float32),
        n_leads=int(n_leads),
        params=params,
        tracker=tracker,
        context=context,
    )
    ny, nx = cp.disp.shape[-2:]
    if cp.ceiling is None:
        ceiling = np.ones((ny, nx), np.float32)
    else:
        cap = np.minimum(cp.ceiling, dbz_max)
        ceiling = to_unit(cap, dbz_min, dbz_max).astype(np.float32)
    arrays = {
        "prior_disp": np.asarray(cp.disp, dtype=np.float32),
        "prior_motion": np.asarray(cp.motion, dtype=np.float32),
        "prior_mask": cp.mask.astype(np.float32),
        "prior_ceiling": ceiling,
    }
    return arrays, len(cp.storms)


def batch_prior(batch: Mapping[str, Any], device: Any = None):
    """The :class:`~nowcast.model.network.MotionPrior` of a batch, or ``None``."""
    if "prior_disp" not in batch:
        return None
    from nowcast.model.network import MotionPrior

    def on(key):
        t = batch[key]
        return t if device is None else t.to(device, non_blocking=True)

    ceiling = on("prior_ceiling")
    if bool((ceiling >= 1.0).all()):  # nothing capped: the warp without a cap
        ceiling = None
    return MotionPrior(on("prior_disp"), on("prior_mask"), ceiling, on("prior_motion"))


def prior_key(params: Any, tracker: Any) -> str:
    """A short name of the prior's settings: the cell prior's and the tracker's."""
    signature = getattr(tracker, "_signature", None)
    tracking = repr(signature() if callable(signature) else tracker)
    blob = json.dumps(
        {"cell_prior": params.to_dict(), "tracker": tracking}, sort_keys=True
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]
