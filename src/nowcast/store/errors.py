"""The store's one exception, :class:`StoreError`.

Every failure of :mod:`nowcast.store` that a caller can act on (a missing or foreign
file, a schema from a newer nowcast, a locked or full database, an unknown training
run) is raised as :class:`StoreError`, so that the daemon, which catches
:class:`~nowcast.errors.NowcastError`, logs it and goes on.
"""

from __future__ import annotations

from nowcast.errors import NowcastError


class StoreError(NowcastError):
    """The metrics store cannot be opened, read or written: names the file and why."""
