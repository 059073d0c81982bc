"""The nowcast exception hierarchy.

Every error a user can cause derives from :class:`NowcastError` and carries a message
that names the file or configuration key at fault and, where there is one, the fix.
Callers that must never stop (the daemon) catch :class:`NowcastError` subclasses,
log them and go on.
"""

from __future__ import annotations

from pathlib import Path


class NowcastError(Exception):
    """Base class of every error nowcast raises on purpose."""


class ConfigError(NowcastError):
    """A configuration file or override is wrong: names the key and the reason.

    The command line turns it into one line on stderr and exit status 78
    (``EX_CONFIG``), which the systemd unit treats as "do not restart".
    """

    exit_status = 78


class ScanError(NowcastError):
    """A radar scan file cannot be used: names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ForecastWriteError(NowcastError):
    """A forecast could not be written; nothing partial was left in place."""


class ModelError(NowcastError):
    """A model checkpoint cannot be loaded or run."""


class ForecasterError(NowcastError):
    """A forecaster name is unknown or a forecaster cannot run on its input."""


class RetrainError(NowcastError):
    """Retraining could not run to a decision (no archive, the child failed ...)."""
