"""``nowcast demo``: the embedded default: a simulated radar feeding the real daemon.

Contract
--------
- A workspace (``--workdir DIR``, else a fresh temporary folder, kept and named at
  the end) gets its own ``DIR/config.toml`` (scans, TITAN output, store, status and
  archive inside it; the shipped ``models/demo3d.pt`` as the production model when
  it is there, else the daemon's fallback forecaster runs and says so).
- The real daemon starts as a child process, ``nowcast run --config
  DIR/config.toml`` (its JSON log in ``DIR/daemon.log``).
- The simulator writes a ``mixed`` storm scan every ``--every`` seconds of wall
  time while scan times advance by ``[grid] interval_s`` (an accelerated clock),
  through a temporary file and a rename, as a radar's gridder would.
- The terminal gets one line a forecast (issue time, method, latency, files) and
  the CSI at 35 dBZ per lead verified so far, from the daemon's SQLite store.
- It stops after ``--duration`` seconds or on Ctrl-C: the feed stops, the daemon
  gets SIGTERM and finishes its step; then a summary and the command that opens
  the monitor on the workspace. Exit status 0 when the daemon produced at least
  one verified forecast, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HELP = "run the demo: a simulated radar feeding the real daemon, forecasts scored live"

REPO_MODELS = Path(__file__).resolve().parents[3] / "models"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C)")
    p.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                   help="workspace folder (default: a new temporary folder)")
    p.add_argument("--every", type=float, default=6.0, metavar="S",
                   help="wall-clock seconds between simulated scans (default: 6)")
    p.add_argument("--size", type=int, default=500, help="grid points each way")
    p.add_argument("--levels", type=int, default=18, help="levels")
    p.add_argument("--seed", type=int, default=7, help="storm seed")
    p.add_argument("--model", type=Path, default=None, metavar="CKPT",
                   help="production model (default: models/demo3d.pt if shipped)")


def workspace_config(workdir: Path, model: Path | None, args) -> str:
    """The workspace's config.toml (paths relative to it)."""
    model_line = (
        f'production_model = "{model}"' if model else
        'production_model = "models/none.pt"  # no model: the fallback runs'
    )
    return f"""# nowcast demo workspace: written by `nowcast demo`
[paths]
input_dir = "scans"
output_dir = "titan/nowcast"
state_dir = "state"
archive_dir = "archive"
rejected_dir = "rejected"
checkpoints_dir = "checkpoints"
store = "state/nowcast.sqlite"
status_file = "state/status.json"
{model_line}

[radar]
expected_levels = {args.levels}
expected_ny = {args.size}
expected_nx = {args.size}

[daemon]
quiet_s = 1.0
poll_interval_s = 0.5
reconcile_interval_s = 30.0
archive = "off"

[synthetic]
size = {args.size}
levels = {args.levels}

[retrain]
enabled = false
"""


def _feed(sim, scans_dir: Path, every: float, stop: threading.Event, written: list):
    from nowcast.radar import write_scan

    k = 0
    start = time.monotonic()
    while not stop.is_set() and k < sim.n_scans:
        scan = sim.scan(k)
        written.append(write_scan(scan, scans_dir))
        k += 1
        stop.wait(max(0.0, start + k * every - time.monotonic()))


def _csi_line(reader, method: str) -> str:
    rows = reader.skill(method=method, kind="composite", threshold=35.0)
    cells = [
        f"t+{r['lead_s'] // 60}={r['csi']:.2f}"
        for r in sorted(rows, key=lambda r: r["lead_s"])
        if r["forecasts"]
    ]
    return " ".join(cells) if cells else "(waiting for the scans that verify)"


def _import_training(model: Path, store_path: Path) -> None:
    """The shipped model's training runs into the workspace's store (the
    monitor's training panel), once; a model without history is left as it is."""
    from nowcast.curriculum.checkpoint import load_checkpoint
    from nowcast.curriculum.history import import_history
    from nowcast.errors import NowcastError
    from nowcast.store import MetricsStore

    try:
        history = load_checkpoint(model).get("history") or []
    except NowcastError as exc:
        print(f"  (the model's training history is not readable: {exc})")
        return
    with MetricsStore(store_path) as store:
        added = import_history(store, history)
    if added:
        epochs = sum(len({e["epoch"] for e in run.get("epochs", ())})
                     for run in history)
        print(f"  its training: {len(history)} run(s), {epochs} epochs, in the store")


def run(args, settings) -> int:
    from nowcast.store import MetricsReader, StoreError
    from nowcast.synthetic import Simulator

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nowcast-demo-"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    model = args.model or (REPO_MODELS / "demo3d.pt")
    model = model.resolve() if model.is_file() else None
    config = workdir / "config.toml"
    config.write_text(workspace_config(workdir, model, args))
    scans_dir = workdir / "scans"
    scans_dir.mkdir(exist_ok=True)
    interval = settings.grid.interval_s
    print(f"nowcast demo: workspace {workdir}")
    print(f"  model: {model or 'none shipped: the fallback forecaster runs'}")
    print(f"  a {args.size} x {args.size} x {args.levels} scan every {args.every:g} s "
          f"(scan times {interval} s apart); the first forecast needs 8 scans")
    store_path = workdir / "state" / "nowcast.sqlite"
    if model is not None:
        _import_training(model, store_path)
    print(f"  watch it: nowcast-monitor --config {config}", flush=True)

    log = open(workdir / "daemon.log", "ab")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "nowcast.cli", "run", "--config", str(config),
         "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # Scan times run `interval` apart while wall time runs `every` apart: start
    # far enough back that the newest scan time is about now at the end.
    n_scans = int((args.duration or 3600) / args.every) + 2
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(seconds=interval * n_scans)
    start -= timedelta(seconds=start.timestamp() % interval)
    sim = Simulator(
        "mixed", n_scans, seed=args.seed, size=args.size, levels=args.levels,
        start=start,
        dx_km=settings.synthetic.dx_km, interval_s=interval,
        params=settings.synthetic,
    )
    stop = threading.Event()
    written: list[Path] = []
    feeder = threading.Thread(
        target=_feed, args=(sim, scans_dir, args.every, stop, written), daemon=True
    )
    deadline = None if args.duration is None else time.monotonic() + args.duration
    seen: set = set()
    verified = 0
    reader = None
    try:
        time.sleep(0.5)
        feeder.start()
        while deadline is None or time.monotonic() < deadline:
            if daemon.poll() is not None:
                print(f"nowcast demo: the daemon exited with status "
                      f"{daemon.returncode}; see {workdir / 'daemon.log'}")
                break
            time.sleep(1.0)
            if reader is None:
                try:
                    reader = MetricsReader(store_path)
                except StoreError:
                    continue
            for fc in reversed(reader.recent_forecasts(limit=5)):
                key = (fc["issue_time"], fc["method"])
                if key in seen or fc["method"] in ("persistence", "titan"):
                    continue
                seen.add(key)
                csi = _csi_line(reader, fc["method"])
                print(f"{fc['issue_time']:%H:%M}Z forecast by {fc['method']}: "
                      f"{fc['n_leads']} leads in {fc['latency_s']:.1f} s | "
                      f"CSI35 so far {csi}", flush=True)
            verified = sum(
                r["forecasts"]
                for _, method in seen
                for r in reader.skill(method=method, kind="composite", threshold=35.0)
            )
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=120)
            except subprocess.TimeoutExpired:
                daemon.kill()
        log.close()
    if reader is not None:
        methods = sorted({m for _, m in seen}) or ["extrapolation"]
        print(f"\nnowcast demo: {len(written)} scans, {len(seen)} forecasts, "
              f"{verified} leads verified")
        for method in methods + ["persistence", "titan"]:
            print(f"  {method:13s} CSI35 {_csi_line(reader, method)}")
        reader.close()
    print(f"\nforecasts: {workdir / 'titan' / 'nowcast'}")
    print(f"monitor:   nowcast-monitor --config {config}")
    return 0 if verified else 1
