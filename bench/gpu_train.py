"""Helpers of ``bench/gpu_train.sh``, the GPU lane of issue 13 (train both models).

Subcommands:

``pack ARCHIVE --data DIR...``
    Build the archive cache of the real cases (``build_cache``, the config's
    pooling, floor and interval) in a temporary folder and write its manifest
    and frames, without flows, to ``ARCHIVE`` (a ``.tar.xz``). The 36 cases of
    ``radar-cases`` and ``radar-cases-more`` pack to about 7 MiB (89 MiB of
    ``uint8`` frames); their flows would be 236 MiB, so they are computed where
    the cache is unpacked. ``--max-mib`` refuses an archive too large to travel.
``unpack ARCHIVE DIR [--jobs N]``
    Extract it into ``DIR`` and compute the optical-flow prior of every window
    there (``N`` processes), so ``nowcast train --cache-only --cache DIR``
    starts with every flow cached and reads no NetCDF.
``warm SRC DST``
    A weights-only starting checkpoint of the exported model ``SRC``: its
    network, step and history, marked "phase 0, finished". ``nowcast train
    --curriculum --resume-from DST`` then starts phase 1 from those weights
    with a fresh optimiser (an exported model is a finished phase 3, which
    ``--resume-from`` refuses: nothing left to train), and the export carries
    the shipped model's history followed by this run.
``finish NAME LOG WORK EXPORT --wall S --rc N --out DIR [--store DB --warm CKPT]``
    After one model's training: when the export is missing (the run was
    stopped by its time limit), export the best checkpoint of the furthest
    phase that wrote one (``WORK/phase{N}_best.pt``, with the history of the
    warm start and of this run from the store); then put the model's row in
    ``DIR/train_summary.json`` (epochs, samples seen, wall time, best and
    starting validation CSI35, from the log's JSON lines and the checkpoint)
    and rewrite ``DIR/train_table.md``.
``table DIR``
    ``DIR/train_table.md`` from ``DIR/train_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

SUMMARY = "train_summary.json"
TABLE = "train_table.md"


def _settings(config: str | None):
    from nowcast.config import load_config

    return load_config(config)


def cmd_pack(args) -> int:
    from nowcast.curriculum.archive_cache import MANIFEST
    from nowcast.curriculum.archive_cache_build import build_cache

    settings = _settings(args.config)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-cache-") as tmp:
        cache_dir = Path(tmp) / "gpu-cache"
        cache = build_cache(
            args.data,
            cache_dir,
            pool_factor=settings.grid.pool_factor,
            dbz_floor=settings.radar.dbz_floor,
            variable=settings.radar.reflectivity_name or None,
            interval_s=settings.grid.interval_s,
            max_gap_factor=settings.daemon.max_gap_factor,
            pattern=settings.daemon.pattern,
        )
        if not cache.cases:
            print(f"no readable scan under {args.data}", file=sys.stderr)
            return 1
        args.archive.parent.mkdir(parents=True, exist_ok=True)
        part = args.archive.with_name(args.archive.name + ".part")
        with tarfile.open(part, "w:xz") as tar:
            tar.add(cache_dir / MANIFEST, arcname=MANIFEST)
            tar.add(cache_dir / "frames", arcname="frames")
        os.replace(part, args.archive)
    mib = args.archive.stat().st_size / 2**20
    frames = sum(c.n_frames for c in cache.cases.values())
    print(
        f"{args.archive}: {len(cache)} cases, {frames} frames, {mib:.1f} MiB, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    if mib > args.max_mib:
        print(
            f"{args.archive}: {mib:.1f} MiB is over --max-mib {args.max_mib:g} "
            "(what travels to the device is 64 MiB in all)",
            file=sys.stderr,
        )
        return 1
    return 0


def _flows(job: tuple[str, list[tuple[str, int]]]) -> int:
    """Compute the flows of ``(case, last frame)`` pairs in one process."""
    from nowcast.curriculum.archive_cache import ArchiveCache
    from nowcast.forecasters.flow import FLOW_FRAMES

    cache_dir, todo = job
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass
    cache = ArchiveCache.open(cache_dir)
    for key, last in todo:
        cache.flow(key, last, FLOW_FRAMES)
    return len(todo)


def cmd_unpack(args) -> int:
    from nowcast.curriculum.archive_cache import ArchiveCache
    from nowcast.curriculum.windows import find_windows
    from nowcast.forecasters.flow import FLOW_FRAMES

    settings = _settings(args.config)
    t0 = time.perf_counter()
    args.dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.archive, "r:*") as tar:
        tar.extractall(args.dir, filter="data")
    cache = ArchiveCache.open(args.dir)
    grid = settings.grid
    windows = find_windows(
        cache, n_input=grid.input_frames, n_output=grid.output_frames
    )
    todo = sorted(
        {
            (w.case, w.start + grid.input_frames - 1)
            for w in windows
            if not cache.has_flow(w.case, w.start + grid.input_frames - 1, FLOW_FRAMES)
        }
    )
    jobs = max(1, min(args.jobs, len(todo)))
    chunks = [(str(args.dir), todo[i::jobs]) for i in range(jobs)]
    if jobs == 1:
        done = sum(_flows(c) for c in chunks)
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(jobs) as pool:
            done = sum(pool.map(_flows, chunks))
    print(
        f"{args.dir}: {len(cache)} cases, {len(windows)} windows, {done} flows "
        f"computed ({jobs} processes), {time.perf_counter() - t0:.0f} s"
    )
    return 0


def cmd_warm(args) -> int:
    from nowcast.model.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(args.src)
    warm = {
        "model": state["model"],
        "init_kwargs": state["init_kwargs"],
        "optimizer": None,
        "scheduler": None,
        "phase": 0,
        "epoch": -1,
        "finished": True,
        "step": int(state.get("step", 0)),
        "history": state.get("history") or [],
        "data": state.get("data") or {},
        "warm_start_from": str(args.src),
    }
    args.dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.dst, warm)
    print(f"{args.dst}: the weights of {args.src}, to start phase 1 from")
    return 0


def _log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a ``nowcast train --log-format json`` log."""
    events: list[dict[str, Any]] = []
    if not path.is_file():
        return events
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _salvage(args) -> str | None:
    """Export the furthest phase's best checkpoint; the path it came from."""
    from nowcast.curriculum.model_history import export_history
    from nowcast.model.checkpoint import load_checkpoint, meta_of, save_checkpoint

    for number in (3, 2, 1):
        best = Path(args.work) / f"phase{number}_best.pt"
        if not best.is_file():
            continue
        state = load_checkpoint(best)
        slim = meta_of(state)
        slim.update(model=state["model"], optimizer=None, scheduler=None)
        slim["exported_from"] = str(best)
        slim["salvaged"] = "the run was stopped before its export"
        prior = []
        if args.warm and Path(args.warm).is_file():
            prior = load_checkpoint(args.warm).get("history") or []
        try:
            slim["history"] = export_history(prior, args.store, int(state["run_id"]))
        except (LookupError, OSError, ValueError, sqlite3.Error) as exc:
            print(f"{args.name}: history not exported: {exc}", file=sys.stderr)
            slim["history"] = list(prior)
        save_checkpoint(args.export, slim)
        return str(best)
    return None


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def cmd_finish(args) -> int:
    from nowcast.errors import ModelError
    from nowcast.model.checkpoint import load_checkpoint

    export = Path(args.export)
    salvaged = None
    if not export.is_file():
        salvaged = _salvage(args)
    events = _log_events(Path(args.log))
    start = next((e for e in events if e.get("event") == "training"), {})
    epochs = [e for e in events if e.get("event") == "epoch"]
    starts = [e for e in events if e.get("event") == "starting weights"]
    per_epoch = int(start.get("samples_per_epoch") or 0)
    first = starts[0] if starts else {}
    row: dict[str, Any] = {
        "model": args.name,
        "rc": args.rc,
        "wall_s": round(args.wall, 1),
        "device": start.get("device"),
        "epochs": len(epochs),
        "samples_per_epoch": per_epoch,
        "batches_per_epoch": start.get("batches_per_epoch"),
        "samples_seen": per_epoch * len(epochs),
        "start_csi35": _num(first.get("csi35")),
        "start_csi35_extrapolation": _num(first.get("csi35_extrapolation")),
        "epoch_rows": epochs,
        "export": str(export) if export.is_file() else None,
        "salvaged_from": salvaged,
    }
    if export.is_file():
        try:
            state = load_checkpoint(export)
        except ModelError as exc:
            row["export_error"] = str(exc)
        else:
            best = state.get("best") or {}
            row.update(
                best_phase=state.get("phase"),
                best_epoch=best.get("epoch"),
                best_is_start=bool(best.get("start")),
                best_csi35=_num(best.get("csi35_mean")),
                best_csi35_extrapolation=_num(best.get("csi35_extrapolation_mean")),
                holdout_csi35=_num((state.get("holdout") or {}).get("csi35_mean")),
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / SUMMARY
    rows = json.loads(path.read_text()) if path.is_file() else []
    rows = [r for r in rows if r.get("model") != args.name] + [row]
    path.write_text(json.dumps(rows, indent=1, default=str))
    _write_table(out)
    print(
        f"{args.name}: rc {args.rc}, {row['epochs']} epochs, "
        f"{row['samples_seen']} samples, {row['wall_s']} s, best CSI35 "
        f"{_fmt(row.get('best_csi35'))}"
        + (f" (salvaged from {salvaged})" if salvaged else "")
    )
    return 0


def _fmt(value: Any, digits: int = 4) -> str:
    v = _num(value)
    return "-" if v is None else f"{v:.{digits}f}"


def _epoch_s(row: dict[str, Any]) -> str:
    """Mean seconds an epoch (training and validation), from the epoch lines."""
    seconds = [_num(e.get("seconds")) for e in row.get("epoch_rows") or []]
    seconds = [s for s in seconds if s is not None]
    return f"{sum(seconds) / len(seconds):.1f}" if seconds else "-"


def _write_table(out: Path) -> str:
    path = out / SUMMARY
    rows = json.loads(path.read_text()) if path.is_file() else []
    lines = [
        (
            "| model | rc | epochs | samples seen | wall s | best val CSI35 "
            "| its extrapolation | start CSI35 | best (phase, epoch) "
            "| held-out CSI35 | s an epoch |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        where = "-"
        if r.get("best_phase") is not None:
            epoch = "start" if r.get("best_is_start") else r.get("best_epoch")
            where = f"{r['best_phase']}, {epoch}"
        if r.get("salvaged_from"):
            where += " (salvaged)"
        lines.append(
            f"| {r['model']} | {r['rc']} | {r['epochs']} | {r['samples_seen']} "
            f"| {r['wall_s']:.0f} | {_fmt(r.get('best_csi35'))} "
            f"| {_fmt(r.get('best_csi35_extrapolation'))} "
            f"| {_fmt(r.get('start_csi35'))} | {where} "
            f"| {_fmt(r.get('holdout_csi35'))} | {_epoch_s(r)} |"
        )
    if not rows:
        lines.append("| (no model trained) | | | | | | | | | | |")
    text = "\n".join(lines) + "\n"
    (out / TABLE).write_text(text)
    return text


def cmd_table(args) -> int:
    print(_write_table(Path(args.dir)), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("pack", help="the real cases' archive cache as a .tar.xz")
    c.add_argument("archive", type=Path)
    c.add_argument("--data", type=Path, nargs="+", required=True)
    c.add_argument("--config", help="config file (default: the built-in defaults)")
    c.add_argument("--max-mib", type=float, default=40.0)
    c.set_defaults(run=cmd_pack)
    u = sub.add_parser("unpack", help="extract the cache, compute its flows")
    u.add_argument("archive", type=Path)
    u.add_argument("dir", type=Path)
    u.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    u.add_argument("--config", help="config file (default: the built-in defaults)")
    u.set_defaults(run=cmd_unpack)
    w = sub.add_parser("warm", help="a phase-0 starting checkpoint of a model")
    w.add_argument("src", type=Path)
    w.add_argument("dst", type=Path)
    w.set_defaults(run=cmd_warm)
    f = sub.add_parser("finish", help="salvage the export, record the model's row")
    f.add_argument("name")
    f.add_argument("log", type=Path)
    f.add_argument("work", type=Path)
    f.add_argument("export", type=Path)
    f.add_argument("--wall", type=float, required=True)
    f.add_argument("--rc", type=int, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--store", type=Path, help="the run's metrics store (history)")
    f.add_argument("--warm", type=Path, help="the warm start (its history)")
    f.set_defaults(run=cmd_finish)
    t = sub.add_parser("table", help="train_table.md from train_summary.json")
    t.add_argument("dir", type=Path)
    t.set_defaults(run=cmd_table)
    args = p.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
