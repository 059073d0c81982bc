"""The nightly retraining schedule: an APScheduler job that runs ``nowcast retrain``.

Contract
--------
- :func:`cron_trigger` is ``CronTrigger.from_crontab(retrain.cron)`` (local time);
  an invalid expression raises :class:`~nowcast.errors.ConfigError` naming the
  key. :func:`next_retrain` is when it fires next after ``now`` (UTC), or None
  when ``retrain.enabled`` is false: ``status.json``'s ``next_retrain`` when no
  scheduler runs (``nowcast run --once``, tests that drive ``step``).
- :class:`RetrainScheduler` wraps an APScheduler 3.x ``BackgroundScheduler``
  with one job, ``retrain``, on :func:`cron_trigger` with ``misfire_grace_time =
  retrain.misfire_grace_s`` (a run the scheduler could not start on time, the
  machine suspended or the clock stepped, still starts up to that late; the job
  store is in memory, so runs due while the daemon was down are not made up),
  ``coalesce`` (late runs make one) and ``max_instances=1``.
  :func:`~nowcast.daemon.loop.run_loop` starts it after the daemon is
  initialised, :meth:`~RetrainScheduler.update` follows a reloaded configuration,
  and :meth:`~RetrainScheduler.shutdown` stops it (``wait=False``) and the child
  in hand. With ``retrain.enabled`` false no thread is started.
  :meth:`~RetrainScheduler.next_run_time` is the job's ``next_run_time`` (the
  daemon's ``next_retrain``).
- The job (:class:`RetrainJob`) runs :func:`retrain_command`, ``python -m nowcast
  retrain --now --log-format json [--config FILE]``, as a child in its own
  session: training and scoring never share the daemon's interpreter, memory or
  GIL, and the child lowers its own priority to ``retrain.nice`` (inference keeps
  the machine first). Its output goes to the daemon's stdout (the journal); it
  records the decision in the store itself (:mod:`nowcast.retrain`), and the
  promoted checkpoint reaches the daemon through the hot reload
  (:class:`~nowcast.daemon.models.ModelManager`). :meth:`RetrainJob.stop` sends
  the child's process group SIGTERM (SIGKILL after a grace time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from nowcast.errors import ConfigError

if TYPE_CHECKING:
    from nowcast.config import Settings

log = structlog.get_logger(__name__)

JOB_ID = "retrain"


def cron_trigger(retrain: Any):
    """``CronTrigger.from_crontab(retrain.cron)`` in local time, or ConfigError."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(retrain.cron)
    except ValueError as exc:
        raise ConfigError(f"retrain.cron: {exc} (got {retrain.cron!r})") from None


def next_retrain(retrain: Any, now: datetime) -> datetime | None:
    """The next fire time of ``retrain.cron`` after ``now`` (UTC), or None."""
    if not retrain.enabled:
        return None
    fire = cron_trigger(retrain).get_next_fire_time(None, now)
    return fire.astimezone(UTC) if fire is not None else None


def retrain_command(settings: Settings) -> list[str]:
    """``python -m nowcast retrain --now`` with this daemon's configuration."""
    cmd = [sys.executable, "-m", "nowcast", "retrain", "--now", "--log-format", "json"]
    if settings.source is not None:
        cmd += ["--config", str(settings.source)]
    return cmd


class RetrainJob:
    """Runs the retraining command as a child and waits for it (see contract)."""

    def __init__(self, command: Sequence[str], grace_s: float = 10.0) -> None:
        self.command = list(command)
        self.grace_s = grace_s
        self.proc: subprocess.Popen | None = None
        self.last_status: int | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def __call__(self) -> int | None:
        with self._lock:
            if self._stopping:
                return None
            log.info("nightly retraining starting", command=" ".join(self.command))
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, start_new_session=True
            )
        status = self.proc.wait()
        self.last_status = status
        (log.info if status == 0 else log.error)(
            "nightly retraining finished", exit_status=status
        )
        return status

    def stop(self) -> None:
        """Stop the child in hand, if any (SIGTERM to its group, then SIGKILL)."""
        with self._lock:
            self._stopping = True
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                proc.wait(self.grace_s)
                return
            except subprocess.TimeoutExpired:
                continue


class RetrainScheduler:
    """The background scheduler and its one job (see the module contract).

    ``job`` (default: a :class:`RetrainJob` of :func:`retrain_command`) and
    ``scheduler`` (default: a new ``BackgroundScheduler``) are injectable for tests.
    """

    def __init__(
        self,
        settings: Settings,
        job: Callable[[], Any] | None = None,
        scheduler: Any = None,
    ) -> None:
        if scheduler is None:
            from apscheduler.schedulers.background import BackgroundScheduler

            scheduler = BackgroundScheduler()
        self.scheduler = scheduler
        self.settings = settings
        self._default_job = job is None
        self.job = job if job is not None else RetrainJob(retrain_command(settings))
        self._trigger = None

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def _schedule(self) -> None:
        if self.scheduler.get_job(JOB_ID) is not None:
            self.scheduler.remove_job(JOB_ID)
        r = self.settings.retrain
        if not r.enabled:
            self._trigger = None
            return
        self._trigger = cron_trigger(r)
        self.scheduler.add_job(
            self.job,
            self._trigger,
            id=JOB_ID,
            name="nightly retraining (nowcast retrain --now)",
            misfire_grace_time=r.misfire_grace_s,
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )

    def start(self) -> None:
        """Add the job and start the scheduler thread (only when enabled)."""
        self._schedule()
        if self.settings.retrain.enabled and not self.running:
            self.scheduler.start()
        if self._trigger is not None:
            log.info(
                "nightly retraining scheduled",
                cron=self.settings.retrain.cron,
                next_run=str(self.next_run_time(datetime.now(UTC))),
            )

    def update(self, settings: Settings) -> None:
        """Follow a reloaded configuration (cron, grace, enabled, config file)."""
        self.settings = settings
        if self._default_job and isinstance(self.job, RetrainJob):
            self.job.command = retrain_command(settings)
        self.start()

    def next_run_time(self, now: datetime) -> datetime | None:
        """The job's next run (UTC), or None when retraining is off."""
        job = self.scheduler.get_job(JOB_ID)
        if job is None:
            return None
        when = getattr(job, "next_run_time", None)  # unset until the scheduler runs
        if when is None and not self.running:
            when = job.trigger.get_next_fire_time(None, now)
        return when.astimezone(UTC) if when is not None else None

    def shutdown(self) -> None:
        """Stop the scheduler (not waiting for the job) and the child in hand."""
        if self.running:
            self.scheduler.shutdown(wait=False)
        stop = getattr(self.job, "stop", None)
        if stop is not None:
            stop()
