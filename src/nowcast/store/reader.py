"""Reading metrics: :class:`MetricsReader`, the monitor's read-only view.

Contract
--------
- ``MetricsReader(path)`` opens the file through a read-only URI
  (``file:...?mode=ro``) with ``query_only`` on: it can never change the store, and
  it reads while the daemon and the trainer write (WAL: a reader sees every
  transaction committed before its query started and never blocks a writer).
- A missing file raises :class:`~nowcast.store.errors.StoreError` saying
  ``no metrics store at PATH yet: start the daemon or a training run``; an empty,
  older or newer schema raises it too (:func:`~nowcast.store.schema.check_version`).
  Any SQLite failure of a query is raised as :class:`StoreError`.
- Queries return plain dicts (lists of them, newest first for logs, ascending for
  tables and series). Times come back as aware UTC datetimes; JSON columns as
  Python values (``terms``, ``csi35`` keyed by lead seconds, ``config``);
  measurements stored as NULL come back as NaN; ``promoted`` as a bool.
- Period filters take the forecast's issue time (events: their time; ``since``
  inclusive, ``until`` exclusive) as an aware datetime, ISO text with a zone or
  unix seconds.
- Skill is always computed from summed raw counts (CSI = sum H / (sum H + sum M +
  sum F)), never by averaging per-forecast scores; the MAE over many rows is their
  mean weighted by each row's scored pixels (exact when the forecast has no NaN
  where the observation is covered).
- Threads: one reader may be shared by threads (the monitor's workers); its
  queries take turns on one connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from nowcast.store.errors import StoreError
from nowcast.store.schema import check_version
from nowcast.store.times import TimeLike, from_iso, to_iso
from nowcast.store.values import KINDS, loads, nan_if_none, parse_level
from nowcast.verification.contingency import Counts

_TIMES = {"issue_time", "valid_time", "created_at", "time", "started", "finished"}
_MEASURES = {
    "mae",
    "latency_s",
    "loss",
    "lr",
    "area_ratio",
    "seconds",
    "candidate_score",
    "production_score",
    "margin",
}
_SUMS = """
    SUM(n_forecasts) AS forecasts, SUM(hits) AS hits, SUM(misses) AS misses,
    SUM(false_alarms) AS false_alarms, SUM(correct_negatives) AS correct_negatives
"""
_WEIGHTED_MAE = """
    SUM(mae * (hits + misses + false_alarms + correct_negatives))
    / SUM(CASE WHEN mae IS NULL THEN 0
          ELSE hits + misses + false_alarms + correct_negatives END) AS mae
"""


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in row.keys():
        value = row[key]
        if key in _TIMES:
            value = from_iso(value)
        elif key in _MEASURES:
            value = nan_if_none(value)
        elif key == "promoted":
            value = bool(value)
        elif key == "csi35_json":
            key = "csi35"
            pairs = sorted((int(k), nan_if_none(v)) for k, v in loads(value).items())
            value = dict(pairs)
        elif key.endswith("_json"):
            key = key[: -len("_json")]
            value = loads(value)
        out[key] = value
    return out


def _with_scores(row: dict[str, Any]) -> dict[str, Any]:
    counts = Counts(
        int(row["hits"] or 0),
        int(row["misses"] or 0),
        int(row["false_alarms"] or 0),
        int(row["correct_negatives"] or 0),
    )
    row.update(counts.scores())
    return row


class _Where:
    """AND-ed conditions and their parameters."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.params: list[Any] = []

    def add(self, term: str, value: Any) -> None:
        self.terms.append(term)
        self.params.append(value)

    def period(
        self, column: str, since: TimeLike | None, until: TimeLike | None
    ) -> None:
        if since is not None:
            self.add(f"{column} >= ?", to_iso(since, "since"))
        if until is not None:
            self.add(f"{column} < ?", to_iso(until, "until"))

    def __str__(self) -> str:
        return f"WHERE {' AND '.join(self.terms)}" if self.terms else ""


class MetricsReader:
    """The read-only metrics store (see the module docstring for the contract).

    Parameters
    ----------
    path
        The SQLite file (``paths.store`` in the config).
    timeout_s
        How long a query waits when SQLite is briefly busy (a checkpoint).

    Raises
    ------
    StoreError
        When the file does not exist, is not a metrics store or has another
        schema version.

    Examples
    --------
    >>> reader = MetricsReader("var/state/nowcast.sqlite")  # doctest: +SKIP
    >>> [(r["lead_s"], r["csi"]) for r in reader.skill("convlstm3d")]  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        if not self.path.is_file():
            raise StoreError(
                f"no metrics store at {self.path} yet: start the daemon or a "
                "training run"
            )
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"{self.path}: cannot open the metrics store: {exc}"
            ) from None
        try:
            conn.execute("PRAGMA query_only = ON")
            self.schema_version = check_version(conn, str(self.path))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a metrics store: {exc}") from None
        except BaseException:
            conn.close()
            raise
        conn.row_factory = sqlite3.Row
        self._conn = conn

    # -- plumbing ---------------------------------------------------------------

    def __enter__(self) -> "MetricsReader":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"MetricsReader({str(self.path)!r}, {state})"

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"{self.path}: the metrics reader is closed")
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: query failed: {exc}") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run any read-only SQL and return its rows as dicts (values as stored).

        Raises
        ------
        StoreError
            When SQLite fails, including any attempt to write (the connection is
            read-only).
        """
        return [dict(row) for row in self._rows(sql, params)]

    # -- verification -------------------------------------------------------------

    def skill(
        self,
        method: str | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        *,
        model: str | None = None,
        kind: str | None = None,
        threshold: float | None = None,
    ) -> list[dict[str, Any]]:
        """Scores over a period, from counts summed over every forecast in it.

        Parameters
        ----------
        method
            Only this forecaster; every one by default.
        since, until
            Issue times from ``since`` (inclusive) to ``until`` (exclusive).
        model
            Only forecasts of this model (``''`` for methods without one).
        kind
            ``3d`` or ``composite``; both by default.
        threshold
            Only this threshold in dBZ.

        Returns
        -------
        list of dict
            One row per (method, lead_s, kind, threshold), in that order, with
            ``forecasts``, the four summed counts, ``csi``, ``pod``, ``far``,
            ``bias`` (NaN where undefined) and ``mae``.
        """
        where = _Where()
        if method is not None:
            where.add("method = ?", method)
        if model is not None:
            where.add("model = ?", model)
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
            where.add("kind = ?", kind)
        if threshold is not None:
            where.add("threshold = ?", float(threshold))
        where.period("issue_time", since, until)
        rows = self._rows(
            f"""
            SELECT method, lead_s, kind, threshold, {_SUMS}, {_WEIGHTED_MAE}
            FROM scores {where}
            GROUP BY method, lead_s, kind, threshold
            ORDER BY method, lead_s, kind, threshold
            """,
            where.params,
        )
        return [_with_scores(_decode(row)) for row in rows]

    def csi_timeseries(
        self,
        threshold: float = 35.0,
        method: str | None = None,
        bucket_s: int = 3600,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        *,
        kind: str = "3d",
        lead_s: int | None = None,
    ) -> list[dict[str, Any]]:
        """CSI per period of issue time, from counts summed within each period.

        Parameters
        ----------
        threshold
            dBZ.
        method
            Only this forecaster; every one by default.
        bucket_s
            The period's length in seconds; periods start at multiples of it since
            1970-01-01T00:00:00Z (whole hours for 3600).
        since, until
            Issue times from ``since`` (inclusive) to ``until`` (exclusive).
        kind
            ``3d`` or ``composite``.
        lead_s
            Only this lead; every lead by default (one series each).

        Returns
        -------
        list of dict
            One row per (method, lead_s, bucket) in that order: ``bucket`` (the
            period's start, a datetime), ``method``, ``lead_s``, ``forecasts``, the
            summed counts and ``csi``, ``pod``, ``far``, ``bias``.
        """
        bucket = int(bucket_s)
        if bucket <= 0:
            raise ValueError(f"bucket_s must be > 0 (got {bucket_s})")
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)}")
        where = _Where()
        where.add("threshold = ?", float(threshold))
        where.add("kind = ?", kind)
        if method is not None:
            where.add("method = ?", method)
        if lead_s is not None:
            where.add("lead_s = ?", int(lead_s))
        where.period("issue_time", since, until)
        rows = self._rows(
            f"""
            SELECT method, lead_s,
                   CAST(strftime('%s', issue_time) AS INTEGER) / {bucket} * {bucket}
                       AS bucket,
                   {_SUMS}
            FROM scores {where}
            GROUP BY method, lead_s, bucket
            ORDER BY method, lead_s, bucket
            """,
            where.params,
        )
        out = []
        for row in rows:
            item = _with_scores(_decode(row))
            item["bucket"] = datetime.fromtimestamp(item["bucket"], timezone.utc)
            out.append(item)
        return out

    # -- the daemon -------------------------------------------------------------------

    def recent_forecasts(
        self, limit: int = 20, method: str | None = None
    ) -> list[dict[str, Any]]:
        """The latest forecasts, newest issue time first.

        Each row: ``forecast_id``, ``issue_time``, ``method``, ``model``,
        ``n_leads``, ``latency_s``, ``output_dir``, ``n_outputs``, ``created_at``.
        """
        where = _Where()
        if method is not None:
            where.add("method = ?", method)
        rows = self._rows(
            f"SELECT * FROM forecasts {where} "
            "ORDER BY issue_time DESC, forecast_id DESC LIMIT ?",
            [*where.params, int(limit)],
        )
        return [_decode(row) for row in rows]

    def latest_forecast(self, method: str | None = None) -> dict[str, Any] | None:
        """The forecast with the latest issue time (of ``method``), or None."""
        rows = self.recent_forecasts(1, method)
        return rows[0] if rows else None

    def recent_events(
        self,
        limit: int = 50,
        min_level: str | int = "info",
        *,
        kind: str | None = None,
        since: TimeLike | None = None,
    ) -> list[dict[str, Any]]:
        """The latest events at ``min_level`` or worse, newest first.

        Each row: ``event_id``, ``time``, ``level``, ``level_no``, ``kind``,
        ``message``, ``path``.
        """
        where = _Where()
        where.add("level_no >= ?", parse_level(min_level)[1])
        if kind is not None:
            where.add("kind = ?", kind)
        where.period("time", since, None)
        rows = self._rows(
            f"SELECT * FROM events {where} ORDER BY time DESC, event_id DESC LIMIT ?",
            [*where.params, int(limit)],
        )
        return [_decode(row) for row in rows]

    # -- training -------------------------------------------------------------------

    def training_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest training runs, newest first.

        Each row: ``run_id``, ``started``, ``finished`` (None while running),
        ``command``, ``config`` (a dict), ``status``, ``message``, ``n_epochs``
        (epochs recorded) and ``last_epoch`` (None before the first).
        """
        rows = self._rows(
            """
            SELECT r.*, COUNT(DISTINCT e.epoch) AS n_epochs, MAX(e.epoch) AS last_epoch
            FROM training_runs AS r LEFT JOIN epochs AS e USING (run_id)
            GROUP BY r.run_id ORDER BY r.run_id DESC LIMIT ?
            """,
            [int(limit)],
        )
        return [_decode(row) for row in rows]

    def epochs(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """Every epoch row of a training run (the latest run by default).

        Returns
        -------
        list of dict
            By epoch, then split (``train`` before ``val``): ``run_id``, ``phase``,
            ``epoch``, ``split``, ``loss``, ``terms`` (dict), ``lr``, ``csi35``
            (dict of lead seconds to CSI), ``area_ratio``, ``seconds``, ``time``.
            Empty when there is no run.
        """
        if run_id is None:
            latest = self._rows("SELECT MAX(run_id) FROM training_runs")[0][0]
            if latest is None:
                return []
            run_id = int(latest)
        rows = self._rows(
            "SELECT run_id, phase, epoch, split, loss, terms_json, lr, csi35_json, "
            "area_ratio, seconds, time FROM epochs WHERE run_id = ? "
            "ORDER BY epoch, split",
            [int(run_id)],
        )
        return [_decode(row) for row in rows]

    def retrain_decisions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest retrain decisions, newest first.

        Each row: ``decision_id``, ``time``, ``run_id``, ``candidate``,
        ``production``, ``candidate_score``, ``production_score``, ``margin``,
        ``promoted`` (bool), ``reason``.
        """
        rows = self._rows(
            "SELECT * FROM retrain_decisions ORDER BY time DESC, decision_id DESC "
            "LIMIT ?",
            [int(limit)],
        )
        return [_decode(row) for row in rows]

    def last_retrain_decision(self) -> dict[str, Any] | None:
        """The latest retrain decision, or None when none was made."""
        rows = self.retrain_decisions(1)
        return rows[0] if rows else None
