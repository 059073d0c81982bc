"""The daemon: ``initialize()``, then ``step(now)`` over and over, then ``shutdown()``.

Contract
--------
:class:`Daemon` owns everything but threads and signals (those are
:mod:`~nowcast.daemon.loop`'s). One :meth:`~Daemon.step` does, in order:

1. **Collect** (:class:`~nowcast.daemon.intake.Intake`): the paths the watcher
   queued, the files whose quiet time passed, new folders, and every
   ``daemon.reconcile_interval_s`` (and at once after a sequence restart, and at
   start-up) the newest scan files on disk.
2. **Ingest** each ready file once (a version is its size, mtime and inode), oldest
   name first: read and pool it (:mod:`~nowcast.daemon.ingest`); a refused file is
   moved to ``paths.rejected_dir`` with a ``.reason`` and an event, and never
   read again; a scan time already taken is a duplicate (ignored). The scan goes
   into the :class:`~nowcast.daemon.buffer.ScanBuffer`, into the archive, and
   verifies every kept forecast valid at its time (scores to the store).
3. **Forecast** when the buffer holds ``grid.input_frames`` consecutive scans whose
   newest has not been forecast: the model (or the fallback, when there is no model
   or it fails) through :func:`nowcast.pipeline.forecast_set` and
   :func:`~nowcast.pipeline.write_set`, exactly as ``nowcast predict``; then the
   baselines on the same input (TITAN's tracks computed once for all), and the
   written set, as stored, is kept to be verified (what ``nowcast eval``
   scores). A write that fails (unwritable directory, full disk) leaves no
   partial file, is logged, and is retried on a step at least
   ``daemon.retry_interval_s`` later (a newer scan replaces it).
4. **Model**: notice a replaced checkpoint and hot-reload it
   (:class:`~nowcast.daemon.models.ModelManager`).
5. **Archive** pruning, every reconcile interval.
6. **Status**: replace ``status.json`` (:mod:`~nowcast.daemon.status_file`).

The nightly retraining is not a stage: its scheduler is a thread, started by
:func:`~nowcast.daemon.loop.run_loop` and kept as :attr:`Daemon.scheduler`
(``None`` here; ``status.json``'s ``next_retrain`` then comes from the cron
expression). A model it promotes arrives through stage 4.

Each stage is guarded: an exception is logged with its traceback, recorded as an
event and counted in the status, and the step goes on; nothing that reaches the
daemon stops it. ``now`` is the step's clock (timezone-aware); tests pass a fake
one. :meth:`~Daemon.step` returns a :class:`StepReport` of what it did.
"""

from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from nowcast import __version__
from nowcast.daemon.scan_archive import Archive
from nowcast.daemon.buffer import Entry, Outcome, ScanBuffer
from nowcast.daemon.forecast import (
    baseline_forecasts,
    forecast_sequence,
    latency_s,
    sequence_context,
)
from nowcast.daemon.intake import Intake
from nowcast.daemon.models import (
    ModelManager,
    Provider,
    model_provider,
    probe_input,
)
from nowcast.daemon.recorder import Recorder
from nowcast.daemon.reject_reasons import reason_label
from nowcast.daemon.schedule import next_retrain
from nowcast.daemon.metrics import RECENT_SKILL_EVERY_S, RECENT_SKILL_S, Metrics
from nowcast.daemon.status_file import build_status, write_status
from nowcast.daemon.verify import LiveVerifier
from nowcast.daemon.watcher import PathQueue
from nowcast.errors import ForecastWriteError
from nowcast.pipeline import WriteOptions
from nowcast.times import utc_now
from nowcast.model.device import resolve_device

if TYPE_CHECKING:
    from nowcast.config import Settings


@dataclass
class StepReport:
    """What one step did."""

    now: datetime
    taken: list[Path] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # path -> outcome
    forecasts: list[Any] = field(default_factory=list)  # pipeline.WrittenSet
    write_failures: list[str] = field(default_factory=list)
    scored: int = 0  # score rows written
    reload: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Daemon:
    """The operational daemon (see the module contract)."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider: Provider | None = None,
        queue: PathQueue | None = None,
        clock=utc_now,
        scheduler: Any = None,
    ) -> None:
        self.queue = queue or PathQueue()
        self.clock = clock
        self._provider = provider
        self.scheduler = scheduler  # RetrainScheduler: run_loop's (a thread)
        self.recorder = Recorder(settings.paths.store, clock)
        self.state = "created"
        self.started: datetime | None = None
        self.counts = dict(taken=0, rejected=0, duplicates=0, forecasts=0, scores=0,
                           forecast_failures=0)
        self.rejected_by_reason: collections.Counter[str] = collections.Counter()
        self._recent_skill_at: tuple[int, datetime] | None = None
        self.last_scan: dict[str, Any] | None = None
        self.last_forecast: dict[str, Any] | None = None
        self.last_verification: dict[str, Any] | None = None
        self._last_issue: datetime | None = None
        self._retry: tuple[datetime, datetime] | None = None  # (issue, not before)
        self.metrics = Metrics()
        self._metrics_server: Any = None
        self._configure(settings)

    def _configure(self, settings: Settings) -> None:
        self.settings = settings
        d, g, p = settings.daemon, settings.grid, settings.paths
        self.intake = Intake.from_settings(settings, self.queue)
        self.write_options = WriteOptions.from_settings(settings)
        self.buffer = ScanBuffer(g.input_frames, g.interval_s, d.max_gap_factor)
        self.verifier = LiveVerifier(
            settings.verification, max_issues=g.output_frames + 1
        )
        self.archive = Archive(
            p.archive_dir, d.archive, d.archive_keep_days, d.archive_max_gb, p.input_dir
        )
        self._next_prune: datetime | None = None
        self.device = resolve_device(d.device, fallback_to_cpu=True)
        provider = self._provider or model_provider(settings)
        self.models = ModelManager.from_settings(
            settings, provider, self.device, self._probe
        )
        self._baselines: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------

    def initialize(self, now: datetime | None = None, *, _event: bool = True) -> None:
        """Check folders, take the newest scans on disk, load the model.

        Raises
        ------
        ConfigError
            When ``paths.input_dir`` is missing or the state folders cannot be made.
        """
        now = now or self.clock()
        self.started = self.started or now
        self.state = "starting"
        p = self.settings.paths
        self._guard("status", self._write_status, now)  # replaces a stale "running"
        self.settings.require_dirs("input_dir")
        self.settings.require_dirs("state_dir", "rejected_dir", create=True)
        for key in ("output_dir", "archive_dir"):
            try:
                getattr(p, key).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.recorder.event(
                    "error", "output", f"paths.{key}: cannot create "
                    f"{getattr(p, key)}: {exc.strerror or exc}", time=now,
                )
        next_retrain(self.settings.retrain, now)  # a bad cron is a config error
        self._guard("output", self._remove_stale_output, now)
        # the newest scans on disk first: the model's test forecast runs on them
        self.intake.next_reconcile = now
        report = StepReport(now)
        for path in self._guard("collect", self.intake.collect, now) or []:
            self._guard("ingest", self._ingest, path, now, False, report)
        self._log_ignored(now)
        self.models.start(now)
        self._build_baselines()
        self._next_prune = now
        if _event:
            self.recorder.event(
                "info", "daemon_started",
                f"nowcast {__version__} started (pid {os.getpid()}, device "
                f"{self.device}, {self.models.describe()['method']})", time=now,
            )
        self.state = "running"
        self._guard("status", self._write_status, now)
        port = self.settings.daemon.metrics_port
        if port and self._metrics_server is None:
            self._metrics_server = self._guard("metrics", self.metrics.serve, port)

    def reload(self, settings: Settings, now: datetime | None = None) -> None:
        """New settings (SIGHUP): load the model again, keep what was taken.

        The loaded model stays until the new load passes its test forecast; kept
        forecasts stay pending when ``[verification]`` and ``[grid]`` are unchanged;
        the buffer and what the intake has taken stay when the scans' settings
        (``[grid]``, ``[radar]``, the input folder, the gap rule) are unchanged, so
        a reload never reads, nor forecasts, a scan again. Forecasts are issued in
        time order only: an issue time not after the last one is never written
        (``_latest_data_info`` only moves forward).
        """
        now = now or self.clock()
        old = self.settings
        models, verifier, buffer, intake = (
            self.models, self.verifier, self.buffer, self.intake
        )
        self._configure(settings)
        self.models.current = models.current  # replaced only by a tested load
        if (settings.verification, settings.grid) == (old.verification, old.grid):
            self.verifier = verifier
        same_scans = (
            settings.grid == old.grid and settings.radar == old.radar
            and settings.daemon.max_gap_factor == old.daemon.max_gap_factor
            and settings.paths.input_dir == old.paths.input_dir
        )
        if same_scans:  # keep what was taken: nothing is read or issued again
            self.buffer = buffer
            self.intake.adopt(intake)
        if settings.paths.store != old.paths.store:
            self.recorder.close()
            self.recorder = Recorder(settings.paths.store, self.clock)
        self.initialize(now, _event=False)
        self.recorder.event(
            "info", "reload",
            f"configuration reloaded; {self.models.describe()['method']} forecasts",
            time=now,
        )

    def _remove_stale_output(self, now: datetime) -> None:
        """What a killed daemon of ours left half-written in the output."""
        from nowcast.radar.writer import remove_stale_temporaries

        removed = remove_stale_temporaries(self.settings.paths.output_dir)
        if removed:
            self.recorder.event(
                "warning", "output",
                f"removed {len(removed)} unfinished temporary file(s) or set(s) of "
                f"an interrupted write: {', '.join(p.name for p in removed[:5])}",
                time=now,
            )

    def stopping(self, now: datetime | None = None) -> None:
        """A stop was asked for (a signal): say so in ``status.json`` at once."""
        self.state = "stopping"
        self._guard("status", self._write_status, now or self.clock())

    def shutdown(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        self.state = "stopped"
        self.recorder.event("info", "daemon_stopped", "nowcast stopped", time=now)
        self._guard("status", self._write_status, now)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None
        left = self._guard("store", self.recorder.flush, None) or 0  # no time cap
        if left:
            structlog.get_logger(__name__).error(
                "metrics store still unwritable at shutdown; writes lost",
                lost=left,
            )
        self.recorder.close()

    # -- one step ---------------------------------------------------------------

    def step(self, now: datetime | None = None, *, settle: bool = False) -> StepReport:
        """One pass (see the module contract); ``settle`` takes every file now."""
        now = now or self.clock()
        t0 = time.perf_counter()
        report = StepReport(now)
        self._guard("store", self.recorder.flush)  # what a locked store held back
        ready = self._guard("collect", self.intake.collect, now, settle) or []
        self._log_ignored(now)
        for path in ready:
            self._guard("ingest", self._ingest, path, now, settle, report)
        self._guard("forecast", self._maybe_forecast, now, report)
        report.reload = self._guard("model", self.models.poll, now)
        if report.reload is not None:
            ok = report.reload["ok"]
            self.recorder.event(
                "info" if ok else "error", "model_reload", report.reload["message"],
                time=now,
            )
        self._guard("archive", self._maybe_prune, now)
        report.seconds = time.perf_counter() - t0
        self._guard("status", self._write_status, now, report)
        return report

    def _guard(self, stage: str, fn, *args):
        try:
            return fn(*args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            message = f"{stage}: {type(exc).__name__}: {exc}"
            report = args[-1] if args and isinstance(args[-1], StepReport) else None
            if report is not None:
                report.errors.append(message)
            self.recorder.event("error", "error", message, exc_info=True)
            return None

    # -- ingest -----------------------------------------------------------------

    def _log_ignored(self, now: datetime) -> None:
        for path, level, reason in self.intake.ignored:
            self.recorder.event(
                level, "file_ignored", f"{path.name}: not taken: {reason}",
                path=path, time=now, store=level != "debug",
            )
        self.intake.ignored.clear()

    def _ingest(
        self, path: Path, now: datetime, settle: bool, report: StepReport
    ) -> None:
        taken = self.intake.take(path, now, settle=settle)
        if taken is None:
            return  # gone (moved by its writer), or this version taken already
        if taken.kind == "waiting":
            if taken.new_wait:  # once a file, not every retry
                self.recorder.event(
                    "info", "scan_waiting",
                    f"{path.name} does not read yet ({taken.reason}); retried "
                    f"until it has been still for {self.intake.reject_after_s:g} s",
                    path=path, time=now, store=False,
                )
            return
        if taken.kind == "rejected":
            self.counts["rejected"] += 1
            self.rejected_by_reason[reason_label(taken.reason)] += 1
            report.rejected.append((path, taken.reason))
            where = (
                f"moved to {taken.moved}" if taken.moved
                else f"left in place ({taken.error})"
            )
            self.recorder.event(
                "warning", "rejected_scan",
                f"{path.name} rejected: {taken.reason}; {where}", path=path, time=now,
            )
            return
        scan = taken.scan
        if taken.kind == "duplicate":
            self.counts["duplicates"] += 1
            report.outcomes[str(path)] = Outcome.DUPLICATE
            self.recorder.event(
                "warning", "duplicate_scan",
                f"{path.name}: scan time {scan.time:%F %T}Z already taken from "
                f"{taken.first}; ignored", path=path, time=now,
            )
            return
        entry = Entry(scan, taken.frame, path, taken=now, closed=taken.closed)
        entry.extra["taken_wall"] = taken.taken_wall
        held = self.buffer.candidate
        outcome = self.buffer.add(entry)
        report.outcomes[str(path)] = outcome
        report.taken.append(path)
        self.counts["taken"] += 1
        self._log_outcome(entry, outcome, now)
        self.last_scan = {"time": scan.time, "path": path, "taken": now}
        if held is not None and held[0].time in self.buffer:  # confirmed, or the
            self._keep(held[0], now, report)  # gap before it filled: keep it now
        if outcome is not Outcome.HELD:
            self._keep(entry, now, report)
        self._set_aside(now, report)
        if self.buffer.newest is not None:
            self.intake.forget_before(self.buffer.newest.time)

    def _keep(self, entry: Entry, now: datetime, report: StepReport) -> None:
        """Archive a scan the buffer took, and verify the forecasts valid then."""
        try:
            self.archive.keep(entry.path, entry.time)
        except OSError as exc:
            self.recorder.event(
                "warning", "archive", f"cannot archive {entry.path.name}: "
                f"{exc.strerror or exc}", path=entry.path, time=now,
            )
        self._verify(entry.time, entry.frame, now, report)

    def _set_aside(self, now: datetime, report: StepReport) -> None:
        """Outliers the next scan did not confirm: moved to ``rejected/``."""
        for entry, why in self.buffer.set_aside:
            reason = f"an outlier: {why}"
            taken = self.intake.set_aside(entry.path, entry.time, reason, now)
            self.counts["rejected"] += 1
            self.rejected_by_reason[reason_label(reason)] += 1
            report.rejected.append((entry.path, reason))
            self.recorder.event(
                "warning", "rejected_scan",
                f"{entry.path.name} rejected: {reason}; {taken}",
                path=entry.path, time=now,
            )
        self.buffer.set_aside.clear()

    def _log_outcome(self, entry: Entry, outcome: Outcome, now: datetime) -> None:
        name = entry.path.name if entry.path else str(entry.time)
        fill = f"{self.buffer.fill}/{self.buffer.capacity}"
        if outcome in (Outcome.ADDED, Outcome.LATE):
            self.recorder.event(
                "info", "scan", f"{name}: {outcome.value}, buffer {fill}",
                store=False, scan_time=f"{entry.time:%FT%TZ}",
            )
        elif outcome in (Outcome.RESTART, Outcome.GRID_CHANGE):
            why = "a gap" if outcome is Outcome.RESTART else "a new grid"
            self.recorder.event(
                "warning", "sequence_restart",
                f"{name}: confirms {why}, which restarts the sequence (buffer "
                f"{fill})", path=entry.path, time=now,
            )
            self.intake.next_reconcile = now  # rebuild from the newest on disk
        elif outcome is Outcome.HELD:
            why = self.buffer.candidate[1] if self.buffer.candidate else "?"
            self.recorder.event(
                "warning", "scan_held",
                f"{name}: held aside, it would break the sequence ({why}); the "
                f"next scan decides (buffer {fill})", path=entry.path, time=now,
            )
        else:
            self.recorder.event(
                "warning", "scan_ignored", f"{name}: {outcome.value}; ignored",
                path=entry.path, time=now,
            )

    def _verify(self, t: datetime, frame: np.ndarray, now, report) -> None:
        scored = self.verifier.observe(t, frame)
        csi: dict[str, dict[str, float]] = {}
        for s in scored:
            report.scored += self.recorder.scores(
                s.issue_time, s.valid_time, s.method, s.model, s.rows
            )
            csi[s.method] = {
                str(thr): s.csi(thr) for thr in self.settings.verification.thresholds
            }
        if scored:
            self.counts["scores"] += len(scored)
            self.last_verification = {"time": t, "leads": len(scored), "csi": csi}

    # -- forecast ---------------------------------------------------------------

    def _maybe_forecast(self, now: datetime, report: StepReport) -> None:
        seq = self.buffer.sequence()
        if seq is None:
            return
        issue = seq[-1].time
        if self._last_issue is not None and issue <= self._last_issue:
            return  # issued already, or older than what TITAN has
        if self._retry is not None and self._retry[0] == issue and now < self._retry[1]:
            return
        g = self.settings.grid
        context = sequence_context(seq)
        try:
            made = forecast_sequence(
                seq, self.models, self.write_options, g.output_frames, context
            )
        except Exception as exc:  # writing failed (or the fallback did): retry
            wait = self.settings.daemon.retry_interval_s
            self._retry = (issue, now + timedelta(seconds=wait))
            message = str(exc) if isinstance(exc, ForecastWriteError) else (
                f"{type(exc).__name__}: {exc}"
            )
            report.write_failures.append(message)
            self.counts["forecast_failures"] += 1
            self.recorder.event(
                "error", "forecast_failed",
                f"forecast {issue:%FT%TZ} failed, retried in {wait:g} s: {message}",
                time=now,
            )
            return
        self._retry = None
        self._last_issue = issue
        latency = latency_s(seq[-1])
        written, files = made.written, [f.path for f in made.written.files]
        if made.fallback_reason:
            self.recorder.event("error", "fallback", made.fallback_reason, time=now)
        self.counts["forecasts"] += 1
        report.forecasts.append(written)
        self.last_forecast = {
            "issue_time": issue, "method": made.method, "model": made.model or None,
            "latency_s": latency, "seconds": made.seconds, "files": len(files),
            "output_dir": files[0].parent if files else None, "written": now,
            "fallback_reason": made.fallback_reason or self.models.fallback_reason,
        }
        self.recorder.event(
            "info", "forecast",
            f"forecast {issue:%FT%TZ} by {made.method}: {len(files)} files, "
            f"{latency:.2f} s from the scan's close", store=False,
        )
        self.recorder.forecast(
            issue, made.method, made.model, len(files), latency, files
        )
        interval = g.interval_s
        # what TITAN reads (clamped, as stored), on the model grid: as nowcast eval
        self.verifier.add_forecast(
            issue, made.method, made.model, written.verify_frames, interval,
            exact=True,
        )
        dbz, errors = baseline_forecasts(
            self._baselines, context, g.output_frames,
            dx_m=seq[-1].scan.grid.pooled(g.pool_factor).dx_m,
            interval_s=interval, skip=made.method,
        )
        for name, volumes in dbz.items():
            self.verifier.add_forecast(issue, name, None, volumes, interval)
        for name, error in errors.items():
            self.recorder.event(
                "warning", "baseline", f"baseline {name} failed: {error}", time=now
            )
        self.verifier.expire(issue - timedelta(seconds=self.buffer.span_s))

    def _build_baselines(self) -> None:
        from nowcast.forecasters import get_forecaster

        self._baselines = {}
        for name in self.settings.daemon.verify_baselines:
            try:
                self._baselines[name] = get_forecaster(name, self.settings)
            except Exception as exc:
                self.recorder.event(
                    "warning", "baseline", f"baseline {name} unavailable: {exc}"
                )

    def _probe(self, forecaster: Any) -> tuple[np.ndarray, list[datetime], float]:
        """Input for a test forecast: the newest run, else zeros on its grid."""
        g, r = self.settings.grid, self.settings.radar
        seq = self.buffer.sequence()
        if seq is not None:
            frames = np.stack([e.frame for e in seq])
            grid = seq[-1].scan.grid.pooled(g.pool_factor)
            return frames, [e.time for e in seq], grid.dx_m
        newest = self.buffer.newest
        if newest is not None:
            shape = newest.frame.shape
            dx = newest.scan.grid.pooled(g.pool_factor).dx_m
        else:
            trained = list(getattr(forecaster, "levels", None) or [2])
            shape = (
                r.expected_levels or trained[0],
                (r.expected_ny or 64) // g.pool_factor,
                (r.expected_nx or 64) // g.pool_factor,
            )
            dx = 1000.0 * g.pool_factor
        frames, times = probe_input(g.input_frames, shape, self.clock(), g.interval_s)
        return frames, times, dx

    # -- housekeeping -----------------------------------------------------------

    def _maybe_prune(self, now: datetime) -> None:
        if self._next_prune is None or now < self._next_prune:
            return
        self._next_prune = now + timedelta(
            seconds=self.settings.daemon.reconcile_interval_s
        )
        if self.archive.enabled:
            pruned = self.archive.prune(now)
            if pruned.removed:
                self.recorder.event(
                    "info", "archive_pruned",
                    f"archive: {pruned.removed} old scans removed "
                    f"({pruned.freed_bytes / 1e6:.0f} MB)", time=now,
                )

    def status(self, now: datetime, report: StepReport | None = None) -> dict:
        """The content of ``status.json`` (see :mod:`nowcast.daemon.status_file`)."""
        return build_status(self, now, report.seconds if report else None)

    def _write_status(self, now: datetime, report: StepReport | None = None) -> None:
        text = write_status(self.settings.paths.status_file, self.status(now, report))
        self._guard("metrics", self._publish_metrics, text, now)

    def _publish_metrics(self, status_text: str, now: datetime) -> None:
        """The Prometheus metrics of this step (:mod:`nowcast.daemon.metrics`)."""
        self.metrics.update(json.loads(status_text))
        self._update_recent_skill(now)
        name = self.settings.daemon.metrics_file
        if name:
            self.metrics.write_textfile(self.settings.paths.state_dir / name)

    def _update_recent_skill(self, now: datetime) -> None:
        """CSI by lead over the last hour, from the store: when new scores were
        recorded, else at most once a minute (issue times from an hour before the
        newest scan, so that a replay of old scans is scored like a live feed)."""
        scored = self.counts["scores"]
        last = self._recent_skill_at
        if (last is not None and scored == last[0]
                and (now - last[1]).total_seconds() < RECENT_SKILL_EVERY_S):
            return
        self._recent_skill_at = (scored, now)
        newest = self.buffer.newest.time if self.buffer.newest is not None else now
        since = newest - timedelta(seconds=RECENT_SKILL_S)
        from nowcast.store import MetricsReader, StoreError

        try:
            with MetricsReader(self.settings.paths.store) as reader:
                rows = reader.skill(since=since)
        except StoreError:
            rows = []  # no store yet, or it is unreadable: the recorder says so
        self.metrics.update_recent_skill(rows)
