"""``ForecastPanel``: the newest scan beside the forecast, and the forecast it verifies.

Three radar views (:mod:`~nowcast.monitor.radar_view`) side by side, left to right:
the earlier forecast valid at the newest scan's time (issued one lead before it),
the newest observed scan, and the newest forecast at the chosen lead. A panel
narrower than :data:`THREE_COLUMNS` shows two: the scan and the forecast, or
(``v``) the earlier forecast and the scan that verifies it.

State the operator changes with keys: the lead (``[``/``]``), the level
(``up``/``down``) or the column maximum (``c``), the pairing (``v``) and the loop
over the leads (``space``). Fields are read in a thread worker (the visible ones
first, then the other leads, so that stepping and the loop are instant) and
arrive as :class:`~nowcast.monitor.messages.FieldsLoaded`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import get_current_worker

from nowcast.errors import ScanError
from nowcast.monitor import fmt
from nowcast.monitor.data import Workspace
from nowcast.monitor.forecasts import Field, FieldCache, ForecastSet, LeadFile
from nowcast.monitor.messages import FieldKey, FieldsLoaded, LoadFailed
from nowcast.monitor.palette import legend
from nowcast.monitor.radar_view import RadarView

THREE_COLUMNS = 100
READING = "reading..."


class ForecastPanel(Vertical):
    """The live forecast (see the module docstring)."""

    def __init__(
        self,
        ws: Workspace,
        cache: FieldCache | None = None,
        *,
        view_class: Any = RadarView,
        **kwargs,
    ) -> None:
        """``view_class``: how the three views draw (:func:`radar_view_class`)."""
        super().__init__(**kwargs)
        self.view_class = view_class
        self.ws = ws
        self.cache = cache or FieldCache()
        self.forecast_set: ForecastSet | None = None
        n_leads = ws.settings.grid.output_frames
        self.lead_index = min(ws.settings.monitor.default_lead, n_leads) - 1
        self.level: int | None = None
        self.n_levels: int | None = None
        self._last_level = 0
        self.verify = False
        self.fields: dict[FieldKey, Field | str] = {}
        self._stale: set[FieldKey] = set()
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="forecast-info")
        with Horizontal(id="radar-row"):
            yield self.view_class(id="view-earlier")
            yield self.view_class(id="view-observed")
            yield self.view_class(id="view-forecast")
        yield Static(legend(), id="forecast-legend")

    def on_mount(self) -> None:
        frame = self.ws.settings.monitor.loop_frame_s
        self._timer = self.set_interval(frame, self._tick, pause=True)
        self._show()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= THREE_COLUMNS, "-three")
        self._request()

    # -- state -------------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        return "-playing" in self.classes

    @property
    def lead(self) -> LeadFile | None:
        fs = self.forecast_set
        if fs is None or not fs.leads:
            return None
        return fs.leads[self.lead_index % len(fs.leads)]

    @property
    def lead_s(self) -> int:
        return self.ws.leads_s()[self.lead_index]

    def update_set(self, forecast_set: ForecastSet) -> None:
        """A new listing from the health worker: read what changed.

        On a new forecast or scan every field is read again (the shared
        :class:`FieldCache` answers at once for files that did not change, and a
        file rewritten in place is read anew); the old pictures stay up until
        then. Files that could not be read are tried again (a scan caught while
        being written reads fine a moment later).
        """
        changed = self.forecast_set != forecast_set
        self.forecast_set = forecast_set
        if changed:
            self._stale = set(self.fields)
        failed = [k for k, v in self.fields.items() if isinstance(v, str)]
        for key in failed:
            del self.fields[key]
        if changed or failed:
            self._request()
        self._show()

    def step_lead(self, delta: int) -> None:
        n = len(self.ws.leads_s())
        self.lead_index = (self.lead_index + delta) % n
        self._request()
        self._show()

    def step_level(self, delta: int) -> None:
        top = (self.n_levels or 1) - 1
        if self.level is None:
            self.level = min(self._last_level, top)
        else:
            self.level = min(max(self.level + delta, 0), top)
        self._last_level = self.level
        self._request()
        self._show()

    def toggle_composite(self) -> None:
        if self.level is None:
            self.level = min(self._last_level, (self.n_levels or 1) - 1)
        else:
            self.level = None
        self._request()
        self._show()

    def toggle_verify(self) -> None:
        self.verify = not self.verify
        self.set_class(self.verify, "-verify")
        self._request()
        self._show()

    def toggle_play(self) -> None:
        playing = not self.playing
        self.set_class(playing, "-playing")
        if self._timer is not None and playing:
            self._timer.resume()
        elif self._timer is not None:
            self._timer.pause()
        self._show()

    def _tick(self) -> None:
        self.step_lead(+1)

    # -- reading -----------------------------------------------------------------------

    def _shows_earlier(self) -> bool:
        return self.verify or "-three" in self.classes

    def _wanted(self, everything: bool = False) -> list[tuple[Path, str]]:
        """Files to read, visible ones first: (path, variable)."""
        fs = self.forecast_set
        if fs is None:
            return []
        radar, out = self.ws.settings.radar, self.ws.settings.output
        order = [self.lead_index] + [
            i for i in range(len(fs.leads)) if i != self.lead_index
        ]
        want: list[tuple[Path, str]] = []
        if fs.observed_path is not None:
            want.append((fs.observed_path, radar.reflectivity_name))
        for i in order:
            if i < len(fs.leads) and fs.leads[i].path is not None:
                want.append((fs.leads[i].path, out.field_name))
            if (everything or self._shows_earlier()) and i < len(fs.earlier):
                earlier = fs.earlier[i]
                if earlier is not None and earlier.path is not None:
                    want.append((earlier.path, out.field_name))
        return want

    def _keys(self, items: list[tuple[Path, str]]) -> set[FieldKey]:
        return {(str(path), self.level) for path, _ in items}

    def _request(self) -> None:
        missing = [
            (path, variable)
            for path, variable in self._wanted()
            if (key := (str(path), self.level)) not in self.fields
            or key in self._stale
        ]
        if missing and self.is_mounted:
            self._load(missing, self.level)

    @work(thread=True, exclusive=True, group="fields")
    def _load(self, items: list[tuple[Path, str]], level: int | None) -> None:
        worker = get_current_worker()
        floor = self.ws.settings.radar.dbz_floor
        for path, variable in items:
            if worker.is_cancelled:
                return
            key = (str(path), level)
            try:
                result: Field | str = self.cache.get(
                    path, level, variable=variable, dbz_floor=floor
                )
            except ScanError as exc:
                result = exc.reason
            except Exception as exc:  # noqa: BLE001 - shown to the operator
                result = f"cannot read: {exc}"
                self.post_message(LoadFailed(f"reading {path.name}", str(exc)))
            self.post_message(FieldsLoaded({key: result}))

    def on_fields_loaded(self, message: FieldsLoaded) -> None:
        message.stop()
        self.fields.update(message.fields)
        self._stale.difference_update(message.fields)
        if not self._stale & self._keys(self._wanted()):
            # what is shown is read again: forget what cannot be shown any more
            keep = self._keys(self._wanted(everything=True))
            self.fields = {k: v for k, v in self.fields.items() if k in keep}
            self._stale.clear()
        for value in message.fields.values():
            if isinstance(value, Field):
                self.n_levels = value.n_levels
        self._show()

    # -- showing -----------------------------------------------------------------------

    def _field(self, path: Path | None) -> tuple[Field | None, str]:
        if path is None:
            return None, ""
        found = self.fields.get((str(path), self.level))
        if found is None:
            return None, READING
        if isinstance(found, str):
            return None, found
        return found, ""

    def _view_text(self) -> str:
        if self.level is None:
            return "column max"
        heights = [
            f.height_m
            for f in self.fields.values()
            if isinstance(f, Field) and f.level == self.level and f.height_m is not None
        ]
        n = self.n_levels or "?"
        height = f" {heights[0] / 1000:.1f} km" if heights else ""
        return f"level {self.level + 1}/{n}{height}"

    def _info(self) -> Text:
        fs = self.forecast_set
        text = Text()
        if fs is None:
            text.append("reading the forecast directory...", style="dim")
            return text
        if fs.issue_time is not None:
            text.append("Issued ", style="dim")
            text.append(fmt.hms(fs.issue_time), style="bold")
            method = fs.method or "unknown method"
            model = f" ({fs.model})" if fs.model else ""
            text.append(f"  {method}{model}")
        else:
            text.append("No forecast yet", style="bold yellow")
        text.append(f"  {self._view_text()}", style="cyan")
        if self.playing:
            text.append("  \u25b6 loop", style="bold green")
        text.append("\nLead ", style="dim")
        for i, lead in enumerate(self.ws.leads_s()):
            label = fmt.lead(lead)
            if i == self.lead_index:
                text.append(f"[{label}]", style="bold reverse")
            else:
                text.append(f" {label} ", style="dim")
        if fs.issue_time is not None:
            lead = self.lead
            valid = lead.valid_time if lead else None
            text.append(f"  valid {fmt.hm(valid)}")
        for note in fs.notes:
            text.append(f"\n{note}", style="yellow")
        return text

    def _show(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#forecast-info", Static).update(self._info())
        fs = self.forecast_set or ForecastSet()
        lead_s = self.lead_s
        label = fmt.lead(lead_s)
        observed = self.query_one("#view-observed")
        if fs.observed_path is None:
            observed.show("Observed", None, "no scans yet")
        else:
            field, why = self._field(fs.observed_path)
            title = f"Observed {fmt.hms(fs.observed_time)}"
            observed.show(title, field, why, keep=why == READING)
        forecast = self.query_one("#view-forecast")
        lead = self.lead
        if lead is None:
            forecast.show(f"Forecast {label}", None, "no forecast yet")
        elif lead.path is None:
            forecast.show(
                f"Forecast {label} \u2192 {fmt.hm(lead.valid_time)}", None,
                f"{label} not written (yet)",
            )
        else:
            field, why = self._field(lead.path)
            title = f"Forecast {label} \u2192 {fmt.hm(lead.valid_time)}"
            forecast.show(title, field, why, keep=why == READING)
        earlier = self.query_one("#view-earlier")
        index = self.lead_index
        found = fs.earlier[index] if index < len(fs.earlier) else None
        if found is None or found.path is None:
            when = fs.observed_time
            what = f"for {fmt.hm(when)}" if when else ""
            earlier.show(
                f"Earlier {label} {what}", None,
                f"no {label} forecast valid {fmt.hm(when)}" if when else "no scans yet",
            )
        else:
            field, why = self._field(found.path)
            issued, valid = fmt.hm(found.issue_time), fmt.hm(found.valid_time)
            title = f"{label} from {issued} \u2192 {valid}"
            earlier.show(title, field, why, keep=why == READING)
