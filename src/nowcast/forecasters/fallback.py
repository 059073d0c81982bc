"""The primary forecaster, else its fallback: the one "model, else fallback" rule.

Contract
--------
:class:`WithFallback` ``(primary, fallback)`` is a
:class:`~nowcast.forecasters.interface.Forecaster`. It runs ``primary``; when that
raises (out of memory, a CUDA error, a bug) or returns what breaks the interface
(:func:`~nowcast.forecasters.interface.output_problem`: a wrong shape, values that
are not finite where the newest frame is covered), it runs ``fallback()`` on the
same input instead (``fallback`` is a callable, so a fallback is built only when
needed), counts the failure in :attr:`WithFallback.failures` and says why in the
result's ``info["fallback_reason"]``. The result's ``method`` names whichever
made it. A failing fallback raises. The daemon and retraining's scoring of
production both use it, so production is judged as it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np
import structlog

from nowcast.forecasters.interface import (
    ForecastResult,
    Forecaster,
    SequenceContext,
    output_problem,
)

log = structlog.get_logger(__name__)


class WithFallback(Forecaster):
    """``primary``, else ``fallback()`` (see the module contract)."""

    def __init__(self, primary: Forecaster, fallback: Callable[[], Forecaster]) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.failures = 0

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
        kw = {"dx_m": dx_m, "interval_s": interval_s, "context": context}
        who = self.primary.name or type(self.primary).__name__
        try:
            result = self.primary.forecast(frames, times, n_leads, **kw)
            problem = output_problem(result, frames, n_leads)
        except Exception as exc:  # the fallback stands in for any failure
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return result
        self.failures += 1
        reason = f"{who} failed: {problem}"
        log.warning("forecaster failed; the fallback stands in", reason=reason)
        result = self.fallback().forecast(frames, times, n_leads, **kw)
        result.info["fallback_reason"] = reason
        return result
