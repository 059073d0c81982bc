"""Verification: contingency scores, the fractions skill score and the MAE.

Conventions (every function and the accumulator follow them)
------------------------------------------------------------
- Fields are reflectivity in dBZ on one grid: ``(z, y, x)`` volumes, ``(y, x)``
  composites, or stacks of either with the same shape for forecast and observation.
- **Events** are ``value >= threshold`` (default thresholds 20, 35 and 45 dBZ).
  pysteps' ``det_cat_fct`` counts ``value > threshold``; the two agree wherever no
  value equals a threshold exactly.
- **Coverage**: NaN in the observation means the radar did not see the pixel; it is
  excluded from every score. NaN in the forecast where the observation is covered
  counts as no event (and is left out of the MAE).
- **Composite**: the column maximum over levels ignoring NaN
  (:func:`column_max`); a column is uncovered only when all its levels are.
- **Scores**: CSI = H / (H + M + F), POD = H / (H + M), FAR = F / (H + F),
  bias = (H + F) / (H + M); FSS after Roberts and Lean (2008) with square windows
  and fractions over the covered pixels of each window (:mod:`.fss`); MAE in dBZ
  over pixels finite in both fields. A score whose denominator is zero is NaN
  (``null`` in JSON), never 0 or 1.
- **Adding up**: every total is a sum of integers or floats, so scores over many
  forecasts are computed from summed counts and sums (never averaged scores).
  :class:`ScoreAccumulator` keeps them per lead, threshold and kind (``"3d"``,
  ``"composite"``).

Modules
-------
- :mod:`.contingency`: :class:`Counts`, :func:`contingency`.
- :mod:`.continuous`: :func:`column_max`, :func:`mae`.
- :mod:`.fss`: :class:`FssSums`, :func:`fss`, :func:`fss_sums`.
- :mod:`.accumulator`: :class:`ScoreAccumulator`.
- :mod:`.matching`: forecast files under ``OUT`` (both layouts) and the observed
  scans valid at the same times.
- :mod:`.offline`: :func:`~.offline.score_files`, forecast files scored against
  the scans valid at their times (``nowcast eval``).
- :mod:`.report`: plain-text tables (``nowcast eval``).
"""

from nowcast.verification.accumulator import KINDS, ScoreAccumulator
from nowcast.verification.contingency import Counts, contingency
from nowcast.verification.continuous import MaeSums, column_max, mae, mae_sums
from nowcast.verification.fss import FssSums, fss, fss_sums
from nowcast.verification.matching import (
    ForecastAttrs,
    ForecastEntry,
    ObservationIndex,
    VerificationError,
    find_forecasts,
    index_observations,
    read_forecast_attrs,
)
from nowcast.verification.report import format_lead, format_scores

__all__ = [
    "KINDS",
    "Counts",
    "ForecastAttrs",
    "ForecastEntry",
    "FssSums",
    "MaeSums",
    "ObservationIndex",
    "ScoreAccumulator",
    "VerificationError",
    "column_max",
    "contingency",
    "find_forecasts",
    "format_lead",
    "format_scores",
    "fss",
    "fss_sums",
    "index_observations",
    "mae",
    "mae_sums",
    "read_forecast_attrs",
]
