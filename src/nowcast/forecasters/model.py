"""The trained ConvLSTM3D behind the forecaster interface (registry name ``model``).

Contract (on top of :mod:`nowcast.forecasters.interface`)
-------------------------------------------------------
- ``ModelForecaster(checkpoint, device="auto")`` loads a checkpoint written by
  ``nowcast train`` (:func:`nowcast.model.checkpoint.load_model`): the
  network is rebuilt from the checkpoint's own constructor keywords, so any
  architecture loads; a missing, corrupt or incompatible file raises
  :class:`~nowcast.errors.ModelError` naming it. ``device="auto"`` is CUDA when
  torch sees a GPU. :meth:`ModelForecaster.from_settings` defaults the
  checkpoint to ``paths.production_model``, the device to ``daemon.device`` and
  the floor to ``radar.dbz_floor``.
- Input: the newest ``in_frames`` (8) of ``frames`` ``(t, z, y, x)`` dBZ (fewer
  is a :class:`~nowcast.errors.ForecasterError`), mapped to unit range with the
  checkpoint's ``dbz_min``/``dbz_max`` (NaN, no coverage, -> no echo). When the
  network takes the optical-flow prior, it is pysteps' Lucas-Kanade on the
  column maximum of the newest 3 frames (exactly what training used,
  :func:`nowcast.forecasters.flow.flow_prior`); without pysteps that raises a
  ``ForecasterError`` naming the extra.
- **Storm-tracked prior** (advection head with the flow input): by default the
  network moves the last frame along
  :func:`~nowcast.forecasters.storm_prior.cell_prior`, its flow prior with TITAN's
  storm motion over tracked storms; the tracker is built from ``baselines.titan``
  (:meth:`from_settings`) or its defaults. ``cell_prior``: ``True`` (defaults of
  :class:`~nowcast.forecasters.storm_prior.CellPriorParams`), ``False`` (the flow
  prior alone, as in training), a ``CellPriorParams`` or a dict of its fields;
  :meth:`from_settings` takes ``[model.cell_prior]``. A ``plain`` head or a
  network without the flow input has no prior: the setting is ignored there
  (``info["cell_prior"]`` is None).
- Output: ``n_leads <= out_frames`` (7) leads, dBZ, clamped to
  ``[dbz_floor, dbz_max]`` of the model, NaN wherever the newest frame had no
  coverage; ``motion`` ``(n_leads, 2, y, x)`` m/s (x then y) from the advection
  head's px/step: ``px * dx_m / interval_s`` (None for the ``plain`` head).
  On CUDA the network runs under bf16 autocast (``bf16=True``).
- ``network=False`` (``[model] network = false``): the prior alone, the same
  forecaster with the network's residual motion and intensity change switched
  off (:class:`~nowcast.model.network.ConvLSTM3DNet` with ``network=False``): the
  last frame moved along the flow and storm-tracked prior the network would
  correct. The measure of what the network adds. ``info["network"]`` says which;
  a ``plain`` head has no prior, and refuses it (``ForecasterError``).
- **Lead smoothing**: a checkpoint may carry per-lead spreads in m/s
  (``state["lead_smoothing"]["spread_m_s"]``, fitted on verification windows by
  ``bench/fit_smoothing.py``, :mod:`nowcast.forecasters.lead_smoothing`): lead
  ``k`` of the network's forecast is blurred in linear Z by a Gaussian of
  ``spread[k] * lead_s`` metres (in pixels of this grid), so the scales it
  cannot place fade with lead, in the fit's ``mode`` (``blur``, ``matched``,
  ``max``: :func:`~nowcast.forecasters.lead_smoothing.smooth_leads`). Part of the model, so
  ``network=False`` leaves it out too; ``smoothing=False`` (``[model] smoothing
  = false``) gives the network's frames unsmoothed. ``info["lead_smoothing_m_s"]``.
- **Lagrangian trend**: a checkpoint may carry ``state["lead_trend"]``
  (``{"scale_m": S, "weight": [...], "decay_weight": [...]}``, fitted by
  ``bench/fit_trend.py`` on the forecasts as they come out of the smoothing,
  :mod:`nowcast.forecasters.lead_trend`): the last step's change of the column
  maximum along the flow prior, blurred at ``S`` metres, moves with the echoes
  and lead ``k`` gets ``weight[k]`` times its growth and ``decay_weight[k]``
  times its decay, on every level, after the smoothing. Part of the model like the smoothing: ``network=False`` leaves it
  out, and so does ``trend=False`` (``[model] trend = false``).
  ``info["lead_trend"]``; ``info["post_seconds"]`` per forecast (smoothing and
  trend).
- **Smoothing head**: a checkpoint may carry instead a trained
  ``state["smoothing_head"]`` (``bench/train_smoothing_head.py``,
  :mod:`nowcast.forecasters.smoothing_head`): a small network that mixes, pixel
  by pixel, a bank of such smoothed versions of each lead; it takes the place
  of the single fitted spread, is switched off by the same two settings, and a
  head the forecaster cannot rebuild is refused at load naming the file.
  ``info["smoothing_head_m_s"]`` gives its bank.
- Levels: the network itself takes any number of levels, but its skill holds
  only for the level count it was trained on (the checkpoint's
  ``data.levels``). Other input raises a ``ForecasterError`` saying so, unless
  ``any_levels=True`` (an experiment, never the daemon's default).
- ``info`` (also in every result's ``info``): checkpoint path, phase, epoch,
  file mtime, device, levels trained on, and per forecast the seconds of the
  flow, of the storm prior and of the network, and ``storms_tracked``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nowcast.forecasters.interface import (
    Forecaster,
    ForecastResult,
    SequenceContext,
    check_input,
    step_seconds,
    usable_context,
)
from nowcast.errors import ForecasterError
from nowcast.times import iso_z

if TYPE_CHECKING:
    from nowcast.config import Settings

__all__ = ["ModelForecaster"]


class ModelForecaster(Forecaster):
    """The trained network as a forecaster (see the module contract)."""

    name = "model"

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        device: str = "auto",
        *,
        dbz_floor: float = 0.0,
        bf16: bool = True,
        any_levels: bool = False,
        cell_prior: Any = True,
        tracker: Any = None,
        network: bool = True,
        smoothing: bool = True,
        trend: bool = True,
    ) -> None:
        import torch

        from nowcast.forecasters.lead_smoothing import MODES
        from nowcast.model.checkpoint import load_model
        from nowcast.model.device import resolve_device
        from nowcast.errors import NowcastError

        try:
            self.device = resolve_device(device)
        except NowcastError as exc:
            raise ForecasterError(str(exc)) from None
        self.checkpoint = Path(checkpoint)
        self.net, self.meta = load_model(self.checkpoint, self.device)
        self.dbz_floor = float(dbz_floor)
        self.bf16 = bool(bf16) and self.device.startswith("cuda")
        self.any_levels = bool(any_levels)
        data = self.meta.get("data") or {}
        self.dbz_min = float(data.get("dbz_min", 0.0))
        self.dbz_max = float(data.get("dbz_max", 70.0))
        self.levels = [int(v) for v in data.get("levels") or []]
        self.network = bool(network)
        if not self.network and self.net.head != "advection":
            raise ForecasterError(
                f"{self.checkpoint.name} has the plain head: there is no prior to "
                "forecast with when [model] network = false"
            )
        fit = self.meta.get("lead_smoothing") or {}
        spread = [float(v) for v in fit.get("spread_m_s") or []]
        self.spread_m_s = spread if (smoothing and self.network and any(spread)) else []
        self.smoothing_mode = str(fit.get("mode", "blur"))
        if self.spread_m_s and self.smoothing_mode not in MODES:
            raise ForecasterError(
                f"{self.checkpoint.name}: lead smoothing mode "
                f"{self.smoothing_mode!r} is not one of {', '.join(MODES)}"
            )
        self.trend_scale_m, self.trend_weight, self.trend_decay = 0.0, [], []
        entry = self.meta.get("lead_trend") or {}
        weights = [float(v) for v in entry.get("weight") or []]
        decay = [float(v) for v in entry.get("decay_weight") or weights]
        if trend and self.network and (any(weights) or any(decay)):
            self.trend_scale_m = float(entry.get("scale_m", 0.0))
            self.trend_weight, self.trend_decay = weights, decay
        self.head, self.head_bank, self.head_mode = None, [], "max"
        entry = self.meta.get("smoothing_head")
        if entry and smoothing and self.network:
            from nowcast.forecasters.smoothing_head import load_head

            try:
                self.head, self.head_bank, self.head_mode = load_head(entry)
            except ValueError as exc:
                raise ForecasterError(f"{self.checkpoint.name}: {exc}") from None
            self.spread_m_s = []
        self.in_frames = int(self.net.in_frames)
        self.out_frames = int(self.net.out_frames)
        self._torch = torch
        self.cell_prior = self._prior_params(cell_prior)
        if self.cell_prior is not None and tracker is None:
            from nowcast.forecasters.titan import TitanForecaster

            tracker = TitanForecaster()
        self.tracker = tracker
        mtime = datetime.fromtimestamp(self.checkpoint.stat().st_mtime, timezone.utc)
        self.info = {
            "checkpoint": str(self.checkpoint),
            "phase": self.meta.get("phase"),
            "epoch": self.meta.get("epoch"),
            "mtime": iso_z(mtime),
            "device": self.device,
            "levels": self.levels,
            "flow_input": bool(self.net.flow_input),
            "head": self.net.head,
            "network": self.network,
            "lead_smoothing_m_s": self.spread_m_s or None,
            "smoothing_head_m_s": self.head_bank or None,
            "lead_trend": (
                {
                    "scale_m": self.trend_scale_m,
                    "weight": self.trend_weight,
                    "decay_weight": self.trend_decay,
                }
                if self.trend_weight
                else None
            ),
            "cell_prior": (
                None if self.cell_prior is None else self.cell_prior.to_dict()
            ),
        }

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, checkpoint: Any = None, **kwargs: Any
    ) -> "ModelForecaster":
        if settings is not None:
            if checkpoint is None:
                checkpoint = settings.paths.production_model
            kwargs.setdefault("device", settings.daemon.device)
            kwargs.setdefault("dbz_floor", settings.radar.dbz_floor)
            kwargs.setdefault("network", settings.model.network)
            kwargs.setdefault("smoothing", settings.model.smoothing)
            kwargs.setdefault("trend", settings.model.trend)
            if "cell_prior" not in kwargs:
                cfg = settings.model.cell_prior
                kwargs["cell_prior"] = (
                    cfg.model_dump(exclude={"enabled"}) if cfg.enabled else False
                )
            if kwargs["cell_prior"] is not False and "tracker" not in kwargs:
                from nowcast.forecasters.titan import TitanForecaster

                kwargs["tracker"] = TitanForecaster.from_settings(settings)
        if checkpoint is None:
            raise ForecasterError(
                "the model forecaster needs a checkpoint (--model CKPT or "
                "paths.production_model)"
            )
        return cls(checkpoint, **kwargs)

    # -- pieces ------------------------------------------------------------------
    def _prior_params(self, choice: Any):
        from nowcast.forecasters.storm_prior import CellPriorParams

        net = self.net
        if choice is False or choice is None:
            return None
        if net.head != "advection" or not net.flow_input:
            return None
        if choice is True:
            return CellPriorParams()
        if isinstance(choice, CellPriorParams):
            return choice
        try:
            return CellPriorParams.from_dict(choice)
        except (TypeError, ValueError) as exc:
            raise ForecasterError(f"{self.checkpoint.name}: {exc}") from None

    def runs_on(self, levels: int) -> bool:
        """Whether volumes of ``levels`` levels are ones this model forecasts."""
        return not self.levels or levels in self.levels or self.any_levels

    def _check(self, frames: np.ndarray, n_leads: int) -> None:
        if frames.shape[0] < self.in_frames:
            raise ForecasterError(
                f"{self.checkpoint.name} needs the newest {self.in_frames} frames, "
                f"got {frames.shape[0]}"
            )
        if n_leads > self.out_frames:
            raise ForecasterError(
                f"{self.checkpoint.name} forecasts {self.out_frames} leads, "
                f"{n_leads} asked for"
            )
        nz = frames.shape[1]
        if not self.runs_on(nz):
            trained = " or ".join(str(v) for v in self.levels)
            raise ForecasterError(
                f"{self.checkpoint.name} was trained on {trained}-level volumes and "
                f"these scans have {nz} level(s): use a checkpoint trained on "
                f"{nz}-level data (e.g. `nowcast train --levels {nz}` or real "
                "composites), or pass any_levels=True to run it anyway"
            )

    def _flow(self, past: np.ndarray) -> np.ndarray:
        from nowcast.forecasters.flow import FLOW_FRAMES, flow_prior

        try:
            return flow_prior(past[-FLOW_FRAMES:], self.dbz_floor)
        except ForecasterError as exc:
            raise ForecasterError(
                f"{self.checkpoint.name} takes the optical-flow prior, which needs "
                f"pysteps: {exc}"
            ) from None

    def _storm_prior(self, past, times, dx_m: float, step: float, flow, context):
        """The network's :class:`~nowcast.model.network.MotionPrior` of ``past``
        (built by :func:`nowcast.curriculum.storm_priors.window_prior`, as in
        training with ``[curriculum] storm_prior``)."""
        from nowcast.curriculum.storm_priors import batch_prior, window_prior

        torch = self._torch
        t_last = times[-len(past) :]
        times_s = [(t - t_last[0]).total_seconds() for t in t_last]
        arrays, storms = window_prior(
            past,
            times_s,
            dx_m=float(dx_m),
            step_s=step,
            flow=flow,
            n_leads=self.out_frames,
            params=self.cell_prior,
            tracker=self.tracker,
            dbz_min=self.dbz_min,
            dbz_max=self.dbz_max,
            context=context,
        )
        batch = {k: torch.from_numpy(v)[None] for k, v in arrays.items()}
        return batch_prior(batch, self.device), storms

    def _add_trend(self, dbz, past, flow, dx_m: float):
        """``dbz`` with the fitted Lagrangian intensity trend of ``past`` added
        (:mod:`nowcast.forecasters.lead_trend`), along the flow prior."""
        from nowcast.forecasters.lead_trend import (
            advected_trends,
            apply_trend,
            lagrangian_trend,
            scales_px,
            trend_displacements,
        )
        from nowcast.verification import column_max

        if flow is None:
            flow = self._flow(past)
        n_leads = dbz.shape[0]
        disp = trend_displacements(flow, n_leads)  # once, for both steps
        trend = lagrangian_trend(
            column_max(past[-2:]), flow, floor=self.dbz_floor, displacements=disp
        )
        (scale,) = scales_px([self.trend_scale_m], dx_m)
        moved = advected_trends(trend, flow, [scale], n_leads, displacements=disp)
        moved = moved[scale]
        ceiling = max(self.dbz_max, self.dbz_floor)
        return apply_trend(
            dbz,
            moved,
            self.trend_weight,
            self.trend_decay,
            floor=self.dbz_floor,
            ceiling=ceiling,
        )

    # -- the interface -----------------------------------------------------------
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
        torch = self._torch
        from nowcast.forecasters.lead_smoothing import sigmas_px, smooth_leads
        from nowcast.forecasters.smoothing_head import apply_head
        from nowcast.model.normalise import from_unit, to_unit

        check_input(frames, times, n_leads)
        context = usable_context(context, frames, times)
        self._check(frames, n_leads)
        step = step_seconds(times, interval_s)
        past = np.asarray(frames[-self.in_frames :], dtype=np.float32)
        t0 = time.perf_counter()
        flow = self._flow(past) if self.net.flow_input else None
        t1 = time.perf_counter()
        prior, storms = None, None
        if self.cell_prior is not None:
            prior, storms = self._storm_prior(past, times, dx_m, step, flow, context)
        tp = time.perf_counter()
        x = torch.from_numpy(to_unit(past, self.dbz_min, self.dbz_max))[None]
        x = x.to(self.device)
        f = None if flow is None else torch.from_numpy(flow)[None].to(self.device)
        with torch.inference_mode():
            if self.bf16:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out = self.net(x, f, prior, network=self.network)
            else:
                out = self.net(x, f, prior, network=self.network)
            unit = out.frames[0, :n_leads].float().cpu().numpy()
            motion_px = (
                None if out.motion is None else out.motion[0, :n_leads].cpu().numpy()
            )
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        dbz = from_unit(unit, self.dbz_min, self.dbz_max)
        dbz = np.clip(dbz, self.dbz_floor, max(self.dbz_max, self.dbz_floor))
        uncovered = ~np.isfinite(past[-1])
        dbz = np.where(uncovered[None], np.float32(np.nan), dbz).astype(np.float32)
        if self.head is not None:
            dbz = apply_head(
                self.head,
                dbz,
                self.head_bank,
                float(dx_m),
                step,
                floor=self.dbz_floor,
                mode=self.head_mode,
            )
        elif self.spread_m_s:
            sigma = sigmas_px(self.spread_m_s, float(dx_m), step, n_leads)
            dbz = smooth_leads(
                dbz, sigma, floor=self.dbz_floor, mode=self.smoothing_mode
            )
        if self.trend_weight:
            dbz = self._add_trend(dbz, past, flow, float(dx_m))
        t3 = time.perf_counter()
        motion = None
        if motion_px is not None:
            motion = (motion_px * (float(dx_m) / step)).astype(np.float32)
        info = {
            **self.info,
            "flow_seconds": round(t1 - t0, 4),
            "prior_seconds": round(tp - t1, 4),
            "net_seconds": round(t2 - tp, 4),
            "post_seconds": round(t3 - t2, 4),
        }
        if storms is not None:
            info["storms_tracked"] = storms
        return ForecastResult(dbz=dbz, method=self.name, motion=motion, info=info)
