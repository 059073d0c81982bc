"""Setting a refused scan file aside, with its reason.

Contract
--------
- Reading and pooling a scan is :func:`nowcast.radar.pooled.read_pooled`'s job;
  this module deals with what it refuses.
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
from datetime import datetime
from pathlib import Path


from nowcast.fsutil import write_text_atomic
from nowcast.times import iso_z


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
    stamp = iso_z(now)
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
