"""The monitor's loaders of history: verification scores and training curves.

Contract
--------
Like :mod:`.data` (plain functions, run in worker threads, no Textual, read
only): :func:`load_skill` sums the store's contingency counts over the last
hour, the last day and the time since the model was promoted, per method, lead,
threshold and kind, and the hourly CSI at ``monitor.chart_threshold`` over
``monitor.chart_hours``; :func:`load_training` returns the latest training run's
epochs (both splits side by side) and the last retrain decision. Without a store
they return ``notes`` saying what to start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nowcast.monitor.data import Workspace, open_store
from nowcast.store import MetricsReader
from nowcast.verification import KINDS

NAN = math.nan


# -- skill -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """Scores from summed counts over a period (NaN where undefined)."""

    forecasts: int
    csi: float
    pod: float
    far: float


@dataclass(frozen=True)
class Period:
    """One period of the Skill table: its label, start and scores.

    ``scores`` is keyed by ``(method, lead_s, threshold, kind)``.
    """

    label: str
    since: datetime | None
    scores: dict[tuple[str, int, float, str], Score]

    def forecasts(self, method: str, threshold: float, kind: str) -> int:
        """Forecasts verified (the most at any lead) for a method and threshold."""
        counts = [
            s.forecasts
            for (m, _, t, k), s in self.scores.items()
            if m == method and t == threshold and k == kind
        ]
        return max(counts, default=0)


@dataclass(frozen=True)
class Skill:
    """CSI/POD/FAR per method, lead, threshold and kind, and the CSI series.

    ``chart`` is keyed by ``(kind, method)``: the CSI at ``chart_threshold`` of
    each hour in ``chart_times``, every lead pooled (NaN: nothing verified).
    """

    periods: tuple[Period, ...]
    methods: tuple[str, ...]
    leads_s: tuple[int, ...]
    thresholds: tuple[float, ...]
    chart_threshold: float
    chart_times: tuple[datetime, ...]
    chart: dict[tuple[str, str], tuple[float, ...]]
    kinds: tuple[str, ...] = KINDS
    promoted: datetime | None = None
    promoted_model: str | None = None
    notes: tuple[str, ...] = ()


def order_methods(found: Iterable[str], ws: Workspace) -> tuple[str, ...]:
    """The model first, then the fallback, then the baselines in config order."""
    daemon = ws.settings.daemon
    found = set(found)
    tail = [daemon.fallback, *daemon.verify_baselines]
    head = sorted(m for m in found if m not in tail)
    return tuple(head + [m for m in dict.fromkeys(tail) if m in found])


def _csi(hits: int, misses: int, false_alarms: int) -> float:
    total = hits + misses + false_alarms
    return hits / total if total else NAN


def _promotion(reader: MetricsReader) -> tuple[datetime | None, str | None]:
    for row in reader.retrain_decisions(200):
        if row["promoted"]:
            return row["time"], Path(row["candidate"]).name
    return None, None


def load_skill(ws: Workspace, now: datetime) -> Skill:
    """Scores of the last hour, the last day and since the model was promoted."""
    cfg = ws.settings
    hours = cfg.monitor.chart_hours
    thresholds = tuple(sorted(cfg.verification.thresholds))
    chart_thr = cfg.monitor.chart_threshold
    reader, note = open_store(ws)
    if reader is None:
        hour0 = now.replace(minute=0, second=0, microsecond=0)
        times = tuple(hour0 - timedelta(hours=hours - 1 - k) for k in range(hours))
        return Skill(
            (), (), ws.leads_s(), thresholds, chart_thr, times, {}, notes=(note or "",)
        )
    with reader:
        # Periods end at the newest verified time: now on a live system; the end
        # of the data when the feed stopped or ran on an accelerated clock (demo).
        latest = reader.latest_forecast()
        if latest is not None:
            newest = latest["issue_time"] + timedelta(seconds=max(ws.leads_s()))
            now = min(now, newest)
        hour0 = now.replace(minute=0, second=0, microsecond=0)
        times = tuple(hour0 - timedelta(hours=hours - 1 - k) for k in range(hours))
        promoted, promoted_model = _promotion(reader)
        if promoted is not None:
            since_label = f"since promotion {promoted:%Y-%m-%d %H:%MZ}"
        else:
            since_label = "all time (no promotion recorded)"
        spans = (
            ("last hour", now - timedelta(hours=1)),
            ("last day", now - timedelta(days=1)),
            (since_label, promoted),
        )
        periods = []
        methods: set[str] = set()
        leads = set(ws.leads_s())
        found_thr = set(thresholds)
        for label, since in spans:
            scores = {}
            for row in reader.skill(since=since):
                key = (
                    row["method"],
                    int(row["lead_s"]),
                    float(row["threshold"]),
                    row["kind"],
                )
                scores[key] = Score(
                    int(row["forecasts"] or 0), row["csi"], row["pod"], row["far"]
                )
                methods.add(key[0])
                leads.add(key[1])
                found_thr.add(key[2])
            periods.append(Period(label, since, scores))
        sums: dict[tuple[str, str, datetime], list[int]] = {}
        for kind in KINDS:
            for row in reader.csi_timeseries(
                chart_thr, bucket_s=3600, since=times[0], kind=kind
            ):
                key = (kind, row["method"], row["bucket"])
                acc = sums.setdefault(key, [0, 0, 0])
                acc[0] += int(row["hits"] or 0)
                acc[1] += int(row["misses"] or 0)
                acc[2] += int(row["false_alarms"] or 0)
    ordered = order_methods(methods, ws)
    chart = {
        (kind, m): tuple(_csi(*sums.get((kind, m, t), (0, 0, 0))) for t in times)
        for kind in KINDS
        for m in ordered
    }
    notes = ()
    if not methods:
        notes = (
            "No verified forecasts yet: the daemon scores each forecast once the "
            f"scans at its valid times arrive (`{ws.command('run')}`).",
        )
    return Skill(
        periods=tuple(periods),
        methods=ordered,
        leads_s=tuple(sorted(leads)),
        thresholds=tuple(sorted(found_thr)),
        chart_threshold=chart_thr,
        chart_times=times,
        chart=chart,
        promoted=promoted,
        promoted_model=promoted_model,
        notes=notes,
    )


# -- training --------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochRow:
    """One epoch: both splits side by side."""

    epoch: int
    phase: int
    train_loss: float = NAN
    val_loss: float = NAN
    train_terms: dict[str, float] = field(default_factory=dict)
    val_terms: dict[str, float] = field(default_factory=dict)
    lr: float = NAN
    csi35: dict[int, float] = field(default_factory=dict)

    @property
    def mean_csi35(self) -> float:
        values = [v for v in self.csi35.values() if not math.isnan(v)]
        return sum(values) / len(values) if values else NAN


@dataclass(frozen=True)
class Decision:
    """The last retrain decision."""

    time: datetime | None
    candidate: str
    production: str | None
    candidate_score: float
    production_score: float
    margin: float
    promoted: bool
    reason: str


@dataclass(frozen=True)
class Training:
    """The latest training run, its epochs, and the last retrain decision."""

    run_id: int | None = None
    command: str = ""
    status: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    message: str | None = None
    epochs: tuple[EpochRow, ...] = ()
    decision: Decision | None = None
    notes: tuple[str, ...] = ()

    @property
    def phase_starts(self) -> tuple[tuple[int, int], ...]:
        """``(index into epochs, phase)`` where each phase begins."""
        out = []
        for i, row in enumerate(self.epochs):
            if not out or out[-1][1] != row.phase:
                out.append((i, row.phase))
        return tuple(out)

    @property
    def terms(self) -> tuple[str, ...]:
        names: dict[str, None] = {}
        for row in self.epochs:
            names.update(dict.fromkeys(row.train_terms))
            names.update(dict.fromkeys(row.val_terms))
        return tuple(names)


def _epoch_rows(rows: list[dict[str, Any]]) -> tuple[EpochRow, ...]:
    merged: dict[int, dict[str, Any]] = {}
    for row in rows:
        item = merged.setdefault(row["epoch"], {"epoch": row["epoch"]})
        item["phase"] = row["phase"]
        split = row["split"]
        item[f"{split}_loss"] = row["loss"]
        item[f"{split}_terms"] = {
            k: NAN if v is None else float(v) for k, v in (row["terms"] or {}).items()
        }
        if split == "train" or math.isnan(item.get("lr", NAN)):
            item["lr"] = row["lr"]
        if split == "val" or not item.get("csi35"):
            item["csi35"] = row["csi35"] or {}
    return tuple(EpochRow(**merged[k]) for k in sorted(merged))


def load_training(ws: Workspace) -> Training:
    """The latest training run's epochs and the last retrain decision."""
    reader, note = open_store(ws)
    if reader is None:
        return Training(notes=(note or "",))
    with reader:
        runs = reader.training_runs(1)
        row = reader.last_retrain_decision()
        decision = None
        if row is not None:
            decision = Decision(
                row["time"],
                Path(row["candidate"]).name,
                None if row["production"] is None else Path(row["production"]).name,
                row["candidate_score"],
                row["production_score"],
                row["margin"],
                row["promoted"],
                row["reason"] or "",
            )
        if not runs:
            return Training(
                decision=decision,
                notes=(
                    f"No training runs yet: start one with `{ws.command('train')}`.",
                ),
            )
        run = runs[0]
        epochs = _epoch_rows(reader.epochs(run["run_id"]))
    return Training(
        run_id=run["run_id"],
        command=run["command"] or "",
        status=run["status"] or "",
        started=run["started"],
        finished=run["finished"],
        message=run["message"],
        epochs=epochs,
        decision=decision,
    )


__all__ = [
    "Decision",
    "EpochRow",
    "Period",
    "Score",
    "Skill",
    "Training",
    "load_skill",
    "load_training",
    "order_methods",
]
