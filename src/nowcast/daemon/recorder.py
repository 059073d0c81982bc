"""Where the daemon's events, forecasts and scores go: the log, the store, the status.

Contract
--------
:class:`Recorder` wraps the :class:`~nowcast.store.MetricsStore` for a daemon that
must never stop because of it:

- :meth:`~Recorder.event` logs one line (structlog, with the fields given) and
  records it in the store's ``events`` table; warnings and errors are also kept
  (the last 10, and a count) for ``status.json``.
- :meth:`~Recorder.forecast` and :meth:`~Recorder.scores` write to the store.
- A store that cannot be opened or written (:class:`~nowcast.store.StoreError`:
  locked, disk full, a bad file) is logged as an error and the call returns;
  opening is tried again at most every ``retry_s`` of the step clock.
- The store is opened in the thread that calls first (SQLite connections belong
  to one thread: the step's).
"""

from __future__ import annotations

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
    ) -> None:
        self.store_path = Path(store_path)
        self.clock = clock
        self.retry_s = float(retry_s)
        self.errors: deque[dict[str, Any]] = deque(maxlen=keep)
        self.error_count = 0
        self._store: MetricsStore | None = None
        self._next_open: datetime | None = None
        self.store_error: str | None = None

    # -- the store ------------------------------------------------------------

    def _open(self) -> MetricsStore | None:
        if self._store is not None:
            return self._store
        now = self.clock()
        if self._next_open is not None and now < self._next_open:
            return None
        try:
            self._store = MetricsStore(self.store_path, clock=self.clock)
            self.store_error = None
        except StoreError as exc:
            self._next_open = now + timedelta(seconds=self.retry_s)
            self._failed(str(exc))
        return self._store

    def _failed(self, message: str) -> None:
        self.store_error = message
        self._remember("error", "store", message, self.clock())
        log.error("metrics store", error=message)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        store = self._open()
        if store is None:
            return None
        try:
            return getattr(store, method)(*args, **kwargs)
        except StoreError as exc:
            self._failed(str(exc))
        except ValueError as exc:  # a row the store refused: a bug, never fatal
            self._failed(f"{method}: {exc}")
        return None

    def close(self) -> None:
        if self._store is not None:
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
        return int(written or 0)
