"""Writing metrics: :class:`MetricsStore`, used by the daemon and the trainer.

Contract
--------
- ``MetricsStore(path)`` opens (creating it and its folder when missing) the SQLite
  file read-write, switches it to WAL journaling (so readers never block the writer
  nor it them), sets ``busy_timeout`` (a second writer waits for the lock instead of
  failing at once), turns foreign keys on, and migrates the schema
  (:func:`~nowcast.store.schema.migrate`).
- A missing file is created; ``-wal`` / ``-shm`` / ``-journal`` files left beside
  it are the remains of a deleted store (SQLite would pair them with the new file
  and fail with "disk I/O error" while another process still holds them) and are
  removed first.
- Every ``record_*`` / ``start_*`` / ``finish_*`` / :meth:`~MetricsStore.prune`
  call is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction: all of it is written
  or none. Readers in other processes see it once the call returns.
- Inside ``with store.batch():`` those calls are savepoints of one transaction
  instead: the whole batch is committed when the block ends, or none of it (an
  exception out of the block, a lock not got, a failed ``COMMIT``), so a caller
  that retries a failed batch writes each row once. A call that fails inside the
  block (a ``ValueError`` for a bad row, a :class:`StoreError`) undoes only its
  own savepoint; the caller decides whether the block goes on.
- Recording the same key again replaces the row instead of adding a second one
  (scores by (issue_time, method, model, lead, kind, threshold), forecasts by
  (issue_time, method, model), epochs by (run, epoch, split)), so a daemon that
  re-verifies a forecast after a restart does not count it twice.
- Times are taken as aware datetimes, ISO-8601 text with a zone, or unix seconds,
  and stored as ``YYYY-MM-DDTHH:MM:SSZ`` (:mod:`nowcast.store.times`). Times the
  caller leaves out come from ``clock`` (a fake clock in tests).
- NaN scores are stored as NULL. Any SQLite failure (locked past the timeout, disk
  full, unknown run) is raised as :class:`~nowcast.store.errors.StoreError` naming
  the file.
- Threads: one :class:`MetricsStore` belongs to the thread that opened it (SQLite's
  own check raises :class:`sqlite3.ProgrammingError` in another thread). Open one
  per thread or process; any number may write the same file, each waits its turn.
- Durability: ``synchronous=NORMAL`` (safe with WAL: a power cut may lose the last
  transactions, never corrupts the file).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from nowcast.store.errors import StoreError
from nowcast.store.schema import migrate
from nowcast.store.times import TimeLike, cutoff, to_datetime, to_iso, utc_now
from nowcast.store.values import (
    RUN_STATUSES,
    SPLITS,
    ScoreRow,
    config_json,
    dumps,
    finite,
    output_dir,
    parse_level,
    score_row,
)


def _remove_orphans(path: Path) -> None:
    """The ``-wal`` / ``-shm`` / ``-journal`` of a store file that is gone."""
    if path.exists():
        return
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        except OSError:
            pass  # SQLite says what is wrong when it opens


class MetricsStore:
    """The read-write metrics store (see the module docstring for the contract).

    Parameters
    ----------
    path
        The SQLite file (``paths.store`` in the config); created with its folder
        when missing.
    timeout_s
        How long a write waits for another writer's lock before failing.
    clock
        Returns the current aware UTC datetime; used for times left out.

    Raises
    ------
    StoreError
        When the file cannot be opened or created, is not a SQLite database, or
        was written by a newer nowcast.

    Examples
    --------
    >>> with MetricsStore("var/state/nowcast.sqlite") as store:  # doctest: +SKIP
    ...     store.record_accumulator(issue_time, "convlstm3d", "demo3d.pt", acc)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._batch = False  # inside batch(): record_* calls are savepoints
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot create the metrics store's folder: "
                f"{exc.strerror or exc}"
            ) from None
        _remove_orphans(self.path)
        try:
            conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(
                f"{self.path}: cannot open the metrics store: {exc}"
            ) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                # Only takes effect before the first table exists.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"{self.path}: cannot switch the metrics store to WAL mode "
                    f"(got {mode!r}); is it on a network file system?"
                )
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, str(self.path))
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full ...
            conn.close()
            raise StoreError(
                f"{self.path}: cannot open the metrics store: {exc}"
            ) from None
        except sqlite3.DatabaseError as exc:  # not a SQLite file
            conn.close()
            raise StoreError(
                f"{self.path}: not a usable metrics store ({exc}); move it aside and "
                "a new one is created"
            ) from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # -- plumbing ---------------------------------------------------------------

    def __enter__(self) -> "MetricsStore":
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
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"MetricsStore({str(self.path)!r}, {state})"

    def _now(self) -> str:
        return to_iso(self._clock(), "clock()")

    @contextmanager
    def batch(self, what: str = "write a batch") -> Iterator[MetricsStore]:
        """One transaction around several ``record_*`` calls (see the contract).

        Raises
        ------
        StoreError
            When the write lock is not got within ``timeout_s``, or the ``COMMIT``
            fails: nothing of the batch is written.
        RuntimeError
            When called inside another batch.
        """
        if self._conn is None:
            raise StoreError(f"{self.path}: the metrics store is closed")
        if self._batch:
            raise RuntimeError("MetricsStore.batch() does not nest")
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._batch = True
            try:
                yield self
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._batch = False
        except sqlite3.ProgrammingError:
            raise  # a bug (another thread's connection ...), not the store's state
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        if self._conn is None:
            raise StoreError(f"{self.path}: the metrics store is closed")
        conn = self._conn
        if self._batch:  # a savepoint of the batch's transaction
            try:
                conn.execute("SAVEPOINT record")
                try:
                    yield conn
                    conn.execute("RELEASE record")
                except BaseException:
                    conn.execute("ROLLBACK TO record")
                    conn.execute("RELEASE record")
                    raise
            except sqlite3.ProgrammingError:
                raise
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.ProgrammingError:
            raise  # a bug (another thread's connection ...), not the store's state
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot {what}: {exc}") from exc

    # -- the daemon ---------------------------------------------------------------

    def record_forecast(
        self,
        issue_time: TimeLike,
        method: str,
        model: str | None,
        n_leads: int,
        latency_s: float | None = None,
        outputs: Iterable[str | os.PathLike[str]] = (),
    ) -> int:
        """Record one forecast made (again for the same key: replaced).

        Parameters
        ----------
        issue_time
            The time of the last scan the forecast starts from.
        method
            The forecaster's registry name (``convlstm3d``, ``persistence`` ...).
        model
            The model checkpoint (its file name), or None for methods without one.
        n_leads
            How many lead times were forecast.
        latency_s
            Seconds from the scan's arrival to the forecast written.
        outputs
            The files written; their common folder and their number are stored.

        Returns
        -------
        int
            The row's ``forecast_id``.
        """
        directory, n_outputs = output_dir(outputs)
        values = (
            to_iso(issue_time, "issue_time"),
            str(method),
            str(model or ""),
            int(n_leads),
            finite(latency_s, "latency_s"),
            directory,
            n_outputs,
            self._now(),
        )
        with self._transaction("record a forecast") as conn:
            conn.execute(
                """
                INSERT INTO forecasts (issue_time, method, model, n_leads, latency_s,
                                       output_dir, n_outputs, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (issue_time, method, model) DO UPDATE SET
                    n_leads = excluded.n_leads, latency_s = excluded.latency_s,
                    output_dir = excluded.output_dir, n_outputs = excluded.n_outputs,
                    created_at = excluded.created_at
                """,
                values,
            )
            row = conn.execute(
                "SELECT forecast_id FROM forecasts "
                "WHERE issue_time = ? AND method = ? AND model = ?",
                values[:3],
            ).fetchone()
        return int(row[0])

    def record_scores(
        self,
        issue_time: TimeLike,
        valid_time: TimeLike | None,
        method: str,
        model: str | None,
        rows: Iterable[ScoreRow],
    ) -> int:
        """Record verification counts of one forecast (one transaction).

        Parameters
        ----------
        issue_time
            The forecast's issue time.
        valid_time
            The observation's time, used for every row; None takes
            ``issue_time + lead_s`` for each row (rows of several leads).
        method, model
            As in :meth:`record_forecast`.
        rows
            Mappings with the keys of
            :meth:`~nowcast.verification.ScoreAccumulator.table` (``lead_s``,
            ``kind``, ``threshold``, the four counts, optional ``mae`` and
            ``forecasts``), or ``(lead_s, kind, threshold, Counts[, mae])`` tuples.

        Returns
        -------
        int
            The number of rows written.

        Raises
        ------
        ValueError
            When a row lacks a key or has an unknown kind (nothing is written).
        StoreError
            When the database refuses the write.
        """
        issued = to_datetime(issue_time, "issue_time")
        valid = None if valid_time is None else to_iso(valid_time, "valid_time")
        created = self._now()
        values = []
        for row in rows:
            lead, kind, thr, n, c, mae = score_row(row)
            values.append(
                (
                    to_iso(issued),
                    valid or to_iso(issued + timedelta(seconds=lead)),
                    lead,
                    str(method),
                    str(model or ""),
                    kind,
                    thr,
                    n,
                    c.hits,
                    c.misses,
                    c.false_alarms,
                    c.correct_negatives,
                    mae,
                    created,
                )
            )
        if not values:
            return 0
        with self._transaction("record scores") as conn:
            conn.executemany(
                """
                INSERT INTO scores (issue_time, valid_time, lead_s, method, model,
                    kind, threshold, n_forecasts, hits, misses, false_alarms,
                    correct_negatives, mae, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (issue_time, method, model, lead_s, kind, threshold)
                DO UPDATE SET
                    valid_time = excluded.valid_time,
                    n_forecasts = excluded.n_forecasts, hits = excluded.hits,
                    misses = excluded.misses, false_alarms = excluded.false_alarms,
                    correct_negatives = excluded.correct_negatives,
                    mae = excluded.mae, created_at = excluded.created_at
                """,
                values,
            )
        return len(values)

    def record_accumulator(
        self, issue_time: TimeLike, method: str, model: str | None, acc: Any
    ) -> int:
        """Record every row of a :class:`~nowcast.verification.ScoreAccumulator`.

        The accumulator holds one forecast (or several of the same issue time);
        each lead's valid time is ``issue_time + lead_s``. Returns the rows written.
        """
        return self.record_scores(issue_time, None, method, model, acc.table())

    def record_event(
        self,
        level: str | int,
        kind: str,
        message: str,
        path: str | os.PathLike[str] | None = None,
        time: TimeLike | None = None,
    ) -> int:
        """Record an event (a rejected scan, an error, a fallback, a restart ...).

        Parameters
        ----------
        level
            ``debug``, ``info``, ``warning``, ``error``, ``critical`` or a
            :mod:`logging` level number.
        kind
            A short tag the monitor can filter on (``rejected_scan``, ``error``).
        message
            One line for the operator.
        path
            The file concerned, if any.
        time
            When it happened; now by default.

        Returns
        -------
        int
            The row's ``event_id``.
        """
        name, number = parse_level(level)
        values = (
            self._now() if time is None else to_iso(time),
            name,
            number,
            str(kind),
            str(message),
            None if path is None else os.fspath(path),
        )
        with self._transaction("record an event") as conn:
            cursor = conn.execute(
                "INSERT INTO events (time, level, level_no, kind, message, path) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                values,
            )
        return int(cursor.lastrowid)

    # -- the trainer ----------------------------------------------------------------

    def start_training_run(
        self,
        command: str = "",
        config: Any = None,
        started: TimeLike | None = None,
    ) -> int:
        """Open a training run (status ``running``) and return its ``run_id``.

        Parameters
        ----------
        command
            The command line that started it.
        config
            The settings used: a mapping, a pydantic model (``Settings``) or JSON
            text.
        started
            Now by default.
        """
        values = (
            self._now() if started is None else to_iso(started, "started"),
            str(command),
            config_json(config),
        )
        with self._transaction("start a training run") as conn:
            cursor = conn.execute(
                "INSERT INTO training_runs (started, command, config_json, status) "
                "VALUES (?, ?, ?, 'running')",
                values,
            )
        return int(cursor.lastrowid)

    def record_epoch(
        self,
        run_id: int,
        phase: int,
        epoch: int,
        split: str,
        loss: float | None,
        *,
        terms: Mapping[str, float] | None = None,
        lr: float | None = None,
        csi35: Mapping[int, float] | None = None,
        area_ratio: float | None = None,
        seconds: float | None = None,
        time: TimeLike | None = None,
    ) -> None:
        """Record one epoch's numbers on one split (again for the same key: replaced).

        Parameters
        ----------
        run_id
            From :meth:`start_training_run`.
        phase
            The curriculum phase (1, 2, 3).
        epoch
            The epoch number (global across phases).
        split
            ``train`` or ``val``.
        loss
            The total loss (NaN stored as NULL).
        terms
            Each loss term by name (``{"huber": .., "ssim": ..}``).
        lr
            The learning rate.
        csi35
            CSI at 35 dBZ by lead in seconds (``{300: 0.61, 600: 0.52}``), usually on
            validation only.
        area_ratio
            Forecast area over observed area at 35 dBZ.
        seconds
            Wall time of the epoch.
        time
            When it finished; now by default.

        Raises
        ------
        ValueError
            When ``split`` is not ``train`` or ``val``.
        StoreError
            When ``run_id`` is not a training run.
        """
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: one of {', '.join(SPLITS)}")
        csi = {int(lead): value for lead, value in (csi35 or {}).items()}
        values = (
            int(run_id),
            int(phase),
            int(epoch),
            split,
            finite(loss, "loss"),
            dumps(dict(terms or {}), "terms"),
            finite(lr, "lr"),
            dumps({str(k): csi[k] for k in sorted(csi)}, "csi35"),
            finite(area_ratio, "area_ratio"),
            finite(seconds, "seconds"),
            self._now() if time is None else to_iso(time),
        )
        with self._transaction(f"record an epoch of training run {run_id}") as conn:
            self._check_run(conn, run_id)
            conn.execute(
                """
                INSERT INTO epochs (run_id, phase, epoch, split, loss, terms_json, lr,
                                    csi35_json, area_ratio, seconds, time)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, epoch, split) DO UPDATE SET
                    phase = excluded.phase, loss = excluded.loss,
                    terms_json = excluded.terms_json, lr = excluded.lr,
                    csi35_json = excluded.csi35_json,
                    area_ratio = excluded.area_ratio, seconds = excluded.seconds,
                    time = excluded.time
                """,
                values,
            )

    def _check_run(self, conn: sqlite3.Connection, run_id: int) -> None:
        found = conn.execute(
            "SELECT 1 FROM training_runs WHERE run_id = ?", (int(run_id),)
        ).fetchone()
        if found is None:
            raise StoreError(
                f"{self.path}: no training run {run_id}: call start_training_run() "
                "first"
            )

    def finish_training_run(
        self,
        run_id: int,
        status: str = "completed",
        message: str | None = None,
        finished: TimeLike | None = None,
    ) -> None:
        """Close a training run.

        Parameters
        ----------
        run_id
            From :meth:`start_training_run`.
        status
            ``completed``, ``failed`` or ``interrupted``.
        message
            A line for the operator (the error, the checkpoint written ...).
        finished
            Now by default.

        Raises
        ------
        ValueError
            When ``status`` is not one of those.
        StoreError
            When ``run_id`` is not a training run.
        """
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(
                f"status {status!r}: one of completed, failed, interrupted"
            )
        values = (
            self._now() if finished is None else to_iso(finished, "finished"),
            status,
            message,
            int(run_id),
        )
        with self._transaction(f"finish training run {run_id}") as conn:
            self._check_run(conn, run_id)
            conn.execute(
                "UPDATE training_runs SET finished = ?, status = ?, message = ? "
                "WHERE run_id = ?",
                values,
            )

    def record_retrain_decision(
        self,
        candidate: str | os.PathLike[str],
        production: str | os.PathLike[str] | None,
        candidate_score: float | None,
        production_score: float | None,
        margin: float | None,
        promoted: bool,
        reason: str = "",
        *,
        run_id: int | None = None,
        time: TimeLike | None = None,
    ) -> int:
        """Record whether a retrained checkpoint replaced the production one.

        Parameters
        ----------
        candidate, production
            The checkpoints compared (production None on a first deployment).
        candidate_score, production_score
            Their scores on the held-out days (higher is better, e.g. CSI).
        margin
            The margin the candidate had to beat production by.
        promoted
            Whether the candidate became production.
        reason
            One line: why.
        run_id
            The training run that made the candidate, if known.
        time
            Now by default.

        Returns
        -------
        int
            The row's ``decision_id``.
        """
        values = (
            self._now() if time is None else to_iso(time),
            None if run_id is None else int(run_id),
            os.fspath(candidate),
            None if production is None else os.fspath(production),
            finite(candidate_score, "candidate_score"),
            finite(production_score, "production_score"),
            finite(margin, "margin"),
            int(bool(promoted)),
            str(reason),
        )
        with self._transaction("record a retrain decision") as conn:
            if run_id is not None:
                self._check_run(conn, run_id)
            cursor = conn.execute(
                """
                INSERT INTO retrain_decisions (time, run_id, candidate, production,
                    candidate_score, production_score, margin, promoted, reason)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                values,
            )
        return int(cursor.lastrowid)

    # -- housekeeping ---------------------------------------------------------------

    def prune(
        self,
        older_than: TimeLike | timedelta,
        *,
        training: bool = False,
        now: datetime | None = None,
    ) -> dict[str, int]:
        """Delete rows older than a time (or an age), in one transaction.

        Parameters
        ----------
        older_than
            A time, or a :class:`~datetime.timedelta` before ``now``. Forecasts and
            scores go by issue time, events by their time; rows exactly at the
            cutoff stay.
        training
            Also delete finished training runs (their epochs go with them) and
            retrain decisions older than the cutoff. Running runs always stay.
        now
            The current time for an age; the store's clock by default.

        Returns
        -------
        dict of str to int
            Rows deleted per table.
        """
        limit = cutoff(older_than, now or self._clock(), "older_than")
        statements = {
            "scores": "DELETE FROM scores WHERE issue_time < ?",
            "forecasts": "DELETE FROM forecasts WHERE issue_time < ?",
            "events": "DELETE FROM events WHERE time < ?",
        }
        if training:
            statements["retrain_decisions"] = (
                "DELETE FROM retrain_decisions WHERE time < ?"
            )
            statements["training_runs"] = (
                "DELETE FROM training_runs WHERE finished IS NOT NULL AND finished < ?"
            )
        deleted: dict[str, int] = {}
        with self._transaction("prune the metrics store") as conn:
            if training:
                deleted["epochs"] = conn.execute(
                    "SELECT COUNT(*) FROM epochs JOIN training_runs USING (run_id) "
                    "WHERE finished IS NOT NULL AND finished < ?",
                    (limit,),
                ).fetchone()[0]
            for table, sql in statements.items():
                deleted[table] = conn.execute(sql, (limit,)).rowcount
        if not self._batch:  # give the freed pages back to the file system
            try:
                conn.execute("PRAGMA incremental_vacuum").fetchall()
            except sqlite3.Error:
                pass
        return deleted
