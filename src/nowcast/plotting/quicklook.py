"""A forecast set beside the scans that verify it: ``nowcast plot forecast``.

Contract
--------
- :func:`find_set` ``(path, issue=None)`` finds one forecast set: ``path`` is a set
  folder (``OUT/yyyymmdd/g_hhmmss``) or TITAN's input folder ``OUT`` (either
  layout), where ``issue`` picks the set issued at that time and the newest set is
  taken by default. Method and model come from the files' attributes. No set, or
  no set issued at ``issue``, is a :class:`~nowcast.plotting.PlotError` naming the
  folder and what was there.
- :func:`read_panels` reads each lead's forecast and, when ``obs_dir`` is given,
  the scan nearest its valid time within ``tolerance_s``, both reduced to 2D
  (column maximum, or the level nearest ``level_m``). An observation on the scans'
  grid beside a forecast on the pooled grid is pooled to it; one on another grid,
  or none in time, leaves that panel empty and says why in its title. Unreadable
  forecast files are a :class:`PlotError` naming the file and the reason.
- :func:`quicklook_figure` draws one column a lead: the forecast on top ("t+N min,
  valid HH:MM"), the verifying scan below ("observed HH:MM"), map axes in km
  (the forecast file's own x/y), one dBZ colour bar, the issue time, method and
  model in the figure title.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nowcast.errors import ScanError
from nowcast.plotting import PlotError
from nowcast.plotting.reflectivity import composite, draw_field

_GEN = re.compile(r"^g_\d{6}$")
_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class Lead:
    """One file of a set."""

    lead_s: int
    valid_time: datetime
    path: Path


@dataclass
class ForecastSet:
    """The files of one issue, by lead."""

    issue_time: datetime
    leads: list[Lead]
    method: str | None = None
    model: str | None = None
    out_dir: Path | None = None  # TITAN's input folder the set lies under


@dataclass
class Panel:
    """What one column shows."""

    lead: Lead
    forecast: np.ndarray
    observed: np.ndarray | None = None
    observed_time: datetime | None = None
    observed_note: str = ""
    x_km: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_km: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _set_folder(path: Path) -> tuple[Path, datetime | None]:
    """``(OUT, issue)`` when ``path`` is a set folder, else ``(path, None)``."""
    if _GEN.match(path.name) and _DATE.match(path.parent.name):
        issue = datetime.strptime(path.parent.name + path.name[2:], "%Y%m%d%H%M%S")
        return path.parent.parent, issue.replace(tzinfo=timezone.utc)
    return path, None


def find_set(path: str | Path, issue: datetime | None = None) -> ForecastSet:
    """One forecast set (see the module contract)."""
    from nowcast.verification.matching import (
        VerificationError,
        find_forecasts,
        read_forecast_attrs,
    )

    path = Path(path)
    out_dir, folder_issue = _set_folder(path)
    if folder_issue is not None:
        if issue is not None and issue != folder_issue:
            raise PlotError(
                f"{path}: this set was issued at {folder_issue:%Y-%m-%d %H:%M:%S}, "
                f"not at {issue:%Y-%m-%d %H:%M:%S}"
            )
        issue = folder_issue
    try:
        entries = find_forecasts(out_dir)
    except VerificationError as exc:
        raise PlotError(str(exc)) from None
    by_issue: dict[datetime, list[Lead]] = {}
    attrs_of: dict[datetime, Any] = {}
    for entry in entries:
        lead_s, issued = entry.lead_s, entry.issue_time
        attrs = None
        if lead_s is None or issued is None:  # valid-time layout: ask the file
            try:
                attrs = read_forecast_attrs(entry.path)
            except ScanError:
                continue
            lead_s = attrs.lead_s if lead_s is None else lead_s
            issued = attrs.issue_time if issued is None else issued
            if lead_s is None or issued is None:
                continue
        by_issue.setdefault(issued, []).append(
            Lead(int(lead_s), issued + timedelta(seconds=int(lead_s)), entry.path)
        )
        if attrs is not None:
            attrs_of.setdefault(issued, attrs)
    if not by_issue:
        raise PlotError(
            f"{out_dir}: no forecast files (expected yyyymmdd/g_hhmmss/f_%08d.nc "
            "or yyyymmdd/hhmmss.nc under it)"
        )
    if issue is None:
        issue = max(by_issue)
    elif issue not in by_issue:
        known = sorted(by_issue)
        raise PlotError(
            f"{out_dir}: no forecast set issued at {issue:%Y-%m-%d %H:%M:%S} UTC "
            f"({len(known)} sets from {known[0]:%Y-%m-%d %H:%M} to "
            f"{known[-1]:%Y-%m-%d %H:%M} UTC)"
        )
    leads = sorted(by_issue[issue], key=lambda lead: (lead.lead_s, str(lead.path)))
    attrs = attrs_of.get(issue)
    if attrs is None:
        try:
            attrs = read_forecast_attrs(leads[0].path)
        except ScanError as exc:
            raise PlotError(f"{exc.path}: {exc.reason}") from None
    return ForecastSet(issue, leads, attrs.method, attrs.model, out_dir)


def _flatten(volume: np.ndarray, z_m: np.ndarray, level_m: float | None) -> np.ndarray:
    if level_m is None:
        return composite(volume)
    index = int(np.argmin(np.abs(np.asarray(z_m, dtype=float) - level_m)))
    return np.asarray(volume[index], dtype=np.float32)


def read_panels(
    fset: ForecastSet,
    obs_dir: str | Path | None = None,
    *,
    tolerance_s: float = 60.0,
    variable: str | None = None,
    dbz_floor: float = 0.0,
    level_m: float | None = None,
    field_name: str = "DBZ",
) -> list[Panel]:
    """The 2D fields of each lead and its verifying scan (see the module contract)."""
    from nowcast.radar import pool, read_scan

    observations = None
    if obs_dir is not None:
        from nowcast.verification.matching import VerificationError, index_observations

        try:
            observations = index_observations(obs_dir, exclude=fset.out_dir)
        except VerificationError as exc:
            raise PlotError(str(exc)) from None
    panels = []
    for lead in fset.leads:
        try:
            fc = read_scan(lead.path, field_name, dbz_floor)
        except ScanError as exc:
            raise PlotError(f"{exc.path}: {exc.reason}") from None
        panel = Panel(
            lead, _flatten(fc.dbz, fc.grid.z_m, level_m),
            x_km=fc.grid.x_m / 1000.0, y_km=fc.grid.y_m / 1000.0,
        )
        panels.append(panel)
        if observations is None:
            continue
        obs_path = observations.find(lead.valid_time, tolerance_s)
        if obs_path is None:
            panel.observed_note = "no scan"
            continue
        try:
            ob = read_scan(obs_path, variable, dbz_floor)
        except ScanError as exc:
            panel.observed_note = "unreadable scan"
            import structlog

            structlog.get_logger(__name__).warning(
                "cannot read", file=str(exc.path), reason=exc.reason
            )
            continue
        volume = ob.dbz
        if volume.shape[1:] != fc.dbz.shape[1:]:
            factor = volume.shape[-1] // max(fc.dbz.shape[-1], 1)
            if factor > 1 and pool(volume, factor).shape[1:] == fc.dbz.shape[1:]:
                volume = pool(volume, factor)
            else:
                panel.observed_note = "scan on another grid"
                continue
        panel.observed = _flatten(volume, ob.grid.z_m, level_m)
        panel.observed_time = ob.time
    return panels


def _title(fset: ForecastSet, level_m: float | None) -> str:
    what = (
        "column maximum" if level_m is None else f"level nearest {level_m / 1000:g} km"
    )
    method = fset.method or "unknown method"
    model = f" ({Path(fset.model).name})" if fset.model else ""
    return (
        f"nowcast {method}{model}, issued {fset.issue_time:%Y-%m-%d %H:%M} UTC: "
        f"forecast (top) and observed (bottom), {what}"
    )


def quicklook_figure(
    fset: ForecastSet, panels: list[Panel], level_m: float | None = None
) -> Any:
    """The figure (see the module contract); matplotlib's object API, no pyplot."""
    from nowcast.plotting import require_matplotlib

    require_matplotlib()
    from matplotlib.figure import Figure

    if not panels:
        raise PlotError("nothing to draw: the set has no leads")
    with_obs = any(p.observed is not None or p.observed_note for p in panels)
    rows = 2 if with_obs else 1
    cols = len(panels)
    figure = Figure(figsize=(2.3 * cols + 0.9, 2.45 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    image = None
    for col, panel in enumerate(panels):
        minutes = panel.lead.lead_s / 60.0
        image = draw_field(
            axes[0][col], panel.forecast, panel.x_km, panel.y_km,
            f"t+{minutes:g} min, valid {panel.lead.valid_time:%H:%M}",
        )
        if rows == 2:
            ax = axes[1][col]
            if panel.observed is not None:
                draw_field(
                    ax, panel.observed, panel.x_km, panel.y_km,
                    f"observed {panel.observed_time:%H:%M}",
                )
            else:
                ax.set_title(panel.observed_note or "no scan", fontsize=9)
                ax.set_facecolor("#f4f4f4")
                ax.tick_params(labelsize=7)
            ax.set_xlabel("x (km)", fontsize=8)
        else:
            axes[0][col].set_xlabel("x (km)", fontsize=8)
    for row in range(rows):
        axes[row][0].set_ylabel("y (km)", fontsize=8)
    bar = figure.colorbar(image, ax=axes, extend="both", shrink=0.9, pad=0.01)
    bar.set_label("reflectivity (dBZ)")
    figure.suptitle(_title(fset, level_m), fontsize=10)
    return figure
