"""Score written forecast files against the observed scans: ``nowcast eval``'s work.

Contract
--------
:func:`score_files` ``(forecasts_dir, obs_dir, *, thresholds, pool_factor,
tolerance_s, ...)`` -> :class:`OfflineScores`:

- every forecast file under ``forecasts_dir`` (both TITAN layouts,
  :func:`~nowcast.verification.matching.find_forecasts`) is matched with the
  observed scan under ``obs_dir`` nearest its valid time, within ``tolerance_s``
  (:func:`~nowcast.verification.matching.index_observations`);
- only forecasts whose ``nowcast_method`` is ``method``, when given;
- the observation is read and pooled by ``pool_factor``
  (:func:`nowcast.radar.pooled.read_pooled`); a forecast on the scans' grid is
  pooled the same way, one written on the pooled grid is compared as it is; a
  forecast on neither grid is counted as ``other_grid``;
- each match is added to a :class:`~nowcast.verification.ScoreAccumulator` by lead.

:attr:`OfflineScores.files` counts ``found``, ``matched``, ``no_observation``,
``unreadable`` and ``other_grid``; unreadable files are logged with their reason,
never fatal. A missing directory, no forecast or observation file at all, or a
``method`` no forecast was made by is a
:class:`~nowcast.verification.matching.VerificationError`.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import structlog

from nowcast.errors import ScanError
from nowcast.radar import pool, read_scan
from nowcast.radar.pooled import read_pooled
from nowcast.verification.accumulator import ScoreAccumulator
from nowcast.verification.matching import (
    VerificationError,
    find_forecasts,
    index_observations,
    read_forecast_attrs,
)

log = structlog.get_logger(__name__)

FILE_TALLIES = ("found", "matched", "no_observation", "unreadable", "other_grid")


@dataclass
class OfflineScores:
    """What :func:`score_files` found and scored (see the module contract)."""

    scores: ScoreAccumulator
    files: Counter = field(default_factory=Counter)
    methods_seen: set[str] = field(default_factory=set)
    methods_scored: Counter = field(default_factory=Counter)
    issue_times: set[datetime] = field(default_factory=set)


class _Observations:
    """The observed scans, read and pooled once each (the newest 8 kept)."""

    def __init__(self, pool_factor: int, read_options: dict, keep: int = 8) -> None:
        self.pool_factor = pool_factor
        self.read_options = read_options
        self.keep = keep
        self._cache: OrderedDict = OrderedDict()

    def get(self, path: Path) -> tuple[tuple[int, ...], np.ndarray]:
        """``(full-resolution shape, pooled volume)``."""
        if path not in self._cache:
            scan, pooled = read_pooled(path, self.pool_factor, **self.read_options)
            self._cache[path] = (scan.dbz.shape, pooled)
            if len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        return self._cache[path]


def score_files(
    forecasts_dir: str | Path,
    obs_dir: str | Path,
    *,
    thresholds: Sequence[float],
    pool_factor: int,
    tolerance_s: float,
    fss_threshold: float,
    fss_windows: Sequence[int],
    field_name: str = "DBZ",
    read_options: dict | None = None,
    method: str | None = None,
) -> OfflineScores:
    """Match and score (see the module contract).

    ``read_options`` are :func:`nowcast.radar.pooled.reading_options` of the
    ``[radar]`` section (the observations' variable, floor and expected grid).
    """
    read_options = dict(read_options or {})
    floor = read_options.get("dbz_floor", 0.0)
    entries = find_forecasts(forecasts_dir)
    if not entries:
        raise VerificationError(
            f"{forecasts_dir}: no forecast files (expected yyyymmdd/g_hhmmss/"
            "f_%08d.nc or yyyymmdd/hhmmss.nc under it)"
        )
    observations = index_observations(obs_dir, exclude=forecasts_dir)
    if not observations:
        raise VerificationError(f"{obs_dir}: no observed scans (*.nc) under it")
    observed = _Observations(pool_factor, read_options)
    out = OfflineScores(ScoreAccumulator(thresholds, fss_threshold, fss_windows))
    tally = out.files
    for entry in entries:
        lead, issue = entry.lead_s, entry.issue_time
        try:
            attrs = read_forecast_attrs(entry.path)
            name = attrs.method or "unknown"
            out.methods_seen.add(name)
            if method and name != method:
                continue
            lead = attrs.lead_s if lead is None else lead
            issue = attrs.issue_time if issue is None else issue
        except ScanError as exc:
            name = "unknown"
            if method:
                tally["unreadable"] += 1
                log.warning("cannot read", file=str(exc.path), reason=exc.reason)
                continue
        tally["found"] += 1
        if lead is None:
            tally["unreadable"] += 1
            log.warning("forecast without a lead time", file=str(entry.path))
            continue
        obs_path = observations.find(entry.valid_time, tolerance_s)
        if obs_path is None:
            tally["no_observation"] += 1
            continue
        try:
            fc = read_scan(entry.path, field_name, floor)
            full_shape, ob = observed.get(obs_path)
            forecast = _on_the_model_grid(fc.dbz, full_shape, ob.shape, pool_factor)
        except ScanError as exc:
            tally["unreadable"] += 1
            log.warning("cannot read", file=str(exc.path), reason=exc.reason)
            continue
        if forecast is None:
            tally["other_grid"] += 1
            log.warning(
                "forecast and observation grids differ",
                file=str(entry.path), forecast=fc.dbz.shape, observed=full_shape,
            )
            continue
        out.scores.add(lead, forecast, ob)
        tally["matched"] += 1
        out.methods_scored[name] += 1
        if issue is not None:
            out.issue_times.add(issue)
    if method and not tally["found"]:
        raise VerificationError(
            f"{forecasts_dir}: no forecast made by method {method!r} "
            f"(methods found: {', '.join(sorted(out.methods_seen)) or 'none'})"
        )
    return out


def _on_the_model_grid(
    dbz: np.ndarray, full_shape: tuple, pooled_shape: tuple, pool_factor: int
) -> np.ndarray | None:
    """The forecast on the pooled grid, or ``None`` when it is on neither grid."""
    if dbz.shape == tuple(full_shape):
        return pool(dbz, pool_factor)
    if dbz.shape == tuple(pooled_shape):
        return dbz  # written on the pooled model grid
    return None
