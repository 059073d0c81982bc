"""``status.json``: the daemon's state for the monitor, replaced atomically each step.

Contract
--------
:func:`write_status` writes one JSON object to ``paths.status_file`` through
:func:`nowcast.fsutil.write_text_atomic` (a reader never sees half a file). Times
are UTC ``YYYY-MM-DDTHH:MM:SSZ``; durations and ages are seconds; absent values
are ``null``. The keys (``version`` 1):

- ``version``, ``pid``, ``host``, ``state`` (``starting``: from the start of
  :meth:`~nowcast.daemon.service.Daemon.initialize` until it is done, so a file
  left ``running`` by a killed daemon is replaced at once; ``running``;
  ``stopping``: a signal asked it to stop; ``stopped``: it shut down),
  ``updated`` (the step's clock), ``started``, ``config`` (the
  file, or null for defaults), ``input_dir``, ``output_dir``;
- ``last_scan``: ``time`` (scan time), ``path``, ``age_s`` (now - scan time),
  ``taken`` (when the daemon read it); ``scans_taken``, ``scans_rejected``,
  ``scans_rejected_by_reason`` (counts by :mod:`~nowcast.daemon.reject_reasons`
  label), ``duplicates``;
- ``buffer``: ``fill`` (consecutive scans ending at the newest), ``capacity``,
  ``held``, ``oldest``, ``newest``, ``complete``;
- ``last_forecast``: ``issue_time``, ``method``, ``model``, ``latency_s`` (the
  scan's close to the last file in place), ``seconds`` (forecast + write),
  ``files``, ``output_dir``, ``written`` (clock time), ``fallback_reason``;
  ``forecasts_written``, ``forecasts_failed`` (attempts that failed, retried);
- ``model``: ``method`` (what forecasts now), ``name``, ``checkpoint``,
  ``checkpoint_time`` (its mtime), ``loaded`` (clock time), ``fallback``,
  ``fallback_reason`` (why the model is not used), ``last_reload`` (``time``,
  ``ok``, ``message``); ``device``;
- ``queue_length`` (paths queued, waiting for quiet, or due);
- ``errors``: ``count`` (errors since start) and ``recent`` (the last 10
  warnings and errors: ``time``, ``level``, ``kind``, ``message``, ``path``,
  newest last);
- ``verification``: ``time`` (the newest observation that verified something),
  ``leads`` (forecast leads it verified), ``csi`` -- per method, the CSI at each
  threshold of the lead that observation verified, composite kind
  (``{"extrapolation": {"35.0": 0.41}}``; the store holds every count) -- and
  ``scored_leads`` since start;
- ``step_seconds`` (the last step), ``next_retrain`` (the retraining job's next
  run, from the running scheduler, else from ``retrain.cron``; null when
  retraining is off).

A failed write is logged by the caller and retried on the next step.
"""

from __future__ import annotations

import json
import math
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from nowcast.fsutil import write_text_atomic
from nowcast.times import iso_z

STATUS_VERSION = 1


def _clean(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def render_status(status: dict[str, Any]) -> str:
    """The JSON text: datetimes as ISO, paths as strings, NaN as null."""
    body = {"version": STATUS_VERSION, **status}
    return json.dumps(_clean(body), indent=1, sort_keys=False) + "\n"


def build_status(daemon: Any, now: datetime, step_s: float | None = None) -> dict:
    """The status of a :class:`~nowcast.daemon.service.Daemon` (keys above)."""
    from nowcast.daemon.schedule import next_retrain
    from nowcast.errors import ConfigError

    s, b, rec = daemon.settings, daemon.buffer, daemon.recorder
    last = dict(daemon.last_scan) if daemon.last_scan else None
    if last is not None:
        last["age_s"] = (now - last["time"]).total_seconds()
    try:
        scheduler = getattr(daemon, "scheduler", None)
        if scheduler is not None:
            retrain = scheduler.next_run_time(now)
        else:
            retrain = next_retrain(s.retrain, now)
    except ConfigError:
        retrain = None
    verification = daemon.last_verification or {"time": None, "leads": 0, "csi": {}}
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "state": daemon.state,
        "updated": now,
        "started": daemon.started,
        "config": s.source,
        "input_dir": s.paths.input_dir,
        "output_dir": s.paths.output_dir,
        "last_scan": last,
        "scans_taken": daemon.counts["taken"],
        "scans_rejected": daemon.counts["rejected"],
        "scans_rejected_by_reason": dict(
            sorted(getattr(daemon, "rejected_by_reason", {}).items())
        ),
        "duplicates": daemon.counts["duplicates"],
        "buffer": {
            "fill": b.fill,
            "capacity": b.capacity,
            "held": len(b),
            "oldest": b.oldest.time if b.oldest else None,
            "newest": b.newest.time if b.newest else None,
            "complete": b.complete,
        },
        "last_forecast": daemon.last_forecast,
        "forecasts_written": daemon.counts["forecasts"],
        "forecasts_failed": daemon.counts.get("forecast_failures", 0),
        "model": daemon.models.describe(),
        "device": daemon.device,
        "queue_length": daemon.intake.pending,
        "errors": {"count": rec.error_count, "recent": list(rec.errors)},
        "verification": {**verification, "scored_leads": daemon.counts["scores"]},
        "step_seconds": step_s,
        "next_retrain": retrain,
    }


def write_status(path: str | Path, status: dict[str, Any]) -> str:
    """Replace ``path`` with ``status`` as JSON (atomically; raises OSError);
    returns the JSON written (the metrics read it back, rendered once)."""
    text = render_status(status)
    write_text_atomic(path, text)
    return text


def read_status(path: str | Path) -> dict[str, Any]:
    """Read a status file back (for the monitor and tests)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
