"""nowcast.daemon: the operational loop (``nowcast run``).

Small modules, one job each (their docstrings hold the contracts):

- :mod:`.watcher`: watchdog handler that only queues paths; quiet-time readiness;
  the reconcile scan of the input directory.
- :mod:`.intake`: which files are ready; taking each version, and each scan
  time, once.
- :mod:`.ingest`: move a refused scan aside with its reason (reading and pooling
  is :func:`nowcast.radar.pooled.read_pooled`).
- :mod:`.buffer`: the rolling buffer of the newest scans (duplicates, late scans,
  gaps).
- :mod:`.models`: the production model, its fallback and the hot reload.
- :mod:`.forecast`: one forecast set through :mod:`nowcast.pipeline` (the model,
  else the fallback: :class:`~nowcast.forecasters.fallback.WithFallback`) and
  the baselines on the same input, for verification.
- :mod:`.verify`: forecasts kept on the pooled grid, scored as scans arrive.
- :mod:`.recorder`: events, forecasts and scores to the log and the SQLite store.
- :mod:`.scan_archive`: scans kept for retraining, pruned by age and size.
- :mod:`.status_file`: ``status.json``; :mod:`.notify`: sd_notify;
  :mod:`.schedule`: the nightly retraining job (``nowcast retrain --now``, see
  :mod:`nowcast.retrain`).
- :mod:`.instance_lock`: one daemon per configuration (a lock in ``state_dir``).
- :mod:`.service`: :class:`Daemon` (``initialize``, ``step(now)``, ``shutdown``).
- :mod:`.loop`: :func:`run_loop` (signals, the observer thread, the real-time
  wait).

Nothing here reads configuration or touches the disk at import time.
"""

from nowcast.daemon.loop import run_loop
from nowcast.daemon.service import Daemon, StepReport

__all__ = ["Daemon", "StepReport", "run_loop"]
