"""Validation scores during training: loss terms, CSI 35 and 20 per lead, area ratio.

Contract
--------
Everything is computed on tensors in unit range, on the device, and summed into
one flat float64 vector (:class:`Tally`) so that data-parallel ranks can add
their parts with a single ``all_reduce`` before anything is derived.

- **Events** are taken on the column maximum (composite) of each lead,
  ``value >= threshold`` (35 dBZ in unit range), over pixels whose column has
  any coverage (``mask``). Counts are summed over the whole validation set and
  CSI = hits / (hits + misses + false alarms) per lead (aggregate CSI, as
  :mod:`nowcast.verification` does); NaN for a lead without any event. Events
  are counted at two thresholds: 35 dBZ (``level`` 0, the CSI the rules read)
  and 20 dBZ (``level`` 1: many more events on winter and small-cell data, so a
  signal where a few hundred pixels reach 35 dBZ).
- Three forecasts are scored on the same targets: ``model``; ``persistence``
  (the last input repeated); ``extrapolation``: the last input warped along the
  sample's optical-flow prior with the network's own semi-Lagrangian scheme
  (:func:`extrapolate`), i.e. what the model starts from and replaces.
- **Area ratio**: forecast / observed area >= 35 dBZ at the last lead (NaN when
  nothing was observed).
- **Loss terms**: batch means weighted by the batch size; ``n`` counts samples.
- :func:`best_key` ranks validations: beating extrapolation (mean CSI35) first,
  then the mean CSI of ``select_by`` (``"csi35"``, or ``"csi20_35"``: the mean of
  the two thresholds' means), then the lower loss.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nowcast.model.warp import steady_displacements, warp

__all__ = [
    "FORECASTS",
    "TERMS",
    "Tally",
    "best_key",
    "count_events",
    "extrapolate",
    "summarise",
]

#: the loss terms tallied (``motion`` is 0 without simulated motion)
TERMS = ("total", "huber", "high", "ssim", "event", "quantile", "motion")
#: the forecasts scored on validation
FORECASTS = ("model", "persistence", "extrapolation")
#: event thresholds (dBZ) by level of the tally
CSI_LEVELS_DBZ = (35.0, 20.0)
#: how :func:`best_key` picks
SELECT_BY = ("csi35", "csi20_35")


def extrapolate(last: torch.Tensor, flow: torch.Tensor, n_leads: int) -> torch.Tensor:
    """Optical-flow extrapolation ``(B, n_leads, Z, Y, X)`` of ``last``.

    ``last`` is ``(B, Z, Y, X)``, ``flow`` ``(B, 2, Y, X)`` px/step, held steady.
    """
    disp = steady_displacements(flow, n_leads)
    return torch.stack([warp(last.float(), d) for d in disp.unbind(1)], dim=1)


def count_events(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    threshold: float,
) -> torch.Tensor:
    """Hits, misses, false alarms ``(3, T)`` on the composite, summed over B.

    ``pred``, ``target``, ``mask``: ``(B, T, Z, Y, X)``.
    """
    covered = mask.amax(dim=2) > 0
    f = (pred.float().amax(dim=2) >= threshold) & covered
    o = (target.float().amax(dim=2) >= threshold) & covered
    dims = (0, 2, 3)
    hits = (f & o).sum(dim=dims)
    misses = (~f & o).sum(dim=dims)
    false = (f & ~o).sum(dim=dims)
    return torch.stack((hits, misses, false)).double()


class Tally:
    """Sums of a validation (or a training epoch) in one vector.

    Layout: ``n`` (samples), the :data:`TERMS` (weighted sums), then for each
    level of :data:`CSI_LEVELS_DBZ` and each of :data:`FORECASTS` the ``(3, T)``
    counts, then the forecast and observed areas at the last lead (model only,
    35 dBZ).
    """

    def __init__(self, n_leads: int, device: str | torch.device = "cpu") -> None:
        self.n_leads = int(n_leads)
        n_counts = 3 * self.n_leads * len(FORECASTS) * len(CSI_LEVELS_DBZ)
        self.size = 1 + len(TERMS) + n_counts + 2
        self.values = torch.zeros(self.size, dtype=torch.float64, device=device)

    # -- adding ---------------------------------------------------------------
    def add_losses(self, terms: Mapping[str, torch.Tensor | float], n: int) -> None:
        """Add a batch of ``n`` samples' mean loss terms."""
        self.values[0] += n
        for i, name in enumerate(TERMS):
            value = terms.get(name, 0.0)
            value = value.detach().double() if torch.is_tensor(value) else value
            self.values[1 + i] += value * n

    def _counts_slice(self, name: str, level: int = 0) -> slice:
        k = FORECASTS.index(name) + len(FORECASTS) * int(level)
        start = 1 + len(TERMS) + 3 * self.n_leads * k
        return slice(start, start + 3 * self.n_leads)

    def add_events(self, name: str, counts: torch.Tensor, level: int = 0) -> None:
        """Add :func:`count_events` counts of forecast ``name`` at ``level``."""
        self.values[self._counts_slice(name, level)] += counts.reshape(-1).to(
            self.values.device
        )

    def add_area(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        threshold: float,
    ) -> None:
        """Add the forecast and observed area >= threshold at the last lead."""
        covered = mask[:, -1].amax(dim=1) > 0
        f = (pred[:, -1].float().amax(dim=1) >= threshold) & covered
        o = (target[:, -1].float().amax(dim=1) >= threshold) & covered
        self.values[-2] += f.sum().double()
        self.values[-1] += o.sum().double()

    def all_reduce(self) -> None:
        """Sum over the ranks of a process group (no-op without one)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.values, op=dist.ReduceOp.SUM)

    # -- results --------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.values[0].item())

    def losses(self) -> dict[str, float]:
        """Mean of each term over the samples (NaN without samples)."""
        n = self.values[0].item()
        return {
            name: (self.values[1 + i].item() / n if n else math.nan)
            for i, name in enumerate(TERMS)
        }

    def csi(self, name: str, level: int = 0) -> list[float]:
        """CSI per lead of forecast ``name`` (NaN where no event at all)."""
        counts = self.values[self._counts_slice(name, level)].view(3, self.n_leads)
        hits, misses, false = counts.tolist()
        out = []
        for h, m, f in zip(hits, misses, false):
            total = h + m + f
            out.append(h / total if total else math.nan)
        return out

    def area_ratio(self) -> float:
        pred, obs = self.values[-2].item(), self.values[-1].item()
        return pred / obs if obs else math.nan


def mean_finite(values: Sequence[float]) -> float:
    """Mean of the finite values (NaN when none)."""
    good = [v for v in values if math.isfinite(v)]
    return sum(good) / len(good) if good else math.nan


def summarise(tally: Tally) -> dict[str, Any]:
    """A validation as plain floats and lists (checkpoint-safe).

    ``beats_extrapolation``: the model's mean CSI35 over leads is at least the
    extrapolation's; True when the extrapolation has no score (no event).
    """
    losses = tally.losses()
    csi = {name: tally.csi(name) for name in FORECASTS}
    csi20 = {name: tally.csi(name, 1) for name in FORECASTS}
    model_mean = mean_finite(csi["model"])
    extrap_mean = mean_finite(csi["extrapolation"])
    if math.isfinite(extrap_mean):
        beats = math.isfinite(model_mean) and model_mean >= extrap_mean
    else:
        beats = True
    return {
        "loss": losses["total"],
        "terms": {k: v for k, v in losses.items() if k != "total"},
        "samples": tally.n,
        "csi35": csi["model"],
        "csi35_persistence": csi["persistence"],
        "csi35_extrapolation": csi["extrapolation"],
        "csi35_mean": model_mean,
        "csi35_extrapolation_mean": extrap_mean,
        "csi35_persistence_mean": mean_finite(csi["persistence"]),
        "csi20": csi20["model"],
        "csi20_extrapolation": csi20["extrapolation"],
        "csi20_mean": mean_finite(csi20["model"]),
        "csi20_extrapolation_mean": mean_finite(csi20["extrapolation"]),
        "csi20_persistence_mean": mean_finite(csi20["persistence"]),
        "area_ratio": tally.area_ratio(),
        "beats_extrapolation": bool(beats),
    }


def best_key(metrics: dict[str, Any], select_by: str = "csi35") -> list[float]:
    """The ranking key of a validation (larger is better; module contract)."""
    if select_by not in SELECT_BY:
        raise ValueError(f"select_by {select_by!r}: one of {', '.join(SELECT_BY)}")
    csi = metrics["csi35_mean"]
    if select_by == "csi20_35":
        csi20 = metrics.get("csi20_mean", math.nan)
        csi = mean_finite([csi, csi20])
    return [
        1.0 if metrics["beats_extrapolation"] else 0.0,
        csi if math.isfinite(csi) else -1.0,
        -metrics["loss"] if math.isfinite(metrics["loss"]) else -math.inf,
    ]
