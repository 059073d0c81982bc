"""``nowcast health``: one line and a Nagios/Icinga exit status from ``status.json``.

0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (see :mod:`nowcast.daemon.health`).
Thresholds default to the scan interval: the newest scan and the last forecast
warn after 2 intervals and are critical after 4.
"""

from __future__ import annotations

import argparse

HELP = "check the daemon as a Nagios/Icinga plugin (exit 0 OK, 1 WARN, 2 CRIT, 3 UNKN)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", metavar="FILE",
                   help="status file (default: [paths] status_file)")
    for name, what in (("scan", "newest scan age"), ("forecast", "last forecast age")):
        p.add_argument(f"--{name}-warn", type=float, metavar="S",
                       help=f"{what} for WARNING (default: 2 scan intervals)")
        p.add_argument(f"--{name}-crit", type=float, metavar="S",
                       help=f"{what} for CRITICAL (default: 4 scan intervals)")
    p.add_argument("--latency-warn", type=float, default=60.0, metavar="S",
                   help="forecast latency for WARNING (default: 60)")
    p.add_argument("--latency-crit", type=float, default=120.0, metavar="S",
                   help="forecast latency for CRITICAL (default: 120)")
    p.add_argument("--stale", type=float, default=30.0, metavar="S",
                   help="status not rewritten for this long is CRITICAL (default: 30)")
    p.add_argument("--error-window", type=float, default=3600.0, metavar="S",
                   help="errors logged this recently are a WARNING (default: 3600)")
    p.add_argument("--age-from", choices=("time", "taken"), default="time",
                   help="scan age from its time, or from when the daemon took it "
                        "(for a replay of old scans); default: time")


def run(args, settings) -> int:
    import json
    from pathlib import Path

    from nowcast.daemon.health import UNKNOWN, Thresholds, check_health
    from nowcast.times import utc_now

    interval = float(settings.grid.interval_s)
    t = Thresholds(
        scan_warn_s=args.scan_warn if args.scan_warn is not None else 2 * interval,
        scan_crit_s=args.scan_crit if args.scan_crit is not None else 4 * interval,
        forecast_warn_s=(args.forecast_warn if args.forecast_warn is not None
                         else 2 * interval),
        forecast_crit_s=(args.forecast_crit if args.forecast_crit is not None
                         else 4 * interval),
        latency_warn_s=args.latency_warn, latency_crit_s=args.latency_crit,
        stale_s=args.stale, error_window_s=args.error_window, age_from=args.age_from,
    )
    path = Path(args.status) if args.status else Path(settings.paths.status_file)
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        status = None
    except (OSError, ValueError) as exc:
        print(f"NOWCAST UNKNOWN - cannot read {path}: {exc}")
        return UNKNOWN
    health = check_health(status, utc_now(), t)
    print(health.line)
    return health.code
