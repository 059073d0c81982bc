"""Live verification: forecasts kept on the pooled grid, scored as observations arrive.

Contract
--------
- :meth:`LiveVerifier.add_forecast` keeps one forecast (``(lead, z, y, x)`` dBZ on
  the pooled model grid) under ``(issue_time, method, model)``: the production
  forecast and, for the same issue time, each baseline of
  ``daemon.verify_baselines`` (persistence, the TITAN-style tracker), so the
  monitor can compare them. The production forecast is kept ``exact`` (float32:
  the written set as stored, so its scores equal ``nowcast eval``'s on the same
  files); the baselines as float16 (half the memory; 1/32 dBZ between 32 and 64
  dBZ, so a value within that of a threshold may count on the other side).
  Leads are dropped once scored; forecasts older than ``output_frames`` issue
  times are dropped.
- :meth:`LiveVerifier.observe` scores every kept lead valid within
  ``verification.match_tolerance_s`` of the observation's time (CSI, POD, FAR
  counts per threshold, ``3d`` and ``composite``, and MAE, through a
  :class:`~nowcast.verification.ScoreAccumulator`) and returns one
  :class:`Scored` per forecast lead; the daemon writes them to the store with
  :meth:`~nowcast.store.MetricsStore.record_scores` (the store replaces a row
  scored twice). Each lead is scored once, by the first observation that
  matches it.
- Nothing here touches the disk; state is lost on restart (forecasts made before
  a restart are not verified).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from nowcast.config import VerificationConfig
from nowcast.verification import ScoreAccumulator


@dataclass
class _Pending:
    issue_time: datetime
    method: str
    model: str
    leads: dict[int, np.ndarray] = field(default_factory=dict)  # lead_s -> volume


@dataclass
class Scored:
    """One lead of one forecast, scored against one observation."""

    issue_time: datetime
    valid_time: datetime
    lead_s: int
    method: str
    model: str
    rows: list[dict[str, Any]]

    def csi(self, threshold: float, kind: str = "composite") -> float:
        for row in self.rows:
            if row["kind"] == kind and row["threshold"] == float(threshold):
                return float(row["csi"])
        return float("nan")


class LiveVerifier:
    """Pending forecasts and their scoring (see the module contract)."""

    def __init__(
        self,
        verification: VerificationConfig,
        max_issues: int = 7,
    ) -> None:
        self.verification = verification
        self.tolerance_s = float(verification.match_tolerance_s)
        self.max_issues = max(1, int(max_issues))
        self._pending: dict[tuple[datetime, str, str], _Pending] = {}

    def add_forecast(
        self,
        issue_time: datetime,
        method: str,
        model: str | None,
        dbz: np.ndarray,
        interval_s: float,
        *,
        exact: bool = False,
    ) -> None:
        """Keep a forecast's leads (``dbz`` is ``(lead, z, y, x)``, lead k at
        ``k * interval_s``; float32 when ``exact``, else float16)."""
        dtype = np.float32 if exact else np.float16
        leads = {
            int(round((k + 1) * interval_s)): np.asarray(dbz[k], dtype=dtype)
            for k in range(dbz.shape[0])
        }
        key = (issue_time, str(method), str(model or ""))
        self._pending[key] = _Pending(issue_time, key[1], key[2], leads)
        issues = sorted({k[0] for k in self._pending}, reverse=True)
        keep = set(issues[: self.max_issues])
        for k in [k for k in self._pending if k[0] not in keep]:
            del self._pending[k]

    def observe(self, time: datetime, observed: np.ndarray) -> list[Scored]:
        """Score every kept lead valid at ``time`` (see the module contract)."""
        out: list[Scored] = []
        observed = np.asarray(observed, dtype=np.float32)
        for key, pending in list(self._pending.items()):
            for lead_s, volume in list(pending.leads.items()):
                offset = (time - pending.issue_time).total_seconds() - lead_s
                if abs(offset) > self.tolerance_s:
                    continue
                if volume.shape != observed.shape:
                    del pending.leads[lead_s]
                    continue
                acc = ScoreAccumulator.from_config(self.verification)
                acc.add(lead_s, volume.astype(np.float32), observed)
                out.append(
                    Scored(
                        pending.issue_time, time, lead_s, pending.method,
                        pending.model, acc.table(),
                    )
                )
                del pending.leads[lead_s]
            if not pending.leads:
                del self._pending[key]
        return out

    def expire(self, before: datetime) -> None:
        """Drop leads valid before ``before`` (no observation will come for them)."""
        for key, pending in list(self._pending.items()):
            for lead_s in list(pending.leads):
                valid = (pending.issue_time - before).total_seconds() + lead_s
                if valid < -self.tolerance_s:
                    del pending.leads[lead_s]
            if not pending.leads:
                del self._pending[key]

    def __len__(self) -> int:
        return len(self._pending)
