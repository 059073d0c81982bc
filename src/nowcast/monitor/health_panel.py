"""``HealthPanel``: is the daemon up, is data flowing, what went wrong.

One line a subject: the daemon (up since when, or down since when and why), the
last scan and its age (a warning past twice ``grid.interval_s``; newer files
waiting in the input folder), the buffer fill, the last forecast and its
latency, the device, the model checkpoint and its age, the queue, the next
retraining, then the latest errors (rejected files with their reasons). When the
daemon is down every value is the last known one, under a banner saying so; when
nothing exists yet the panel says what to start.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from nowcast.monitor import fmt
from nowcast.monitor.data import Health

STATE_STYLES = {
    "up": ("\u25cf up", "bold green"),
    "stalled": ("\u25cf stalled", "bold yellow"),
    "down": ("\u25cb DOWN", "bold red"),
    "never": ("\u25cb not started", "bold yellow"),
}


def _bar(fill: int | None, capacity: int) -> Text:
    if fill is None:
        return Text(f"{fmt.UNKNOWN} (of {capacity})", style="dim")
    full = min(max(fill, 0), capacity)
    style = "green" if full >= capacity else "yellow"
    text = Text(f"{fill}/{capacity} ", style=style)
    text.append("\u2588" * full, style=style)
    text.append("\u2591" * (capacity - full), style="dim")
    return text


class HealthPanel(Static):
    """The daemon's health (see the module docstring)."""

    def __init__(self, **kwargs) -> None:
        super().__init__("reading status.json...", **kwargs)
        self.health: Health | None = None

    def update_health(self, health: Health) -> None:
        self.health = health
        self.update(self.build(health))

    @staticmethod
    def build(h: Health) -> Table:
        """The panel's content for ``h`` (a two-column grid)."""
        now = h.now
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        label, style = STATE_STYLES.get(h.daemon.state, ("?", "bold"))
        daemon = Text(label, style=style)
        if h.daemon.state == "up":
            daemon.append(f" since {fmt.stamp(h.daemon.since, now)}")
            if h.daemon.since is not None:
                daemon.append(f" ({fmt.age(h.daemon.since, now)})", style="dim")
        elif h.daemon.state in ("down", "stalled"):
            daemon.append(f" since {fmt.stamp(h.daemon.since, now)}")
            daemon.append(f" ({fmt.age(h.daemon.since, now)}): {h.daemon.reason}")
        if h.daemon.state == "up" and h.status and h.status.pid is not None:
            daemon.append(f"  pid {h.status.pid}", style="dim")
        grid.add_row("Daemon", daemon)
        if h.daemon.state in ("down", "stalled"):
            grid.add_row(
                "", Text("values below are the last known state", style="red italic")
            )
        if h.status_error:
            grid.add_row("", Text(h.status_error, style="red"))
        for note in h.notes:
            grid.add_row("", Text(note, style="yellow"))

        scan = Text(fmt.stamp(h.last_scan_time, now))
        if h.last_scan_time is not None:
            age_style = "bold red" if h.scan_late else "dim"
            scan.append(f" ({fmt.age(h.last_scan_time, now)})", style=age_style)
        if h.scan_late:
            scan.append("  \u26a0 late", style="bold red")
        if h.last_scan_path:
            scan.append(f"  {h.last_scan_path}", style="dim")
        newer = h.newest_in_input
        if newer and h.last_scan_time and newer > h.last_scan_time:
            waiting = f"\nnewer in input: {fmt.stamp(newer, now)} (not taken)"
            scan.append(waiting, style="yellow")
        grid.add_row("Last scan", scan)
        grid.add_row("Buffer", _bar(h.buffer_fill, h.buffer_capacity))

        forecast = Text(fmt.stamp(h.forecast_time, now))
        if h.forecast_method:
            model = f" ({h.forecast_model})" if h.forecast_model else ""
            forecast.append(f" {h.forecast_method}{model}")
        forecast.append(f"  latency {fmt.duration(h.forecast_latency_s)}", style="dim")
        if h.status and h.status.fallback_reason:
            forecast.append(f"\nfallback: {h.status.fallback_reason}", style="yellow")
        grid.add_row("Forecast", forecast)
        grid.add_row("Device", Text(h.device or fmt.UNKNOWN))
        model = Text(h.checkpoint or fmt.UNKNOWN)
        if h.status and h.status.model_method:
            model.append(f" ({h.status.model_method})")
        if h.checkpoint_time is not None:
            when = h.checkpoint_time
            model.append(f"  {fmt.stamp(when, now)} ({fmt.age(when, now)})", "dim")
        else:
            model.append("  (no such file)", style="yellow")
        grid.add_row("Model", model)
        queue = fmt.UNKNOWN if h.queue_length is None else f"{h.queue_length} files"
        grid.add_row("Queue", Text(queue))
        retrain = Text(
            fmt.stamp(h.next_retrain, now)
            if h.next_retrain
            else f"{fmt.UNKNOWN}; configured: {h.retrain_schedule}"
        )
        if h.next_retrain is not None:
            retrain.append(f" ({fmt.age(h.next_retrain, now)})", style="dim")
        grid.add_row("Retrain", retrain)

        count = h.status.error_count if h.status else None
        title = "Errors" if count is None else f"Errors ({count})"
        if not h.errors:
            grid.add_row(title, Text("none", style="dim"))
        for i, err in enumerate(h.errors):
            line = Text(fmt.stamp(err.time, now), style="red")
            line.append(f" {err.kind}", style="bold")
            if err.path:
                line.append(f" {err.path.rsplit('/', 1)[-1]}", style="dim")
            line.append(f": {err.message}")
            grid.add_row(title if i == 0 else "", line)
        return grid
