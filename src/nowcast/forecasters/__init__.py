"""Forecasters behind one interface (see :mod:`nowcast.forecasters.interface`)."""

from nowcast.forecasters.interface import (
    ForecastResult,
    Forecaster,
    available,
    get_forecaster,
)

__all__ = ["ForecastResult", "Forecaster", "available", "get_forecaster"]
