"""Forecasters behind one interface (see :mod:`nowcast.baselines.interface`)."""

from nowcast.baselines.interface import (
    ForecastResult,
    Forecaster,
    available,
    get_forecaster,
)

__all__ = ["ForecastResult", "Forecaster", "available", "get_forecaster"]
