"""``nowcast eval --obs DIR --forecasts DIR``: score written forecasts against scans.

Every forecast file under ``--forecasts`` (both TITAN layouts) is matched with the
observed scan under ``--obs`` nearest its valid time (within
``verification.match_tolerance_s``, or ``--tolerance``); both are pooled by
``--pool`` (default ``grid.pool_factor``) and scored with
:class:`~nowcast.verification.ScoreAccumulator` per lead. A forecast written on the
pooled grid is compared with the pooled observation as it is. Prints tables of
CSI / POD / FAR / bias per lead and threshold (3D and composite), the FSS per window
and the MAE, and how many files were matched, had no observation or were skipped;
``--json FILE`` writes the same numbers. Exits 1 with a message when a directory is
missing or no forecast could be matched.
"""

from __future__ import annotations

import argparse

HELP = "score forecast files against the observed scans valid at the same times"
_TALLIES = ("found", "matched", "no_observation", "unreadable", "other_grid")


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            "thresholds must be numbers separated by commas, e.g. 20,35,45 "
            f"(got {text!r})"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one threshold, e.g. 20,35,45")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text!r})")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--obs", required=True, metavar="DIR", help="observed scans")
    p.add_argument(
        "--forecasts", required=True, metavar="DIR",
        help="forecast files (OUT/yyyymmdd/g_hhmmss/f_*.nc or OUT/yyyymmdd/hhmmss.nc)",
    )
    p.add_argument(
        "--thresholds", type=_thresholds, metavar="LIST",
        help="dBZ thresholds, comma separated (default: verification.thresholds)",
    )
    p.add_argument(
        "--pool", type=_positive_int, metavar="N",
        help="N x N average pooling before scoring (default: grid.pool_factor)",
    )
    p.add_argument(
        "--tolerance", type=float, metavar="S",
        help="seconds between valid time and scan time at most "
        "(default: verification.match_tolerance_s)",
    )
    p.add_argument(
        "--method", metavar="NAME",
        help="only forecasts whose nowcast_method attribute is NAME",
    )
    p.add_argument("--json", metavar="FILE", help="also write the scores as JSON")


def run(args, settings) -> int:
    import json
    from collections import Counter, OrderedDict

    import structlog

    from nowcast.errors import ScanError
    from nowcast.fsutil import write_text_atomic
    from nowcast.radar import pool, read_scan
    from nowcast.verification import (
        ScoreAccumulator,
        VerificationError,
        find_forecasts,
        format_scores,
        index_observations,
        read_forecast_attrs,
    )

    log = structlog.get_logger(__name__)
    ver = settings.verification
    radar = settings.radar
    factor = args.pool or settings.grid.pool_factor
    tolerance = ver.match_tolerance_s if args.tolerance is None else args.tolerance
    thresholds = args.thresholds or ver.thresholds

    entries = find_forecasts(args.forecasts)
    if not entries:
        raise VerificationError(
            f"{args.forecasts}: no forecast files (expected yyyymmdd/g_hhmmss/"
            "f_%08d.nc or yyyymmdd/hhmmss.nc under it)"
        )
    observations = index_observations(args.obs, exclude=args.forecasts)
    if not observations:
        raise VerificationError(f"{args.obs}: no observed scans (*.nc) under it")

    def pooled(volume):
        try:
            return pool(volume, factor)
        except ValueError as exc:
            raise VerificationError(f"--pool {factor}: {exc}") from None

    obs_cache: OrderedDict = OrderedDict()

    def observed(path):
        if path not in obs_cache:
            expected = (radar.expected_levels, radar.expected_ny, radar.expected_nx)
            scan = read_scan(
                path, radar.reflectivity_name or None, radar.dbz_floor, expected
            )
            obs_cache[path] = (scan.dbz, pooled(scan.dbz))
            if len(obs_cache) > 8:
                obs_cache.popitem(last=False)
        return obs_cache[path]

    acc = ScoreAccumulator(thresholds, ver.fss_threshold, ver.fss_windows)
    tally: Counter = Counter()
    issues = set()
    methods_seen: set[str] = set()
    methods_scored: Counter = Counter()
    for entry in entries:
        lead, issue = entry.lead_s, entry.issue_time
        try:
            attrs = read_forecast_attrs(entry.path)
            method = attrs.method or "unknown"
            methods_seen.add(method)
            if args.method and method != args.method:
                continue
            lead = attrs.lead_s if lead is None else lead
            issue = attrs.issue_time if issue is None else issue
        except ScanError as exc:
            method = "unknown"
            if args.method:
                tally["unreadable"] += 1
                log.warning("cannot read", file=str(exc.path), reason=exc.reason)
                continue
        tally["found"] += 1
        try:
            if lead is None:
                tally["unreadable"] += 1
                log.warning("forecast without a lead time", file=str(entry.path))
                continue
            obs_path = observations.find(entry.valid_time, tolerance)
            if obs_path is None:
                tally["no_observation"] += 1
                continue
            fc = read_scan(entry.path, settings.output.field_name, radar.dbz_floor)
            ob_full, ob = observed(obs_path)
        except ScanError as exc:
            tally["unreadable"] += 1
            log.warning("cannot read", file=str(exc.path), reason=exc.reason)
            continue
        if fc.dbz.shape == ob_full.shape:
            f = pooled(fc.dbz)
        elif fc.dbz.shape == ob.shape:
            f = fc.dbz  # written on the pooled model grid
        else:
            tally["other_grid"] += 1
            log.warning(
                "forecast and observation grids differ",
                file=str(entry.path), forecast=fc.dbz.shape, observed=ob_full.shape,
            )
            continue
        acc.add(lead, f, ob)
        tally["matched"] += 1
        methods_scored[method] += 1
        if issue is not None:
            issues.add(issue)

    if args.method and not tally["found"]:
        raise VerificationError(
            f"{args.forecasts}: no forecast made by method {args.method!r} "
            f"(methods found: {', '.join(sorted(methods_seen)) or 'none'})"
        )
    summary = (
        f"Matched {tally['matched']} of {tally['found']} forecast files "
        f"({len(issues)} issue times) with observations within {tolerance:g} s; "
        f"{tally['no_observation']} had no observation"
    )
    skipped = [
        f"{tally[k]} {what}"
        for k, what in (("unreadable", "unreadable"), ("other_grid", "on another grid"))
        if tally[k]
    ]
    if skipped:
        summary += ", " + ", ".join(skipped)
    if not tally["matched"]:
        raise VerificationError(
            f"{summary}: nothing to score (are --obs {args.obs} and the valid times "
            "of --forecasts the same period?)"
        )
    print(summary + ".")
    scored = ", ".join(f"{m} ({n})" for m, n in sorted(methods_scored.items()))
    print(f"Pooling {factor} x {factor}; methods: {scored}")
    if len(methods_scored) > 1:
        print("Note: forecasts of several methods are scored together (see --method).")
    print()
    print(format_scores(acc))
    if args.json:
        report = {
            "forecasts_dir": str(args.forecasts),
            "obs_dir": str(args.obs),
            "method": args.method,
            "pool": factor,
            "tolerance_s": tolerance,
            "files": {k: tally[k] for k in _TALLIES},
            "methods": dict(sorted(methods_scored.items())),
            "issue_times": len(issues),
            "scores": acc.to_dict(),
        }
        try:
            text = json.dumps(report, indent=2, allow_nan=False)
            write_text_atomic(args.json, text)
        except OSError as exc:
            raise VerificationError(
                f"{args.json}: cannot write JSON: {exc.strerror or exc}"
            ) from None
    return 0
