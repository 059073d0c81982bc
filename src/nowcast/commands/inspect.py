"""``nowcast inspect FILE...``: check scan files against the input contract.

Prints one line a file, ``OK`` with its time, grid and values, or ``REJECTED`` with
the reason; exits 0 when every file is accepted, 1 otherwise. ``--json`` prints one
JSON object a file instead.
"""

from __future__ import annotations

import argparse
import json

HELP = "check radar scan files against the input contract and say why any is rejected"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="NetCDF scan files")
    p.add_argument("--json", action="store_true", help="one JSON object a file")


def run(args, settings) -> int:
    import numpy as np

    from nowcast.errors import ScanError
    from nowcast.radar import read_scan

    radar = settings.radar
    expected = (radar.expected_levels, radar.expected_ny, radar.expected_nx)
    rejected = 0
    for name in args.files:
        try:
            scan = read_scan(
                name, radar.reflectivity_name or None, radar.dbz_floor, expected
            )
        except ScanError as exc:
            rejected += 1
            if args.json:
                print(json.dumps({"file": name, "ok": False, "reason": exc.reason}))
            else:
                print(f"REJECTED {name}: {exc.reason}")
            continue
        valid = np.isfinite(scan.dbz)
        info = {
            "file": name,
            "ok": True,
            "time": scan.time.isoformat(),
            "variable": scan.variable,
            "shape": list(scan.dbz.shape),
            "dx_m": round(scan.grid.dx_m, 1),
            "max_dbz": round(float(scan.dbz[valid].max()), 2),
            "coverage": round(float(valid.mean()), 4),
            "echo_fraction": round(float((scan.dbz > radar.dbz_floor).mean()), 4),
        }
        if args.json:
            print(json.dumps(info))
        else:
            z, y, x = info["shape"]
            print(
                f"OK {name}: {scan.time:%Y-%m-%d %H:%M:%S}Z {scan.variable} "
                f"{z}x{y}x{x} dx={info['dx_m']:.0f} m max={info['max_dbz']:.1f} dBZ "
                f"coverage={info['coverage']:.0%}"
            )
    total = len(args.files)
    if not args.json:
        print(f"{total - rejected} accepted, {rejected} rejected")
    return 1 if rejected else 0
