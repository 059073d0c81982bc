"""The one forecaster interface, and the registry that finds forecasters by name.

Contract
--------
Every forecaster (persistence, the TITAN-style tracker, pysteps' extrapolation,
S-PROG and ANVIL, and the ConvLSTM3D model) is a :class:`Forecaster`:

``forecaster.forecast(frames, times, n_leads, dx_m=..., interval_s=None,
context=None)``

- ``frames``: ``(t, z, y, x)`` float32 dBZ, oldest first, on one grid (the pooled
  model grid in the daemon); NaN means no radar coverage, the floor value means no
  echo. Each forecaster decides how to fill NaN; none may fail because of them.
- ``times``: the ``t`` scan times (timezone-aware), oldest first.
- ``n_leads``: how many future frames; lead ``k`` (1-based) is valid at
  ``times[-1] + k * interval_s`` (``interval_s`` defaults to the median step of
  ``times``).
- ``dx_m``: horizontal grid spacing in metres (sizes and speeds need it).
- ``context``: a :class:`SequenceContext` shared by every forecaster run on the
  same input, so work that depends only on the input (TITAN's storm tracks, used by
  the ``titan`` baseline and by the model's storm prior) is done once per issue.
  A forecaster given a context made for other frames ignores it; ``None`` computes
  everything.

It returns a :class:`ForecastResult` whose ``dbz`` is ``(n_leads, z, y, x)`` float32
dBZ on the same grid, finite wherever the last frame was covered (NaN allowed only
where there is no coverage), never below the input's floor; optionally ``motion``
``(n_leads, 2, y, x)`` in m/s (x then y component, along the grid axes).
:func:`output_problem` checks the shape and the finiteness part of this (the
pipeline, the fallback and the daemon's test forecast use it).

:func:`get_forecaster` builds one by name from the settings; an unknown name raises
:class:`~nowcast.errors.ForecasterError` listing the valid names. Implementations
are imported only when asked for, so optional dependencies (pysteps) and torch load
late.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nowcast.errors import ForecasterError

if TYPE_CHECKING:
    from nowcast.config import Settings

#: name -> "module:Class"; the class has ``from_settings(settings, **kwargs)``.
REGISTRY: dict[str, str] = {
    "persistence": "nowcast.forecasters.persistence:Persistence",
    "titan": "nowcast.forecasters.titan:TitanForecaster",
    "extrapolation": "nowcast.forecasters.pysteps_methods:Extrapolation",
    "sprog": "nowcast.forecasters.pysteps_methods:SProg",
    "anvil": "nowcast.forecasters.pysteps_methods:Anvil",
    "linda": "nowcast.forecasters.pysteps_methods:Linda",
    "model": "nowcast.forecasters.model:ModelForecaster",
}


@dataclass
class ForecastResult:
    """What a forecaster returns (see the module contract)."""

    dbz: np.ndarray
    method: str
    motion: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class SequenceContext:
    """What forecasters share about one input sequence (see the module contract).

    ``memo(key, compute)`` returns the value stored under ``key``, computing it
    with ``compute()`` the first time. :meth:`matches` says whether the context
    was made for these frames and times (the same array, or equal values).
    """

    def __init__(self, frames: np.ndarray, times: Sequence[datetime]) -> None:
        self.frames = frames
        self.times = list(times)
        self._values: dict[Hashable, Any] = {}
        self.hits = 0

    def matches(self, frames: np.ndarray, times: Sequence[datetime]) -> bool:
        if list(times) != self.times:
            return False
        if frames is self.frames:
            return True
        return frames.shape == self.frames.shape and bool(
            np.array_equal(frames, self.frames, equal_nan=True)
        )

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key in self._values:
            self.hits += 1
        else:
            self._values[key] = compute()
        return self._values[key]


def usable_context(
    context: SequenceContext | None, frames: np.ndarray, times: Sequence[datetime]
) -> SequenceContext | None:
    """``context`` when it was made for ``frames`` and ``times``, else ``None``."""
    if context is not None and context.matches(frames, times):
        return context
    return None


class Forecaster(ABC):
    """Past frames in, future frames out; same units, same grid."""

    name: ClassVar[str] = ""

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, **kwargs: Any
    ) -> "Forecaster":
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
        context: SequenceContext | None = None,
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


def output_problem(
    result: ForecastResult, frames: np.ndarray, n_leads: int
) -> str | None:
    """What is wrong with ``result`` as the forecast of ``frames``, or ``None``.

    The shape must be ``(n_leads, z, y, x)`` of the frames, and the values finite
    wherever the newest frame is covered.
    """
    dbz = np.asarray(result.dbz)
    expected = (n_leads, *frames.shape[1:])
    if dbz.shape != expected:
        return f"returned shape {dbz.shape}, expected {expected}"
    covered = np.isfinite(frames[-1])
    if not np.isfinite(dbz[:, covered]).all():
        return "returned values that are not finite where the newest frame is covered"
    return None


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


def get_forecaster(
    name: str, settings: Settings | None = None, **kwargs: Any
) -> Forecaster:
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
