"""Building the archive cache: discover cases, read new scans, reuse the rest.

The contract is :mod:`nowcast.curriculum.archive`'s (cases, runs, encoding,
incremental rebuilds); this module does the work behind
:meth:`~nowcast.curriculum.archive.ArchiveCache.build`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from nowcast.curriculum.archive import (
    CACHE_VERSION,
    MANIFEST,
    ArchiveCase,
    BuildStats,
    _load_manifest,
    _remove_case_files,
    _safe,
    encode_dbz,
)
from nowcast.errors import NowcastError, ScanError
from nowcast.fsutil import atomic_path, write_text_atomic
from nowcast.radar import pool, read_scan

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Pool on one thread: small frames run slower with threads that compete."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_runs(
    times: Sequence[datetime], interval_s: float, max_gap_factor: float = 1.5
) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of sorted ``times`` whose steps are all on time."""
    if not times:
        return []
    lo, hi = interval_s / max_gap_factor, interval_s * max_gap_factor
    runs, start = [], 0
    for i in range(1, len(times)):
        step = (times[i] - times[i - 1]).total_seconds()
        if not lo <= step <= hi:
            runs.append((start, i))
            start = i
    runs.append((start, len(times)))
    return runs


def _discover(
    data_dirs: Iterable[str | Path], pattern: str
) -> dict[str, tuple[Path, list[Path]]]:
    """Case key -> (data dir, files), see the module doc."""
    cases: dict[str, tuple[Path, list[Path]]] = {}
    names: Counter[str] = Counter()
    for raw in data_dirs:
        root = Path(raw).expanduser().resolve()
        if not root.is_dir():
            raise NowcastError(
                f"{root}: archive folder not found (curriculum.data_dirs / --data)"
            )
        names[root.name] += 1
        seen = names[root.name]
        prefix = root.name if seen == 1 else f"{root.name}~{seen}"
        for path in _walk(root, pattern):
            rel = path.relative_to(root)
            key = prefix if len(rel.parts) == 1 else f"{prefix}/{rel.parts[0]}"
            cases.setdefault(key, (root, []))[1].append(path)
    return cases


def _walk(root: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` under ``root``, following symlinked folders."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(folder) / f
            for f in files
            if fnmatch.fnmatch(f, pattern) and not f.startswith(".")
        )
    return sorted(found)


def build_manifest(
    data_dirs: Iterable[str | Path],
    cache_dir: Path,
    *,
    pool_factor: int,
    dbz_floor: float,
    variable: str | None,
    interval_s: float,
    max_gap_factor: float,
    pattern: str,
) -> tuple[dict[str, Any], BuildStats]:
    """Bring ``cache_dir`` up to date with ``data_dirs``; return its manifest."""
    cache_dir = Path(cache_dir)
    (cache_dir / "frames").mkdir(parents=True, exist_ok=True)
    params = {
        "version": CACHE_VERSION,
        "pool_factor": int(pool_factor),
        "dbz_floor": float(dbz_floor),
        "variable": variable or None,
    }
    old = _load_manifest(cache_dir)
    if old is not None and any(old.get(k) != v for k, v in params.items()):
        log.info("archive cache parameters changed: rebuilding", cache=str(cache_dir))
        old = None
    old_cases = (old or {}).get("cases", {})
    old_rejected = (old or {}).get("rejected", {})
    stats = BuildStats()
    manifest: dict[str, Any] = {
        **params,
        "interval_s": float(interval_s),
        "max_gap_factor": float(max_gap_factor),
        "encoding": (
            "uint8 code = clip(round((dbz - dbz_floor) * 2), 0, 254) + 1; "
            "0 = no coverage (NaN)"
        ),
        "cases": {},
        "rejected": {},
    }
    discovered = _discover(data_dirs, pattern)
    builder = _CaseBuilder(cache_dir, params, old_rejected, stats)
    with _torch_threads(1):
        for key, (root, files) in discovered.items():
            prev = old_cases.get(key)
            entry = builder.build(key, root, files, prev, interval_s, max_gap_factor)
            if entry is not None:
                manifest["cases"][key] = entry
    manifest["rejected"] = builder.rejected
    for key, prev in old_cases.items():
        if key not in manifest["cases"]:
            _remove_case_files(cache_dir, key)
    stats.cases = len(manifest["cases"])
    write_text_atomic(cache_dir / MANIFEST, json.dumps(manifest, indent=1))
    return manifest, stats


class _CaseBuilder:
    """Reads the files of one case at a time, reusing unchanged frames."""

    def __init__(
        self,
        cache_dir: Path,
        params: dict[str, Any],
        old_rejected: dict[str, Any],
        stats: BuildStats,
    ) -> None:
        self.cache_dir = cache_dir
        self.params = params
        self.old_rejected = old_rejected
        self.rejected: dict[str, Any] = {}
        self.stats = stats

    def _reject(self, path: Path, fp: tuple[int, int], reason: str) -> None:
        self.rejected[str(path)] = {"size": fp[0], "mtime_ns": fp[1], "reason": reason}
        self.stats.rejected += 1

    def build(
        self,
        key: str,
        root: Path,
        files: list[Path],
        prev: dict[str, Any] | None,
        interval_s: float,
        max_gap_factor: float,
    ) -> dict[str, Any] | None:
        self.stats.files += len(files)
        old_index: dict[str, tuple[int, tuple[int, int]]] = {}
        if prev is not None and (self.cache_dir / prev["file"]).exists():
            for i, (src, fp) in enumerate(zip(prev["sources"], prev["fingerprints"])):
                old_index[src] = (i, (int(fp[0]), int(fp[1])))
        old_codes = None
        # (time, rel path, fingerprint, frame codes or old index, dx, dy)
        frames: list[tuple[datetime, str, tuple[int, int], Any, float, float]] = []
        changed = prev is None
        for path in files:
            rel = str(path.relative_to(root))
            try:
                st = path.stat()
            except OSError as exc:
                log.warning("scan skipped", file=str(path), reason=str(exc))
                continue
            fp = (int(st.st_size), int(st.st_mtime_ns))
            rejected = self.old_rejected.get(str(path))
            if rejected and (rejected["size"], rejected["mtime_ns"]) == fp:
                self._reject(path, fp, rejected["reason"])
                continue
            hit = old_index.get(rel)
            if hit is not None and hit[1] == fp:
                i = hit[0]
                t = datetime.fromtimestamp(prev["times"][i], tz=timezone.utc)
                frames.append((t, rel, fp, i, prev["dx_m"], prev["dy_m"]))
                self.stats.reused += 1
                continue
            changed = True
            try:
                scan = read_scan(
                    path, self.params["variable"], self.params["dbz_floor"]
                )
                pooled = pool(scan.dbz, self.params["pool_factor"])
            except (ScanError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, ScanError) else str(exc)
                log.warning("scan skipped", file=str(path), reason=reason)
                self.stats.errors.append(f"{path}: {reason}")
                self._reject(path, fp, reason)
                continue
            self.stats.read += 1
            grid = scan.grid.pooled(self.params["pool_factor"])
            codes = encode_dbz(pooled, self.params["dbz_floor"])
            frames.append((scan.time, rel, fp, codes, grid.dx_m, grid.dy_m))
        if prev is not None and {f[1] for f in frames} != set(prev["sources"]):
            changed = True
        if not frames:
            log.warning("case has no readable scan", case=key)
            _remove_case_files(self.cache_dir, key)
            return None
        if not changed:
            entry = dict(prev)  # type: ignore[arg-type]
            times = [datetime.fromtimestamp(t, tz=timezone.utc) for t in prev["times"]]
            runs = split_runs(times, interval_s, max_gap_factor)
            entry["runs"] = [list(r) for r in runs]
            return entry
        self.stats.cases_rebuilt += 1
        if any(isinstance(f[3], int) for f in frames):
            old_codes = np.load(self.cache_dir / prev["file"], mmap_mode="r")

        old_shape = tuple(old_codes.shape[1:]) if old_codes is not None else ()

        def shape_of(item: tuple[Any, ...]) -> tuple[int, ...]:
            return old_shape if isinstance(item[3], int) else item[3].shape

        # one grid per case: the most common (shape, spacing)
        grids = Counter((shape_of(f), round(f[4], 1), round(f[5], 1)) for f in frames)
        grid_key = grids.most_common(1)[0][0]
        kept = []
        for f in frames:
            if (shape_of(f), round(f[4], 1), round(f[5], 1)) != grid_key:
                reason = (
                    f"grid {shape_of(f)} at {f[4]:.0f} m differs from the case's "
                    f"{grid_key[0]} at {grid_key[1]:.0f} m"
                )
                log.warning("scan skipped", file=str(root / f[1]), reason=reason)
                self._reject(root / f[1], f[2], reason)
                continue
            kept.append(f)
        kept.sort(key=lambda f: (f[0], f[1]))
        unique = []
        for f in kept:
            if unique and unique[-1][0] == f[0]:
                reason = f"same time as {unique[-1][1]}"
                log.warning("scan skipped", file=str(root / f[1]), reason=reason)
                self._reject(root / f[1], f[2], reason)
                continue
            unique.append(f)
        shape = (len(unique), *grid_key[0])
        digest = hashlib.sha1(
            json.dumps([[f[1], *f[2]] for f in unique]).encode()
        ).hexdigest()[:12]
        file = f"frames/{_safe(key)}@{digest}.npy"
        target = self.cache_dir / file
        with atomic_path(target, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for k, f in enumerate(unique):
                out[k] = old_codes[f[3]] if isinstance(f[3], int) else f[3]
            out.flush()
            del out
        old_codes = None
        _remove_case_files(self.cache_dir, key, keep=file)
        times = [f[0] for f in unique]
        return ArchiveCase(
            key=key,
            data_dir=root,
            file=file,
            shape=shape,  # type: ignore[arg-type]
            dx_m=float(grid_key[1]),
            dy_m=float(grid_key[2]),
            times=tuple(times),
            sources=tuple(f[1] for f in unique),
            fingerprints=tuple(f[2] for f in unique),
            runs=tuple(split_runs(times, interval_s, max_gap_factor)),
        ).to_json()
