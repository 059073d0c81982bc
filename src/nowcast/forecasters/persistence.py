"""Persistence: the last scan, repeated for every lead. The bar every method must clear."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from nowcast.forecasters.interface import (
    ForecastResult,
    Forecaster,
    SequenceContext,
    check_input,
)


class Persistence(Forecaster):
    """Repeat the newest frame (NaN kept where there is no coverage)."""

    name = "persistence"

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
        last = np.asarray(frames[-1], dtype=np.float32)
        dbz = np.repeat(last[np.newaxis], n_leads, axis=0)
        return ForecastResult(dbz=dbz, method=self.name)
