"""``nowcast-monitor``: the forecaster's terminal dashboard (Textual).

Contract
--------
- ``nowcast-monitor [--config FILE]`` loads the same ``config.toml`` as the daemon
  (all defaults without one, ``NOWCAST_*`` overrides as everywhere) and shows four
  panels: Forecast, Skill, Training and Health, under a status line that always
  says whether the daemon is up. A terminal narrower than 150 columns or shorter
  than 44 lines shows one panel at a time (tabs, keys ``f s t h``); a larger one
  shows all four at once.
- It only reads: ``status.json``, the metrics store (read-only connection), the
  forecast and scan files. Every read runs in a thread worker and reaches the
  screen as a message (:mod:`.messages`); the live data (status, newest files)
  every ``monitor.refresh_s``, scores and training every
  ``monitor.skill_refresh_s``; a read still running is not started again.
  A loader that fails is shown (a notification and the panel's text), never
  swallowed; a daemon that is down is shown as down, with the last known state;
  nothing at all yet is shown as what to start.
- The radar panels draw with half blocks, or as terminal images where the
  terminal draws them (``--pictures``, ``[monitor] pictures``; chosen before the
  app starts by :func:`nowcast.monitor.pictures.choose_mode`).
- It never imports torch or pysteps (a test checks).
- ``clock`` (the current UTC time) is injectable, so tests and pictures of the
  screen are independent of the wall clock.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import Footer, Tab, Tabs

from nowcast.config import Settings
from nowcast.monitor.data import Workspace, load_health
from nowcast.monitor.forecast_panel import ForecastPanel
from nowcast.monitor.forecasts import FieldCache, find_forecast_set
from nowcast.monitor.health_panel import HealthPanel
from nowcast.monitor.help_screen import HelpScreen
from nowcast.monitor.store_loaders import load_skill, load_training
from nowcast.monitor.pictures import MODES, PictureMode
from nowcast.monitor.radar_view import radar_view_class
from nowcast.monitor.messages import (
    HealthLoaded,
    LoadFailed,
    SkillLoaded,
    TrainingLoaded,
)
from nowcast.monitor.skill_panel import SkillPanel
from nowcast.monitor.status_line import StatusLine
from nowcast.monitor.training_panel import TrainingPanel
from nowcast.store.times import utc_now

STATUS_WHAT = "status and files"
SKILL_WHAT = "skill scores"
TRAINING_WHAT = "training runs"
PANELS = (
    ("forecast", "Forecast", "f"),
    ("skill", "Skill", "s"),
    ("training", "Training", "t"),
    ("health", "Health", "h"),
)


class MonitorApp(App[None]):
    """The dashboard (see the module docstring)."""

    TITLE = "nowcast monitor"
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = None  # nothing takes the arrow keys from the app's bindings
    CSS_PATH = [
        "app.tcss",
        "status_line.tcss",
        "radar_view.tcss",
        "forecast_panel.tcss",
        "chart_view.tcss",
        "skill_panel.tcss",
        "training_panel.tcss",
        "health_panel.tcss",
        "help_screen.tcss",
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (150, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (44, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("right_square_bracket,right", "lead(1)", "Lead+", key_display="]"),
        Binding("left_square_bracket,left", "lead(-1)", "Lead-", key_display="["),
        Binding("up", "level(1)", "Level+", key_display="\u2191", show=False),
        Binding("down", "level(-1)", "Level-", key_display="\u2193", show=False),
        Binding("c", "composite", "Max/level"),
        Binding("space", "play", "Loop"),
        Binding("v", "verify", "Verify", show=False),
        Binding("d", "threshold", "dBZ", show=False),
        Binding("w", "period", "Period", show=False),
        Binding("k", "kind", "3d/composite", show=False),
        Binding("l", "term", "Loss term", show=False),
        Binding("r", "reload", "Reload", show=False),
        *(
            Binding(key, f"panel('{pid}')", name, show=False)
            for pid, name, key in PANELS
        ),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        config_label: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        live: bool = True,
        pictures: PictureMode | None = None,
    ) -> None:
        """``live=False`` reads once at start and never again (tests, pictures).

        ``pictures``: how radar panels draw (half blocks when None).
        """
        super().__init__()
        self.pictures = pictures or PictureMode("halfblock", "default")
        self.ws = Workspace(settings, config_label)
        self.clock = clock
        self.live = live
        self.cache = FieldCache()
        self.load_errors: list[str] = []

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        monitor = self.ws.settings.monitor
        yield StatusLine(self.ws, id="status-line")
        tabs = Tabs(*(Tab(name, id=f"tab-{pid}") for pid, name, _ in PANELS), id="tabs")
        tabs.can_focus = False  # keys f s t h choose; left/right step the lead
        yield tabs
        with Container(id="panels"):
            yield ForecastPanel(
                self.ws, self.cache, view_class=radar_view_class(self.pictures),
                id="forecast", classes="panel",
            )
            yield HealthPanel(id="health", classes="panel")
            yield SkillPanel(monitor.operational_csi, id="skill", classes="panel")
            yield TrainingPanel(monitor.operational_csi, id="training", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self._show_panel("forecast")
        for pid, name, _ in PANELS:
            self.query_one(f"#{pid}").border_title = name
        monitor = self.ws.settings.monitor
        self.reload_live()
        self.reload_slow()
        if self.live:
            self.set_interval(monitor.refresh_s, self.reload_live)
            self.set_interval(monitor.skill_refresh_s, self.reload_slow)

    def _show_panel(self, pid: str) -> None:
        for other, _, _ in PANELS:
            self.query_one(f"#{other}").set_class(other == pid, "-current")

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id:
            self._show_panel(event.tab.id.removeprefix("tab-"))

    # -- reading (thread workers post messages) ----------------------------------------

    def _group_running(self, group: str) -> bool:
        return any(w.group == group and w.is_running for w in self.workers)

    def reload_live(self) -> None:
        if not self._group_running("live"):
            self._load_live()

    def reload_slow(self) -> None:
        if not self._group_running("slow"):
            self._load_slow()

    @work(thread=True, group="live")
    def _load_live(self) -> None:
        try:
            health = load_health(self.ws, self.clock())
            forecast_set = find_forecast_set(self.ws)
        except Exception as exc:  # noqa: BLE001 - shown, never swallowed
            self.post_message(LoadFailed(STATUS_WHAT, _describe(exc)))
            return
        self.post_message(HealthLoaded(health, forecast_set))

    @work(thread=True, group="slow")
    def _load_slow(self) -> None:
        try:
            skill = load_skill(self.ws, self.clock())
        except Exception as exc:  # noqa: BLE001
            self.post_message(LoadFailed(SKILL_WHAT, _describe(exc)))
        else:
            self.post_message(SkillLoaded(skill))
        try:
            training = load_training(self.ws)
        except Exception as exc:  # noqa: BLE001
            self.post_message(LoadFailed(TRAINING_WHAT, _describe(exc)))
        else:
            self.post_message(TrainingLoaded(training))

    def on_health_loaded(self, message: HealthLoaded) -> None:
        stale = message.health.daemon.state in ("down", "stalled")
        self.query_one("#panels").set_class(stale, "-stale")
        self.query_one(StatusLine).update_health(message.health)
        self.query_one(HealthPanel).update_health(message.health)
        self.query_one(ForecastPanel).update_set(message.forecast_set)

    def on_skill_loaded(self, message: SkillLoaded) -> None:
        self.query_one(SkillPanel).update_skill(message.skill)

    def on_training_loaded(self, message: TrainingLoaded) -> None:
        self.query_one(TrainingPanel).update_training(message.training)

    def on_load_failed(self, message: LoadFailed) -> None:
        text = f"Cannot read {message.what}: {message.error}"
        target = {
            STATUS_WHAT: StatusLine,
            SKILL_WHAT: SkillPanel,
            TRAINING_WHAT: TrainingPanel,
        }.get(message.what)
        if target is not None:
            self.query_one(target).show_error(text)
        if not self.load_errors or self.load_errors[-1] != text:
            self.load_errors.append(text)
            self.notify(text, title="nowcast-monitor", severity="error", timeout=10)

    # -- keys --------------------------------------------------------------------------

    def action_panel(self, pid: str) -> None:
        self.query_one(Tabs).active = f"tab-{pid}"

    def action_lead(self, delta: int) -> None:
        self.query_one(ForecastPanel).step_lead(delta)

    def action_level(self, delta: int) -> None:
        self.query_one(ForecastPanel).step_level(delta)

    def action_composite(self) -> None:
        self.query_one(ForecastPanel).toggle_composite()

    def action_play(self) -> None:
        self.query_one(ForecastPanel).toggle_play()

    def action_verify(self) -> None:
        self.query_one(ForecastPanel).toggle_verify()

    def action_threshold(self) -> None:
        self.query_one(SkillPanel).next_threshold()

    def action_period(self) -> None:
        self.query_one(SkillPanel).next_period()

    def action_kind(self) -> None:
        self.query_one(SkillPanel).next_kind()

    def action_term(self) -> None:
        self.query_one(TrainingPanel).next_term()

    def action_reload(self) -> None:
        self.reload_live()
        self.reload_slow()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        paths = self.ws.settings.paths
        sources = [
            ("config", str(self.ws.settings.source or "built-in defaults")),
            ("status", self.ws.show(paths.status_file)),
            ("store", self.ws.show(paths.store)),
            ("scans", self.ws.show(paths.input_dir)),
            ("forecasts", self.ws.show(paths.output_dir)),
        ]
        self.push_screen(HelpScreen(sources))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nowcast-monitor",
        description="The nowcast dashboard: live forecast, skill, training, health. "
        "It only reads (status.json, the metrics store, forecast and scan files).",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the daemon's config.toml (default: built-in defaults, relative paths "
        "from the working directory)",
    )
    parser.add_argument(
        "--pictures", choices=MODES,
        help="radar panels as terminal images (sixel, tgp: kitty's protocol) or half "
        "blocks; auto: images where the terminal draws them, half blocks over plain "
        "SSH and in tmux (default: [monitor] pictures)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nowcast-monitor``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from nowcast.config import load_config
    from nowcast.errors import ConfigError

    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        print(f"nowcast-monitor: configuration error: {exc}", file=sys.stderr)
        return ConfigError.exit_status
    from nowcast.monitor.pictures import PictureError, choose_mode

    try:  # before the app: the terminal is asked what it draws
        pictures = choose_mode(args.pictures or settings.monitor.pictures)
    except PictureError as exc:
        print(f"nowcast-monitor: {exc}", file=sys.stderr)
        return 2
    MonitorApp(settings, config_label=args.config, pictures=pictures).run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
