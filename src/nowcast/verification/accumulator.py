"""Running totals of every score, per lead time, that add up over many forecasts.

Contract
--------
:class:`ScoreAccumulator` is what the daemon, the training loop, the skill
benchmark and ``nowcast eval`` keep:

- :meth:`~ScoreAccumulator.add` takes one lead of one forecast, a ``(z, y, x)``
  (or ``(y, x)``, one level) dBZ volume and the observation valid at the same time,
  on the same grid, and adds to the totals for that lead (in seconds):

  - contingency :class:`~nowcast.verification.contingency.Counts` per threshold and
    kind, ``"3d"`` (every voxel) and ``"composite"`` (the column maximum of each
    field, :func:`~nowcast.verification.continuous.column_max`);
  - FSS sums on the composite at ``fss_threshold`` for every window;
  - absolute-error sums (MAE) for both kinds.

  Conventions are those of :mod:`nowcast.verification` (events ``>=``, NaN in the
  observation excluded).
- Everything kept is a sum, so :meth:`~ScoreAccumulator.merge` (or ``+``) of two
  accumulators equals one that saw both sets of forecasts, and the order of
  :meth:`~ScoreAccumulator.add` calls does not matter.
- :meth:`~ScoreAccumulator.table` gives one row per (lead, kind, threshold) with the
  counts, CSI, POD, FAR, bias and that lead's MAE; :meth:`~ScoreAccumulator.fss_table`
  one row per (lead, window). Undefined scores are NaN in the rows and ``null`` in
  JSON.
- :meth:`~ScoreAccumulator.to_json` / :meth:`~ScoreAccumulator.from_json` round-trip
  the raw sums exactly (the JSON also carries both tables for readers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from nowcast.verification.contingency import Counts, contingency
from nowcast.verification.continuous import MaeSums, column_max, mae_sums
from nowcast.verification.fss import FssSums, fss_sums_events

KINDS = ("3d", "composite")
JSON_VERSION = 1


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ScoreAccumulator:
    """Per-lead running totals of contingency counts, FSS sums and MAE sums.

    Parameters
    ----------
    thresholds
        Contingency thresholds in dBZ (event = value >= threshold).
    fss_threshold
        The FSS threshold in dBZ.
    fss_windows
        FSS window sides in pixels.

    Examples
    --------
    >>> acc = ScoreAccumulator([20, 35, 45])
    >>> acc.add(300, forecast_volume, observed_volume)  # doctest: +SKIP
    >>> acc.table()[0]["csi"]  # doctest: +SKIP
    """

    def __init__(
        self,
        thresholds: Iterable[float] = (20.0, 35.0, 45.0),
        fss_threshold: float = 35.0,
        fss_windows: Iterable[int] = (1, 5, 11, 21),
    ) -> None:
        self.thresholds = tuple(sorted({float(t) for t in thresholds}))
        if not self.thresholds:
            raise ValueError("ScoreAccumulator needs at least one threshold")
        self.fss_threshold = float(fss_threshold)
        self.fss_windows = tuple(sorted({int(w) for w in fss_windows}))
        if any(w < 1 for w in self.fss_windows):
            raise ValueError(f"FSS windows must be >= 1 pixel, got {self.fss_windows}")
        self._forecasts: dict[int, int] = {}
        self._counts: dict[tuple[int, str, float], Counts] = {}
        self._mae: dict[tuple[int, str], MaeSums] = {}
        self._fss: dict[tuple[int, int], FssSums] = {}

    @classmethod
    def from_config(cls, verification: Any) -> "ScoreAccumulator":
        """Build from a :class:`~nowcast.config.VerificationConfig`."""
        return cls(
            verification.thresholds,
            verification.fss_threshold,
            verification.fss_windows,
        )

    # -- adding ---------------------------------------------------------------

    @property
    def leads(self) -> list[int]:
        """The leads (seconds) seen so far, ascending."""
        return sorted(self._forecasts)

    def forecasts(self, lead_s: int) -> int:
        """How many forecasts were added at ``lead_s``."""
        return self._forecasts.get(int(lead_s), 0)

    def __len__(self) -> int:
        return sum(self._forecasts.values())

    def add(self, lead_s: int, forecast: np.ndarray, observed: np.ndarray) -> None:
        """Score one lead of one forecast against its observation and add it.

        Parameters
        ----------
        lead_s
            Lead time in seconds (the key the scores are kept under).
        forecast, observed
            ``(z, y, x)`` or ``(y, x)`` dBZ on the same grid; NaN in ``observed`` is
            no coverage (excluded), NaN in ``forecast`` is no event.

        Raises
        ------
        ValueError
            When the shapes differ or are not 2D or 3D.
        """
        forecast = np.asarray(forecast)
        observed = np.asarray(observed)
        if forecast.shape != observed.shape:
            raise ValueError(
                f"forecast shape {forecast.shape} does not match observed shape "
                f"{observed.shape}"
            )
        if forecast.ndim == 2:
            forecast, observed = forecast[np.newaxis], observed[np.newaxis]
        if forecast.ndim != 3:
            raise ValueError(
                f"add() takes (z, y, x) or (y, x) fields, got shape {forecast.shape}"
            )
        lead = int(lead_s)
        fields = {
            "3d": (forecast, observed),
            "composite": (column_max(forecast), column_max(observed)),
        }
        for kind, (f, o) in fields.items():
            for thr, counts in contingency(f, o, self.thresholds).items():
                key = (lead, kind, thr)
                self._counts[key] = self._counts.get(key, Counts()) + counts
            self._mae[(lead, kind)] = self._mae.get((lead, kind), MaeSums()) + (
                mae_sums(f, o)
            )
        f, o = fields["composite"]
        covered = np.isfinite(o)
        f_event = f >= self.fss_threshold
        o_event = o >= self.fss_threshold
        for window in self.fss_windows:
            sums = fss_sums_events(f_event, o_event, covered, window)
            self._fss[(lead, window)] = self._fss.get((lead, window), FssSums()) + sums
        self._forecasts[lead] = self._forecasts.get(lead, 0) + 1

    def _check_compatible(self, other: "ScoreAccumulator") -> None:
        mine = (self.thresholds, self.fss_threshold, self.fss_windows)
        theirs = (other.thresholds, other.fss_threshold, other.fss_windows)
        if mine != theirs:
            raise ValueError(
                "cannot merge accumulators with different settings: "
                f"(thresholds, fss_threshold, fss_windows) {mine} vs {theirs}"
            )

    def merge(self, other: "ScoreAccumulator") -> "ScoreAccumulator":
        """Add ``other``'s totals into this one (in place); returns ``self``.

        Raises
        ------
        ValueError
            When the thresholds, FSS threshold or windows differ.
        """
        self._check_compatible(other)
        for table in ("_forecasts", "_counts", "_mae", "_fss"):
            mine, theirs = getattr(self, table), getattr(other, table)
            for key, value in theirs.items():
                mine[key] = mine[key] + value if key in mine else value
        return self

    def __add__(self, other: "ScoreAccumulator") -> "ScoreAccumulator":
        if not isinstance(other, ScoreAccumulator):
            return NotImplemented
        return self.copy().merge(other)

    def copy(self) -> "ScoreAccumulator":
        new = ScoreAccumulator(self.thresholds, self.fss_threshold, self.fss_windows)
        return new.merge(self)

    # -- reading ----------------------------------------------------------------

    def counts(self, lead_s: int, threshold: float, kind: str = "3d") -> Counts:
        """The summed contingency table (empty when nothing was added)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        return self._counts.get((int(lead_s), kind, float(threshold)), Counts())

    def mae(self, lead_s: int, kind: str = "3d") -> float:
        """MAE in dBZ at ``lead_s`` over every added forecast (NaN if none)."""
        return self._mae.get((int(lead_s), kind), MaeSums()).mae

    def fss(self, lead_s: int, window: int) -> float:
        """FSS of the composite at ``fss_threshold`` (NaN if undefined)."""
        return self._fss.get((int(lead_s), int(window)), FssSums()).fss

    def table(self) -> list[dict[str, Any]]:
        """One row per (lead, kind, threshold), ordered by lead, kind, threshold.

        Keys: ``lead_s``, ``kind``, ``threshold``, ``forecasts``, ``hits``,
        ``misses``, ``false_alarms``, ``correct_negatives``, ``csi``, ``pod``,
        ``far``, ``bias``, ``mae`` (NaN where undefined).
        """
        rows = []
        for lead in self.leads:
            for kind in KINDS:
                for thr in self.thresholds:
                    rows.append(
                        {
                            "lead_s": lead,
                            "kind": kind,
                            "threshold": thr,
                            "forecasts": self._forecasts[lead],
                            **self.counts(lead, thr, kind).scores(),
                            "mae": self.mae(lead, kind),
                        }
                    )
        return rows

    def fss_table(self) -> list[dict[str, Any]]:
        """One row per (lead, window): ``lead_s``, ``threshold``, ``window``,
        ``forecasts``, ``fss`` (composite, NaN where undefined)."""
        return [
            {
                "lead_s": lead,
                "threshold": self.fss_threshold,
                "window": window,
                "forecasts": self._forecasts[lead],
                "fss": self.fss(lead, window),
            }
            for lead in self.leads
            for window in self.fss_windows
        ]

    # -- JSON -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: settings, raw sums, and both tables (NaN as None)."""
        return {
            "version": JSON_VERSION,
            "thresholds": list(self.thresholds),
            "fss_threshold": self.fss_threshold,
            "fss_windows": list(self.fss_windows),
            "forecasts": [[lead, n] for lead, n in sorted(self._forecasts.items())],
            "counts": [
                [lead, kind, thr, c.hits, c.misses, c.false_alarms, c.correct_negatives]
                for (lead, kind, thr), c in sorted(self._counts.items())
            ],
            "mae_sums": [
                [lead, kind, m.abs_error, m.count]
                for (lead, kind), m in sorted(self._mae.items())
            ],
            "fss_sums": [
                [lead, window, s.squared_error, s.reference]
                for (lead, window), s in sorted(self._fss.items())
            ],
            "table": [
                {k: _finite_or_none(v) for k, v in row.items()} for row in self.table()
            ],
            "fss_table": [
                {k: _finite_or_none(v) for k, v in row.items()}
                for row in self.fss_table()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScoreAccumulator":
        """Rebuild from :meth:`to_dict` output (the tables in it are ignored).

        Raises
        ------
        ValueError
            When the dict is not one :meth:`to_dict` wrote.
        """
        try:
            if data.get("version") != JSON_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            acc = cls(data["thresholds"], data["fss_threshold"], data["fss_windows"])
            for lead, n in data["forecasts"]:
                acc._forecasts[int(lead)] = int(n)
            for lead, kind, thr, *counts in data["counts"]:
                acc._counts[(int(lead), str(kind), float(thr))] = Counts(
                    *(int(c) for c in counts)
                )
            for lead, kind, abs_error, count in data["mae_sums"]:
                acc._mae[(int(lead), str(kind))] = MaeSums(float(abs_error), int(count))
            for lead, window, squared_error, reference in data["fss_sums"]:
                acc._fss[(int(lead), int(window))] = FssSums(
                    float(squared_error), float(reference)
                )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a ScoreAccumulator dict: {exc!r}") from None
        return acc

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (strict JSON: no NaN); ``kwargs`` go to
        :func:`json.dumps` (``indent=2`` for example)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "ScoreAccumulator":
        """Rebuild from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("not a ScoreAccumulator JSON object")
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScoreAccumulator):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"ScoreAccumulator(thresholds={list(self.thresholds)}, "
            f"leads={self.leads}, forecasts={len(self)})"
        )
