"""The SQLite metrics store: what the daemon and the trainer measured, for the monitor.

Contract
--------
One SQLite file (``paths.store``, ``var/state/nowcast.sqlite`` by default) in WAL
mode, shared by three writers and one reader:

- the daemon (:class:`MetricsStore`): forecasts made
  (:meth:`~MetricsStore.record_forecast`), verification counts per forecast, lead,
  kind and threshold (:meth:`~MetricsStore.record_scores`,
  :meth:`~MetricsStore.record_accumulator`), events such as rejected scans and
  errors (:meth:`~MetricsStore.record_event`), pruning
  (:meth:`~MetricsStore.prune`);
- the curriculum trainer and the nightly retrainer (:class:`MetricsStore`):
  training runs, one row per epoch and split, retrain decisions;
- the monitor (:class:`MetricsReader`): reads only, through a read-only connection,
  while the others write.

Times are stored as UTC ISO-8601 text, ``2024-06-01T12:30:00Z`` (second precision,
:mod:`.times`); durations are seconds. Scores are stored as raw contingency counts,
so the skill of any period is computed from summed counts. The schema carries its
version in ``PRAGMA user_version`` (:mod:`.schema`); writers migrate older files,
and every part refuses a file from a newer nowcast. Every failure is a
:class:`StoreError` (a :class:`~nowcast.errors.NowcastError`).

Modules
-------
- :mod:`.errors`: :class:`StoreError`.
- :mod:`.times`: the time convention.
- :mod:`.values`: Python values to row values and back.
- :mod:`.schema`: tables, :func:`migrate`, :func:`check_version`.
- :mod:`.writer`: :class:`MetricsStore`.
- :mod:`.reader`: :class:`MetricsReader`.
"""

from nowcast.store.errors import StoreError
from nowcast.store.reader import MetricsReader
from nowcast.store.schema import SCHEMA_VERSION, check_version, migrate
from nowcast.store.times import from_iso, to_iso
from nowcast.store.writer import MetricsStore

__all__ = [
    "SCHEMA_VERSION",
    "MetricsReader",
    "MetricsStore",
    "StoreError",
    "check_version",
    "from_iso",
    "migrate",
    "to_iso",
]
