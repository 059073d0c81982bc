"""The one forecaster interface, and the registry that finds forecasters by name.

Contract
--------
Every forecaster (persistence, the TITAN-style tracker, pysteps' extrapolation,
S-PROG and ANVIL, and the ConvLSTM3D model) is a :class:`Forecaster`:

``forecaster.forecast(frames, times, n_leads, dx_m=..., interval_s=None)``

- ``frames``: ``(t, z, y, x)`` float32 dBZ, oldest first, on one grid (the pooled
  model grid in the daemon); NaN means no radar coverage, the floor value means no
  echo. Each forecaster decides how to fill NaN; none may fail because of them.
- ``times``: the ``t`` scan times (timezone-aware), oldest first.
- ``n_leads``: how many future frames; lead ``k`` (1-based) is valid at
  ``times[-1] + k * interval_s`` (``interval_s`` defaults to the median step of
  ``times``).
- ``dx_m``: horizontal grid spacing in metres (sizes and speeds need it).

It returns a :class:`ForecastResult` whose ``dbz`` is ``(n_leads, z, y, x)`` float32
dBZ on the same grid, finite wherever the last frame was covered (NaN allowed only
where there is no coverage), never below the input's floor; optionally ``motion``
``(n_leads, 2, y, x)`` in m/s (x then y component, along the grid axes).

:func:`get_forecaster` builds one by name from the settings; an unknown name raises
:class:`~nowcast.errors.ForecasterError` listing the valid names. Implementations
are imported only when asked for, so optional dependencies (pysteps) and torch load
late.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import numpy as np

from nowcast.errors import ForecasterError

#: name -> "module:Class"; the class has ``from_settings(settings, **kwargs)``.
REGISTRY: dict[str, str] = {
    "persistence": "nowcast.baselines.persistence:Persistence",
    "titan": "nowcast.baselines.titan:TitanForecaster",
    "extrapolation": "nowcast.baselines.pysteps_methods:Extrapolation",
    "sprog": "nowcast.baselines.pysteps_methods:SProg",
    "anvil": "nowcast.baselines.pysteps_methods:Anvil",
    "model": "nowcast.model.forecaster:ModelForecaster",
}


@dataclass
class ForecastResult:
    """What a forecaster returns (see the module contract)."""

    dbz: np.ndarray
    method: str
    motion: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Forecaster(ABC):
    """Past frames in, future frames out; same units, same grid."""

    name: ClassVar[str] = ""

    @classmethod
    def from_settings(cls, settings: Any = None, **kwargs: Any) -> "Forecaster":
        """Build from the configuration (``None``: defaults) and keyword overrides."""
        return cls(**kwargs)

    @abstractmethod
    def forecast(
        self,
        frames: np.ndarray,
        times: Sequence[datetime],
        n_leads: int,
        *,
        dx_m: float,
        interval_s: float | None = None,
    ) -> ForecastResult:
        """Forecast ``n_leads`` frames after the last of ``frames``."""


def check_input(frames: np.ndarray, times: Sequence[datetime], n_leads: int) -> None:
    """Validate the common arguments; raise :class:`ForecasterError` if wrong."""
    if frames.ndim != 4:
        raise ForecasterError(f"frames must be (t, z, y, x), got shape {frames.shape}")
    if len(times) != frames.shape[0]:
        raise ForecasterError(f"{frames.shape[0]} frames but {len(times)} times")
    if n_leads < 1:
        raise ForecasterError(f"n_leads must be >= 1, got {n_leads}")


def step_seconds(times: Sequence[datetime], interval_s: float | None) -> float:
    """The time step between frames: ``interval_s``, else the median step of times."""
    if interval_s is not None:
        return float(interval_s)
    if len(times) < 2:
        raise ForecasterError("one frame gives no time step: pass interval_s")
    steps = [(b - a).total_seconds() for a, b in zip(times[:-1], times[1:])]
    return float(np.median(steps))


def available() -> list[str]:
    """Every registered name."""
    return sorted(REGISTRY)


def get_forecaster(name: str, settings: Any = None, **kwargs: Any) -> Forecaster:
    """Build the forecaster registered as ``name``.

    Raises
    ------
    ForecasterError
        For an unknown name (listing the valid ones) or a missing optional extra.
    """
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ForecasterError(
            f"unknown forecaster {name!r}; valid names: {', '.join(available())}"
        ) from None
    module_name, cls_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ForecasterError(
                f"forecaster {name!r} is not available in this installation "
                f"({module_name} is missing)"
            ) from None
        raise
    cls = getattr(module, cls_name)
    return cls.from_settings(settings, **kwargs)
