"""The nightly retraining schedule, as far as the daemon knows it today.

Contract
--------
:func:`next_retrain` is when ``retrain.cron`` (crontab syntax, local time) fires
next after ``now``, or None when ``retrain.enabled`` is false; ``status.json``
shows it as ``next_retrain``. An invalid expression raises
:class:`~nowcast.errors.ConfigError` naming the key.

The hook for the curriculum (built later): an APScheduler 3.x
``BackgroundScheduler`` started by :class:`~nowcast.daemon.service.Daemon` with
one job on ``CronTrigger.from_crontab(retrain.cron)`` (``misfire_grace_time =
retrain.misfire_grace_s``, ``coalesce``, ``max_instances=1``) that runs the
retrainer at ``retrain.nice``; the daemon's ``next_retrain`` then comes from that
job's ``next_run_time``, and the promotion replaces ``paths.production_model``,
which the hot reload picks up.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from nowcast.errors import ConfigError


def next_retrain(retrain: Any, now: datetime) -> datetime | None:
    """The next fire time of ``retrain.cron`` after ``now`` (UTC), or None."""
    if not retrain.enabled:
        return None
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(retrain.cron)
    except ValueError as exc:
        raise ConfigError(f"retrain.cron: {exc} (got {retrain.cron!r})") from None
    fire = trigger.get_next_fire_time(None, now)
    return fire.astimezone(timezone.utc) if fire is not None else None
