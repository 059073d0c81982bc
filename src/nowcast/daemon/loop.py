"""The real-time loop around :meth:`Daemon.step`: wait, supervise, handle signals.

Contract
--------
:func:`run_loop` is what ``nowcast run`` (and systemd) runs:

1. installs signal handlers that only set flags: SIGTERM and SIGINT ask to stop,
   SIGHUP to reload (the previous handlers are put back on the way out);
2. :meth:`~nowcast.daemon.service.Daemon.initialize` (folders, store, model: a
   :class:`~nowcast.errors.ConfigError` propagates, for exit status 78), starts the
   watchdog observer on the input directory and the nightly retraining scheduler
   (:class:`~nowcast.daemon.schedule.RetrainScheduler`, kept as
   ``daemon.scheduler``; ``scheduler_factory`` replaces it in tests, and one that
   cannot start is logged and leaves retraining off), and sends ``READY=1``;
3. loops: one step; a pending reload re-reads the configuration file (a bad one
   is logged and the old settings stay) and reloads the daemon and the
   scheduler's job; an observer that died (its thread, or an emitter: a watched
   folder that went) or could not start is restarted (and the next step
   reconciles with the disk) up to ``daemon.observer_restarts`` times, after
   which the loop exits with status 1
   (systemd restarts the unit); ``WATCHDOG=1`` and ``STATUS=`` are sent every
   :func:`~nowcast.daemon.notify.watchdog_period` while the observer is alive and
   steps complete; then it sleeps until a ready path is queued or
   ``daemon.poll_interval_s`` has passed;
4. on a stop request the step in hand finishes, the observer and the scheduler
   stop (a retraining child in hand gets SIGTERM),
   :meth:`~nowcast.daemon.service.Daemon.shutdown` writes the final status, and
   the exit status is 0.

``max_steps`` (tests, benchmarks) ends the loop after that many steps.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from nowcast.daemon.notify import Notifier, watchdog_period
from nowcast.daemon.service import Daemon
from nowcast.daemon.watcher import ScanEventHandler, make_observer
from nowcast.errors import ConfigError

log = structlog.get_logger(__name__)


@dataclass
class Flags:
    """What the signal handlers set; nothing else happens in them."""

    stop: bool = False
    reload: bool = False
    signal: int | None = None


def install_signal_handlers(flags: Flags) -> Callable[[], None]:
    """Set the handlers; returns a function that restores the previous ones."""

    def on_stop(signum, frame) -> None:
        flags.stop = True
        flags.signal = signum

    def on_reload(signum, frame) -> None:
        flags.reload = True

    wanted = {
        signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_reload
    }
    previous = {sig: signal.signal(sig, handler) for sig, handler in wanted.items()}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def default_observer_factory(daemon: Daemon) -> Callable[[], Any]:
    """A recursive observer on the daemon's input directory, as configured."""

    def build():
        s = daemon.settings
        handler = ScanEventHandler(
            daemon.queue, s.daemon.pattern, daemon.intake.ignore
        )
        return make_observer(
            s.paths.input_dir, handler, polling=s.daemon.polling,
            poll_interval_s=s.daemon.poll_interval_s,
        )

    return build


def status_line(daemon: Daemon) -> str:
    """One line for ``systemctl status``."""
    b = daemon.buffer
    text = f"buffer {b.fill}/{b.capacity}"
    lf = daemon.last_forecast
    if lf:
        text += (
            f", last forecast {lf['issue_time']:%H:%M}Z by {lf['method']} "
            f"({lf['latency_s']:.1f} s)"
        )
    text += f", queue {daemon.intake.pending}"
    if daemon.recorder.error_count:
        text += f", {daemon.recorder.error_count} errors"
    return text


def run_loop(
    daemon: Daemon,
    *,
    notifier: Notifier | None = None,
    observer_factory: Callable[[], Any] | None = None,
    load_settings: Callable[[], Any] | None = None,
    max_steps: int | None = None,
    scheduler_factory: Callable[[Daemon], Any] | None = None,
) -> int:
    """Run until a stop signal (see the module contract); returns the exit status."""
    notifier = notifier or Notifier()
    build = observer_factory or default_observer_factory(daemon)
    flags = Flags()
    restore = install_signal_handlers(flags)
    observer = None
    status = 0
    try:
        daemon.initialize()
        observer = _start(build, daemon)
        _start_scheduler(daemon, scheduler_factory or default_scheduler)
        daemon.intake.next_reconcile = daemon.clock()  # files while the model loaded
        notifier.ready(status_line(daemon))
        period = watchdog_period(daemon.settings.daemon.watchdog_interval_s)
        last_ping = float("-inf")
        restarts = steps = 0
        while not flags.stop:
            daemon.step(daemon.clock())
            steps += 1
            if flags.reload and not flags.stop:
                flags.reload = False
                observer = _reload(daemon, notifier, load_settings, observer, build)
            if not _alive(observer):
                restarts += 1
                limit = daemon.settings.daemon.observer_restarts
                daemon.recorder.event(
                    "error", "watcher",
                    f"the file watcher is not running ({restarts} of {limit} "
                    "restarts)",
                )
                if restarts > limit:
                    status = 1
                    break
                _stop(observer)
                observer = _start(build, daemon)
                daemon.intake.next_reconcile = daemon.clock()  # what was missed
            now = time.monotonic()
            if _alive(observer) and now - last_ping >= period:
                notifier.watchdog()
                notifier.status(status_line(daemon))
                last_ping = now
            if max_steps is not None and steps >= max_steps:
                break
            _wait(daemon, flags, daemon.settings.daemon.poll_interval_s)
        if flags.signal is not None:
            log.info("stopping", signal=signal.Signals(flags.signal).name)
            daemon.stopping()
    finally:
        notifier.stopping()
        _stop(observer)
        _stop_scheduler(daemon)
        if daemon.state != "created":
            daemon.shutdown()
        notifier.close()
        restore()
    return status


def default_scheduler(daemon: Daemon) -> Any:
    """The nightly retraining scheduler for the daemon's settings."""
    from nowcast.daemon.schedule import RetrainScheduler

    return RetrainScheduler(daemon.settings)


def _start_scheduler(daemon: Daemon, factory: Callable[[Daemon], Any]) -> None:
    try:
        if daemon.scheduler is None:
            daemon.scheduler = factory(daemon)
        if daemon.scheduler is not None:
            daemon.scheduler.start()
    except Exception as exc:  # retraining off; forecasting goes on
        daemon.scheduler = None
        daemon.recorder.event(
            "error", "retrain",
            f"nightly retraining not scheduled: {type(exc).__name__}: {exc}",
        )


def _stop_scheduler(daemon: Daemon) -> None:
    if daemon.scheduler is None:
        return
    try:
        daemon.scheduler.shutdown()
    except Exception as exc:
        log.warning("stopping the retraining scheduler", error=str(exc))


def _alive(observer) -> bool:
    """The observer thread and its emitters (one a watched folder) all run.

    An emitter dies on its own when its folder goes (deleted, unmounted) while
    the observer thread lives on, deaf.
    """
    if observer is None or not observer.is_alive():
        return False
    return all(e.is_alive() for e in getattr(observer, "emitters", ()))


def _start(build: Callable[[], Any], daemon: Daemon):
    """A started observer, or None when it cannot start (the loop retries)."""
    try:
        observer = build()
        observer.start()
    except OSError as exc:  # inotify limits (ENOSPC, EMFILE), a vanished folder
        daemon.recorder.event(
            "error", "watcher",
            f"cannot watch {daemon.settings.paths.input_dir}: {exc} (raise "
            "fs.inotify.max_user_watches / max_user_instances, or set "
            "daemon.polling = true)",
        )
        return None
    return observer


def _stop(observer) -> None:
    if observer is None:
        return
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=5)
    except Exception as exc:  # a dead observer may fail to stop; it is gone anyway
        log.warning("stopping the file watcher", error=str(exc))


def _wait(daemon: Daemon, flags: Flags, tick_s: float) -> None:
    """Sleep until a ready path is queued, a flag is set, or ``tick_s`` passed."""
    deadline = time.monotonic() + tick_s
    while not (flags.stop or flags.reload):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or daemon.queue.wait(min(remaining, 0.2)):
            return


def _reload(daemon, notifier, load_settings, observer, build):
    notifier.reloading()
    old = daemon.settings
    try:
        from nowcast.config import load_config

        settings = load_settings() if load_settings else load_config(old.source)
        daemon.reload(settings)
    except ConfigError as exc:
        daemon.recorder.event(
            "error", "reload", f"configuration not reloaded: {exc}; keeping the old"
        )
        if daemon.settings is not old:
            daemon.reload(old)
        notifier.ready(status_line(daemon))
        return observer
    if daemon.scheduler is not None:
        try:
            daemon.scheduler.update(daemon.settings)
        except Exception as exc:
            daemon.recorder.event(
                "error", "retrain",
                f"nightly retraining not rescheduled: {type(exc).__name__}: {exc}",
            )
    watch = (old.paths.input_dir, old.daemon.polling, old.daemon.pattern)
    if watch != (
        settings.paths.input_dir, settings.daemon.polling, settings.daemon.pattern
    ):
        _stop(observer)
        observer = _start(build, daemon)
    notifier.ready(status_line(daemon))
    return observer
