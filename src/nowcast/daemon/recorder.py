"""Where the daemon's events, forecasts and scores go: the log, the store, the status.

Contract
--------
:class:`Recorder` wraps the :class:`~nowcast.store.MetricsStore` for a daemon that
must never stop, nor wait, because of it:

- :meth:`~Recorder.event` logs one line (structlog, with the fields given) and
  records it in the store's ``events`` table; warnings and errors are also kept
  (the last 10, and a count) for ``status.json``.
- :meth:`~Recorder.forecast` and :meth:`~Recorder.scores` write to the store;
  :meth:`~Recorder.scores` returns the rows accepted (written, or queued to be
  written), 0 for rows the store would refuse (a bad row: logged, never queued).
- Every write goes through an in-memory FIFO. A call made while nothing is
  queued is written at once; while something is queued, later calls queue behind
  it without trying, so the order is kept. :meth:`~Recorder.flush` (the daemon
  calls it every step, and at shutdown) writes the queue in batches, each batch
  one transaction (:meth:`~nowcast.store.MetricsStore.batch`): written whole or
  not at all, so a batch retried after a failure writes each event, forecast and
  score row exactly once.
- The step never waits long on the store: it is opened with a short busy timeout
  (``busy_s``, 0.1 s), so a write to a store locked by another process (``BEGIN
  EXCLUSIVE`` held open) fails after ``busy_s``; its rows stay queued and the call
  returns. One step pays at most about one ``busy_s`` (its flush) while the lock
  lasts, and a flush that catches up on a backlog stops after ``flush_s`` (0.25 s;
  ``flush(None)`` writes everything), the rest at the next one. A lock of any
  length loses nothing (up to ``max_queued`` rows, 100 000; beyond that the
  oldest writes are dropped, counted in :attr:`~Recorder.dropped` and as an
  error, and an event saying how many is stored once the store is free).
- The first failure of a spell (locked, disk full, a bad file) is logged once as
  an error and counted for the status, not every retry; the end of the spell is
  logged once (``metrics store writable again``). A store that cannot be opened
  because it is locked is tried again at the next flush; for any other reason
  (a foreign file, a newer schema) at most every ``retry_s`` of the step clock.
- A store file deleted or replaced under the daemon (its inode changed, or it is
  missing) is noticed at the next flush, and again after each committed batch:
  the store is opened again, which recreates it with its schema (leftover
  ``-wal``/``-shm`` of the deleted file removed), and a batch committed into the
  file that went is written again into the new one.
- :meth:`~Recorder.close` flushes everything it can (one more ``busy_s`` try
  when locked), logs what is lost, and closes the store.
- Threads: the store is opened in, and written only by, the first thread that
  writes (the step's; SQLite connections belong to one thread). Calls from other
  threads are queued for that thread's next flush.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from nowcast.store import MetricsStore, StoreError
from nowcast.store.values import score_row

log = structlog.get_logger("nowcast.daemon")

_LEVELS = {"debug", "info", "warning", "error", "critical"}
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_BUDGET = object()  # flush(): the default time budget, ``flush_s``


def _busy(exc: BaseException) -> bool:
    """Whether a store failure is another connection's lock (it passes)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        code = getattr(seen, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF) in _BUSY_CODES:
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    return any(
        words in text
        for words in ("database is locked", "database is busy", "table is locked")
    )


def _integrity(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, sqlite3.IntegrityError)


@dataclass
class _Write:
    """One queued call of a :class:`MetricsStore` ``record_*`` method."""

    method: str
    args: tuple
    kwargs: dict
    rows: int = 1


class Recorder:
    """Log + store (through a queue) + recent errors (see the module contract)."""

    def __init__(
        self,
        store_path: Path,
        clock: Callable[[], datetime],
        retry_s: float = 60.0,
        keep: int = 10,
        busy_s: float = 0.1,
        max_queued: int = 100_000,
        flush_s: float = 0.25,
        batch_rows: int = 2_000,
    ) -> None:
        self.store_path = Path(store_path)
        self.clock = clock
        self.retry_s = float(retry_s)
        self.busy_s = float(busy_s)
        self.flush_s = float(flush_s)
        self.batch_rows = max(1, int(batch_rows))
        self.max_queued = max(1, int(max_queued))
        self.errors: deque[dict[str, Any]] = deque(maxlen=keep)
        self.error_count = 0
        self.store_error: str | None = None  # set during a spell of failures
        self.dropped = 0  # rows dropped because the queue was full
        self.written = 0  # rows written
        self._store: MetricsStore | None = None
        self._inode: int | None = None
        self._owner: int | None = None  # the thread that writes
        self._next_open: datetime | None = None
        self._queue: deque[_Write] = deque()
        self._queued_rows = 0
        self._unreported_drops = 0
        self._spell_since: float | None = None
        self._lock = threading.RLock()

    # -- the store ------------------------------------------------------------

    def _inode_now(self) -> int | None:
        try:
            return self.store_path.stat().st_ino
        except OSError:
            return None

    def _close_store(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None
            self._inode = None

    def _open(self) -> MetricsStore | None:
        if self._store is not None and self._inode_now() != self._inode:
            log.warning(
                "metrics store file deleted or replaced; opening it again",
                store=str(self.store_path), queued=self._queued_rows,
            )
            self._close_store()
            self._next_open = None
        if self._store is not None:
            return self._store
        now = self.clock()
        if self._next_open is not None and now < self._next_open:
            return None
        try:
            store = MetricsStore(
                self.store_path, clock=self.clock, timeout_s=self.busy_s
            )
        except StoreError as exc:
            if not _busy(exc):  # a lock passes; a bad file is not retried at once
                self._next_open = now + timedelta(seconds=self.retry_s)
            self._failed(str(exc))
            return None
        self._store = store
        self._inode = self._inode_now()
        self._next_open = None
        return store

    def _failed(self, message: str) -> None:
        if self.store_error is None:  # once a spell, not every retry
            self._spell_since = time.monotonic()
            self._remember("error", "store", message, self.clock())
            log.error(
                "metrics store unwritable; metrics queued in memory",
                error=message, queued=self._queued_rows,
            )
        self.store_error = message

    def _refused(self, method: str, exc: BaseException) -> None:
        """A write the store will never take (a bad row): a bug, never fatal."""
        message = f"{method}: {type(exc).__name__}: {exc}"
        self._remember("error", "store", message, self.clock())
        log.error("metrics store refused a write; not retried", error=message)

    def _owns_thread(self) -> bool:
        me = threading.get_ident()
        if self._owner is None:
            self._owner = me
        return self._owner == me

    def _write_batch(self, store: MetricsStore, batch: list[_Write]) -> int:
        """Write ``batch`` in one transaction; returns the rows written (refused
        writes are skipped). Raises :class:`StoreError` when nothing was written."""
        rows = 0
        with store.batch("write queued metrics"):
            for item in batch:
                try:
                    getattr(store, item.method)(*item.args, **item.kwargs)
                except StoreError as exc:
                    if not _integrity(exc):
                        raise  # locked, disk full ...: the whole batch again later
                    self._refused(item.method, exc)
                except sqlite3.Error:
                    raise
                except Exception as exc:  # noqa: BLE001 - a bad row, never retried
                    self._refused(item.method, exc)
                else:
                    rows += item.rows
        return rows

    def flush(self, max_s: float | None | object = _BUDGET) -> int:
        """Write what is queued, in order, in batches, while the store takes it.

        Parameters
        ----------
        max_s
            Start no new batch after this many seconds (default ``flush_s``);
            None writes everything the store takes now.

        Returns
        -------
        int
            The rows still queued (0: all written).
        """
        if max_s is _BUDGET:
            max_s = self.flush_s
        with self._lock:
            if not (self._queue or self._unreported_drops) or not self._owns_thread():
                return self._queued_rows
            start = time.monotonic()
            rewrites = 0
            while True:
                if not self._queue:
                    if not self._unreported_drops:
                        break
                    self._report_drops()
                store = self._open()
                if store is None:
                    break
                batch, rows = [], 0
                for item in self._queue:
                    if batch and rows + item.rows > self.batch_rows:
                        break
                    batch.append(item)
                    rows += item.rows
                try:
                    written = self._write_batch(store, batch)
                except StoreError as exc:
                    self._failed(str(exc))
                    if not _busy(exc):
                        self._close_store()  # opened again at the next flush
                    break
                if self._inode_now() != self._inode and rewrites < 2:
                    # the file went while the batch was written: it went with it
                    rewrites += 1
                    continue  # _open() notices, recreates it; the batch again
                for _ in batch:
                    self._queued_rows -= self._queue.popleft().rows
                self.written += written
                if max_s is not None and time.monotonic() - start >= max_s:
                    break
            if not self._queue and self.store_error is not None:
                log.info(
                    "metrics store writable again; queued metrics written",
                    after_s=round(time.monotonic() - (self._spell_since or 0.0), 1),
                    written=self.written,
                )
                self.store_error = None
                self._spell_since = None
            return self._queued_rows

    def _report_drops(self) -> None:
        n, self._unreported_drops = self._unreported_drops, 0
        self._queue.append(
            _Write(
                "record_event",
                ("error", "store",
                 (f"{n} metric rows dropped: more than {self.max_queued} were "
                  "queued while the metrics store was unwritable")),
                {"time": self.clock()},
            )
        )
        self._queued_rows += 1

    def _enqueue(self, item: _Write) -> None:
        self._queue.append(item)
        self._queued_rows += item.rows
        while self._queued_rows > self.max_queued and len(self._queue) > 1:
            old = self._queue.popleft()
            self._queued_rows -= old.rows
            if not self._unreported_drops:  # once a spell of drops
                message = (
                    f"more than {self.max_queued} metric rows queued for the "
                    "metrics store; dropping the oldest"
                )
                self._remember("error", "store", message, self.clock())
                log.error(message, store=str(self.store_path))
            self.dropped += old.rows
            self._unreported_drops += old.rows

    def _call(self, method: str, *args: Any, n_rows: int = 1, **kwargs: Any) -> None:
        with self._lock:
            held_back = bool(self._queue)
            self._enqueue(_Write(method, args, kwargs, n_rows))
            if held_back:  # behind what is queued: the next flush writes it
                return
            try:  # nothing queued before: written now (or queued)
                self.flush()
            except Exception as exc:  # noqa: BLE001 - kept queued; never fatal
                log.error("metrics store: flush failed", error=repr(exc))

    @property
    def queued(self) -> int:
        """Rows queued, not yet written."""
        return self._queued_rows

    def close(self) -> None:
        """Write what the store takes now, then close it; what is left is lost."""
        with self._lock:
            if self._queue and self._owns_thread():
                try:
                    self.flush(None)
                except Exception as exc:  # noqa: BLE001 - closing anyway
                    log.error("metrics store: last flush failed", error=repr(exc))
            if self._queue:
                log.error(
                    "metrics store closed with metrics still queued; lost",
                    lost=self._queued_rows, error=self.store_error,
                )
                self._queue.clear()
                self._queued_rows = 0
            self._close_store()

    # -- recording --------------------------------------------------------------

    def _remember(
        self, level: str, kind: str, message: str, time: datetime, path=None
    ) -> None:
        if level in ("warning", "error", "critical"):
            self.errors.append(
                {
                    "time": time, "level": level, "kind": kind, "message": message,
                    "path": None if path is None else str(path),
                }
            )
            if level != "warning":
                self.error_count += 1

    def event(
        self,
        level: str,
        kind: str,
        message: str,
        path: Path | str | None = None,
        time: datetime | None = None,
        store: bool = True,
        **fields: Any,
    ) -> None:
        """Log an event, keep it for the status when it is a problem, store it."""
        if level not in _LEVELS:
            level = "info"
        time = time or self.clock()
        extra = {"path": str(path)} if path is not None else {}
        getattr(log, level)(message, kind=kind, **extra, **fields)
        self._remember(level, kind, message, time, path)
        if store:
            self._call("record_event", level, kind, message, path=path, time=time)

    def forecast(
        self,
        issue_time: datetime,
        method: str,
        model: str | None,
        n_leads: int,
        latency_s: float | None,
        outputs: Iterable[Path],
    ) -> None:
        self._call(
            "record_forecast", issue_time, method, model, n_leads, latency_s,
            list(outputs),
        )

    def scores(
        self,
        issue_time: datetime,
        valid_time: datetime,
        method: str,
        model: str | None,
        rows: Iterable[Any],
    ) -> int:
        """Queue one forecast's score rows; returns the rows accepted (written now
        or queued), 0 when a row is one the store would refuse (none kept)."""
        rows = [dict(r) if isinstance(r, Mapping) else r for r in rows]
        try:
            for row in rows:
                score_row(row)
        except ValueError as exc:
            self._refused("record_scores", exc)
            return 0
        if not rows:
            return 0
        self._call(
            "record_scores", issue_time, valid_time, method, model, rows,
            n_rows=len(rows),
        )
        return len(rows)
