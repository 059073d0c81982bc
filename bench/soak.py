"""Load and soak: the real daemon under a flood of scans, then a long run.

Run: ``python bench/soak.py [--burst 2000] [--steady 2000] [--rate 10]
[--soak 1000] [--size 32] [--levels 3] [--keep DIR]``

Both parts start the real daemon (``nowcast run``) on a temporary workspace and
feed it synthetic scans (:func:`bench.daemon.storm_field`, 5 min of scan time
apart) written as a gridder does (a hidden temporary, then a rename).

1. **Load**: ``--burst`` scans renamed in as fast as they can be written, then
   ``--steady`` more at ``--rate`` a second, with the ``extrapolation`` fallback.
   It checks that every scan is taken exactly once (the daemon's ``scan`` log
   events, one a scan time), the queue (``status.json`` ``queue_length``, sampled
   every 0.2 s) stays bounded, and the newest scan is forecast at the end; it
   reports the largest queue, the time to take the burst, and how far behind the
   steady feed the daemon ran.
2. **Soak**: ``--soak`` scans one at a time (the next once the daemon took the
   last) with a production model (the default ``[model]`` network, untrained:
   :func:`bench.infer.save_untrained`), sampling the daemon's RSS, open file
   descriptors, descriptors to deleted files and threads every 100 scans.

Prints markdown tables (with the machine) for BENCHMARKS.md; exits 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon import make_grid, read_status, rss_mb, storm_field, wait_for  # noqa: E402
from daemon import write_config as daemon_config  # noqa: E402

from nowcast.radar import Scan, forecast_rel_path, write_scan  # noqa: E402

T0 = datetime(2024, 6, 1, 0, 0, tzinfo=timezone.utc)
INTERVAL_S = 300


def start(root: Path, *, levels: int, size: int, checkpoint: Path | None):
    args = SimpleNamespace(
        checkpoint=checkpoint, levels=levels, size=size, method="extrapolation",
        device="cpu",
    )
    cfg = daemon_config(root, args)
    with open(cfg, "a") as fh:
        fh.write("quiet_s = 0.2\nreject_after_s = 5.0\n[retrain]\nenabled = false\n")
    log = open(root / "daemon.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nowcast.cli", "run", "--config", str(cfg),
         "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    status = root / "state" / "status.json"
    wait_for(lambda: read_status(status).get("state") == "running", 300, proc,
             "the daemon to start")
    return proc, log, status


def stop(proc, log) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -9
    log.close()
    return code


def scan_at(k: int, size: int, levels: int) -> Scan:
    grid = make_grid(size, levels)
    return Scan(T0 + timedelta(seconds=INTERVAL_S * k), storm_field(size, levels, k),
                grid)


def feed(root: Path, scan: Scan) -> Path:
    return write_scan(scan, root / "scans")  # a hidden temporary, then a rename


def taken_times(log_path: Path) -> list[str]:
    out = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("kind") == "scan" and "scan_time" in event:
            out.append(event["scan_time"])
    return out


def open_files(pid: int) -> tuple[int, int]:
    """(descriptors, descriptors to deleted files) of ``pid``."""
    total = deleted = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        total += 1
        try:
            if os.readlink(fd).endswith("(deleted)"):
                deleted += 1
        except OSError:
            pass
    return total, deleted


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def load(args, root: Path) -> tuple[list[str], bool]:
    proc, log, status = start(root, levels=args.levels, size=args.size,
                              checkpoint=None)
    queue: list[int] = []
    stop_sampling = threading.Event()

    def sample():
        while not stop_sampling.is_set():
            queue.append(int(read_status(status).get("queue_length") or 0))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    n = args.burst + args.steady
    scans = [scan_at(k, args.size, args.levels) for k in range(n)]
    t0 = time.monotonic()
    for scan in scans[: args.burst]:
        feed(root, scan)
    burst_written = time.monotonic() - t0
    newest_burst = root / "out" / forecast_rel_path(
        scans[args.burst - 1].time, INTERVAL_S * 7, "forecast")
    wait_for(newest_burst.exists, 600, proc, "the burst's newest forecast")
    burst_done = time.monotonic() - t0
    lags = []
    t1 = time.monotonic()
    for i, scan in enumerate(scans[args.burst :]):
        due = t1 + i / args.rate
        time.sleep(max(0.0, due - time.monotonic()))
        feed(root, scan)
        if i % 100 == 99:
            taken = read_status(status).get("scans_taken", 0)
            lags.append(args.burst + i + 1 - taken)
    newest = root / "out" / forecast_rel_path(scans[-1].time, INTERVAL_S * 7,
                                              "forecast")
    wait_for(newest.exists, 600, proc, "the newest forecast")
    steady_done = time.monotonic() - t1
    stop_sampling.set()
    code = stop(proc, log)
    final = read_status(status)  # written at shutdown: every step counted
    times = taken_times(root / "daemon.log")  # the scans added to the buffer
    once = (
        final.get("scans_taken") == n and final.get("duplicates") == 0
        and len(times) == len(set(times))
    )
    ok = once and code == 0 and max(queue, default=0) <= n
    rows = [
        f"## Load: {args.burst} scans at once, then {args.steady} at {args.rate:g}/s "
        f"({platform.node()}, {os.cpu_count()} CPUs, {args.levels} x {args.size} x "
        f"{args.size}, extrapolation)",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| burst written in | {burst_written:.1f} s |",
        f"| burst's newest scan forecast after | {burst_done:.1f} s |",
        f"| steady feed: newest forecast after | {steady_done:.1f} s "
        f"(feed {args.steady / args.rate:.0f} s) |",
        f"| scans taken / fed | {final.get('scans_taken')} / {n} |",
        f"| each scan time taken exactly once | {'yes' if once else 'NO'} |",
        f"| largest queue (status.json, every 0.2 s) | {max(queue, default=0)} |",
        f"| most scans behind during the steady feed | {max(lags, default=0)} |",
        f"| rejected | {final.get('scans_rejected')} |",
        f"| exit status | {code} |",
        "",
    ]
    return rows, ok


def soak(args, root: Path) -> tuple[list[str], bool]:
    from infer import save_untrained

    checkpoint = save_untrained(root / "untrained.pt", args.levels)
    proc, log, status = start(root, levels=args.levels, size=args.size,
                              checkpoint=checkpoint)
    samples = []
    t0 = time.monotonic()
    forecasts = 0
    for k in range(args.soak):
        feed(root, scan_at(k, args.size, args.levels))
        forecasts += k + 1 >= 8
        need = forecasts
        wait_for(
            lambda: read_status(status).get("scans_taken", 0) >= k + 1
            and read_status(status).get("forecasts_written", 0) >= need,
            300, proc, f"the step of scan {k}",
        )
        if (k + 1) % 100 == 0:
            fds, deleted = open_files(proc.pid)
            samples.append((k + 1, rss_mb(proc.pid), fds, deleted, threads(proc.pid)))
            print(f"  soak {k + 1}: {samples[-1]}", file=sys.stderr, flush=True)
    seconds = time.monotonic() - t0
    code = stop(proc, log)
    final = read_status(status)
    method = (final.get("last_forecast") or {}).get("method")
    rows = [
        f"## Soak: {args.soak} scans with the production model ({method}, "
        f"untrained default network; {platform.node()}, {os.cpu_count()} CPUs, "
        f"{args.levels} x {args.size} x {args.size}, {seconds:.0f} s)",
        "",
        "| scans | RSS (MB) | open fds | fds to deleted files | threads |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {n} | {rss:.0f} | {fds} | {dele} | {thr} |"
          for n, rss, fds, dele, thr in samples),
        "",
    ]
    growth = samples[-1][1] - samples[1][1] if len(samples) > 1 else 0.0
    fd_growth = samples[-1][2] - samples[0][2] if samples else 0
    ok = (
        code == 0 and all(s[3] == 0 for s in samples) and fd_growth <= 2
        and growth < 50 and method == "model"
    )
    rows.append(
        f"RSS from scan 200 to {args.soak}: {growth:+.0f} MB; fds "
        f"{fd_growth:+d}; exit {code}; {'flat' if ok else 'NOT FLAT'}."
    )
    return rows, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burst", type=int, default=2000)
    ap.add_argument("--steady", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--soak", type=int, default=1000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-soak", action="store_true")
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="nowcast-soak-"))
    ok = True
    out: list[str] = []
    try:
        if not args.skip_load:
            (base / "load").mkdir(parents=True, exist_ok=True)
            rows, good = load(args, base / "load")
            out += rows
            ok &= good
        if not args.skip_soak and args.soak:
            (base / "soak").mkdir(parents=True, exist_ok=True)
            rows, good = soak(args, base / "soak")
            out += rows
            ok &= good
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print("\n".join(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
