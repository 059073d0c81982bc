"""Contingency tables at reflectivity thresholds, and the scores derived from them.

Contract
--------
- An event is a value ``>= threshold`` (dBZ). pysteps'
  ``det_cat_fct`` counts ``>``; the two agree wherever no value equals a threshold.
- Only pixels (or voxels) where the observation is finite take part: NaN in
  ``observed`` means no radar coverage and is excluded from every count. NaN in
  ``forecast`` (where the observation is covered) counts as "no event".
- :class:`Counts` holds the four integers of one table; tables add with ``+``, so a
  running total over many forecasts is a sum of :class:`Counts`. The scores (CSI,
  POD, FAR, frequency bias) are properties, NaN when their denominator is zero
  (for example POD and bias when nothing was observed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


@dataclass(frozen=True)
class Counts:
    """One 2 x 2 contingency table.

    Attributes
    ----------
    hits
        Event forecast and observed.
    misses
        Event observed, not forecast.
    false_alarms
        Event forecast, not observed.
    correct_negatives
        Neither.
    """

    hits: int = 0
    misses: int = 0
    false_alarms: int = 0
    correct_negatives: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(
            self.hits + other.hits,
            self.misses + other.misses,
            self.false_alarms + other.false_alarms,
            self.correct_negatives + other.correct_negatives,
        )

    @property
    def total(self) -> int:
        """Pixels (or voxels) scored: every covered one."""
        return self.hits + self.misses + self.false_alarms + self.correct_negatives

    @property
    def csi(self) -> float:
        """Critical success index ``hits / (hits + misses + false_alarms)``."""
        return _ratio(self.hits, self.hits + self.misses + self.false_alarms)

    @property
    def pod(self) -> float:
        """Probability of detection ``hits / (hits + misses)``."""
        return _ratio(self.hits, self.hits + self.misses)

    @property
    def far(self) -> float:
        """False alarm ratio ``false_alarms / (hits + false_alarms)``."""
        return _ratio(self.false_alarms, self.hits + self.false_alarms)

    @property
    def bias(self) -> float:
        """Frequency bias ``(hits + false_alarms) / (hits + misses)``."""
        return _ratio(self.hits + self.false_alarms, self.hits + self.misses)

    def scores(self) -> dict[str, float]:
        """The four counts and the four scores as a flat dict."""
        return {
            **asdict(self),
            "csi": self.csi,
            "pod": self.pod,
            "far": self.far,
            "bias": self.bias,
        }


def _thresholds(thresholds: float | Iterable[float]) -> list[float]:
    if isinstance(thresholds, (int, float, np.number)):
        return [float(thresholds)]
    found = [float(t) for t in thresholds]
    if not found:
        raise ValueError("no thresholds given")
    return found


def contingency(
    forecast: np.ndarray,
    observed: np.ndarray,
    thresholds: float | Iterable[float],
) -> dict[float, Counts]:
    """Count hits, misses, false alarms and correct negatives at each threshold.

    Parameters
    ----------
    forecast, observed
        dBZ arrays of the same shape (any number of dimensions: a ``(z, y, x)``
        volume, a ``(y, x)`` composite, a stack of either). NaN in ``observed`` is
        no coverage (excluded); NaN in ``forecast`` is no event.
    thresholds
        One threshold or several, in dBZ; an event is ``value >= threshold``.

    Returns
    -------
    dict of float to Counts
        One table per threshold, keyed by the threshold as a float.

    Raises
    ------
    ValueError
        When the shapes differ or no threshold is given.
    """
    forecast = np.asarray(forecast)
    observed = np.asarray(observed)
    if forecast.shape != observed.shape:
        raise ValueError(
            f"forecast shape {forecast.shape} does not match observed shape "
            f"{observed.shape}"
        )
    covered = np.isfinite(observed)
    n_covered = int(np.count_nonzero(covered))
    out: dict[float, Counts] = {}
    for thr in _thresholds(thresholds):
        # Comparisons with NaN are False: no event on either side.
        f_event = forecast >= thr
        o_event = observed >= thr
        hits = int(np.count_nonzero(f_event & o_event))
        misses = int(np.count_nonzero(o_event)) - hits
        false_alarms = int(np.count_nonzero(f_event & covered)) - hits
        out[thr] = Counts(
            hits, misses, false_alarms, n_covered - hits - misses - false_alarms
        )
    return out
