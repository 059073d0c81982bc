"""``nowcast simulate --out DIR``: write simulated radar scans in the input contract.

Writes ``--scans`` volumes of the chosen regime as
``DIR/yyyymmdd/ncf_yyyymmdd_hhmmss.nc`` (each to a temporary file, then renamed),
``--interval-s`` apart in scan time. With ``--realtime`` each scan is written when
it is due, ``interval / --speedup`` seconds after the previous one (the demo's radar
feed: ``--speedup 100`` shows 5-minute scans every 3 s; their timestamps stay 5
minutes apart). The first scan's time is ``--start``, else now rounded down to the
interval with ``--realtime``, else 2024-06-01 12:00 UTC. Sizes and levels default
to ``[synthetic]`` in the configuration, the interval to ``[grid] interval_s``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

HELP = "write simulated 3D radar scans (advection, multicell, supercell or mixed)"
#: ``nowcast.synthetic.REGIMES`` and "mixed", spelled out to keep ``--help`` fast
REGIME_CHOICES = ("advection", "multicell", "supercell", "mixed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="scan directory")
    p.add_argument(
        "--regime", choices=REGIME_CHOICES, default="mixed",
        help="storm regime; mixed superposes all three (default: mixed)",
    )
    p.add_argument("--scans", type=int, default=12, metavar="N",
                   help="number of scans (default: 12)")
    p.add_argument("--interval-s", type=float, default=None, metavar="S",
                   help="seconds between scan times (default: [grid] interval_s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--levels", type=int, default=None,
                   help="levels (default: [synthetic] levels)")
    p.add_argument("--size", type=int, default=None,
                   help="grid points each way (default: [synthetic] size)")
    p.add_argument("--dx-km", type=float, default=None,
                   help="grid spacing in km (default: [synthetic] dx_km)")
    p.add_argument("--start", default=None, metavar="TIME",
                   help="ISO time of the first scan, UTC unless it says otherwise")
    p.add_argument("--realtime", action="store_true",
                   help="write each scan when it is due instead of all at once")
    p.add_argument("--speedup", type=float, default=1.0, metavar="F",
                   help="with --realtime, run the clock F times faster (default: 1)")


def start_time(text: str | None, realtime: bool, interval_s: float, now: datetime):
    """The first scan's time: ``text``, or ``now`` floored to the interval, or None."""
    if text:
        from nowcast.times import parse_time

        return parse_time(text, "--start", naive="utc")
    if realtime:
        stamp = now.timestamp()
        return datetime.fromtimestamp(stamp - stamp % interval_s, tz=timezone.utc)
    return None


def feed(
    sim,
    out: Path,
    *,
    realtime: bool = False,
    speedup: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_write: Callable | None = None,
    global_attrs: dict | None = None,
    complevel: int = 1,
) -> list[Path]:
    """Render and write every scan of ``sim``; paced by ``clock`` when ``realtime``.

    Scan ``k`` is written no earlier than ``k * interval / speedup`` seconds after
    the first. Returns the paths written.
    """
    from nowcast.radar import write_scan

    began = clock()
    written = []
    for k in range(sim.n_scans):
        scan = sim.scan(k)
        if realtime:
            wait = began + k * sim.interval_s / speedup - clock()
            if wait > 0:
                sleep(wait)
        path = write_scan(scan, out, complevel=complevel, global_attrs=global_attrs)
        written.append(path)
        if on_write is not None:
            on_write(k, scan, path)
    return written


def run(args, settings) -> int:
    import structlog

    from nowcast.errors import NowcastError
    from nowcast.synthetic import Simulator

    log = structlog.get_logger("nowcast.simulate")
    cfg = settings.synthetic
    interval = args.interval_s
    if interval is None:
        interval = settings.grid.interval_s
    try:
        if args.speedup <= 0:
            raise ValueError(f"--speedup must be positive, got {args.speedup}")
        now = datetime.now(timezone.utc)
        start = start_time(args.start, args.realtime, interval, now)
        sim = Simulator(
            args.regime,
            args.scans,
            seed=args.seed,
            size=args.size if args.size is not None else cfg.size,
            levels=args.levels if args.levels is not None else cfg.levels,
            dx_km=args.dx_km if args.dx_km is not None else cfg.dx_km,
            interval_s=interval,
            start=start,
            params=cfg,
        )
    except ValueError as exc:
        raise NowcastError(f"simulate: {exc}") from None
    out = Path(args.out)
    log.info(
        "simulating", regime=args.regime, scans=sim.n_scans, seed=args.seed,
        shape=list(sim.shape), start=sim.start.isoformat(), out=str(out),
        realtime=args.realtime, **{k: v for k, v in sim.meta.items() if k != "regime"},
    )

    def on_write(k, scan, path) -> None:
        log.info("scan written", index=k, time=scan.time.isoformat(), path=str(path))

    attrs = {
        "nowcast_simulator_regime": args.regime,
        "nowcast_simulator_seed": args.seed,
    }
    try:
        feed(
            sim, out, realtime=args.realtime, speedup=args.speedup, on_write=on_write,
            global_attrs=attrs, complevel=settings.output.complevel,
        )
    except OSError as exc:
        reason = exc.strerror or exc
        raise NowcastError(f"{out}: cannot write scans: {reason}") from None
    print(f"wrote {sim.n_scans} {args.regime} scans to {out} (seed {args.seed})")
    return 0
