"""PNG pictures for people: forecast quicklooks and skill-by-lead charts.

Contract
--------
- :mod:`nowcast.plotting.reflectivity`: the standard reflectivity colour scale
  (the monitor's palette, :mod:`nowcast.monitor.palette`) as a matplotlib colour
  map and norm, and one panel of a field on map axes in km.
- :mod:`nowcast.plotting.quicklook`: a forecast set beside the scans that verify
  it, one column a lead (``nowcast plot forecast``).
- :mod:`nowcast.plotting.skill_chart`: a score by lead, one line a method, one
  panel a threshold, from ``nowcast eval --json`` files or the metrics store
  (``nowcast plot skill``).

matplotlib is an optional extra (``pip install 'nowcast[plot]'``); it is imported
only here and only when a picture is drawn, through :func:`require_matplotlib`,
which raises :class:`PlotError` saying how to install it. Figures are drawn with
the object API (no pyplot, no global state, no display) and saved atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nowcast.errors import NowcastError


class PlotError(NowcastError):
    """A picture cannot be made: matplotlib missing, nothing to draw, bad input."""


def require_matplotlib() -> Any:
    """The ``matplotlib`` module, or a :class:`PlotError` saying how to get it."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401  (the object API we use)
    except ImportError:
        raise PlotError(
            "nowcast plot needs matplotlib: pip install 'nowcast[plot]'"
        ) from None
    return matplotlib


def save_figure(figure: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save ``figure`` as PNG at ``path`` atomically; return the path.

    A path that cannot be written is a :class:`PlotError` naming it.
    """
    from nowcast.fsutil import atomic_path

    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", dpi=dpi)
    except OSError as exc:
        reason = exc.strerror or exc
        raise PlotError(f"{path}: cannot write the picture: {reason}") from None
    return path
