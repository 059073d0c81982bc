"""``nowcast run``: the operational daemon (what the systemd unit starts).

Watches ``paths.input_dir`` for scans, keeps the newest ``grid.input_frames`` in a
rolling buffer, forecasts ``grid.output_frames`` leads with the production model
(``paths.production_model``; the ``daemon.fallback`` forecaster when there is none
or it fails) into ``paths.output_dir`` for TITAN, verifies earlier forecasts and
the baselines as scans arrive (scores and events in ``paths.store``), and replaces
``paths.status_file`` each step. See :mod:`nowcast.daemon`.

- ``--once``: take every recent scan on disk now, forecast and verify once, exit:
  0 when no step failed, 1 otherwise.
- Logs go to stdout (journald); JSON unless on a terminal.
- One daemon per configuration: a second ``nowcast run`` with the same
  ``paths.state_dir`` exits 1 at once, naming the running one's pid
  (:mod:`nowcast.daemon.instance_lock`).
- Signals: SIGTERM/SIGINT finish the step in hand and exit 0; SIGHUP reloads the
  configuration and the model. Exit status 78 for a configuration error (the unit
  does not restart), 1 when the file watcher cannot be kept alive.
"""

from __future__ import annotations

import argparse

HELP = "run the daemon: watch for scans, forecast for TITAN, verify live"

LOGS_TO_STDOUT = True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--once", action="store_true",
        help="take the recent scans on disk, forecast and verify once, and exit",
    )


def run(args, settings) -> int:
    from nowcast.daemon import Daemon, run_loop
    from nowcast.daemon.instance_lock import hold_instance_lock

    lock = hold_instance_lock(settings.paths.state_dir)  # held until exit
    daemon = Daemon(settings)
    daemon.instance_lock = lock
    if not args.once:
        return run_loop(daemon)
    daemon.initialize()
    try:
        report = daemon.step(settle=True)
    finally:
        daemon.shutdown()
    return 1 if report.errors or report.write_failures else 0
