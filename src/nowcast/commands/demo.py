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
- It stops after ``--duration`` seconds, on Ctrl-C, SIGTERM or SIGHUP: the feed
  stops, the daemon gets SIGTERM and finishes its step; then a summary and the
  command that opens the monitor on the workspace. The daemon child also gets
  SIGTERM from the kernel when the demo dies any other way (Linux
  ``PR_SET_PDEATHSIG``), so no daemon outlives its demo. Exit status 0 when the
  daemon produced at least one verified forecast, 1 otherwise.
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
    from nowcast.model.checkpoint import load_checkpoint
    from nowcast.curriculum.model_history import import_history
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


class _Stop(Exception):
    """SIGTERM or SIGHUP reached the demo: stop as on Ctrl-C."""


def _stop_on_signals() -> dict:
    """SIGTERM and SIGHUP (a supervisor, ``timeout``, a closed terminal) end the
    demo as Ctrl-C does, so its daemon is always stopped; returns the old handlers."""

    def handler(signum, frame):
        raise _Stop(signal.Signals(signum).name)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}


def _die_with_parent() -> None:
    """In the daemon child (Linux): SIGTERM when the demo dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the demo's handlers still stop it
        pass
    if os.getppid() == 1:  # the demo died before prctl: do not outlive it
        os.kill(os.getpid(), signal.SIGTERM)


def _prepare(args, settings) -> tuple[Path, Path | None, Path, Path]:
    """The workspace: ``(workdir, model or None, config, store path)``."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nowcast-demo-"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    model = args.model or (REPO_MODELS / "demo3d.pt")
    model = model.resolve() if model.is_file() else None
    config = workdir / "config.toml"
    config.write_text(workspace_config(workdir, model, args))
    (workdir / "scans").mkdir(exist_ok=True)
    interval = settings.grid.interval_s
    print(f"nowcast demo: workspace {workdir}")
    print(f"  model: {model or 'none shipped: the fallback forecaster runs'}")
    print(f"  a {args.size} x {args.size} x {args.levels} scan every {args.every:g} s "
          f"(scan times {interval} s apart); the first forecast needs 8 scans")
    store_path = workdir / "state" / "nowcast.sqlite"
    if model is not None:
        _import_training(model, store_path)
    print(f"  watch it: nowcast-monitor --config {config}", flush=True)
    return workdir, model, config, store_path


def _start_daemon(config: Path, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nowcast.cli", "run", "--config", str(config),
         "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_die_with_parent,
    )


def _stop_daemon(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _simulator(args, settings):
    """Scan times run ``interval`` apart while wall time runs ``--every`` apart:
    start far enough back that the newest scan time is about now at the end."""
    from nowcast.synthetic import Simulator

    interval = settings.grid.interval_s
    n_scans = int((args.duration or 3600) / args.every) + 2
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(seconds=interval * n_scans)
    start -= timedelta(seconds=start.timestamp() % interval)
    return Simulator(
        "mixed", n_scans, seed=args.seed, size=args.size, levels=args.levels,
        start=start, dx_km=settings.synthetic.dx_km, interval_s=interval,
        params=settings.synthetic,
    )


class _Progress:
    """The forecasts the daemon has made so far, read from its store."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.reader = None
        self.seen: set = set()
        self.verified = 0

    def update(self) -> None:
        from nowcast.store import MetricsReader, StoreError

        if self.reader is None:
            try:
                self.reader = MetricsReader(self.store_path)
            except StoreError:
                return
        reader = self.reader
        for fc in reversed(reader.recent_forecasts(limit=5)):
            key = (fc["issue_time"], fc["method"])
            if key in self.seen or fc["method"] in ("persistence", "titan"):
                continue
            self.seen.add(key)
            print(f"{fc['issue_time']:%H:%M}Z forecast by {fc['method']}: "
                  f"{fc['n_leads']} leads in {fc['latency_s']:.1f} s | "
                  f"CSI35 so far {_csi_line(reader, fc['method'])}", flush=True)
        self.verified = sum(
            r["forecasts"]
            for _, method in self.seen
            for r in reader.skill(method=method, kind="composite", threshold=35.0)
        )

    def summary(self, n_scans: int) -> None:
        if self.reader is None:
            return
        methods = sorted({m for _, m in self.seen}) or ["extrapolation"]
        print(f"\nnowcast demo: {n_scans} scans, {len(self.seen)} forecasts, "
              f"{self.verified} leads verified")
        for method in methods + ["persistence", "titan"]:
            print(f"  {method:13s} CSI35 {_csi_line(self.reader, method)}")
        self.reader.close()


def run(args, settings) -> int:
    workdir, _, config, store_path = _prepare(args, settings)
    sim = _simulator(args, settings)
    stop = threading.Event()
    written: list[Path] = []
    feeder = threading.Thread(
        target=_feed, args=(sim, workdir / "scans", args.every, stop, written),
        daemon=True,
    )
    progress = _Progress(store_path)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    old_handlers = _stop_on_signals()
    log = open(workdir / "daemon.log", "ab")
    daemon = None
    try:
        daemon = _start_daemon(config, log)
        time.sleep(0.5)
        feeder.start()
        while deadline is None or time.monotonic() < deadline:
            if daemon.poll() is not None:
                print(f"nowcast demo: the daemon exited with status "
                      f"{daemon.returncode}; see {workdir / 'daemon.log'}")
                break
            time.sleep(1.0)
            progress.update()
    except (KeyboardInterrupt, _Stop) as exc:
        print(f"\nnowcast demo: stopping ({exc or 'Ctrl-C'})", flush=True)
    finally:
        for sig in old_handlers:  # a second signal must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        stop.set()
        if daemon is not None:
            _stop_daemon(daemon)
        log.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    progress.summary(len(written))
    print(f"\nforecasts: {workdir / 'titan' / 'nowcast'}")
    print(f"monitor:   nowcast-monitor --config {config}")
    return 0 if progress.verified else 1
