"""``nowcast predict``: run a forecaster offline over a directory of scans.

Every scan that closes ``grid.input_frames`` consecutive scans at ``grid.interval_s``
(within ``daemon.max_gap_factor``) gets a forecast set of ``grid.output_frames``
leads, written under ``--output`` in the TITAN layout by the pipeline the daemon
runs (:mod:`nowcast.pipeline`). Prints one line a forecast set and a summary.

- Scans are the ``*.nc`` files under ``--input`` (recursively; hidden files are
  skipped). Their order comes from the time in the file name, or from the file
  itself when the name has none; each file is read once, when its first sequence
  needs it, and dropped after its last.
- A file that cannot be read is reported with its reason and skipped: the
  sequences that needed it are not forecast (a missing scan is a gap). Two files
  with the same time: the first path wins, the other is reported.
- ``--method`` defaults to what the daemon runs: ``model`` when
  ``paths.production_model`` exists, else ``daemon.fallback``.

Exit status: 0 when forecast sets were written and none failed (rejected files
and the sequences they break are reported, not fatal); 1 when a forecast or a
write failed, or there was nothing to forecast; 2 for wrong arguments.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from nowcast.radar.names import time_from_name

HELP = "forecast offline over a directory of scans and write TITAN forecast files"



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input", required=True, metavar="DIR", type=Path,
        help="directory of scan files (*.nc, searched recursively)",
    )
    p.add_argument(
        "--output", metavar="DIR", type=Path,
        help="where forecasts are written (default: paths.output_dir)",
    )
    p.add_argument(
        "--method", metavar="NAME",
        help="forecaster (persistence, titan, extrapolation, sprog, anvil, model); "
        "default: model if paths.production_model exists, else daemon.fallback",
    )
    p.add_argument(
        "--model", metavar="CKPT", type=Path,
        help="checkpoint for --method model (default: paths.production_model)",
    )
    p.add_argument(
        "--upsample", action=argparse.BooleanOptionalAction, default=None,
        help="upsample to the input grid before writing (default: output.upsample)",
    )
    p.add_argument(
        "--limit", type=int, metavar="N", help="forecast at most the first N sequences"
    )


def _choose_method(args, settings) -> tuple[str, dict]:
    method = args.method
    if method is None:
        if args.model is not None or settings.paths.production_model.is_file():
            method = "model"
        else:
            method = settings.daemon.fallback
    kwargs = {}
    if args.model is not None:
        if method != "model":
            return method, None
        kwargs["checkpoint"] = args.model
    return method, kwargs


def _usage_error(message: str) -> int:
    print(f"nowcast predict: error: {message}", file=sys.stderr)
    return 2


class _Scans:
    """Each file read once: kept while a sequence still needs it."""

    def __init__(self, settings) -> None:
        from nowcast.radar.pooled import reading_options

        self._pool_factor = settings.grid.pool_factor
        self._options = reading_options(settings.radar)
        self._cache: dict[Path, object] = {}
        self._uses: dict[Path, int] = {}
        self.rejected: list[Path] = []

    def read(self, path: Path):
        """``(scan, pooled frame)``, or ``None`` for a rejected file (reported once).

        Each scan is read and pooled once, however many sequences it is in.
        """
        from nowcast.errors import ScanError
        from nowcast.radar.pooled import read_pooled

        if path not in self._cache:
            try:
                self._cache[path] = read_pooled(
                    path, self._pool_factor, **self._options
                )
            except ScanError as exc:
                self._cache[path] = None
                self.rejected.append(path)
                print(f"REJECTED {path}: {exc.reason}")
        return self._cache[path]

    def by_time(self, files: list[Path]) -> tuple[list[datetime], list[Path]]:
        """Times (from names, else read) in order, and their files."""
        dated: dict[datetime, Path] = {}
        for path in files:
            when = time_from_name(path)
            if when is None:  # no time in the name: read it now
                read = self.read(path)
                if read is None:
                    continue
                when = read[0].time
            if when in dated:
                print(f"SKIPPED {path}: same time as {dated[when]}")
                self._cache.pop(path, None)
                continue
            dated[when] = path
        times = sorted(dated)
        return times, [dated[t] for t in times]

    def plan(self, sequences: list[list[Path]]) -> None:
        """Count the uses of each file; forget what no sequence needs."""
        for seq in sequences:
            for path in seq:
                self._uses[path] = self._uses.get(path, 0) + 1
        for path in [p for p in self._cache if p not in self._uses]:
            del self._cache[path]

    def take(self, seq: list[Path]) -> list:
        """``(scan, frame)`` of each file of one sequence (``None`` if rejected);
        each is dropped after its last use."""
        reads = [self.read(path) for path in seq]
        for path in seq:
            self._uses[path] -= 1
            if self._uses[path] == 0:
                self._cache.pop(path, None)
        return reads


def run(args, settings) -> int:
    import numpy as np

    from nowcast.forecasters import get_forecaster
    from nowcast.errors import NowcastError
    import time

    from nowcast.pipeline import WriteOptions, forecast_set, write_set
    from nowcast.radar.sequences import find_sequences

    if not args.input.is_dir():
        return _usage_error(f"--input {args.input}: not a directory")
    if args.limit is not None and args.limit < 1:
        return _usage_error("--limit must be >= 1")
    output = args.output or settings.paths.output_dir
    options = WriteOptions.from_settings(
        settings, output_dir=output, upsample=args.upsample
    )
    method, kwargs = _choose_method(args, settings)
    if kwargs is None:
        return _usage_error(f"--model needs --method model, not {method}")
    forecaster = get_forecaster(method, settings, **kwargs)
    model_name = Path(kwargs["checkpoint"]).stem if "checkpoint" in kwargs else ""
    if method == "model" and not model_name:
        model_name = settings.paths.production_model.stem

    files = sorted(
        p
        for p in args.input.rglob("*.nc")
        if p.is_file() and not p.name.startswith(".")
    )
    store = _Scans(settings)
    times, paths = store.by_time(files)
    grid, gap = settings.grid, settings.daemon.max_gap_factor
    found = find_sequences(times, grid.input_frames, grid.interval_s, gap)
    sequences = [[paths[i] for i in seq] for seq in found[: args.limit]]
    issues = [times[seq[-1]] for seq in found[: args.limit]]
    store.plan(sequences)

    written = failed = skipped = n_files = 0
    for seq, issue in zip(sequences, issues):
        taken = store.take(seq)
        stamp = f"{issue:%Y-%m-%dT%H:%M:%SZ}"
        bad = [path.name for path, read in zip(seq, taken) if read is None]
        if bad:
            skipped += 1
            print(f"SKIPPED {stamp}: needs rejected {bad[0]}")
            continue
        scans = [scan for scan, _ in taken]
        real = [s.time for s in scans]
        in_order = [tuple(range(len(real)))]
        if find_sequences(real, len(real), grid.interval_s, gap) != in_order:
            skipped += 1
            print(
                f"SKIPPED {stamp}: the times inside the files are not a run at "
                "the interval (their names said they were)"
            )
            continue
        frames = np.stack([frame for _, frame in taken])
        t0 = time.perf_counter()
        try:
            result = forecast_set(
                forecaster, frames, real, grid.output_frames,
                dx_m=scans[-1].grid.pooled(grid.pool_factor).dx_m,
                interval_s=grid.interval_s,
            )
            t1 = time.perf_counter()
            res = write_set(
                result, scans[-1].grid, scans[-1].time, options,
                model_name=model_name,
            )
        except NowcastError as exc:
            failed += 1
            print(f"FAILED {stamp}: {exc}")
            continue
        t2 = time.perf_counter()
        written += 1
        n_files += len(res.files)
        print(
            f"{res.issue_time:%Y-%m-%dT%H:%M:%SZ} {method}: {len(res.files)} files "
            f"in {res.files[0].path.parent} ({t2 - t0:.2f} s: forecast "
            f"{t1 - t0:.2f}, write {t2 - t1:.2f})",
            flush=True,
        )
    print(
        f"{written} forecast sets ({n_files} files) from {len(files)} scan files "
        f"into {output}; {len(store.rejected)} rejected, {skipped} sequences "
        f"skipped, {failed} failed"
    )
    if not sequences:
        print(
            f"nothing to forecast: no run of {grid.input_frames} scans "
            f"{grid.interval_s} s apart under {args.input}"
        )
    return 0 if written and not failed else 1
