"""Benchmark: the daemon's latency from a scan's close to its last forecast file.

Run: ``python bench/daemon.py [--scans 57] [--size 500] [--levels 18]
[--method extrapolation | --checkpoint PATH | --untrained] [--rss-at 100,1000]
[--keep DIR]``

Starts the real daemon (``nowcast run``, as systemd would) on a temporary workspace,
then feeds it synthetic scans (a storm field moving 2 px a scan, ``--size`` x
``--size`` x ``--levels``, 5 min of scan time apart), one at a time: each is
written with :func:`nowcast.radar.write_scan` (a hidden temporary file renamed into
place: the "close"), and the next one goes in once the daemon has finished the step
that took it (``status.json``). For every scan that completes a sequence of
``grid.input_frames`` it measures the time from the rename to the last lead file
(``f_00002100.nc``) in place, and prints the median and the worst. The daemon runs
with the default configuration (verification of persistence and the TITAN-style
baseline included), so the numbers are what an operator gets.

``--method`` is the forecaster when there is no model (``daemon.fallback``);
``--checkpoint`` makes the daemon run that production model instead; ``--untrained``
the full-size network of the default ``[model]`` with random weights (latency does
not depend on them; :func:`bench.infer.save_untrained`). ``--rss-at``
samples the daemon's resident memory (``VmRSS``) after that many scans, to check that
it stays flat (e.g. ``--scans 1000 --rss-at 100,1000``). Targets: CPU under 40 s,
H200 under 1 s at 500 x 500 x 18 with the full-size model; memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from nowcast.radar import Grid, Origin, Scan, forecast_rel_path, write_scan

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
INTERVAL_S = 300
N_LEADS = 7


def storm_field(size: int, levels: int, k: int) -> np.ndarray:
    """Two cells moving 2 px a scan over light rain, with radar-like texture."""
    rng = np.random.default_rng(k)
    y, x = np.mgrid[0:size, 0:size] / size
    shift = 2.0 * k / size
    base = 50 * np.exp(-((x - 0.3 - shift) ** 2 + (y - 0.5) ** 2) / 0.004)
    base += 40 * np.exp(-((x - 0.6 - shift) ** 2 + (y - 0.3 - shift / 2) ** 2) / 0.01)
    base += 15 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.2)
    vol = np.stack([base * (1 - lev / (levels + 4)) for lev in range(levels)])
    echo = vol > 5.0
    vol = np.where(echo, vol + rng.normal(0, 1.5, vol.shape), 0.0)
    return vol.clip(0).astype(np.float32)


def make_grid(size: int, levels: int) -> Grid:
    return Grid(
        x_m=np.arange(size) * 1000.0 - size * 500.0,
        y_m=np.arange(size) * 1000.0 - size * 500.0,
        z_m=np.linspace(500.0, 17000.0, levels),
        mapping_name="grid_mapping",
        mapping_attrs={
            "grid_mapping_name": "azimuthal_equidistant",
            "latitude_of_projection_origin": 46.0,
            "longitude_of_projection_origin": 8.0,
        },
        origin=Origin(46.0, 8.0, 500.0),
    )


def write_config(root: Path, args) -> Path:
    model = args.checkpoint.resolve() if args.checkpoint else root / "no-model.pt"
    cfg = root / "config.toml"
    cfg.write_text(
        f"""[paths]
input_dir = "scans"
output_dir = "out"
state_dir = "state"
archive_dir = "archive"
rejected_dir = "rejected"
store = "state/nowcast.sqlite"
status_file = "state/status.json"
production_model = "{model}"

[radar]
expected_levels = {args.levels}
expected_ny = {args.size}
expected_nx = {args.size}

[daemon]
fallback = "{args.method}"
device = "{args.device}"
"""
    )
    (root / "scans").mkdir()
    return cfg


def read_status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for(predicate, timeout: float, proc: subprocess.Popen, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        if proc.poll() is not None:
            raise SystemExit(
                f"the daemon exited ({proc.returncode}) waiting for {what}"
            )
        time.sleep(0.005)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=57, help="scans to feed (default 57)")
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--levels", type=int, default=18)
    ap.add_argument("--method", default="extrapolation", help="daemon.fallback")
    ap.add_argument("--checkpoint", type=Path, help="run this production model")
    ap.add_argument("--untrained", action="store_true",
                    help="run the full-size default network, random weights")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--rss-at", default="", help="scan counts to sample memory at")
    ap.add_argument("--timeout", type=float, default=600.0, help="per scan (s)")
    ap.add_argument("--keep", type=Path, help="workspace to keep (default: temporary)")
    args = ap.parse_args()
    rss_at = {int(n) for n in args.rss_at.split(",") if n.strip()}

    root = args.keep or Path(tempfile.mkdtemp(prefix="nowcast-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.untrained:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from infer import save_untrained

        args.checkpoint = save_untrained(root / "full-size-untrained.pt", args.levels)
    cfg = write_config(root, args)
    status_file = root / "state" / "status.json"
    exe = Path(sys.executable).with_name("nowcast")
    log = open(root / "daemon.log", "w")
    proc = subprocess.Popen(
        [str(exe), "run", "--config", str(cfg), "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    latencies: list[float] = []
    memory: dict[int, float] = {}
    try:
        wait_for(lambda: read_status(status_file).get("state") == "running",
                 300, proc, "the daemon to start")
        model = read_status(status_file).get("model", {})
        grid = make_grid(args.size, args.levels)
        forecasts = 0
        for k in range(args.scans):
            t = T0 + timedelta(seconds=INTERVAL_S * k)
            scan = Scan(t, storm_field(args.size, args.levels, k), grid)
            write_scan(scan, root / "scans")
            closed = time.monotonic()
            if k + 1 >= 8:
                forecasts += 1
                last = root / "out" / forecast_rel_path(t, INTERVAL_S * N_LEADS,
                                                        "forecast")
                done = wait_for(last.exists, args.timeout, proc, f"forecast {k}")
                latencies.append(done - closed)
            n = forecasts
            wait_for(
                lambda: read_status(status_file).get("scans_taken", 0) >= k + 1
                and read_status(status_file).get("forecasts_written", 0) >= n,
                args.timeout, proc, f"the step of scan {k}",
            )
            if k + 1 in rss_at:
                memory[k + 1] = rss_mb(proc.pid)
            if latencies and (k + 1) % 10 == 0:
                print(f"  {k + 1} scans, last latency {latencies[-1]:.2f} s",
                      file=sys.stderr, flush=True)
        final = read_status(status_file)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"
        log.close()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    method = (final.get("last_forecast") or {}).get("method") or model.get("method")
    print(f"## nowcast daemon: scan close -> last forecast file ({platform.node()})")
    print()
    print(f"- grid {args.levels} x {args.size} x {args.size}, method {method}, "
          f"device {final.get('device')}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}")
    print(f"- {args.scans} scans fed, {len(latencies)} forecast sets, "
          f"daemon exit status {code}, {final.get('errors', {}).get('count')} errors")
    print()
    print("| forecasts | median (s) | worst (s) | best (s) |")
    print("| ---: | ---: | ---: | ---: |")
    if latencies:
        print(f"| {len(latencies)} | {statistics.median(latencies):.2f} | "
              f"{max(latencies):.2f} | {min(latencies):.2f} |")
    if memory:
        print()
        print("| scans | daemon RSS (MB) |")
        print("| ---: | ---: |")
        for n in sorted(memory):
            print(f"| {n} | {memory[n]:.0f} |")


if __name__ == "__main__":
    main()
