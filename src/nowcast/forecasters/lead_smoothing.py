"""Lead-dependent smoothing: let the scales a forecast cannot place fade with lead.

Extrapolation keeps every detail of the last scan; by t+30 the small cells are
in the wrong place, and each costs a miss and a false alarm. S-PROG and LINDA
gain their skill over plain extrapolation largely by letting those scales go.
This is the model forecaster's version of it: lead ``k`` is blurred by a
Gaussian whose width grows with lead time, ``sigma = spread[k] * lead_s``
(``spread`` in m/s: how fast the uncertainty of where an echo will be grows,
like an error in its motion), fitted on verification windows. Being in metres
and seconds, one fit serves a 2 km composite at 5 minutes and a 500 m grid at
10 minutes alike.

Contract
--------
- :func:`smooth_leads` ``(dbz (t, [z,] y, x), sigma_px) -> dbz``: lead ``k`` is
  blurred horizontally (never across levels or leads) in linear reflectivity
  ``Z = 10 ** (dBZ / 10)`` (so a 50 dBZ core is not averaged away by the no-echo
  around it as it would be in dBZ), then back to dBZ; ``Z`` below 1 (0 dBZ)
  becomes ``floor``. NaN (no coverage) counts as no echo in the blur and stays
  NaN. ``sigma_px[k] <= 0`` leaves lead ``k`` exactly as it was; a shorter
  ``sigma_px`` leaves the later leads as they were. The total ``Z`` of a
  field away from the edges is kept (``mode="blur"``). ``mode="matched"``: the
  blurred pattern gets the unblurred lead's values back, rank for rank, level
  by level (empirical-CDF probability matching, as pysteps' S-PROG does): the
  area above every threshold stays what the network forecast, and the
  smoothing decides only where it goes (small cells merge into the cluster
  around them). ``mode="max"``: the larger of the two at every pixel, so weak
  cores are not blurred below a threshold (what the plain blur does to the
  35 dBZ spots of a winter evening) while light rain spreads as in the blur.
- :func:`sigmas_px` ``(spread_m_s, dx_m, step_s, n_leads)``: lead ``k``'s sigma
  in pixels, ``spread[k] * (k + 1) * step_s / dx_m`` (the last spread for leads
  beyond the list).
- :func:`fit_spread` chooses, lead by lead, the candidate spread with the best
  mean CSI over ``thresholds`` (counts summed over all windows given, column
  maximum; each window blurred at its own grid spacing and step): a lead's
  spread changes only that lead, so each is chosen on its own. Returns
  :class:`SmoothingFit` (the spreads, and the score of every candidate per lead
  for the model card), in one of :data:`MODES`. Ties go to the smaller spread.
- A checkpoint carries a fit as ``state["lead_smoothing"]`` =
  ``{"spread_m_s": [...], ...}`` (:class:`nowcast.forecasters.model.ModelForecaster`
  applies it; ``[model] smoothing = false`` or ``network = false`` switch it off).
- :func:`carry_smoothing` ``(source, target) -> bool``: a freshly trained
  checkpoint without a fit takes ``source``'s (the nightly retraining gives its
  candidate production's fit, so the two are judged alike: the spread is a
  property of how predictable the radar's storms are, not of the weights);
  writes ``target`` atomically and records where the fit came from. False, and
  nothing written, when ``source`` is missing, unreadable or has no fit, or
  ``target`` has one already. A trained smoothing head
  (``state["smoothing_head"]``, :mod:`nowcast.forecasters.smoothing_head`) and
  a fitted Lagrangian trend (``state["lead_trend"]``,
  :mod:`nowcast.forecasters.lead_trend`) are carried the same way.
- :func:`composite_leads`, :func:`checked_window`, :func:`add_lead_counts` and
  :func:`mean_csi`: the pieces of a per-lead fit on verification windows, shared
  with :func:`nowcast.forecasters.lead_trend.fit_trend`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from nowcast.verification import Counts, column_max, contingency

__all__ = [
    "CANDIDATES_M_S",
    "MODES",
    "SmoothingFit",
    "carry_smoothing",
    "fit_spread",
    "sigmas_px",
    "smooth_leads",
]

CANDIDATES_M_S = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
"""The spreads :func:`fit_spread` tries by default, in m/s."""


def sigmas_px(
    spread_m_s: Sequence[float], dx_m: float, step_s: float, n_leads: int
) -> list[float]:
    """Each lead's Gaussian sigma in grid pixels (module contract)."""
    if not spread_m_s or n_leads <= 0:
        return []
    if not (dx_m > 0 and step_s > 0):
        raise ValueError(f"dx_m ({dx_m}) and step_s ({step_s}) must be > 0")
    last = len(spread_m_s) - 1
    return [
        float(spread_m_s[min(k, last)]) * (k + 1) * float(step_s) / float(dx_m)
        for k in range(n_leads)
    ]


def _match_distribution(smooth: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``smooth``'s pattern with ``original``'s values: rank for rank, level by
    level, over the covered pixels (pysteps' empirical-CDF probability matching)."""
    out = smooth.copy()
    for s_lvl, o_lvl, r_lvl in zip(
        smooth.reshape(-1, *smooth.shape[-2:]),
        original.reshape(-1, *original.shape[-2:]),
        out.reshape(-1, *out.shape[-2:]),
    ):
        covered = np.isfinite(o_lvl)
        ranks = np.argsort(s_lvl[covered], kind="stable")
        values = np.empty(ranks.size, np.float32)
        values[ranks] = np.sort(o_lvl[covered])
        r_lvl[covered] = values
    return out


MODES = ("blur", "matched", "max")
"""How :func:`smooth_leads` turns the blur into the forecast (module contract)."""


def smooth_leads(
    dbz: np.ndarray,
    sigma_px: Sequence[float],
    floor: float = -32.0,
    mode: str = "blur",
) -> np.ndarray:
    """Blur lead ``k`` of ``dbz`` by ``sigma_px[k]`` in linear Z (module contract)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    dbz = np.asarray(dbz, dtype=np.float32)
    if dbz.ndim not in (3, 4):
        raise ValueError(f"dbz must be (t, y, x) or (t, z, y, x), got {dbz.shape}")
    out = dbz.copy()
    for k, sigma in enumerate(sigma_px[: dbz.shape[0]]):
        sigma = float(sigma)
        if not sigma > 0:
            continue
        lead = dbz[k]
        uncovered = np.isnan(lead)
        z = np.where(uncovered | (lead <= 0), 0.0, 10.0 ** (np.nan_to_num(lead) / 10))
        sigmas = (0.0,) * (lead.ndim - 2) + (sigma, sigma)
        zb = gaussian_filter(z, sigmas, mode="nearest")
        smooth = np.where(zb >= 1.0, 10.0 * np.log10(np.maximum(zb, 1.0)), floor)
        smooth = np.where(uncovered, np.nan, smooth).astype(np.float32)
        if mode == "blur":
            out[k] = smooth
            continue
        matched = _match_distribution(smooth, lead)
        out[k] = matched if mode == "matched" else np.fmax(smooth, matched)
    return out


@dataclass
class SmoothingFit:
    """What :func:`fit_spread` found."""

    spread_m_s: list[float]
    candidates: list[float]
    thresholds: list[float]
    scores: list[list[float]] = field(default_factory=list)
    """``scores[k][i]``: mean CSI of lead ``k`` with ``candidates[i]``."""
    windows: int = 0
    mode: str = "blur"
    """:func:`smooth_leads`' mode the spreads were fitted with."""

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "spread_m_s": self.spread_m_s,
            "candidates": self.candidates,
            "thresholds": self.thresholds,
            "scores": self.scores,
            "windows": self.windows,
        }


def fit_spread(
    windows: Iterable[tuple[np.ndarray, np.ndarray, float, float]],
    candidates: Sequence[float] = CANDIDATES_M_S,
    thresholds: Sequence[float] = (20.0, 35.0),
    mode: str = "blur",
) -> SmoothingFit:
    """Per-lead spread (m/s) with the best mean CSI over ``windows`` (module
    contract).

    ``windows``: ``(forecast, observed, dx_m, step_s)``, the dBZ stacks
    ``(t, [z,] y, x)`` of the same shape, the forecast unsmoothed.
    """
    cands = sorted({float(c) for c in candidates})
    if not cands or cands[0] < 0:
        raise ValueError(f"fit_spread needs candidate spreads >= 0, got {candidates}")
    thr = tuple(sorted({float(t) for t in thresholds}))
    # counts[i][k][t]: candidate i, lead k, threshold t, summed over the windows
    counts: list[list[dict[float, Counts]]] = [[] for _ in cands]
    n_leads, n = None, 0
    for forecast, observed, dx_m, step_s in windows:
        forecast, observed = checked_window(forecast, observed)
        t = forecast.shape[0]
        n_leads = t if n_leads is None else min(n_leads, t)
        seen = composite_leads(observed)
        for per_lead, spread in zip(counts, cands):
            sigma = sigmas_px([spread], dx_m, step_s, t)
            smooth = composite_leads(smooth_leads(forecast, sigma, mode=mode))
            for k in range(t):
                add_lead_counts(per_lead, k, contingency(smooth[k], seen[k], thr))
        n += 1
    if n == 0:
        raise ValueError("fit_spread got no verification windows")
    scores, chosen = [], []
    for k in range(n_leads):
        row = []
        for per_lead in counts:
            row.append(mean_csi(per_lead[k]))
        scores.append(row)
        best = int(np.nanargmax(row)) if np.isfinite(row).any() else 0
        chosen.append(cands[best])
    return SmoothingFit(chosen, cands, list(thr), scores, n, mode)


# -- shared by the per-lead fits here and in nowcast.forecasters.lead_trend --------
def composite_leads(stack: np.ndarray) -> np.ndarray:
    """``(t, y, x)`` as it is, ``(t, z, y, x)`` -> its column maximum ``(t, y, x)``."""
    return stack if stack.ndim == 3 else column_max(stack)


def checked_window(forecast, observed) -> tuple[np.ndarray, np.ndarray]:
    """A fit window's forecast and observation as float32, of one shape."""
    forecast = np.asarray(forecast, dtype=np.float32)
    observed = np.asarray(observed, dtype=np.float32)
    if forecast.shape != observed.shape:
        raise ValueError(
            f"forecast {forecast.shape} and observation {observed.shape} differ"
        )
    return forecast, observed


def add_lead_counts(per_lead: list[dict[float, Counts]], k: int, counts) -> None:
    """Add one window's counts of lead ``k`` (by threshold) to ``per_lead``."""
    if k == len(per_lead):
        per_lead.append(dict(counts))
    else:
        per_lead[k] = {v: per_lead[k][v] + c for v, c in counts.items()}


def mean_csi(counts: dict[float, Counts]) -> float:
    """The mean CSI over the thresholds of one lead's counts (NaN: none defined)."""
    csi = [c.csi for c in counts.values()]
    return float(np.nanmean(csi)) if np.isfinite(csi).any() else float("nan")


def carry_smoothing(source, target) -> bool:
    """Give checkpoint ``target`` the fit of ``source`` (module contract)."""
    from pathlib import Path

    from nowcast.errors import ModelError
    from nowcast.model.checkpoint import load_checkpoint, save_checkpoint

    source, target = Path(source), Path(target)
    if not source.is_file():
        return False
    try:
        carried = load_checkpoint(source, map_location="cpu")
    except ModelError:
        return False
    fit, head = carried.get("lead_smoothing"), carried.get("smoothing_head")
    trend = carried.get("lead_trend")
    if not (trend and any(trend.get("weight") or [])):
        trend = None
    if not (fit and any(fit.get("spread_m_s") or [])):
        fit = None
    state = load_checkpoint(target, map_location="cpu")
    changed = False
    if fit and not state.get("lead_smoothing"):
        state["lead_smoothing"] = {**fit, "carried_from": str(source)}
        changed = True
    if head and not state.get("smoothing_head"):
        state["smoothing_head"] = {**head, "carried_from": str(source)}
        changed = True
    if trend and not state.get("lead_trend"):
        state["lead_trend"] = {**trend, "carried_from": str(source)}
        changed = True
    if changed:
        save_checkpoint(target, state)
    return changed
