"""TITAN-style storm forecast: identify, track, extrapolate each storm's trend.

Contract
--------
:class:`TitanForecaster` (registry name ``"titan"``) answers the forecaster
interface (:mod:`nowcast.forecasters.interface`) as TITAN (Dixon & Wiener 1993)
forecasts storms:

1. **Identify** the storms of every input frame: connected regions ``>=
   threshold_dbz`` of the column maximum above ``min_size_km2`` (or, with
   ``use_3d``, connected voxels above ``min_size_km3``); each footprint is fitted
   with an equal-area principal-component ellipse
   (:mod:`nowcast.forecasters.titan_storms`). Volumes need the level spacing, which
   the interface does not give: ``dz_m`` (default 1000 m).
2. **Track** them through all frames, by forecast overlap and then by minimum cost
   (:mod:`nowcast.forecasters.titan_tracking`), building each storm's history.
3. **Trend**: centroid velocity and projected-area rate by weighted least squares
   over the newest scans (weights ``1.0 ... 0.4``, newest first), scaled by
   ``min(history / history_full_s, 1)``. A storm seen once does not move or grow.
4. **Forecast** lead ``k`` (valid ``k * interval_s`` after the last frame): each
   storm of the last frame, as the full column over its footprint, is moved
   rigidly to its extrapolated centroid and scaled about it by ``sqrt(forecast
   area / area)``; no rotation, no change of shape. The forecast area is the area
   plus its trend times the lead; at or below 0 the storm is gone.

Choices made where TITAN leaves the gridded field open:

- Background: persistence of the last frame with every storm's footprint (the
  full column) set to the floor; echo outside storms stays as it is. The moved
  storms are pasted over it with ``np.fmax`` (overlapping storms keep the larger
  value).
- Resampling: an output pixel maps back to the source point ``centroid + (p -
  forecast centroid) / scale``. The storm is resampled bilinearly
  (``scipy.ndimage.map_coordinates``, order 1) from its own column over its
  footprint set in its non-storm surroundings (the background), and pasted
  wherever the source point is within a pixel of the footprint (bilinearly
  interpolated footprint mask ``> 0``). Cutting the storm out against the floor
  instead would eat its edge at every sub-pixel move and shrink its area at the
  threshold; this way the storm's edge values, and so its area at the
  threshold, survive the move.
- NaN (no coverage) counts as no echo for identification and as the floor for
  resampling; the output is NaN exactly where the last frame is NaN.
- The floor is the smallest finite input value; the output is never below it.

``motion`` is each storm's velocity (m/s, x then y along the grid axes) painted
over its forecast footprint, zero elsewhere. ``info`` has ``n_storms`` and, per
storm of the last frame, its track id, position, area, volume, velocity, area rate
and history length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from nowcast.forecasters.interface import (
    ForecastResult,
    Forecaster,
    SequenceContext,
    check_input,
    step_seconds,
    usable_context,
)
from nowcast.forecasters.titan_storms import Storm, identify_storms
from nowcast.forecasters.titan_tracking import (
    TITAN_WEIGHTS,
    Track,
    TrackParams,
    track_storms,
)
from nowcast.errors import ForecasterError

if TYPE_CHECKING:
    from nowcast.config import Settings


class TitanForecaster(Forecaster):
    """TITAN-style storm identification, tracking and trend extrapolation.

    Parameters
    ----------
    threshold_dbz
        Storms are connected regions at or above this.
    min_size_km2, min_size_km3
        Smallest storm: projected area (column maximum) or volume (``use_3d``).
    use_3d
        Identify storms as connected voxels instead of on the column maximum.
    overlap_threshold
        Overlap matching: summed fractional overlap must exceed this.
    max_speed_kmh
        Cost matching rejects pairs implying a faster storm.
    history_weights
        Trend weights, newest first (TITAN: ``1.0, 0.9, ..., 0.4``).
    history_full_s
        Trends are scaled by ``min(history / history_full_s, 1)``.
    dz_m
        Level spacing for volumes (the interface only gives ``dx_m``).
    weight_distance, weight_volume
        Cost matching weights of the centroid distance and of the change of
        cube-root volume (both in km).
    """

    name = "titan"

    def __init__(
        self,
        threshold_dbz: float = 35.0,
        min_size_km2: float = 30.0,
        min_size_km3: float = 30.0,
        use_3d: bool = False,
        overlap_threshold: float = 0.6,
        max_speed_kmh: float = 100.0,
        history_weights: Sequence[float] = TITAN_WEIGHTS,
        history_full_s: float = 1200.0,
        dz_m: float = 1000.0,
        weight_distance: float = 1.0,
        weight_volume: float = 1.0,
    ) -> None:
        weights = tuple(float(w) for w in history_weights)
        if not weights or min(weights) <= 0:
            raise ForecasterError(
                f"titan: history_weights must be non-empty and > 0, got {weights}"
            )
        if dz_m <= 0 or history_full_s <= 0 or max_speed_kmh <= 0:
            raise ForecasterError(
                "titan: dz_m, history_full_s and max_speed_kmh must be > 0"
            )
        self.threshold_dbz = float(threshold_dbz)
        self.min_size_km2 = float(min_size_km2)
        self.min_size_km3 = float(min_size_km3)
        self.use_3d = bool(use_3d)
        self.dz_m = float(dz_m)
        self.params = TrackParams(
            overlap_threshold=float(overlap_threshold),
            max_speed_kmh=float(max_speed_kmh),
            weights=weights,
            history_full_s=float(history_full_s),
            weight_distance=float(weight_distance),
            weight_volume=float(weight_volume),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, **kwargs: Any
    ) -> TitanForecaster:
        """Build from ``settings.baselines.titan`` (``None``: defaults), overridden."""
        params: dict[str, Any] = {}
        if settings is not None:
            params = settings.baselines.titan.model_dump()
        params.update(kwargs)
        return cls(**params)

    def track(
        self,
        frames: np.ndarray,
        times_s: Sequence[float],
        dx_m: float,
        context: SequenceContext | None = None,
    ) -> list[Track]:
        """Identify storms in every frame and track them; tracks of the last frame.

        ``frames`` are the newest ``len(frames)`` frames of the sequence
        ``context`` was made for (the caller checked it with
        :func:`~nowcast.forecasters.interface.usable_context`): the tracks are then
        computed once per sequence, whoever asks (this baseline, the model's storm
        prior), and shared.
        """
        if context is None:
            return self._track(frames, times_s, dx_m)
        key = ("titan_tracks", self._signature(), float(dx_m), len(frames))
        return context.memo(key, lambda: self._track(frames, times_s, dx_m))

    def _signature(self) -> tuple:
        return (
            self.threshold_dbz, self.min_size_km2, self.min_size_km3, self.use_3d,
            self.dz_m, repr(self.params),
        )

    def _track(
        self, frames: np.ndarray, times_s: Sequence[float], dx_m: float
    ) -> list[Track]:
        dx_km, dz_km = dx_m / 1000.0, self.dz_m / 1000.0
        min_size = self.min_size_km3 if self.use_3d else self.min_size_km2
        scans = [
            identify_storms(
                frame,
                threshold_dbz=self.threshold_dbz,
                dx_km=dx_km,
                dz_km=dz_km,
                min_size=min_size,
                use_3d=self.use_3d,
            )
            for frame in frames
        ]
        return track_storms(scans, times_s, dx_km=dx_km, params=self.params)

    def forecast(
        self,
        frames: np.ndarray,
        times: Sequence[datetime],
        n_leads: int,
        *,
        dx_m: float,
        interval_s: float | None = None,
        context: SequenceContext | None = None,
    ) -> ForecastResult:
        check_input(frames, times, n_leads)
        context = usable_context(context, frames, times)
        if dx_m <= 0:
            raise ForecasterError(f"titan: dx_m must be > 0, got {dx_m}")
        step = step_seconds(times, interval_s)
        times_s = [(t - times[0]).total_seconds() for t in times]
        if any(b <= a for a, b in zip(times_s[:-1], times_s[1:])):
            raise ForecasterError("titan: times must be strictly increasing")
        frames = np.asarray(frames, dtype=np.float32)
        last = frames[-1]
        nz, ny, nx = last.shape
        finite = np.isfinite(frames)
        if not finite.any():
            dbz = np.full((n_leads, nz, ny, nx), np.nan, dtype=np.float32)
            return ForecastResult(dbz=dbz, method=self.name, info={"n_storms": 0})
        floor = float(frames[finite].min())
        filled = np.where(np.isfinite(last), last, floor).astype(np.float32)

        tracks = self.track(frames, times_s, dx_m, context)
        background = filled.copy()
        for tr in tracks:
            ys, xs = tr.storm.box
            background[:, ys, xs][:, tr.storm.mask] = floor

        dx_km = dx_m / 1000.0
        dbz = np.repeat(background[np.newaxis], n_leads, axis=0)
        motion = np.zeros((n_leads, 2, ny, nx), dtype=np.float32)
        trends = [
            (tr.velocity(self.params), tr.area_rate(self.params)) for tr in tracks
        ]
        for k in range(n_leads):
            lead_s = (k + 1) * step
            for tr, ((vx, vy), rate) in zip(tracks, trends):
                area_fc = tr.storm.area_km2 + rate * lead_s
                if area_fc <= 0:
                    continue
                _paste_storm(
                    dbz[k],
                    motion[k],
                    filled,
                    background,
                    tr.storm,
                    shift_px=(vy * lead_s / dx_km, vx * lead_s / dx_km),
                    scale=math.sqrt(area_fc / tr.storm.area_km2),
                    velocity_ms=(vx * 1000.0, vy * 1000.0),
                    dx_km=dx_km,
                )
        np.maximum(dbz, floor, out=dbz)
        dbz[:, ~np.isfinite(last)] = np.nan
        info = {
            "n_storms": len(tracks),
            "floor_dbz": floor,
            "storms": [_describe(tr, v, r) for tr, (v, r) in zip(tracks, trends)],
        }
        return ForecastResult(dbz=dbz, method=self.name, motion=motion, info=info)


def _paste_storm(
    out: np.ndarray,
    motion: np.ndarray,
    field: np.ndarray,
    background: np.ndarray,
    storm: Storm,
    *,
    shift_px: tuple[float, float],
    scale: float,
    velocity_ms: tuple[float, float],
    dx_km: float,
) -> None:
    """Move ``storm`` by ``shift_px`` (rows, cols), scale it, fmax it into ``out``."""
    nz, ny, nx = out.shape
    cy, cx = storm.y_km / dx_km, storm.x_km / dx_km
    ncy, ncx = cy + shift_px[0], cx + shift_px[1]
    (ys, xs) = storm.box
    oy0 = max(math.floor(ncy + (ys.start - 1 - cy) * scale), 0)
    oy1 = min(math.ceil(ncy + (ys.stop - cy) * scale) + 1, ny)
    ox0 = max(math.floor(ncx + (xs.start - 1 - cx) * scale), 0)
    ox1 = min(math.ceil(ncx + (xs.stop - cx) * scale) + 1, nx)
    if oy0 >= oy1 or ox0 >= ox1:
        return
    yy, xx = np.mgrid[oy0:oy1, ox0:ox1].astype(np.float64)
    sy = cy + (yy - ncy) / scale
    sx = cx + (xx - ncx) / scale
    padded = np.pad(storm.mask.astype(np.float32), 1)
    cover = ndimage.map_coordinates(
        padded, [sy - ys.start + 1, sx - xs.start + 1], order=1, cval=0.0
    )
    inside = cover > 0.0
    if not inside.any():
        return
    # the storm's own column over its footprint, in its non-storm surroundings
    y0, y1 = max(ys.start - 1, 0), min(ys.stop + 1, ny)
    x0, x1 = max(xs.start - 1, 0), min(xs.stop + 1, nx)
    local = background[:, y0:y1, x0:x1].copy()
    own = np.zeros(local.shape[1:], dtype=bool)
    own[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = storm.mask
    local[:, own] = field[:, y0:y1, x0:x1][:, own]
    py, px = sy[inside] - y0, sx[inside] - x0
    n = py.size
    coords = [
        np.repeat(np.arange(nz, dtype=np.float64), n),
        np.tile(py, nz),
        np.tile(px, nz),
    ]
    values = ndimage.map_coordinates(local, coords, order=1, mode="nearest")
    region = out[:, oy0:oy1, ox0:ox1]
    region[:, inside] = np.fmax(region[:, inside], values.reshape(nz, n))
    footprint = cover >= 0.5
    motion[0, oy0:oy1, ox0:ox1][footprint] = velocity_ms[0]
    motion[1, oy0:oy1, ox0:ox1][footprint] = velocity_ms[1]


def _describe(
    track: Track, velocity: tuple[float, float], rate: float
) -> dict[str, Any]:
    s = track.storm
    return {
        "id": track.track_id,
        "parent_id": track.parent_id,
        "x_km": s.x_km,
        "y_km": s.y_km,
        "area_km2": s.area_km2,
        "volume_km3": s.volume_km3,
        "major_km": s.ellipse.major_km,
        "minor_km": s.ellipse.minor_km,
        "orientation_deg": s.ellipse.orientation_deg,
        "vx_ms": velocity[0] * 1000.0,
        "vy_ms": velocity[1] * 1000.0,
        "area_rate_km2_s": rate,
        "history_s": track.duration_s,
        "n_scans": len(track.times_s),
    }
