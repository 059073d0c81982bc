"""``StatusLine``: one line at the top, always visible: is the system alive.

The daemon's state, the last scan and its age, the last forecast; on a red
background when the daemon is down (the rest of the screen is then the last known
state), yellow when it has not been started or is stalled.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from nowcast.monitor import fmt
from nowcast.monitor.data import Health, Workspace


class StatusLine(Static):
    """The one-line summary (see the module docstring)."""

    def __init__(self, ws: Workspace, **kwargs) -> None:
        super().__init__("nowcast monitor: reading...", **kwargs)
        self.ws = ws

    def update_health(self, h: Health) -> None:
        state = h.daemon.state
        for name in ("up", "stalled", "down", "never"):
            self.set_class(state == name, f"-{name}")
        self.update(self.build(h))

    def show_error(self, text: str) -> None:
        """A loader failed: say so in place of the (now unknown) state."""
        for name in ("up", "stalled", "never"):
            self.set_class(False, f"-{name}")
        self.set_class(True, "-down")
        self.update(Text(text, style="bold"))

    def build(self, h: Health) -> Text:
        now = h.now
        state = h.daemon.state
        text = Text()
        if state == "never":
            text.append("\u25cb daemon not started", style="bold")
            text.append(f": {self.ws.command('run')}")
        elif state == "down":
            text.append("\u25cb DAEMON DOWN", style="bold")
            text.append(f" since {fmt.stamp(h.daemon.since, now)}, last known state")
        elif state == "stalled":
            text.append("\u25cf daemon stalled", style="bold")
            text.append(f" since {fmt.stamp(h.daemon.since, now)}")
        else:
            text.append("\u25cf daemon up", style="bold")
        if h.last_scan_time is not None:
            text.append(f" \u00b7 scan {fmt.hms(h.last_scan_time)} ")
            text.append(
                fmt.age(h.last_scan_time, now),
                style="bold reverse" if h.scan_late and state == "up" else "",
            )
        if h.forecast_time is not None:
            text.append(f" \u00b7 forecast {fmt.hms(h.forecast_time)}")
            if h.forecast_latency_s is not None:
                text.append(f" in {fmt.duration(h.forecast_latency_s)}")
        if h.errors and state == "up":
            text.append(f" \u00b7 errors {len(h.errors)}")
        return text
