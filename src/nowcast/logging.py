"""structlog, set up once per process.

Contract: :func:`configure_logging` is called by the command line before anything
logs. On a terminal it prints readable, coloured lines; elsewhere (journald, CI, a
pipe) one JSON object a line. The daemon logs to stdout (journald takes it); the
offline tools log to stderr so that their stdout stays clean for tables and JSON.
Library code only calls ``structlog.get_logger(__name__)``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class _CurrentStream:
    """``sys.stdout`` or ``sys.stderr`` as it is at each write, not at set-up.

    Tests and embedding applications swap those objects; a logger that kept the
    old one would write to a closed file.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()

    def isatty(self) -> bool:
        stream = getattr(sys, self.name)
        return hasattr(stream, "isatty") and stream.isatty()


def configure_logging(
    level: str = "info",
    stream: TextIO | str | None = None,
    json: bool | None = None,
) -> None:
    """Configure structlog (and the standard logging it may route to).

    Parameters
    ----------
    level
        ``debug``, ``info`` or ``warning``.
    stream
        Where log lines go: a file object, or ``"stdout"`` / ``"stderr"`` (the
        default) meaning whatever ``sys.stdout`` / ``sys.stderr`` is at each write.
    json
        Force JSON lines (True) or console lines (False); by default JSON unless
        ``stream`` is a terminal.
    """
    if stream is None or isinstance(stream, str):
        stream = _CurrentStream(stream or "stderr")
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    numeric = _LEVELS.get(level, logging.INFO)
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=True))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING))
