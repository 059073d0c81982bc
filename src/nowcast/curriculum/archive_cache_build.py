"""Building the archive cache: discover cases, read new scans, reuse the rest.

The contract is :mod:`nowcast.curriculum.archive_cache`'s (cases, runs, encoding,
incremental rebuilds); this module does the work: :func:`build_cache`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import structlog
import torch

from nowcast.curriculum.archive_cache import (
    CACHE_VERSION,
    MANIFEST,
    ArchiveCache,
    ArchiveCase,
    BuildStats,
    load_manifest,
    remove_case_files,
    case_file_stem,
    encode_dbz,
)
from nowcast.errors import NowcastError, ScanError
from nowcast.fsutil import atomic_path, write_text_atomic
from nowcast.radar.pooled import read_pooled
from nowcast.radar.sequences import split_runs

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
    old = load_manifest(cache_dir)
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
            remove_case_files(cache_dir, key)
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
        """The manifest entry of one case (``None``: no readable scan)."""
        self.stats.files += len(files)
        frames, changed = self._gather(root, files, prev)
        if not frames:
            log.warning("case has no readable scan", case=key)
            remove_case_files(self.cache_dir, key)
            return None
        if not changed:
            entry = dict(prev)  # type: ignore[arg-type]
            times = [datetime.fromtimestamp(t, tz=timezone.utc) for t in prev["times"]]
            runs = split_runs(times, interval_s, max_gap_factor)
            entry["runs"] = [list(r) for r in runs]
            return entry
        self.stats.cases_rebuilt += 1
        old_codes = None
        if any(f.reused for f in frames):
            old_codes = np.load(self.cache_dir / prev["file"], mmap_mode="r")
        old_shape = tuple(old_codes.shape[1:]) if old_codes is not None else ()
        grid_key, unique = self._one_grid_one_time(root, frames, old_shape)
        file, shape = self._write_frames(key, unique, grid_key, old_codes)
        times = [f.time for f in unique]
        return ArchiveCase(
            key=key,
            data_dir=root,
            file=file,
            shape=shape,  # type: ignore[arg-type]
            dx_m=float(grid_key[1]),
            dy_m=float(grid_key[2]),
            times=tuple(times),
            sources=tuple(f.rel for f in unique),
            fingerprints=tuple(f.fp for f in unique),
            runs=tuple(split_runs(times, interval_s, max_gap_factor)),
        ).to_json()

    def _gather(
        self, root: Path, files: list[Path], prev: dict[str, Any] | None
    ) -> tuple[list[_Frame], bool]:
        """Every readable frame of the case (reused or read) and whether the
        case changed since ``prev``."""
        old_index: dict[str, tuple[int, tuple[int, int]]] = {}
        if prev is not None and (self.cache_dir / prev["file"]).exists():
            for i, (src, fp) in enumerate(zip(prev["sources"], prev["fingerprints"])):
                old_index[src] = (i, (int(fp[0]), int(fp[1])))
        frames: list[_Frame] = []
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
                frames.append(_Frame(t, rel, fp, i, prev["dx_m"], prev["dy_m"]))
                self.stats.reused += 1
                continue
            changed = True
            try:
                scan, pooled = read_pooled(
                    path, self.params["pool_factor"],
                    variable=self.params["variable"],
                    dbz_floor=self.params["dbz_floor"],
                )
            except ScanError as exc:
                log.warning("scan skipped", file=str(path), reason=exc.reason)
                self.stats.errors.append(f"{path}: {exc.reason}")
                self._reject(path, fp, exc.reason)
                continue
            self.stats.read += 1
            grid = scan.grid.pooled(self.params["pool_factor"])
            codes = encode_dbz(pooled, self.params["dbz_floor"])
            frames.append(_Frame(scan.time, rel, fp, codes, grid.dx_m, grid.dy_m))
        if prev is not None and {f.rel for f in frames} != set(prev["sources"]):
            changed = True
        return frames, changed

    def _one_grid_one_time(
        self, root: Path, frames: list[_Frame], old_shape: tuple[int, ...]
    ) -> tuple[tuple, list[_Frame]]:
        """The case's grid (the most common ``(shape, spacing)``) and its frames
        on it, one a time, in time order; the others rejected with the reason."""

        def grid_of(f: _Frame) -> tuple:
            shape = old_shape if f.reused else f.codes.shape
            return (tuple(shape), round(f.dx_m, 1), round(f.dy_m, 1))

        grid_key = Counter(grid_of(f) for f in frames).most_common(1)[0][0]
        kept = []
        for f in frames:
            if grid_of(f) != grid_key:
                reason = (
                    f"grid {grid_of(f)[0]} at {f.dx_m:.0f} m differs from the "
                    f"case's {grid_key[0]} at {grid_key[1]:.0f} m"
                )
                log.warning("scan skipped", file=str(root / f.rel), reason=reason)
                self._reject(root / f.rel, f.fp, reason)
                continue
            kept.append(f)
        kept.sort(key=lambda f: (f.time, f.rel))
        unique: list[_Frame] = []
        for f in kept:
            if unique and unique[-1].time == f.time:
                reason = f"same time as {unique[-1].rel}"
                log.warning("scan skipped", file=str(root / f.rel), reason=reason)
                self._reject(root / f.rel, f.fp, reason)
                continue
            unique.append(f)
        return grid_key, unique

    def _write_frames(
        self, key: str, unique: list[_Frame], grid_key: tuple, old_codes
    ) -> tuple[str, tuple[int, ...]]:
        """The case's ``.npy`` (a name new for new content); returns its name
        under the cache and its shape. The case's older files are removed."""
        shape = (len(unique), *grid_key[0])
        digest = hashlib.sha1(
            json.dumps([[f.rel, *f.fp] for f in unique]).encode()
        ).hexdigest()[:12]
        file = f"frames/{case_file_stem(key)}@{digest}.npy"
        target = self.cache_dir / file
        with atomic_path(target, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for k, f in enumerate(unique):
                out[k] = old_codes[f.codes] if f.reused else f.codes
            out.flush()
            del out
        remove_case_files(self.cache_dir, key, keep=file)
        return file, shape


class _Frame(NamedTuple):
    """One frame of a case: read now (``codes``) or reused (``codes`` is its
    index in the case's old file)."""

    time: datetime
    rel: str
    fp: tuple[int, int]
    codes: Any
    dx_m: float
    dy_m: float

    @property
    def reused(self) -> bool:
        return isinstance(self.codes, int)


def build_cache(
    data_dirs: Iterable[str | Path],
    cache_dir: str | Path,
    *,
    pool_factor: int = 2,
    dbz_floor: float = 0.0,
    variable: str | None = None,
    interval_s: float = 300.0,
    max_gap_factor: float = 1.5,
    pattern: str = "*.nc",
) -> ArchiveCache:
    """Read new and changed scans of ``data_dirs`` into ``cache_dir``.

    Parameters
    ----------
    data_dirs
        Archive folders (``--data``, ``curriculum.data_dirs``).
    cache_dir
        Where the cache lives (created when missing).
    pool_factor
        ``grid.pool_factor``.
    dbz_floor
        ``radar.dbz_floor``: no echo, and the encoding's zero.
    variable
        ``radar.reflectivity_name`` (``None``/empty: look for one).
    interval_s, max_gap_factor
        ``grid.interval_s`` and ``daemon.max_gap_factor``: where runs split.
    pattern
        File name pattern (``daemon.pattern``).

    Returns
    -------
    ArchiveCache
        With :attr:`stats` (a :class:`BuildStats`) telling what was read.
    """
    t0 = time.perf_counter()
    manifest, stats = build_manifest(
        data_dirs,
        Path(cache_dir),
        pool_factor=pool_factor,
        dbz_floor=dbz_floor,
        variable=variable,
        interval_s=interval_s,
        max_gap_factor=max_gap_factor,
        pattern=pattern,
    )
    stats.seconds = time.perf_counter() - t0
    cache = ArchiveCache(cache_dir, manifest)
    cache.stats = stats
    log.info(
        "archive cache built",
        cache=str(cache_dir),
        cases=stats.cases,
        files=stats.files,
        read=stats.read,
        reused=stats.reused,
        rejected=stats.rejected,
        seconds=round(stats.seconds, 1),
    )
    return cache
