"""One forecast set from the buffer: the model, else the fallback; then the baselines.

Contract
--------
- :func:`forecast_sequence` runs :func:`nowcast.pipeline.forecast_and_write` (the
  pipeline of ``nowcast predict``, given the buffer's pooled frames so no scan is
  pooled twice: forecast, upsample, write in the TITAN layout with
  ``_latest_data_info``, ``U``/``V`` when ``output.write_motion``) with
  the :class:`~nowcast.daemon.models.ModelManager`'s active forecaster. When that is
  the model and the *model* fails (its forecast raises: out of memory, a CUDA
  error; or it returns the wrong shape), the fallback makes the set instead and
  :attr:`Made.fallback_reason` says why; the files' ``nowcast_method`` names the
  method that made them. A failure of the pipeline itself (writing:
  :class:`~nowcast.errors.ForecastWriteError`, or a netCDF error on a full disk)
  propagates: the daemon retries later, and no partial file is left.
- :func:`baseline_forecasts` runs each baseline on the pooled frames of the same
  sequence (for live verification only: nothing is written), skipping the method
  that made the set; a baseline that fails is returned with its error.
- :func:`latency_s` is the time from the newest scan's close (its file's mtime;
  the time it was taken when the mtime is not plausible) to now.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from nowcast.daemon.buffer import Entry
from nowcast.errors import ForecasterError


@dataclass
class Made:
    """A forecast set written: the pipeline's result and who made it."""

    result: Any  # nowcast.pipeline.PipelineResult
    method: str
    model: str  # the checkpoint's file name, "" for a baseline method
    fallback_reason: str | None = None


class _ModelFailed(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Blame:
    """The model, whose failures are told apart from the pipeline's (writing)."""

    def __init__(self, forecaster) -> None:
        self.inner = forecaster
        self.name = forecaster.name

    def forecast(self, *args, **kwargs):
        try:
            return self.inner.forecast(*args, **kwargs)
        except Exception as exc:  # out of memory, a CUDA error, a bug in the model
            raise _ModelFailed(exc) from exc


def forecast_sequence(seq: Sequence[Entry], settings: Any, models: Any) -> Made:
    """Forecast and write one set from ``seq`` (see the module contract)."""
    from nowcast.pipeline import forecast_and_write

    forecaster, model_name, is_model = models.active()
    scans = [e.scan for e in seq]
    frames = np.stack([e.frame for e in seq])  # pooled once, as each scan arrived
    if not is_model:
        result = forecast_and_write(forecaster, scans, settings, frames=frames)
        return Made(result, result.forecast.method or forecaster.name, "")
    try:
        result = forecast_and_write(
            _Blame(forecaster), scans, settings, model_name=model_name,
            frames=frames,
        )
        return Made(result, result.forecast.method or forecaster.name, model_name)
    except (_ModelFailed, ForecasterError) as exc:
        cause = getattr(exc, "cause", exc)
        reason = f"the model failed: {type(cause).__name__}: {cause}"
    fallback = models.fallback()
    result = forecast_and_write(fallback, scans, settings, frames=frames)
    return Made(result, result.forecast.method or fallback.name, "", reason)


def baseline_forecasts(
    baselines: Mapping[str, Any],
    seq: Sequence[Entry],
    settings: Any,
    skip: str = "",
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({name: (lead, z, y, x) dBZ}, {name: error})`` on the pooled grid."""
    g = settings.grid
    frames = np.stack([e.frame for e in seq])
    times: list[datetime] = [e.time for e in seq]
    dx = seq[-1].scan.grid.pooled(g.pool_factor).dx_m
    out: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    for name, baseline in baselines.items():
        if name == skip:
            continue
        try:
            res = baseline.forecast(
                frames, times, g.output_frames, dx_m=dx, interval_s=g.interval_s
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
