"""Where the daemon's events, forecasts and scores go: the log, the store, the status.

Contract
--------
:class:`Recorder` wraps the :class:`~nowcast.store.MetricsStore` for a daemon that
must never stop because of it:

- :meth:`~Recorder.event` logs one line (structlog, with the fields given) and
  records it in the store's ``events`` table; warnings and errors are also kept
  (the last 10, and a count) for ``status.json``.
- :meth:`~Recorder.forecast` and :meth:`~Recorder.scores` write to the store.
- The step never waits on the store: it is opened with a short busy timeout
  (``busy_s``, 0.1 s). A write that fails (:class:`~nowcast.store.StoreError`:
  locked by another process, disk full, a bad file) is queued in memory, in
  order (later writes queue behind it without trying), and written by
  :meth:`~Recorder.flush` (the daemon flushes every step, and at shutdown) once
  the store is free: none is lost (up to ``max_queued``
  writes; beyond that the oldest are dropped and counted). The first failure of
  a spell is logged as an error, not every retry. Opening is tried again at most
  every ``retry_s`` of the step clock.
- A store file deleted or replaced under the daemon (its inode changed) is
  noticed at the next write: the store is opened again, which recreates it.
- The store is opened in the thread that calls first (SQLite connections belong
  to one thread: the step's).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from nowcast.store import MetricsStore, StoreError

log = structlog.get_logger("nowcast.daemon")

_LEVELS = {"debug", "info", "warning", "error", "critical"}


class Recorder:
    """Log + store + recent errors (see the module contract)."""

    def __init__(
        self,
        store_path: Path,
        clock: Callable[[], datetime],
        retry_s: float = 60.0,
        keep: int = 10,
        busy_s: float = 0.1,
        max_queued: int = 100_000,
    ) -> None:
        self.store_path = Path(store_path)
        self.clock = clock
        self.retry_s = float(retry_s)
        self.busy_s = float(busy_s)
        self.errors: deque[dict[str, Any]] = deque(maxlen=keep)
        self.error_count = 0
        self._store: MetricsStore | None = None
        self._inode: int | None = None
        self._next_open: datetime | None = None
        self.store_error: str | None = None
        self._queue: deque[tuple[str, tuple, dict]] = deque()
        self.max_queued = int(max_queued)
        self.dropped = 0

    # -- the store ------------------------------------------------------------

    def _inode_now(self) -> int | None:
        try:
            return self.store_path.stat().st_ino
        except OSError:
            return None

    def _open(self) -> MetricsStore | None:
        if self._store is not None and self._inode_now() != self._inode:
            log.warning("metrics store file replaced or deleted; opening it again",
                        store=str(self.store_path))
            self.close()
            self._next_open = None
        if self._store is not None:
            return self._store
        now = self.clock()
        if self._next_open is not None and now < self._next_open:
            return None
        try:
            self._store = MetricsStore(
                self.store_path, clock=self.clock, timeout_s=self.busy_s
            )
            self._inode = self._inode_now()
        except StoreError as exc:
            self._next_open = now + timedelta(seconds=self.retry_s)
            self._failed(str(exc))
        return self._store

    def _failed(self, message: str) -> None:
        if self.store_error is None:  # once a spell, not every retry
            self._remember("error", "store", message, self.clock())
            log.error("metrics store", error=message, queued=len(self._queue))
        self.store_error = message

    def _write(self, store: MetricsStore, method: str, args, kwargs) -> Any:
        return getattr(store, method)(*args, **kwargs)

    def flush(self) -> int:
        """Write what is queued, in order, while the store takes it; returns
        how many writes are still queued."""
        store = self._open() if self._queue else None
        while self._queue and store is not None:
            method, args, kwargs = self._queue[0]
            try:
                self._write(store, method, args, kwargs)
            except StoreError as exc:
                self._failed(str(exc))
                break
            except ValueError as exc:  # a row the store refused: never retried
                log.error("metrics store refused a row", method=method, error=str(exc))
            self._queue.popleft()
        if not self._queue and self.store_error is not None and store is not None:
            log.info("metrics store writable again; queued writes written")
            self.store_error = None
        return len(self._queue)

    def _enqueue(self, method: str, args, kwargs) -> None:
        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((method, args, kwargs))

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._queue:  # a spell of failures: queue in order, flush() retries
            self._enqueue(method, args, kwargs)
            return None
        store = self._open()
        if store is None:
            self._enqueue(method, args, kwargs)
            return None
        try:
            result = self._write(store, method, args, kwargs)
            self.store_error = None
            return result
        except StoreError as exc:
            self._failed(str(exc))
            self._enqueue(method, args, kwargs)
        except ValueError as exc:  # a row the store refused: a bug, never fatal
            self._failed(f"{method}: {exc}")
        return None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None

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
        rows: list[dict[str, Any]],
    ) -> int:
        written = self._call(
            "record_scores", issue_time, valid_time, method, model, rows
        )
        return int(written) if written is not None else len(rows)  # or queued
