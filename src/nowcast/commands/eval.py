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
missing or no forecast could be matched. The matching and scoring are
:func:`nowcast.verification.offline.score_files`; this module parses and reports.
"""

from __future__ import annotations

import argparse

HELP = "score forecast files against the observed scans valid at the same times"


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
    from nowcast.radar.pooled import reading_options
    from nowcast.verification import format_scores
    from nowcast.verification.offline import score_files

    ver = settings.verification
    factor = args.pool or settings.grid.pool_factor
    tolerance = ver.match_tolerance_s if args.tolerance is None else args.tolerance
    result = score_files(
        args.forecasts,
        args.obs,
        thresholds=args.thresholds or ver.thresholds,
        pool_factor=factor,
        tolerance_s=tolerance,
        fss_threshold=ver.fss_threshold,
        fss_windows=ver.fss_windows,
        field_name=settings.output.field_name,
        read_options=reading_options(settings.radar),
        method=args.method,
    )
    _report(args, result, factor, tolerance)
    print()
    print(format_scores(result.scores))
    if args.json:
        _write_json(args, result, factor, tolerance)
    return 0


def _report(args, result, factor: int, tolerance: float) -> None:
    """The summary lines; nothing matched is an error that says why."""
    from nowcast.verification import VerificationError

    tally = result.files
    summary = (
        f"Matched {tally['matched']} of {tally['found']} forecast files "
        f"({len(result.issue_times)} issue times) with observations within "
        f"{tolerance:g} s; {tally['no_observation']} had no observation"
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
    scored = ", ".join(f"{m} ({n})" for m, n in sorted(result.methods_scored.items()))
    print(f"Pooling {factor} x {factor}; methods: {scored}")
    if len(result.methods_scored) > 1:
        print("Note: forecasts of several methods are scored together (see --method).")


def _write_json(args, result, factor: int, tolerance: float) -> None:
    import json

    from nowcast.fsutil import write_text_atomic
    from nowcast.verification import VerificationError
    from nowcast.verification.offline import FILE_TALLIES

    report = {
        "forecasts_dir": str(args.forecasts),
        "obs_dir": str(args.obs),
        "method": args.method,
        "pool": factor,
        "tolerance_s": tolerance,
        "files": {k: result.files[k] for k in FILE_TALLIES},
        "methods": dict(sorted(result.methods_scored.items())),
        "issue_times": len(result.issue_times),
        "scores": result.scores.to_dict(),
    }
    try:
        write_text_atomic(args.json, json.dumps(report, indent=2, allow_nan=False))
    except OSError as exc:
        raise VerificationError(
            f"{args.json}: cannot write JSON: {exc.strerror or exc}"
        ) from None
