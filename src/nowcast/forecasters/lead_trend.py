"""Lagrangian intensity trend: let growth and decay go on along the motion.

Extrapolation keeps each echo's intensity as it was in the last scan; a cell
that grew by 6 dB in the last five minutes is forecast to stop growing at once.
ANVIL and S-PROG (their autoregressive models run on the Lagrangian series)
and LINDA (its local integro-difference model) carry that tendency on, damped,
and gain most of their skill over plain extrapolation at the first leads from
it. This is the model forecaster's version: the change of the column maximum
over the last step, measured along the motion and smoothed to the scale where
it is predictable, moves with the echoes and is added to each lead with a
weight fitted on verification windows (the damped sum of the tendency's future
steps, lead by lead), one weight for growth and one for decay: growth carried on
as far as decay inflates the area of the strongest echoes (at 45 dBZ two to four
times the observed by t+20 on the held-out cases) where decay does not.

Contract
--------
- Motion: pysteps' semi-Lagrangian displacements of ``flow`` (2, y, x)
  px/step, one a lead (:func:`~nowcast.forecasters.pysteps_methods.lead_displacements`
  and :func:`~nowcast.forecasters.pysteps_methods.warp`, as the extrapolation
  peer moves its echoes). Both functions below compute them from ``flow``, or
  take them ready (``displacements=``, ``(n >= 1, 2, y, x)``) so that one
  forecast computes them once.
- :func:`lagrangian_trend` ``(composite (t, y, x), flow)``:
  dB a step, ``composite[-1] - composite[-2]`` moved one step along ``flow``,
  where either of the two has echo (``>= echo_dbz``; elsewhere 0), clipped to
  ``+-clip_db``. NaN counts as no echo. float32 ``(y, x)``.
- :func:`advected_trends` ``(trend, flow, scales_px, n_leads)``: for each
  scale, the trend blurred by a Gaussian of that sigma (pixels; 0: as it is)
  and moved along ``flow`` one step a lead: ``{scale: (n_leads, y, x)}``,
  zero where it flows in from outside the grid.
- :func:`apply_trend` ``(dbz (t, [z,] y, x), trend_leads (n, y, x), weights,
  decay_weights=None)``: lead ``k`` gets ``weights[k]`` times the growth
  (``trend > 0``) and ``decay_weights[k]`` times the decay (``trend < 0``;
  ``None``: the same weights) on every level, clipped to ``[floor, ceiling]``;
  NaN (no coverage) stays NaN; weights of 0 (or a lead beyond the lists) leave
  the lead exactly as it was.
- :func:`scales_px` ``(scales_m, dx_m)``: scales in metres, in pixels of this
  grid (one fit serves a 2 km composite and a 240 m grid alike; the
  tendency is per step, as the network's motion is: a case at 10 minutes has
  its own step).
- :func:`fit_trend` chooses one scale for every lead and a (growth, decay)
  weight pair for each lead: for each candidate scale the pair of each lead
  with the best mean CSI over ``thresholds`` (counts summed over all windows
  given, column maximum; a tie goes to the smaller growth weight, then the
  smaller decay weight), and the scale whose leads score best on average (a
  tie: the smaller). Weights 0 are always candidates, so a fit never does worse
  on its windows than no trend; one shared scale (not one a lead) keeps the fit
  from chasing noise and the forecast to one blur. Returns :class:`TrendFit`.
- A checkpoint carries a fit as ``state["lead_trend"]`` = ``{"scale_m": S,
  "weight": [...], "decay_weight": [...], ...}`` (no ``decay_weight``: the
  growth weights serve both); :class:`nowcast.forecasters.model.ModelForecaster`
  applies it after the lead smoothing (what it was fitted on); ``[model] trend
  = false`` or ``network = false`` switch it off.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from nowcast.forecasters.lead_smoothing import (
    add_lead_counts,
    checked_window,
    composite_leads,
    mean_csi,
)
from nowcast.verification import Counts, column_max, contingency

__all__ = [
    "SCALES_M",
    "WEIGHTS",
    "TrendFit",
    "advected_trends",
    "apply_trend",
    "fit_trend",
    "lagrangian_trend",
    "scales_px",
    "trend_displacements",
]

SCALES_M = (4000.0, 8000.0, 16000.0, 24000.0, 32000.0)
"""The smoothing scales (Gaussian sigma, metres) :func:`fit_trend` tries."""

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
"""The lead weights :func:`fit_trend` tries (steps of tendency a lead adds)."""


def trend_displacements(flow: np.ndarray, n_leads: int) -> np.ndarray:
    """The backward displacement ``(n_leads, 2, y, x)`` of each lead along
    ``flow`` (module contract)."""
    from nowcast.forecasters.pysteps_methods import lead_displacements

    return lead_displacements(np.asarray(flow, np.float64), range(1, n_leads + 1))


def lagrangian_trend(
    composite: np.ndarray,
    flow: np.ndarray,
    *,
    echo_dbz: float = 5.0,
    clip_db: float = 15.0,
    floor: float = 0.0,
    displacements: np.ndarray | None = None,
) -> np.ndarray:
    """dB a step of the last step, along ``flow`` (module contract)."""
    from nowcast.forecasters.pysteps_methods import warp

    composite = np.asarray(composite, np.float32)
    if composite.ndim != 3 or composite.shape[0] < 2:
        raise ValueError(f"composite must be (t >= 2, y, x), got {composite.shape}")
    last = np.maximum(np.nan_to_num(composite[-1], nan=floor), floor)
    before = np.maximum(np.nan_to_num(composite[-2], nan=floor), floor)
    if displacements is None:
        displacements = trend_displacements(flow, 1)
    moved = warp(before, displacements[0], floor)
    trend = np.clip(last - moved, -clip_db, clip_db)
    echo = (last >= echo_dbz) | (moved >= echo_dbz)
    return np.where(echo, trend, 0.0).astype(np.float32)


def advected_trends(
    trend: np.ndarray,
    flow: np.ndarray,
    scales: Iterable[float],
    n_leads: int,
    displacements: np.ndarray | None = None,
) -> dict[float, np.ndarray]:
    """Each scale's blurred trend, moved one step a lead (module contract)."""
    from nowcast.forecasters.pysteps_methods import warp

    if displacements is None:
        displacements = trend_displacements(flow, n_leads)
    keys = sorted({float(s) for s in scales})
    blurred = np.stack(
        [gaussian_filter(trend, s, mode="constant") if s > 0 else trend for s in keys]
    )
    moved = np.stack([warp(blurred, d, 0.0) for d in displacements[:n_leads]], axis=1)
    return {s: moved[i].astype(np.float32) for i, s in enumerate(keys)}


def scales_px(scales_m: Sequence[float], dx_m: float) -> list[float]:
    """Scales in metres in pixels of a grid of ``dx_m`` (module contract)."""
    if not dx_m > 0:
        raise ValueError(f"dx_m must be > 0, got {dx_m}")
    return [float(s) / float(dx_m) for s in scales_m]


def apply_trend(
    dbz: np.ndarray,
    trend_leads: np.ndarray,
    weights: Sequence[float],
    decay_weights: Sequence[float] | None = None,
    *,
    floor: float = 0.0,
    ceiling: float = 70.0,
) -> np.ndarray:
    """Add each lead's weighted, advected trend (module contract)."""
    dbz = np.asarray(dbz, dtype=np.float32)
    if dbz.ndim not in (3, 4):
        raise ValueError(f"dbz must be (t, y, x) or (t, z, y, x), got {dbz.shape}")
    decay_weights = weights if decay_weights is None else decay_weights
    out = dbz.copy()
    n = min(dbz.shape[0], len(weights), len(decay_weights), len(trend_leads))
    for k in range(n):
        wg, wd = float(weights[k]), float(decay_weights[k])
        if wg == 0.0 and wd == 0.0:
            continue
        add = _weighted(np.asarray(trend_leads[k], np.float32), wg, wd)
        lead = dbz[k] + (add if dbz.ndim == 3 else add[None])
        out[k] = np.where(np.isnan(dbz[k]), np.nan, np.clip(lead, floor, ceiling))
    return out


@dataclass
class TrendFit:
    """What :func:`fit_trend` found."""

    scale_m: float
    weight: list[float]
    """Per lead: the weight of growth."""
    decay_weight: list[float]
    """Per lead: the weight of decay."""
    scales_m: list[float]
    weights: list[float]
    thresholds: list[float]
    scores: list[dict[str, float]] = field(default_factory=list)
    """Per lead: ``{"none": mean CSI without the trend, "chosen": with it}``."""
    scale_scores: list[float] = field(default_factory=list)
    """Per candidate scale: the mean over leads of its best weights' scores."""
    windows: int = 0

    def to_dict(self) -> dict:
        return {
            "scale_m": self.scale_m,
            "weight": self.weight,
            "decay_weight": self.decay_weight,
            "scales_m": self.scales_m,
            "weights": self.weights,
            "thresholds": self.thresholds,
            "scores": self.scores,
            "scale_scores": self.scale_scores,
            "windows": self.windows,
        }


def fit_trend(
    windows: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]],
    scales_m: Sequence[float] = SCALES_M,
    weights: Sequence[float] = WEIGHTS,
    thresholds: Sequence[float] = (20.0, 35.0),
    floor: float = 0.0,
    ceiling: float = 70.0,
) -> TrendFit:
    """One scale and per-lead growth and decay weights with the best mean CSI
    (module contract).

    ``windows``: ``(forecast, observed, past, flow, dx_m)``: the forecast as the
    forecaster gives it without the trend and the observation, dBZ ``(t, [z,]
    y, x)`` of one shape; the input frames ``(t, z, y, x)`` and their flow
    ``(2, y, x)`` px/step.
    """
    scs = sorted({float(s) for s in scales_m})
    ws = sorted({0.0, *(float(w) for w in weights)})
    if not scs or scs[0] < 0 or ws[0] < 0:
        raise ValueError("fit_trend needs scales and weights >= 0")
    thr = tuple(sorted({float(t) for t in thresholds}))
    pairs = [(wg, wd) for wg in ws for wd in ws]  # ascending growth, then decay
    # counts[(scale, wg, wd)][k][t], summed over the windows; (0, 0) is "none"
    counts: dict[tuple[float, float, float], list[dict[float, Counts]]] = {}
    n_leads, n = None, 0
    for forecast, observed, past, flow, dx_m in windows:
        forecast, observed = checked_window(forecast, observed)
        t = forecast.shape[0]
        n_leads = t if n_leads is None else min(n_leads, t)
        seen = composite_leads(observed)
        comp = column_max(np.asarray(past, np.float32))
        disp = trend_displacements(flow, t)
        trend = lagrangian_trend(comp, flow, floor=floor, displacements=disp)
        px = scales_px(scs, float(dx_m))
        moved = advected_trends(trend, flow, px, t, displacements=disp)
        fc = composite_leads(forecast)
        for scale, scale_px in zip(scs, px):
            for wg, wd in pairs:
                if wg == wd == 0.0 and scale != scs[0]:
                    continue
                key = (scale, wg, wd)
                per_lead = counts.setdefault(key, [])
                for k in range(t):
                    lead = fc[k]
                    if wg or wd:
                        add = _weighted(moved[scale_px][k], wg, wd)
                        lead = _added(lead, add, floor, ceiling)
                    add_lead_counts(per_lead, k, contingency(lead, seen[k], thr))
        n += 1
    if n == 0:
        raise ValueError("fit_trend got no verification windows")

    def score(key, k):
        s = mean_csi(counts[key][k])
        return s if np.isfinite(s) else float("-inf")

    none = (scs[0], 0.0, 0.0)
    per_scale = []  # (mean score, weight pairs, per-lead scores) for each scale
    for scale in scs:
        pairs_k, scores_k = [], []
        for k in range(n_leads):
            best_pair, best_score = (0.0, 0.0), score(none, k)
            for pair in pairs[1:]:  # ascending: a tie keeps the smaller
                s = score((scale, *pair), k)
                if s > best_score + 1e-12:
                    best_pair, best_score = pair, s
            pairs_k.append(best_pair)
            scores_k.append(best_score)
        per_scale.append((float(np.mean(scores_k)), pairs_k, scores_k))
    best = 0
    for i, entry in enumerate(per_scale):
        if entry[0] > per_scale[best][0] + 1e-12:
            best = i
    _, pairs_k, scores_k = per_scale[best]
    scores = [
        {"none": score(none, k), "chosen": scores_k[k]} for k in range(n_leads)
    ]
    return TrendFit(
        scale_m=scs[best],
        weight=[p[0] for p in pairs_k],
        decay_weight=[p[1] for p in pairs_k],
        scales_m=scs,
        weights=ws,
        thresholds=list(thr),
        scores=scores,
        scale_scores=[entry[0] for entry in per_scale],
        windows=n,
    )


def _weighted(trend: np.ndarray, growth: float, decay: float) -> np.ndarray:
    """``growth`` times the trend where it is positive, ``decay`` where negative."""
    if growth == decay:
        return growth * trend
    return np.where(trend > 0, growth * trend, decay * trend).astype(np.float32)


def _added(lead, add, floor, ceiling):
    """A composite lead with the weighted trend added, as :func:`apply_trend`
    adds it (the column maximum of a volume with the same trend on every level
    is the composite plus the trend, up to the clip)."""
    return np.where(np.isnan(lead), np.nan, np.clip(lead + add, floor, ceiling))

