"""Taking one scan file: read it against the input contract, or move it aside.

Contract
--------
- :func:`read_pooled` reads a file with :func:`nowcast.radar.read_scan` (the
  ``[radar]`` settings: variable, floor, expected grid) and pools it to the model
  grid; any reason to refuse it (corrupt, truncated, empty, not NetCDF, wrong
  grid, a grid the pool factor does not divide) is a
  :class:`~nowcast.errors.ScanError`.
- :func:`reject` moves a refused file from the input directory to
  ``paths.rejected_dir`` (keeping its path below the input directory; a name
  already taken gets ``.1``, ``.2`` ...) and writes ``NAME.reason`` beside it: the
  reason, the original path and the time. When the move fails (a read-only input
  directory) the file stays where it is and the caller must remember not to take
  it again; the reason is still written. Returns where the file went (or None).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import ScanError
from nowcast.fsutil import write_text_atomic
from nowcast.radar import Scan, pool, read_scan


def read_pooled(path: Path, settings: Any) -> tuple[Scan, np.ndarray]:
    """The scan and its pooled ``(z, y, x)`` float32 frame (see the contract)."""
    radar = settings.radar
    scan = read_scan(
        path,
        radar.reflectivity_name or None,
        radar.dbz_floor,
        (radar.expected_levels, radar.expected_ny, radar.expected_nx),
    )
    try:
        frame = pool(scan.dbz, settings.grid.pool_factor)
    except ValueError as exc:
        raise ScanError(path, str(exc)) from None
    return scan, np.asarray(frame, dtype=np.float32)


def _free_name(target: Path) -> Path:
    if not target.exists() and not Path(f"{target}.reason").exists():
        return target
    for k in range(1, 10000):
        candidate = target.with_name(f"{target.name}.{k}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"{target}: too many rejected files of this name")


def reject(
    path: Path,
    reason: str,
    input_dir: Path,
    rejected_dir: Path,
    now: datetime,
) -> tuple[Path | None, str | None]:
    """Move ``path`` aside with a ``.reason`` file; ``(new path, error)``."""
    try:
        rel = path.relative_to(input_dir)
    except ValueError:
        rel = Path(path.name)
    error = None
    moved: Path | None = None
    try:
        target = _free_name(rejected_dir / rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(os.fspath(path), os.fspath(target))
        moved = target
    except OSError as exc:
        error = f"cannot move it to {rejected_dir}: {exc.strerror or exc}"
        target = _free_name(rejected_dir / rel)
    stamp = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"{reason}\nfile: {path}\nrejected: {stamp}\n"
    if error:
        text += f"left in place: {error}\n"
    try:
        write_text_atomic(f"{target}.reason", text)
    except OSError as exc:
        error = (error + "; " if error else "") + (
            f"cannot write {target}.reason: {exc.strerror or exc}"
        )
    return moved, error
