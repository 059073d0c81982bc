"""Scoring forecasters on the held-out scans: CSI at 35 dBZ, averaged over leads.

Contract
--------
- :func:`heldout_sequences` gives the runs of ``grid.input_frames +
  grid.output_frames`` consecutive scans among the held-out times (the rule of
  :func:`nowcast.radar.sequences.find_sequences`, ``daemon.max_gap_factor``), every
  ``retrain.heldout_stride``-th of them, as indices into those times.
- :func:`score_heldout` reads each scan of those sequences once, as the daemon
  reads it (:func:`nowcast.radar.pooled.read_pooled`: the ``[radar]`` contract,
  pooled by ``grid.pool_factor``), gives every forecaster the first
  ``input_frames`` of each sequence and scores its ``output_frames`` leads against
  the rest on the pooled grid, one :class:`~nowcast.verification.ScoreAccumulator`
  a forecaster: the same sequences and the same code for each of them. A sequence
  with an unreadable scan, or scans on two grids, is skipped for all (counted).
  A forecaster that raises or returns the wrong shape *fails*: it is scored no
  further and :attr:`Skill.error` says why.
- :class:`Skill`: :attr:`~Skill.per_lead` is the aggregate CSI at
  :data:`THRESHOLD_DBZ` on the composite (column maximum; counts summed over the
  sequences, then CSI) for each lead, NaN where undefined; :attr:`~Skill.score`
  their mean over the leads where it is defined (NaN when none is);
  :attr:`~Skill.observed_events` the observed composite pixels at or above the
  threshold over every lead (0: the held-out days hold nothing to decide on).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from nowcast.forecasters.interface import Forecaster
from nowcast.errors import NowcastError
from nowcast.verification import ScoreAccumulator

if TYPE_CHECKING:
    from nowcast.config import Settings

log = structlog.get_logger(__name__)

#: The promotion score: CSI at this threshold (dBZ), composite, mean over leads.
THRESHOLD_DBZ = 35.0


def heldout_sequences(
    times: Sequence[datetime], settings: Settings
) -> list[tuple[int, ...]]:
    """Sequences of input + verifying scans, every ``heldout_stride``-th."""
    from nowcast.radar.sequences import find_sequences

    g = settings.grid
    runs = find_sequences(
        times,
        g.input_frames + g.output_frames,
        g.interval_s,
        settings.daemon.max_gap_factor,
    )
    return runs[:: settings.retrain.heldout_stride]


@dataclass
class Skill:
    """One forecaster's scores on the held-out sequences."""

    leads_s: list[int]
    accumulator: ScoreAccumulator = field(
        default_factory=lambda: ScoreAccumulator([THRESHOLD_DBZ], THRESHOLD_DBZ, [1])
    )
    sequences: int = 0
    error: str | None = None

    def _counts(self, lead_s: int):
        return self.accumulator.counts(lead_s, THRESHOLD_DBZ, "composite")

    @property
    def per_lead(self) -> list[float]:
        if not self.sequences:
            return [math.nan] * len(self.leads_s)
        return [float(self._counts(lead).csi) for lead in self.leads_s]

    @property
    def score(self) -> float:
        values = [v for v in self.per_lead if math.isfinite(v)]
        return float(np.mean(values)) if values else math.nan

    @property
    def observed_events(self) -> int:
        if not self.sequences:
            return 0
        return sum(
            self._counts(lead).hits + self._counts(lead).misses for lead in self.leads_s
        )


@dataclass
class HeldOutResult:
    """The skills, and how many sequences were scored or skipped."""

    skills: dict[str, Skill]
    sequences: int = 0
    skipped: int = 0


def score_heldout(
    forecasters: Mapping[str, Forecaster],
    paths: Sequence[Path],
    times: Sequence[datetime],
    sequences: Sequence[tuple[int, ...]],
    settings: Settings,
) -> HeldOutResult:
    """Score each forecaster on the same sequences (see the module contract)."""
    from nowcast.radar.pooled import read_pooled, reading_options

    g = settings.grid
    n_in, n_out = g.input_frames, g.output_frames
    leads = [g.interval_s * k for k in range(1, n_out + 1)]
    result = HeldOutResult({name: Skill(leads) for name in forecasters})
    cache: dict[int, Any] = {}  # index -> (scan, pooled frame), or the ScanError
    for seq in sequences:
        for index in [i for i in cache if i < seq[0]]:
            del cache[index]  # sequences come in time order
        for index in seq:
            if index not in cache:
                try:
                    cache[index] = read_pooled(
                        Path(paths[index]), g.pool_factor,
                        **reading_options(settings.radar),
                    )
                except NowcastError as exc:
                    log.warning("held-out scan unreadable", reason=str(exc))
                    cache[index] = exc
        got = [cache[i] for i in seq]
        if (
            any(isinstance(x, Exception) for x in got)
            or len({x[1].shape for x in got}) != 1
        ):
            result.skipped += 1
            continue
        frames = np.stack([x[1] for x in got])
        past, future = frames[:n_in], frames[n_in:]
        past_times = [times[i] for i in seq[:n_in]]
        dx = got[n_in - 1][0].grid.pooled(g.pool_factor).dx_m
        for name, forecaster in forecasters.items():
            skill = result.skills[name]
            if skill.error is not None:
                continue
            try:
                dbz = np.asarray(
                    forecaster.forecast(
                        past, past_times, n_out, dx_m=dx, interval_s=g.interval_s
                    ).dbz
                )
                if dbz.shape != future.shape:
                    raise ValueError(
                        f"forecast shape {dbz.shape}, expected {future.shape}"
                    )
            except Exception as exc:  # the candidate may be broken: it then loses
                skill.error = f"on a held-out sequence: {type(exc).__name__}: {exc}"
                log.warning(
                    "held-out forecast failed", forecaster=name, error=skill.error
                )
                continue
            for k, lead in enumerate(leads):
                skill.accumulator.add(lead, dbz[k], future[k])
            skill.sequences += 1
        result.sequences += 1
    return result
