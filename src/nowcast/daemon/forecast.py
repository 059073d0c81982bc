"""One forecast set from the buffer: production (the model, else the fallback), then
the baselines on the same input.

Contract
--------
- :func:`sequence_context` stacks the buffer's pooled frames of one sequence once
  (each scan was pooled as it arrived) into the
  :class:`~nowcast.forecasters.interface.SequenceContext` every forecaster of this
  issue shares, so TITAN's tracks are computed once for the model's storm prior
  and the ``titan`` baseline.
- :func:`forecast_sequence` runs :func:`nowcast.pipeline.forecast_set` with the
  :class:`~nowcast.daemon.models.ModelManager`'s production forecaster (the model
  wrapped in :class:`~nowcast.forecasters.fallback.WithFallback`, or the fallback
  alone when no model is loaded), then :func:`nowcast.pipeline.write_set` (the
  pipeline of ``nowcast predict``: upsample, clamp, write in the TITAN layout with
  ``_latest_data_info``). When the model fails, the fallback's forecast is
  written, :attr:`Made.fallback_reason` says why and the files' ``nowcast_method``
  names the method that made them. A failure of the fallback or of writing
  (:class:`~nowcast.errors.ForecastWriteError`) propagates: the daemon retries
  later, and no partial file is left.
- :func:`baseline_forecasts` runs each baseline on the same context (for live
  verification only: nothing is written), skipping the method that made the set;
  a baseline that fails is returned with its error.
- :func:`latency_s` is the time from the newest scan's close (its file's mtime;
  the time it was taken when the mtime is not plausible) to now.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nowcast.daemon.buffer import Entry
from nowcast.forecasters.interface import Forecaster, SequenceContext
from nowcast.pipeline import WriteOptions, WrittenSet, forecast_set, write_set


@dataclass
class Made:
    """A forecast set written, who made it, and the seconds it took."""

    written: WrittenSet
    method: str
    model: str  # the checkpoint's file name, "" for a baseline method
    fallback_reason: str | None = None
    seconds: float = 0.0


def sequence_context(seq: Sequence[Entry]) -> SequenceContext:
    """The shared input of one issue (see the module contract)."""
    frames = np.stack([e.frame for e in seq])
    return SequenceContext(frames, [e.time for e in seq])


def forecast_sequence(
    seq: Sequence[Entry],
    models: object,
    options: WriteOptions,
    n_leads: int,
    context: SequenceContext,
) -> Made:
    """Forecast and write one set from ``seq`` (see the module contract)."""
    t0 = time.perf_counter()
    forecaster, model_name = models.production()  # type: ignore[attr-defined]
    dx_m = seq[-1].scan.grid.pooled(options.pool_factor).dx_m
    result = forecast_set(
        forecaster, context.frames, context.times, n_leads, dx_m=dx_m,
        interval_s=options.interval_s, context=context,
    )
    reason = result.info.get("fallback_reason")
    model = "" if reason else model_name
    written = write_set(
        result, seq[-1].scan.grid, seq[-1].time, options, model_name=model
    )
    return Made(written, result.method, model, reason, time.perf_counter() - t0)


def baseline_forecasts(
    baselines: Mapping[str, Forecaster],
    context: SequenceContext,
    n_leads: int,
    *,
    dx_m: float,
    interval_s: float,
    skip: str = "",
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({name: (lead, z, y, x) dBZ}, {name: error})`` on the pooled grid."""
    out: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for name, baseline in baselines.items():
        if name == skip:
            continue
        try:
            res = baseline.forecast(
                context.frames, context.times, n_leads, dx_m=dx_m,
                interval_s=interval_s, context=context,
            )
            out[name] = np.asarray(res.dbz)
        except Exception as exc:  # a baseline must never cost the forecast
            errors[name] = f"{type(exc).__name__}: {exc}"
    return out, errors


def latency_s(entry: Entry, end: float | None = None) -> float:
    """Seconds from the scan's close to ``end`` (now; see the module contract)."""
    end = time.time() if end is None else end
    taken = entry.extra.get("taken_wall", end)
    start = entry.closed if entry.closed is not None else taken
    if not start <= taken <= start + 3600:
        start = taken  # an mtime that is not the close (a copied or replayed file)
    return max(0.0, end - start)
