"""``nowcast plot``: PNG quicklooks of a forecast set, and skill-by-lead charts.

Two pictures, one option picks which:

- ``--forecasts OUT_OR_SET [--obs DIR]``: one forecast set (a ``g_hhmmss`` folder,
  or TITAN's input folder and ``--issue``, newest by default) beside the scans
  that verify it, one column a lead, column maximum or ``--level-km``
  (:mod:`nowcast.plotting.quicklook`);
- ``--eval FILE.json ...`` (reports of ``nowcast eval --json``, one a method) or
  ``--store [DB]`` (the daemon's metrics store, ``paths.store`` by default, over
  ``--since``/``--until``): ``--score`` by lead, one line a method, one panel a
  threshold (:mod:`nowcast.plotting.skill_chart`).

The PNG goes to ``--out`` (written atomically; the folder is made). matplotlib is
the ``plot`` extra and is imported only here; without it the command says how to
install it. Exit status 0 when the picture was written, 1 with a message naming
the file and the reason otherwise, 2 for wrong arguments.
"""

from __future__ import annotations

import argparse

HELP = "draw PNG quicklooks of a forecast set, or a skill-by-lead chart"


def _time(text: str):
    from nowcast.times import parse_time

    try:
        return parse_time(text, "time", naive="utc")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _thresholds(text: str) -> list[float]:
    from nowcast.commands.eval import _thresholds as parse

    return parse(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--forecasts", metavar="DIR",
        help="a forecast set folder (OUT/yyyymmdd/g_hhmmss) or TITAN's input folder",
    )
    what.add_argument(
        "--eval", nargs="+", metavar="JSON",
        help="nowcast eval --json reports to chart (one line each)",
    )
    what.add_argument(
        "--store", nargs="?", const="", metavar="DB",
        help="chart the daemon's verification from the metrics store "
        "(default: paths.store)",
    )
    p.add_argument("--out", "-o", required=True, metavar="PNG", help="picture to write")
    quick = p.add_argument_group("quicklook (--forecasts)")
    quick.add_argument("--obs", metavar="DIR", help="observed scans to show beneath")
    quick.add_argument(
        "--issue", type=_time, metavar="TIME",
        help="the set issued at TIME (ISO, UTC), when --forecasts is OUT "
        "(default: the newest)",
    )
    quick.add_argument(
        "--level-km", type=float, metavar="H",
        help="show the level nearest H km (default: column maximum)",
    )
    quick.add_argument(
        "--tolerance", type=float, metavar="S",
        help="seconds between valid time and scan time at most "
        "(default: verification.match_tolerance_s)",
    )
    chart = p.add_argument_group("skill chart (--eval, --store)")
    chart.add_argument(
        "--score", choices=("csi", "pod", "far", "bias"), default="csi",
        help="the score on the y axis (default: csi)",
    )
    chart.add_argument(
        "--kind", choices=("composite", "3d"), default="composite",
        help="column-maximum or volume scores (default: composite)",
    )
    chart.add_argument(
        "--thresholds", type=_thresholds, metavar="LIST",
        help="dBZ thresholds to draw, comma separated (default: all scored)",
    )
    chart.add_argument("--since", type=_time, metavar="TIME",
                       help="--store: issue times from TIME")
    chart.add_argument("--until", type=_time, metavar="TIME",
                       help="--store: issue times before TIME")
    p.add_argument("--title", metavar="TEXT", help="figure title (default: made up)")
    p.add_argument("--dpi", type=int, default=110, metavar="N",
                   help="resolution (default: 110)")


def run(args, settings) -> int:
    from nowcast.plotting import require_matplotlib, save_figure

    require_matplotlib()  # say so before any reading
    if args.forecasts is not None:
        figure = _quicklook(args, settings)
    else:
        figure = _skill(args, settings)
    if args.title:
        figure.suptitle(args.title, fontsize=10)
    path = save_figure(figure, args.out, dpi=args.dpi)
    print(f"Wrote {path}")
    return 0


def _quicklook(args, settings):
    from nowcast.plotting.quicklook import find_set, quicklook_figure, read_panels

    fset = find_set(args.forecasts, args.issue)
    tolerance = (settings.verification.match_tolerance_s
                 if args.tolerance is None else args.tolerance)
    level_m = None if args.level_km is None else args.level_km * 1000.0
    panels = read_panels(
        fset, args.obs, tolerance_s=tolerance,
        variable=settings.radar.reflectivity_name or None,
        dbz_floor=settings.radar.dbz_floor, level_m=level_m,
        field_name=settings.output.field_name,
    )
    shown = sum(p.observed is not None for p in panels)
    print(
        f"Set issued {fset.issue_time:%Y-%m-%d %H:%M:%S} UTC by "
        f"{fset.method or 'unknown'}: {len(panels)} leads"
        + (f", {shown} with the verifying scan" if args.obs else "")
    )
    return quicklook_figure(fset, panels, level_m)


def _skill(args, settings):
    from nowcast.plotting.skill_chart import (
        curves_from_eval,
        curves_from_store,
        skill_figure,
    )

    if args.eval:
        curves = curves_from_eval(args.eval, args.score)
    else:
        store = args.store or settings.paths.store
        curves = curves_from_store(store, args.since, args.until, args.score)
    print(f"Methods: {', '.join(curves.labels) or 'none'}")
    return skill_figure(curves, kind=args.kind, thresholds=args.thresholds)
