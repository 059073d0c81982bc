"""The metrics store's schema, versioned with SQLite's ``user_version``.

Contract
--------
- :data:`SCHEMA_VERSION` is the version this nowcast writes (1). ``PRAGMA
  user_version`` of a store holds the version its tables are at; 0 is a new, empty
  file.
- :func:`migrate` brings a store up to :data:`SCHEMA_VERSION` by running the steps
  in :data:`MIGRATIONS` (``MIGRATIONS[n]`` takes version ``n - 1`` to ``n``), each in
  one ``BEGIN IMMEDIATE`` transaction that also sets ``user_version``, so two
  processes opening a new store at once cannot both create it, and a crash leaves
  the previous version intact. A store at a newer version than this nowcast knows
  raises :class:`~nowcast.store.errors.StoreError` telling the operator to upgrade.
- :func:`check_version` is the read-only check (the monitor's): it never changes the
  file and raises unless the store is exactly at :data:`SCHEMA_VERSION`.
- Adding a version: append ``MIGRATIONS[2] = (...)`` with ``ALTER TABLE`` / ``CREATE``
  statements and bump :data:`SCHEMA_VERSION`; never edit an applied step.

Tables (times are UTC ISO-8601 text, see :mod:`nowcast.store.times`)
--------------------------------------------------------------------
``forecasts``
    One row per forecast made: ``issue_time``, ``method``, ``model`` (``''`` when the
    method has no model file), ``n_leads``, ``latency_s`` (scan arrival to written),
    ``output_dir`` (the common folder of the files written), ``n_outputs``,
    ``created_at``. Unique on (issue_time, method, model).
``scores``
    One row per (forecast, lead, kind, threshold): ``issue_time``, ``valid_time``,
    ``lead_s``, ``method``, ``model``, ``kind`` (``'3d'`` or ``'composite'``),
    ``threshold`` (dBZ), ``n_forecasts`` (forecasts summed into the row, usually 1),
    the raw counts ``hits``, ``misses``, ``false_alarms``, ``correct_negatives``,
    ``mae`` (dBZ, NULL when undefined), ``created_at``. Raw counts, so any period
    sums exactly. Unique on (issue_time, method, model, lead_s, kind, threshold).
``events``
    ``time``, ``level`` (``debug`` .. ``critical``), ``level_no`` (10 .. 50, as in
    :mod:`logging`), ``kind`` (a short tag: ``rejected_scan``, ``error`` ...),
    ``message``, ``path`` (the file concerned, or NULL).
``training_runs``
    ``run_id`` (never reused), ``started``, ``finished`` (NULL while running),
    ``command``, ``config_json``, ``status`` (``running``, ``completed``, ``failed``,
    ``interrupted``), ``message``.
``epochs``
    One row per (run, epoch, split): ``phase``, ``epoch``, ``split`` (``'train'`` or
    ``'val'``), ``loss``, ``terms_json`` (each loss term by name), ``lr``,
    ``csi35_json`` (CSI at 35 dBZ by lead in seconds, validation), ``area_ratio``
    (forecast / observed area), ``seconds`` (wall time), ``time``. Deleted with
    their run.
``retrain_decisions``
    ``time``, ``run_id`` (the training run, or NULL), ``candidate`` and
    ``production`` checkpoints, ``candidate_score``, ``production_score``,
    ``margin``, ``promoted`` (0 or 1), ``reason``.
"""

from __future__ import annotations

import sqlite3

from nowcast.store.errors import StoreError

SCHEMA_VERSION = 1

_V1 = (
    """
    CREATE TABLE forecasts (
        forecast_id INTEGER PRIMARY KEY,
        issue_time  TEXT    NOT NULL,
        method      TEXT    NOT NULL,
        model       TEXT    NOT NULL DEFAULT '',
        n_leads     INTEGER NOT NULL CHECK (n_leads >= 0),
        latency_s   REAL,
        output_dir  TEXT,
        n_outputs   INTEGER NOT NULL DEFAULT 0 CHECK (n_outputs >= 0),
        created_at  TEXT    NOT NULL,
        UNIQUE (issue_time, method, model)
    )
    """,
    "CREATE INDEX forecasts_by_method ON forecasts (method, issue_time)",
    "CREATE INDEX forecasts_by_time ON forecasts (issue_time)",
    """
    CREATE TABLE scores (
        score_id          INTEGER PRIMARY KEY,
        issue_time        TEXT    NOT NULL,
        valid_time        TEXT    NOT NULL,
        lead_s            INTEGER NOT NULL CHECK (lead_s >= 0),
        method            TEXT    NOT NULL,
        model             TEXT    NOT NULL DEFAULT '',
        kind              TEXT    NOT NULL CHECK (kind IN ('3d', 'composite')),
        threshold         REAL    NOT NULL,
        n_forecasts       INTEGER NOT NULL DEFAULT 1 CHECK (n_forecasts >= 1),
        hits              INTEGER NOT NULL CHECK (hits >= 0),
        misses            INTEGER NOT NULL CHECK (misses >= 0),
        false_alarms      INTEGER NOT NULL CHECK (false_alarms >= 0),
        correct_negatives INTEGER NOT NULL CHECK (correct_negatives >= 0),
        mae               REAL,
        created_at        TEXT    NOT NULL,
        UNIQUE (issue_time, method, model, lead_s, kind, threshold)
    )
    """,
    "CREATE INDEX scores_by_method ON scores (method, issue_time)",
    """
    CREATE TABLE events (
        event_id INTEGER PRIMARY KEY,
        time     TEXT    NOT NULL,
        level    TEXT    NOT NULL
                 CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
        level_no INTEGER NOT NULL,
        kind     TEXT    NOT NULL,
        message  TEXT    NOT NULL,
        path     TEXT
    )
    """,
    "CREATE INDEX events_by_time ON events (time)",
    """
    CREATE TABLE training_runs (
        run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
        started     TEXT    NOT NULL,
        finished    TEXT,
        command     TEXT    NOT NULL DEFAULT '',
        config_json TEXT    NOT NULL DEFAULT '{}',
        status      TEXT    NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
        message     TEXT
    )
    """,
    "CREATE INDEX training_runs_by_started ON training_runs (started)",
    """
    CREATE TABLE epochs (
        epoch_id    INTEGER PRIMARY KEY,
        run_id      INTEGER NOT NULL
                    REFERENCES training_runs (run_id) ON DELETE CASCADE,
        phase       INTEGER NOT NULL,
        epoch       INTEGER NOT NULL CHECK (epoch >= 0),
        split       TEXT    NOT NULL CHECK (split IN ('train', 'val')),
        loss        REAL,
        terms_json  TEXT    NOT NULL DEFAULT '{}',
        lr          REAL,
        csi35_json  TEXT    NOT NULL DEFAULT '{}',
        area_ratio  REAL,
        seconds     REAL,
        time        TEXT    NOT NULL,
        UNIQUE (run_id, epoch, split)
    )
    """,
    """
    CREATE TABLE retrain_decisions (
        decision_id      INTEGER PRIMARY KEY,
        time             TEXT    NOT NULL,
        run_id           INTEGER
                         REFERENCES training_runs (run_id) ON DELETE SET NULL,
        candidate        TEXT    NOT NULL,
        production       TEXT,
        candidate_score  REAL,
        production_score REAL,
        margin           REAL,
        promoted         INTEGER NOT NULL CHECK (promoted IN (0, 1)),
        reason           TEXT    NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX retrain_decisions_by_time ON retrain_decisions (time)",
    "CREATE INDEX retrain_decisions_by_run ON retrain_decisions (run_id)",
)

#: ``MIGRATIONS[n]``: the statements that take a store from version ``n - 1`` to
#: ``n``. Version 1 creates everything.
MIGRATIONS: dict[int, tuple[str, ...]] = {1: _V1}

TABLES = (
    "forecasts",
    "scores",
    "events",
    "training_runs",
    "epochs",
    "retrain_decisions",
)


def user_version(conn: sqlite3.Connection) -> int:
    """The store's ``PRAGMA user_version`` (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _newer_error(found: int, where: str) -> StoreError:
    return StoreError(
        f"{where}: metrics store schema version {found} was written by a newer "
        f"nowcast (this one knows versions up to {SCHEMA_VERSION}): upgrade nowcast"
    )


def migrate(conn: sqlite3.Connection, where: str = "metrics store") -> int:
    """Bring the store on ``conn`` up to :data:`SCHEMA_VERSION`.

    Parameters
    ----------
    conn
        A read-write connection in autocommit mode (``isolation_level=None``) with
        no transaction open.
    where
        The file's path, for error messages.

    Returns
    -------
    int
        The version the store was at before (0 for a new file).

    Raises
    ------
    StoreError
        When the store is at a version newer than this nowcast knows, or a step
        fails (nothing of that step is kept).
    """
    before = user_version(conn)
    if before > SCHEMA_VERSION:
        raise _newer_error(before, where)
    for target in range(before + 1, SCHEMA_VERSION + 1):
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                current = user_version(conn)
                if current > SCHEMA_VERSION:
                    raise _newer_error(current, where)
                if current < target:
                    for statement in MIGRATIONS[target]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {int(target)}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(
                f"{where}: cannot migrate the metrics store to schema version "
                f"{target}: {exc}"
            ) from exc
    return before


def check_version(conn: sqlite3.Connection, where: str = "metrics store") -> int:
    """Check, without writing, that the store is at :data:`SCHEMA_VERSION`.

    Returns
    -------
    int
        The version (always :data:`SCHEMA_VERSION`).

    Raises
    ------
    StoreError
        When the store is empty (no writer has created it yet), older (a writer of
        this nowcast migrates it when it opens the file) or newer (upgrade nowcast).
    """
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise _newer_error(found, where)
    if found == 0:
        raise StoreError(
            f"{where}: the metrics store is empty (not created yet): start the "
            "daemon or a training run"
        )
    if found < SCHEMA_VERSION:
        raise StoreError(
            f"{where}: metrics store schema version {found} is older than this "
            f"nowcast's ({SCHEMA_VERSION}): restart the daemon (or any writer) with "
            "this nowcast to migrate it"
        )
    return found
