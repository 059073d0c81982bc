"""The storm-tracked motion prior: optical flow everywhere, TITAN's motion on storms.

Contract
--------
The advection head moves the last observation along a prior motion plus its own
correction. With the plain optical-flow prior (:func:`flow_displacements`) a
convective cell moves with the flow around it; on radar and on the simulator's
supercells a tracked cell often moves otherwise (propagation, deviant motion), and
TITAN's storm tracking (:mod:`nowcast.forecasters.titan`) follows it better at long
leads. :func:`cell_prior` combines the two as per-lead backward displacements:

1. ``D_k``, the optical-flow displacement of lead ``k`` (``k = 1..n_leads``): the
   flow ``(2, y, x)`` px/step composed semi-Lagrangian step by step
   (:func:`nowcast.model.warp.compose_displacement`, exactly as the network
   composes it without this prior).
2. The storms of the newest frame are identified and tracked through the input
   frames by ``tracker`` (a :class:`~nowcast.forecasters.titan.TitanForecaster`:
   its threshold, minimum size and matching). A track seen in at least
   ``min_scans`` scans moves with its trend velocity ``u`` (px/step, undamped)
   with the weight ``w = min(history / history_full_s, 1)`` TITAN gives young
   tracks.
3. Over the storm's footprint moved to lead ``k`` (``k u``, whole pixels), the
   displacement becomes ``(1 - w) D_k + w k u``: the storm moves rigidly, as in
   TITAN; elsewhere ``D_k`` stands. Larger storms are painted last (they win
   where footprints meet). ``mask[k]`` marks those pixels.
4. **Ghosts.** Where a storm's motion departs from the flow around it (mean
   flow over a ``ring_px`` ring outside the footprint) by more than ``clear_px``
   pixels over the forecast (``|flow - u| n_leads w``), the flow also drags a
   copy of the storm along behind the moved storm. When the track is also
   *straight* (the RMS distance of its newest centroids, up to
   ``len(tracker.params.weights)`` and at least 3, from their least-squares
   line is under ``fit_px`` pixels), the storm's motion is trusted over the
   flow's and the storm is *cleared*:
   its footprint, grown by ``dilate_px``, is capped at ``cap_dbz`` in the field
   the flow moves (``ceiling``, dBZ, ``+inf`` where nothing is capped), and its
   moved footprint (``mask``) is grown by as much. The forecast of lead ``k`` is
   then ``warp(last, D)`` inside ``mask[k]`` and ``warp(min(last, ceiling), D)``
   outside (:class:`nowcast.model.network.MotionPrior`).
   ``clear_px = inf`` never clears. A storm whose track wanders keeps both: the
   flow's copy is a hedge against a wrong storm motion (on the real cases,
   clearing every deviating storm cost CSI 35 dBZ 0.01 at t+35; on the
   simulated supercells not clearing cost 0.25; BENCHMARKS.md).

Everything is in pixels of the grid given and px/step; ``(2, ...)`` vectors are
x then y (pysteps' order). No storm tracked: the result is the flow prior
exactly. :class:`CellPriorParams` (defaults: the rule measured in
BENCHMARKS.md, ``[model.cell_prior]`` in config.toml) is built from a plain dict
with :meth:`CellPriorParams.from_dict`; unknown keys raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import ndimage

from nowcast.model.warp import steady_displacements

__all__ = [
    "CellPrior",
    "CellPriorParams",
    "cell_prior",
    "flow_displacements",
    "track_scatter_px",
]


@dataclass(frozen=True)
class CellPriorParams:
    """How tracked storms enter the motion prior (see the module contract)."""

    min_scans: int = 2
    clear_px: float = 2.0
    fit_px: float = 0.2
    dilate_px: int = 1
    ring_px: int = 3
    cap_dbz: float = 30.0

    def __post_init__(self) -> None:
        if self.min_scans < 2:
            raise ValueError(
                f"cell_prior: min_scans must be >= 2, got {self.min_scans}"
            )
        if min(self.clear_px, self.fit_px, self.dilate_px) < 0 or self.ring_px < 1:
            raise ValueError(
                "cell_prior: clear_px, fit_px and dilate_px must be >= 0 and "
                "ring_px >= 1"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``clear_px = inf`` as ``None``) for a checkpoint."""
        out = asdict(self)
        if math.isinf(self.clear_px):
            out["clear_px"] = None
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CellPriorParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"cell_prior: unknown keys {', '.join(unknown)}")
        kwargs = dict(values)
        if kwargs.get("clear_px", 0.0) is None:
            kwargs["clear_px"] = math.inf
        return cls(**kwargs)


class CellPrior(NamedTuple):
    """The prior of one forecast (see the module contract)."""

    disp: np.ndarray
    """``(n_leads, 2, y, x)`` float32 backward displacement, px."""
    mask: np.ndarray
    """``(n_leads, y, x)`` bool: pixels moved with a storm."""
    motion: np.ndarray
    """``(n_leads, 2, y, x)`` float32 px/step: the motion of each step,
    ``(1 - w) (D_k - D_{k-1}) + w u`` inside ``mask[k]``, the flow's elsewhere."""
    ceiling: np.ndarray | None
    """``(y, x)`` float32 dBZ cap of the field the flow moves; None: no storm
    cleared."""
    storms: list[dict[str, Any]]
    """Per storm used: track id, ``u``/``v`` px/step, weight, cleared."""


def track_scatter_px(track: Any, n_newest: int, dx_m: float) -> float:
    """RMS distance (px) of a track's newest centroids from their fitted line.

    Unweighted least squares of x and y against time over the newest
    ``n_newest`` entries; ``inf`` with fewer than 3 (a line through two points
    says nothing about how straight the track is).
    """
    t = np.asarray(track.times_s[-n_newest:], dtype=np.float64)
    if t.size < 3:
        return math.inf
    dist2 = np.zeros_like(t)
    for values in (track.x_km, track.y_km):
        v = np.asarray(values[-n_newest:], dtype=np.float64)
        dist2 += (v - np.polyval(np.polyfit(t, v, 1), t)) ** 2
    return float(np.sqrt(dist2.mean()) / (dx_m / 1000.0))


def flow_displacements(flow: np.ndarray, n_leads: int) -> np.ndarray:
    """``(2, y, x)`` px/step -> ``(n_leads, 2, y, x)`` semi-Lagrangian displacements."""
    motion = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))[None]
    with torch.no_grad():
        return steady_displacements(motion, n_leads)[0].numpy()


def cell_prior(
    frames: np.ndarray,
    times_s: Sequence[float],
    *,
    dx_m: float,
    step_s: float,
    flow: np.ndarray,
    n_leads: int,
    params: CellPriorParams,
    tracker: Any,
    context: Any = None,
) -> CellPrior:
    """The storm-tracked prior of ``frames`` ``(t, z, y, x)`` dBZ (module contract).

    Parameters
    ----------
    times_s
        Seconds of each frame (any origin), strictly increasing.
    dx_m, step_s
        Grid spacing and the forecast step (one lead).
    flow
        The optical-flow prior ``(2, y, x)`` px/step.
    tracker
        A :class:`~nowcast.forecasters.titan.TitanForecaster` (its ``track`` and
        ``params``).
    context
        The :class:`~nowcast.forecasters.interface.SequenceContext` of the sequence
        ``frames`` end (checked by the caller), so the tracks are shared with the
        ``titan`` baseline; ``None`` tracks here.
    """
    from nowcast.forecasters.titan_tracking import trend_scale

    disp = flow_displacements(flow, n_leads)
    steps = np.diff(disp, axis=0, prepend=np.zeros_like(disp[:1]))
    motion = steps.copy()
    ny, nx = disp.shape[-2:]
    mask = np.zeros((n_leads, ny, nx), dtype=bool)
    ceiling = np.full((ny, nx), np.inf, dtype=np.float32)
    tracks = tracker.track(
        np.asarray(frames, dtype=np.float32), times_s, dx_m, context
    )
    to_px = step_s / (dx_m / 1000.0)
    storms = []
    for tr in sorted(tracks, key=lambda t: t.storm.area_km2):
        w = trend_scale(tr.duration_s, tracker.params.history_full_s)
        if w <= 0.0 or len(tr.times_s) < params.min_scans:
            continue
        vx, vy = tr.velocity(tracker.params)
        u, v = vx / w * to_px, vy / w * to_px
        footprint = np.zeros((ny, nx), dtype=bool)
        rows, cols = tr.storm.box
        footprint[rows, cols] = tr.storm.mask
        ring = ndimage.binary_dilation(footprint, iterations=params.ring_px)
        ring &= ~footprint
        cleared = False
        if ring.any() and math.isfinite(params.clear_px):
            du = float(flow[0][ring].mean()) - u
            dv = float(flow[1][ring].mean()) - v
            deviates = math.hypot(du, dv) * n_leads * w > params.clear_px
            n_fit = len(tracker.params.weights)
            cleared = deviates and track_scatter_px(tr, n_fit, dx_m) < params.fit_px
        if cleared:
            if params.dilate_px:
                footprint = ndimage.binary_dilation(
                    footprint, iterations=params.dilate_px
                )
            ceiling[footprint] = np.minimum(ceiling[footprint], params.cap_dbz)
        shape = footprint.astype(np.float32)
        for k in range(n_leads):
            moved = ndimage.shift(shape, (v * (k + 1), u * (k + 1)), order=0) > 0.5
            disp[k, 0][moved] = (1 - w) * disp[k, 0][moved] + w * u * (k + 1)
            disp[k, 1][moved] = (1 - w) * disp[k, 1][moved] + w * v * (k + 1)
            motion[k, 0][moved] = (1 - w) * steps[k, 0][moved] + w * u
            motion[k, 1][moved] = (1 - w) * steps[k, 1][moved] + w * v
            mask[k] |= moved
        storms.append(
            {"id": tr.track_id, "u_px": u, "v_px": v, "weight": w, "cleared": cleared}
        )
    has_cap = bool(np.isfinite(ceiling).any())
    return CellPrior(disp, mask, motion, ceiling if has_cap else None, storms)
