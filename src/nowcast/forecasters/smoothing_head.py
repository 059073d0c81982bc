"""The smoothing head: a small network that chooses, pixel by pixel, how much each lead fades.

:mod:`nowcast.forecasters.lead_smoothing` blurs a whole lead by one fitted spread.
But how predictable an echo is depends on the echo: a lone 40 dBZ cell at t+30
is nowhere near where extrapolation puts it, while the edge of a stratiform
shield is; a single spread over-smooths the one or keeps the detail of the
other. The head learns that: given the network's unsmoothed lead and a bank of
its smoothed versions (:func:`smoothing_bank`, one per spread of ``bank_m_s``,
in the fit's mode), it forecasts a softmax weight per pixel over the bank and
mixes the versions in dBZ. It is trained on verification windows with a
differentiable CSI at the event thresholds (:func:`soft_csi_loss`), started
from the lead smoothing fit (each lead's weight all on the bank member nearest
its fitted spread, the convolutional part silent), so before training it is
that fit to within the softmax's 0.1 %.

Contract
--------
- :func:`smoothing_bank` ``(dbz (t, [z,] y, x), bank_m_s, dx_m, step_s, floor,
  mode) -> (b, t, [z,] y, x)``: member ``i`` is
  :func:`~nowcast.forecasters.lead_smoothing.smooth_leads` with the spread
  ``bank_m_s[i]`` at every lead (0: the forecast as it is).
- :class:`SmoothingHead` ``(n_bank, n_leads, hidden, dilations)``: ``forward(bank
  (n, b, y, x) in dBZ, lead (n,) int) -> (n, y, x)`` dBZ, the bank mixed by
  the per-pixel weights (:meth:`SmoothingHead.weights`). Input ``NaN`` must be
  replaced by the floor by the caller. Fully convolutional: any grid, any
  level (levels are samples, never mixed). :meth:`SmoothingHead.start_from`
  ``(spread_m_s, bank_m_s)`` sets the start described above.
- :func:`soft_csi_loss` ``(forecast, observed, thresholds, width_db, valid)``:
  1 - the mean over thresholds of the CSI of sigmoid-soft events of the
  forecast against the observed events, counts summed over everything given.
- :func:`soft_counts` ``(forecast, observed, lead, n_leads, ...) -> (3, leads,
  thresholds)``: the soft hits, forecast events and observed events summed per
  lead, so that counts of many windows can be added before the CSI is taken
  (:func:`csi_of_counts`), as the verification does with hard counts.
- :func:`apply_head` ``(head, dbz, bank_m_s, dx_m, step_s, floor, mode) ->
  dbz``: the numpy path the forecaster runs (no gradients); NaN (no coverage)
  stays NaN.
- A checkpoint carries a head as ``state["smoothing_head"]`` =
  :func:`head_state` (``bank_m_s``, ``mode``, the constructor keywords, the
  weights, and what its training measured); :func:`load_head` rebuilds it and
  refuses (``ValueError`` saying why) a mode or shape it cannot use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nowcast.forecasters.lead_smoothing import MODES, sigmas_px, smooth_leads

__all__ = [
    "BANK_M_S",
    "SmoothingHead",
    "apply_head",
    "csi_of_counts",
    "head_state",
    "load_head",
    "smoothing_bank",
    "soft_counts",
    "soft_csi_loss",
]

BANK_M_S = (0.0, 0.75, 1.5, 2.0, 3.0, 4.5)
"""The spreads (m/s) of the bank the head mixes, by default."""

DBZ_SCALE = 60.0
"""The head reads dBZ / this (inputs of order 1)."""


def smoothing_bank(
    dbz: np.ndarray,
    bank_m_s: Sequence[float],
    dx_m: float,
    step_s: float,
    floor: float = 0.0,
    mode: str = "max",
) -> np.ndarray:
    """Every spread of the bank applied to every lead (module contract)."""
    dbz = np.asarray(dbz, dtype=np.float32)
    n = dbz.shape[0]
    members = []
    for spread in bank_m_s:
        sigma = sigmas_px([float(spread)], dx_m, step_s, n)
        members.append(smooth_leads(dbz, sigma, floor=floor, mode=mode))
    return np.stack(members)


class SmoothingHead(nn.Module):
    """Per-pixel weights over the bank, per lead (module contract)."""

    def __init__(
        self,
        n_bank: int,
        n_leads: int,
        hidden: int = 16,
        dilations: Sequence[int] = (1, 2, 4, 8),
    ) -> None:
        super().__init__()
        if n_bank < 2 or n_leads < 1:
            raise ValueError(
                f"need n_bank >= 2 and n_leads >= 1, got {n_bank}, {n_leads}"
            )
        self.n_bank, self.n_leads = int(n_bank), int(n_leads)
        layers: list[nn.Module] = []
        channels = n_bank + 1  # the bank, and the lead as a fraction
        for d in dilations:
            layers += [
                nn.Conv2d(channels, hidden, 3, padding=int(d), dilation=int(d)),
                nn.GELU(),
            ]
            channels = hidden
        self.features = nn.Sequential(*layers)
        self.logits = nn.Conv2d(channels, n_bank, 1)
        nn.init.zeros_(self.logits.weight)
        nn.init.zeros_(self.logits.bias)
        self.lead_bias = nn.Parameter(torch.zeros(n_leads, n_bank))

    def start_from(
        self,
        spread_m_s: Sequence[float],
        bank_m_s: Sequence[float],
        strength: float = 8.0,
    ) -> None:
        """Each lead's weight on the bank member nearest its fitted spread: a
        logit ``strength`` above the others (8: the fit to 0.2 %, but a
        softmax that saturated learns slowly; training starts lower)."""
        bank = np.asarray(bank_m_s, dtype=float)
        with torch.no_grad():
            self.lead_bias.zero_()
            if not spread_m_s:
                return
            for k in range(self.n_leads):
                spread = float(spread_m_s[min(k, len(spread_m_s) - 1)])
                self.lead_bias[k, int(np.argmin(np.abs(bank - spread)))] = strength

    def weights(self, bank: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
        """``(n, b, y, x)`` softmax weights over the bank."""
        frac = (lead.to(bank.dtype) + 1) / self.n_leads
        frac = frac[:, None, None, None].expand(-1, 1, *bank.shape[-2:])
        h = self.features(torch.cat([bank / DBZ_SCALE, frac], dim=1))
        logits = self.logits(h) + self.lead_bias[lead][:, :, None, None]
        return torch.softmax(logits, dim=1)

    def forward(self, bank: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
        return (self.weights(bank, lead) * bank).sum(dim=1)


def soft_csi_loss(
    forecast: torch.Tensor,
    observed: torch.Tensor,
    thresholds: Sequence[float] = (20.0, 35.0),
    width_db: float = 2.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """1 - mean soft CSI over ``thresholds`` (module contract)."""
    from nowcast.curriculum.losses import soft_csi

    csis = [soft_csi(forecast, observed, thr, width_db, valid) for thr in thresholds]
    return 1.0 - torch.stack(csis).mean()


def soft_counts(
    forecast: torch.Tensor,
    observed: torch.Tensor,
    lead: torch.Tensor,
    n_leads: int,
    thresholds: Sequence[float] = (20.0, 35.0),
    width_db: float = 2.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(3, n_leads, n_thresholds)``: soft hits, forecast and observed events
    summed per lead over the samples ``(n, y, x)`` (lead ``lead[i]``)."""
    out = []
    for thr in thresholds:
        p = torch.sigmoid((forecast - thr) / width_db)
        o = (observed >= thr).to(forecast.dtype)
        if valid is not None:
            p, o = p * valid, o * valid
        sums = torch.stack([(p * o).sum((-2, -1)), p.sum((-2, -1)), o.sum((-2, -1))])
        per_lead = torch.zeros(3, n_leads, dtype=forecast.dtype)
        out.append(per_lead.index_add(1, lead, sums))
    return torch.stack(out, dim=-1)


def csi_of_counts(counts: torch.Tensor) -> torch.Tensor:
    """CSI ``(n_leads, n_thresholds)`` of :func:`soft_counts`' sums."""
    hits, fc, obs = counts
    return hits / (fc + obs - hits + 1e-6)


def apply_head(
    head: SmoothingHead,
    dbz: np.ndarray,
    bank_m_s: Sequence[float],
    dx_m: float,
    step_s: float,
    floor: float = 0.0,
    mode: str = "max",
) -> np.ndarray:
    """The head on a forecast ``(t, [z,] y, x)`` dBZ (module contract)."""
    dbz = np.asarray(dbz, dtype=np.float32)
    bank = smoothing_bank(dbz, bank_m_s, dx_m, step_s, floor, mode)
    t = dbz.shape[0]
    b = bank.shape[0]
    spatial = dbz.shape[-2:]
    # (b, t, [z,] y, x) -> (t * z, b, y, x): every lead and level a sample
    flat = np.moveaxis(bank.reshape(b, t, -1, *spatial), 0, 2).reshape(-1, b, *spatial)
    lead = np.repeat(np.arange(t), flat.shape[0] // t)
    lead = np.minimum(lead, head.n_leads - 1)
    x = torch.from_numpy(np.nan_to_num(flat, nan=floor))
    with torch.inference_mode():
        out = head(x, torch.from_numpy(lead)).numpy().reshape(dbz.shape)
    return np.where(np.isnan(dbz), np.float32(np.nan), out).astype(np.float32)


def head_state(
    head: SmoothingHead, bank_m_s: Sequence[float], mode: str, **measured
) -> dict:
    """What a checkpoint carries as ``state["smoothing_head"]``."""
    conv = [m for m in head.features if isinstance(m, nn.Conv2d)]
    return {
        "bank_m_s": [float(v) for v in bank_m_s],
        "mode": mode,
        "init_kwargs": {
            "n_bank": head.n_bank,
            "n_leads": head.n_leads,
            "hidden": conv[0].out_channels,
            "dilations": [int(c.dilation[0]) for c in conv],
        },
        "state_dict": {k: v.detach().cpu() for k, v in head.state_dict().items()},
        **measured,
    }


def load_head(entry: dict) -> tuple[SmoothingHead, list[float], str]:
    """``(head, bank_m_s, mode)`` from ``state["smoothing_head"]``."""
    mode = str(entry.get("mode", "max"))
    if mode not in MODES:
        raise ValueError(
            f"smoothing head mode {mode!r} is not one of {', '.join(MODES)}"
        )
    bank = [float(v) for v in entry.get("bank_m_s") or []]
    kwargs = dict(entry.get("init_kwargs") or {})
    if len(bank) != kwargs.get("n_bank"):
        raise ValueError(
            f"smoothing head has {len(bank)} bank spreads for "
            f"{kwargs.get('n_bank')} weights"
        )
    head = SmoothingHead(**kwargs)
    try:
        head.load_state_dict(entry["state_dict"])
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"smoothing head weights do not fit: {exc}") from None
    head.eval()
    return head, bank, mode
