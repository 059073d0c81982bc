"""The archive cache: scan archives read once into pooled, compact, mapped frames.

Training epochs never re-read NetCDF:
:func:`~nowcast.curriculum.archive_cache_build.build_cache` reads every scan of the
given archives once, pools it to the model grid and stores it, one
memory-mapped ``.npy`` a case, under a cache folder with a JSON manifest.

Contract
--------
- **Files**: every ``*.nc`` (``pattern``) under each data dir, recursively
  (following symlinked folders; hidden names are skipped). Each is
  read and pooled with :func:`nowcast.radar.pooled.read_pooled` (``variable``,
  ``dbz_floor``, ``pool_factor``). A file that fails (a
  :class:`~nowcast.errors.ScanError`, a grid the pool factor does not divide, a
  grid other than its case's) is logged and skipped, never fatal; it is
  remembered in the manifest (``rejected``) and not retried while unchanged.
- **Cases**: a case is one top-level folder under a data dir (its key is
  ``"<data dir name>/<folder>"``, e.g. ``"radar-cases/fmi-20160928"``); files
  lying directly in a data dir form the case ``"<data dir name>"``. The daemon's
  archive (``yyyymmdd/`` folders) thus gives one case a day. A case's frames are
  sorted by scan time; a repeated time keeps the first file (by path). All frames
  of a case share one grid: the most common ``(shape, spacing)``; files on
  another grid are rejected. Two data dirs with the same name get keys made
  unique with a suffix (``"archive~2/..."``).
- **Runs**: within a case, a new run starts at every step outside
  ``[interval_s / max_gap_factor, interval_s * max_gap_factor]`` (the rule of
  :func:`nowcast.radar.sequences.find_sequences`); the manifest lists them as
  ``[start, stop)`` frame ranges. Windows never cross a run or a case.
- **Encoding** (``uint8``, 0.5 dBZ steps, ``dbz_floor`` .. ``dbz_floor + 127``)::

      code = clip(round((dbz - dbz_floor) * 2), 0, 254) + 1      (finite dBZ)
      code = 0                                                    (NaN: no coverage)
      dbz  = (code - 1) / 2 + dbz_floor,  NaN where code == 0

  :func:`encode_dbz` / :func:`decode_dbz`; the round trip is exact to 0.25 dBZ
  inside the range and keeps NaN.
- **Layout** of ``cache_dir``: ``manifest.json``; ``frames/<case>@<digest>.npy``,
  uint8 ``(t, z, y, x)`` codes; ``flow/k<n>/<case>@<digest>/<index>.npy``, the
  optical-flow prior ending at a frame (computed on first use, see
  :meth:`ArchiveCache.flow`); ``prior/<settings>/<case>@<digest>/<index>.npz``,
  the storm-tracked prior of the window whose inputs end at a frame (on first
  use, :meth:`ArchiveCache.storm_prior`). ``<case>`` is the key with ``/`` turned into
  ``__``; ``<digest>`` hashes the case's files and fingerprints, so a rebuilt
  case gets new names and a cache opened before the rebuild never reads the new
  frames under its old indices (files it had open stay valid; the others fail to
  open). Every file is written to a temporary name and moved into place; a
  rebuild removes the case's older files.
- **Incremental**: a rebuild re-reads only files whose (path, size, mtime) are new
  or changed; unchanged frames are copied from the old case file, and a case
  whose files are all unchanged is left untouched (its flow cache too). Changing
  ``pool_factor``, ``dbz_floor``, ``variable`` or the encoding rebuilds
  everything. Cases no longer found under the data dirs are dropped, files and
  all: the cache holds exactly the archives of the last build.
- **Reading**: :meth:`ArchiveCache.open` reads the manifest; frames are memory-
  mapped on first use in each process (a pickled cache, e.g. sent to DataLoader
  workers, carries no mapped arrays).
- **Modules**: this one reads the cache and defines its format;
  :mod:`nowcast.curriculum.archive_cache_build` builds it (discovery, reading,
  reuse) and imports this one, never the other way round.
- **Scale**: ``ArchiveCase.dx_m`` is the pooled grid spacing (2 km for the 1 km
  composites, 240 m for the 120 m Cagliari radar at ``pool_factor=2``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from nowcast.errors import NowcastError
from nowcast.fsutil import atomic_path

log = structlog.get_logger(__name__)

#: bump when the frame encoding or the manifest layout changes
CACHE_VERSION = 1
#: dBZ a code step
DBZ_STEP = 0.5
#: the code of "no coverage" (NaN)
NO_COVERAGE = 0
MANIFEST = "manifest.json"


def encode_dbz(dbz: np.ndarray, dbz_floor: float = 0.0) -> np.ndarray:
    """Float dBZ (NaN: no coverage) -> ``uint8`` codes (see the module doc)."""
    x = np.asarray(dbz, dtype=np.float32)
    finite = np.isfinite(x)
    steps = np.rint((np.where(finite, x, dbz_floor) - dbz_floor) / DBZ_STEP)
    codes = np.clip(steps, 0, 254).astype(np.uint8) + np.uint8(1)
    codes[~finite] = NO_COVERAGE
    return codes


def decode_dbz(codes: np.ndarray, dbz_floor: float = 0.0) -> np.ndarray:
    """``uint8`` codes -> float32 dBZ, NaN where the code is 0 (no coverage)."""
    c = np.asarray(codes)
    out = (c.astype(np.float32) - 1.0) * np.float32(DBZ_STEP) + np.float32(dbz_floor)
    out[c == NO_COVERAGE] = np.nan
    return out


def case_file_stem(key: str) -> str:
    return key.replace("/", "__")


def _epoch(t: datetime) -> float:
    return t.astimezone(timezone.utc).timestamp()


@dataclass(frozen=True)
class ArchiveCase:
    """One cached case: its frames' times, grid spacing and source files."""

    key: str
    data_dir: Path
    file: str
    shape: tuple[int, int, int, int]
    dx_m: float
    dy_m: float
    times: tuple[datetime, ...]
    sources: tuple[str, ...]
    fingerprints: tuple[tuple[int, int], ...]
    runs: tuple[tuple[int, int], ...]

    @property
    def name(self) -> str:
        """The case folder's own name (the key's last part)."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def paths(self) -> list[Path]:
        """The source files, frame by frame (``sources`` are under ``data_dir``)."""
        return [self.data_dir / s for s in self.sources]

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    @property
    def levels(self) -> int:
        return self.shape[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "file": self.file,
            "shape": list(self.shape),
            "dx_m": self.dx_m,
            "dy_m": self.dy_m,
            "times": [_epoch(t) for t in self.times],
            "sources": list(self.sources),
            "fingerprints": [list(f) for f in self.fingerprints],
            "runs": [list(r) for r in self.runs],
        }

    @classmethod
    def from_json(cls, key: str, d: dict[str, Any]) -> ArchiveCase:
        return cls(
            key=key,
            data_dir=Path(d["data_dir"]),
            file=d["file"],
            shape=tuple(int(v) for v in d["shape"]),  # type: ignore[arg-type]
            dx_m=float(d["dx_m"]),
            dy_m=float(d["dy_m"]),
            times=tuple(datetime.fromtimestamp(t, tz=timezone.utc) for t in d["times"]),
            sources=tuple(d["sources"]),
            fingerprints=tuple((int(a), int(b)) for a, b in d["fingerprints"]),
            runs=tuple((int(a), int(b)) for a, b in d["runs"]),
        )


@dataclass
class BuildStats:
    """What one :func:`~nowcast.curriculum.archive_cache_build.build_cache` did."""

    files: int = 0
    read: int = 0
    reused: int = 0
    rejected: int = 0
    cases: int = 0
    cases_rebuilt: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


class ArchiveCache:
    """Cached pooled frames of scan archives (see the module doc).

    Build with :meth:`build`, reopen with :meth:`open`.
    """

    def __init__(self, cache_dir: str | Path, manifest: dict[str, Any]) -> None:
        self.cache_dir = Path(cache_dir)
        self.manifest = manifest
        self.pool_factor = int(manifest["pool_factor"])
        self.dbz_floor = float(manifest["dbz_floor"])
        self.interval_s = float(manifest["interval_s"])
        self.max_gap_factor = float(manifest["max_gap_factor"])
        self.cases: dict[str, ArchiveCase] = {
            key: ArchiveCase.from_json(key, d)
            for key, d in sorted(manifest["cases"].items())
        }
        self.stats = BuildStats()
        self._mapped: dict[str, np.ndarray] = {}

    # -- pickling: memory maps are reopened in each process ---------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_mapped"] = {}
        return state

    def __len__(self) -> int:
        return len(self.cases)

    def __repr__(self) -> str:
        frames = sum(c.n_frames for c in self.cases.values())
        return f"ArchiveCache({self.cache_dir}, {len(self)} cases, {frames} frames)"

    @classmethod
    def open(cls, cache_dir: str | Path) -> ArchiveCache:
        """Open a built cache.

        Raises
        ------
        NowcastError
            When the folder holds no readable manifest of this cache version.
        """
        cache_dir = Path(cache_dir)
        manifest = load_manifest(cache_dir)
        if manifest is None:
            raise NowcastError(
                f"{cache_dir}: no archive cache here (build it with "
                "archive_cache_build.build_cache or `nowcast train --data DIR`)"
            )
        return cls(cache_dir, manifest)

    # -- frames -----------------------------------------------------------------
    def codes(self, key: str) -> np.ndarray:
        """The case's ``uint8`` codes ``(t, z, y, x)``, memory-mapped read-only."""
        arr = self._mapped.get(key)
        if arr is None:
            case = self._case(key)
            arr = np.load(self.cache_dir / case.file, mmap_mode="r")
            self._mapped[key] = arr
        return arr

    def dbz(self, key: str, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` of a case as float32 dBZ ``(t, z, y, x)``."""
        return decode_dbz(self.codes(key)[start:stop], self.dbz_floor)

    def flow(self, key: str, last: int, n_frames: int = 3) -> np.ndarray:
        """The optical-flow prior ending at frame ``last`` of a case.

        pysteps' Lucas-Kanade (:func:`nowcast.forecasters.flow.flow_prior`) on the
        column maximum of frames ``last - n_frames + 1 .. last``, float32
        ``(2, y, x)`` in px/step (x then y). Computed on first use and kept as
        float16 under ``flow/k<n_frames>/`` (safe with several DataLoader workers:
        each file is written whole, then moved into place).
        """
        from nowcast.forecasters.flow import flow_prior

        if not n_frames - 1 <= last < self._case(key).n_frames:
            raise IndexError(f"{key}: no frame {last} with {n_frames - 1} before it")
        path = self._flow_path(key, last, n_frames)
        if path.exists():
            with contextlib.suppress(OSError, ValueError):
                return np.load(path).astype(np.float32)
        frames = self.dbz(key, last - n_frames + 1, last + 1)
        velocity = flow_prior(frames, self.dbz_floor)
        stored = velocity.astype(np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, stored)
        return stored.astype(np.float32)

    def storm_prior(
        self,
        key: str,
        last: int,
        *,
        n_input: int,
        n_leads: int,
        params: Any,
        tracker: Any,
        dbz_min: float = 0.0,
        dbz_max: float = 70.0,
    ) -> dict[str, np.ndarray]:
        """The storm-tracked prior of the window whose inputs end at frame ``last``.

        :func:`nowcast.curriculum.storm_priors.window_prior` on frames ``last -
        n_input + 1 .. last`` with the cached flow prior, the case's grid spacing
        and the median step of those frames: the prior
        :class:`~nowcast.forecasters.model.ModelForecaster` builds for the same
        scans. Computed on first use and kept (float16 vectors) under
        ``prior/<settings>/``, ``<settings>`` naming ``params``, the tracker's
        settings, the frame counts and the unit range; written whole, then moved
        into place.
        """
        from nowcast.curriculum.storm_priors import prior_key, window_prior
        from nowcast.forecasters.flow import FLOW_FRAMES

        case = self._case(key)
        if not n_input - 1 <= last < case.n_frames:
            raise IndexError(f"{key}: no frame {last} with {n_input - 1} before it")
        settings = (
            f"{prior_key(params, tracker)}-i{n_input}-o{n_leads}-"
            f"u{dbz_min:g}-{dbz_max:g}"
        )
        path = (
            self.cache_dir
            / "prior"
            / settings
            / Path(case.file).stem
            / f"{last:06d}.npz"
        )
        if path.exists():
            with contextlib.suppress(OSError, ValueError, KeyError), np.load(path) as z:
                return {k: z[k].astype(np.float32) for k in z.files}
        first = last - n_input + 1
        times = case.times[first : last + 1]
        times_s = [(t - times[0]).total_seconds() for t in times]
        step_s = float(np.median(np.diff(times_s)))
        arrays, _ = window_prior(
            self.dbz(key, first, last + 1),
            times_s,
            dx_m=case.dx_m,
            step_s=step_s,
            flow=self.flow(key, last, FLOW_FRAMES),
            n_leads=n_leads,
            params=params,
            tracker=tracker,
            dbz_min=dbz_min,
            dbz_max=dbz_max,
        )
        stored = {
            k: v.astype(np.float16) if k in ("prior_disp", "prior_motion") else v
            for k, v in arrays.items()
        }
        stored["prior_mask"] = arrays["prior_mask"].astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **stored)
        return {k: v.astype(np.float32) for k, v in stored.items()}

    def has_flow(self, key: str, last: int, n_frames: int = 3) -> bool:
        """Whether the flow prior ending at frame ``last`` is cached already."""
        return self._flow_path(key, last, n_frames).exists()

    def _flow_path(self, key: str, last: int, n_frames: int) -> Path:
        stem = Path(self._case(key).file).stem
        return self.cache_dir / "flow" / f"k{n_frames}" / stem / f"{last:06d}.npy"

    def _case(self, key: str) -> ArchiveCase:
        try:
            return self.cases[key]
        except KeyError:
            raise KeyError(
                f"no case {key!r} in the archive cache {self.cache_dir}; cases are "
                f"{', '.join(self.cases) or 'none'}"
            ) from None


def load_manifest(cache_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((cache_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != CACHE_VERSION:
        return None
    return manifest


def remove_case_files(cache_dir: Path, key: str, keep: str | None = None) -> None:
    """Delete a case's frame, flow and prior files, except those of ``keep``."""
    stem_of_case = case_file_stem(key)
    keep_stem = Path(keep).stem if keep else None
    for path in [
        *(cache_dir / "frames").glob(f"{glob.escape(stem_of_case)}@*.npy"),
        *(cache_dir / "flow").glob(f"k*/{glob.escape(stem_of_case)}@*"),
        *(cache_dir / "prior").glob(f"*/{glob.escape(stem_of_case)}@*"),
    ]:
        stem = path.stem if path.suffix == ".npy" else path.name
        if stem.rsplit("@", 1)[0] != stem_of_case or stem == keep_stem:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
