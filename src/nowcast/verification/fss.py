"""The fractions skill score (Roberts and Lean 2008), NaN-aware and additive.

Contract
--------
- Events are ``value >= threshold`` (as in :mod:`nowcast.verification.contingency`
  and in pysteps' ``fss``). Pixels where the observation is NaN (no coverage) are
  excluded: they are neither events nor non-events, for either field. NaN in the
  forecast where the observation is covered counts as no event.
- The neighbourhood is a ``window x window`` square (odd windows are centred; an
  even one extends one pixel further up/left, as ``scipy.ndimage.uniform_filter``
  does) over the last two axes; leading axes (levels, a stack of forecasts) are
  independent fields whose sums are added. The fraction at a pixel is the number
  of events divided by the number of *covered* pixels in its window, computed
  exactly with integer cumulative sums. Beyond the domain's edge nothing is
  covered, so edge windows are normalised by their in-domain part; pysteps pads
  with zeros instead. The two agree wherever no event lies within half a window of
  the edge.
- ``FSS = 1 - sum((Pf - Po)^2) / sum(Pf^2 + Po^2)`` with the sums over covered
  pixels. :class:`FssSums` holds the two sums and adds with ``+``, so the FSS of
  many forecasts together is that of their summed sums (as in pysteps'
  ``fss_accum``). The FSS is NaN when neither field has an event (``0 / 0``);
  1 is a perfect forecast, 0 one with no overlap at the scale of the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FssSums:
    """The two sums of the FSS: ``squared_error`` and its ``reference``.

    Attributes
    ----------
    squared_error
        ``sum((Pf - Po)^2)`` over covered pixels.
    reference
        ``sum(Pf^2 + Po^2)``, the squared error of the worst forecast.
    """

    squared_error: float = 0.0
    reference: float = 0.0

    def __add__(self, other: "FssSums") -> "FssSums":
        if not isinstance(other, FssSums):
            return NotImplemented
        return FssSums(
            self.squared_error + other.squared_error, self.reference + other.reference
        )

    @property
    def fss(self) -> float:
        """``1 - squared_error / reference``; NaN when ``reference`` is 0."""
        if self.reference <= 0:
            return float("nan")
        return 1.0 - self.squared_error / self.reference


def _box_sum(a: np.ndarray, window: int, axis: int) -> np.ndarray:
    """Sum over a window of ``window`` cells along ``axis``, clipped at the edges."""
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (1, 0)
    cum = np.pad(np.cumsum(a, axis=axis), pad)
    start = np.arange(n) - window // 2
    lo = np.clip(start, 0, n)
    hi = np.clip(start + window, 0, n)
    return np.take(cum, hi, axis=axis) - np.take(cum, lo, axis=axis)


def _window_count(mask: np.ndarray, window: int) -> np.ndarray:
    counts = mask.astype(np.int64)
    if window == 1:
        return counts
    return _box_sum(_box_sum(counts, window, -1), window, -2)


def _check_window(window: int) -> int:
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(
            f"FSS window must be a positive whole number of pixels, got {window!r}"
        )
    return int(window)


def fss_sums_events(
    f_event: np.ndarray, o_event: np.ndarray, covered: np.ndarray, window: int
) -> FssSums:
    """FSS sums from boolean event fields and the coverage mask (all one shape).

    Forecast and observed events outside ``covered`` are ignored. Lets a caller
    that scores several windows threshold the fields once.
    """
    window = _check_window(window)
    f_event = f_event & covered
    o_event = o_event & covered
    n_cov = _window_count(covered, window)[covered]
    pf = _window_count(f_event, window)[covered] / n_cov
    po = _window_count(o_event, window)[covered] / n_cov
    return FssSums(float(np.sum((pf - po) ** 2)), float(np.sum(pf**2 + po**2)))


def _events(
    forecast: np.ndarray, observed: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    forecast = np.asarray(forecast)
    observed = np.asarray(observed)
    if forecast.shape != observed.shape:
        raise ValueError(
            f"forecast shape {forecast.shape} does not match observed shape "
            f"{observed.shape}"
        )
    if forecast.ndim < 2:
        raise ValueError(f"FSS needs (..., y, x) fields, got shape {forecast.shape}")
    return forecast >= threshold, observed >= threshold, np.isfinite(observed)


def fss_sums(
    forecast: np.ndarray, observed: np.ndarray, threshold: float, window: int
) -> FssSums:
    """The two FSS sums of one forecast, to add up over many (see :class:`FssSums`).

    Parameters are those of :func:`fss`.
    """
    return fss_sums_events(*_events(forecast, observed, threshold), window)


def fss(
    forecast: np.ndarray, observed: np.ndarray, threshold: float, window: int
) -> float:
    """Fractions skill score at ``threshold`` over ``window x window`` squares.

    Parameters
    ----------
    forecast, observed
        dBZ fields of the same shape ``(..., y, x)``; leading axes are scored as
        separate 2D fields and summed. NaN in ``observed`` is no coverage.
    threshold
        dBZ; an event is ``value >= threshold``.
    window
        Side of the square neighbourhood in pixels (1 = pixel by pixel).

    Returns
    -------
    float
        In ``[0, 1]``; NaN when neither field has an event.
    """
    return fss_sums(forecast, observed, threshold, window).fss
