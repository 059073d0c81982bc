"""A model's training history: the store rows of the runs that made it, in the model.

Contract
--------
A shipped model (``models/demo3d.pt``) travels without the metrics store it was
trained against, yet the monitor's training panel should show how it was trained.
So the exported checkpoint carries its history under ``history``:

- :func:`run_history` ``(store_path, run_id) -> dict``: one training run as plain
  Python values (``weights_only`` loading accepts them): ``command``,
  ``started``/``finished`` (ISO 8601 UTC text), ``status``, ``message`` and
  ``epochs``, a list of the run's epoch rows (``phase``, ``epoch``, ``split``,
  ``loss``, ``terms``, ``lr``, ``csi35`` as ``{lead seconds: CSI}``,
  ``area_ratio``, ``seconds``, ``time``; NaN stored as None).
- :func:`export_history` ``(prior, store_path, run_id) -> list``: the history of
  an export: the runs the starting checkpoint carried (``prior``: a phase-1 export
  followed by a phase-2-3 run resumed from it carries both runs) plus this run.
- :func:`import_history` ``(store, history) -> list[int]``: writes those runs into
  a :class:`~nowcast.store.MetricsStore` as training runs with their epochs, under
  their original times, and returns the new run ids. It is idempotent: a run
  already there (same ``started`` and ``command``) is skipped. ``nowcast demo``
  calls it for its workspace's store, so the monitor shows the shipped model's
  losses there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from nowcast.times import parse_time

__all__ = ["export_history", "import_history", "run_history"]


def _plain(value: Any) -> Any:
    """Store values as plain Python: datetimes as ISO text, NaN as None."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def run_history(store_path: str | Path, run_id: int) -> dict[str, Any]:
    """One training run of the store and its epoch rows (see the module contract)."""
    from nowcast.store import MetricsReader

    with MetricsReader(store_path) as reader:
        runs = reader.query(
            "SELECT started, finished, command, status, message FROM training_runs "
            "WHERE run_id = ?",
            [int(run_id)],
        )
        if not runs:
            raise LookupError(f"{store_path}: no training run {run_id}")
        epochs = reader.epochs(int(run_id))
    run = {k: _plain(v) for k, v in runs[0].items()}
    run["epochs"] = [
        {k: _plain(v) for k, v in row.items() if k != "run_id"} for row in epochs
    ]
    return run


def export_history(
    prior: Iterable[Mapping[str, Any]] | None, store_path: str | Path, run_id: int
) -> list[dict[str, Any]]:
    """The runs ``prior`` carried, then this one (see the module contract)."""
    return [dict(run) for run in prior or ()] + [run_history(store_path, run_id)]


def import_history(store: Any, history: Iterable[Mapping[str, Any]]) -> list[int]:
    """Write ``history``'s runs into ``store``; skip runs already there."""
    from nowcast.store import MetricsReader

    with MetricsReader(store.path) as reader:
        present = {
            (r["started"].isoformat() if r["started"] else None, r["command"])
            for r in reader.training_runs(limit=1_000_000)
        }
    added = []
    for run in history:
        started = parse_time(str(run["started"]), "history started", naive="utc")
        if (started.isoformat(), run.get("command", "")) in present:
            continue
        run_id = store.start_training_run(
            command=run.get("command", ""), started=started
        )
        for row in run.get("epochs", ()):
            store.record_epoch(
                run_id,
                int(row["phase"]),
                int(row["epoch"]),
                row["split"],
                row.get("loss"),
                terms={
                    k: v for k, v in (row.get("terms") or {}).items() if v is not None
                },
                lr=row.get("lr"),
                csi35={
                    int(k): v
                    for k, v in (row.get("csi35") or {}).items()
                    if v is not None
                },
                area_ratio=row.get("area_ratio"),
                seconds=row.get("seconds"),
                time=row.get("time"),
            )
        status = run.get("status") or "completed"
        store.finish_training_run(
            run_id,
            "interrupted" if status == "running" else status,
            run.get("message"),
            finished=run.get("finished") or started,
        )
        added.append(run_id)
    return added
