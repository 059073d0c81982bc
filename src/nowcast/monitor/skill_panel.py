"""``SkillPanel``: CSI, POD and FAR per lead for each method, and CSI over time.

The table shows one threshold (``d`` cycles them) over one period (``w`` cycles
the last hour, the last day and since the model was promoted) for one kind of
score (``k``: on the volume, ``3d``, or on the column maximum): a row a lead, and
for each method (the model first, then the fallback and the baselines; as many
as the width allows) its CSI, POD and FAR. CSI at or above the operational bar
(``monitor.operational_csi``) is green, below it yellow. Under it, the hourly CSI
at ``monitor.chart_threshold`` (all leads pooled) of each method over the last
``monitor.chart_hours`` hours, with the bar drawn across.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.widgets import Static

from nowcast.monitor import fmt
from nowcast.monitor.chart_view import ChartView
from nowcast.monitor.store_loaders import Skill
from nowcast.monitor.plot import HLine, Series

SERIES_COLOURS = ("#00d7ff", "#ffaf00", "#b2b2b2", "#d787ff", "#87ff87", "#ff87af")
BAR_COLOUR = "#ff5f5f"
LEAD_WIDTH = 6
GROUP_WIDTH = 16


class SkillPanel(Vertical):
    """Verification scores (see the module docstring)."""

    def __init__(self, operational_csi: float = 0.4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bar = operational_csi
        self.skill: Skill | None = None
        self.period_index = 0
        self.threshold: float | None = None
        self.kind = "3d"

    def compose(self) -> ComposeResult:
        yield Static("reading the metrics store...", id="skill-head")
        yield Static(id="skill-table")
        yield Static(id="skill-chart-title")
        yield ChartView(id="skill-chart")

    def on_resize(self, event: Resize) -> None:
        self._show()

    def update_skill(self, skill: Skill) -> None:
        self.skill = skill
        if self.threshold not in skill.thresholds:
            self.threshold = (
                skill.chart_threshold
                if skill.chart_threshold in skill.thresholds
                else (skill.thresholds[0] if skill.thresholds else None)
            )
        self._show()

    def next_period(self) -> None:
        if self.skill and self.skill.periods:
            self.period_index = (self.period_index + 1) % len(self.skill.periods)
            self._show()

    def show_error(self, text: str) -> None:
        """A loader failed: say so above whatever was shown before."""
        self.query_one("#skill-head", Static).update(Text(text, style="bold red"))

    def next_kind(self) -> None:
        if self.skill and self.skill.kinds:
            kinds = self.skill.kinds
            i = kinds.index(self.kind) if self.kind in kinds else -1
            self.kind = kinds[(i + 1) % len(kinds)]
            self._show()

    def next_threshold(self) -> None:
        if self.skill and self.skill.thresholds and self.threshold is not None:
            thresholds = self.skill.thresholds
            i = thresholds.index(self.threshold) if self.threshold in thresholds else -1
            self.threshold = thresholds[(i + 1) % len(thresholds)]
            self._show()

    # -- showing -----------------------------------------------------------------------

    def _head(self, skill: Skill) -> Text:
        text = Text()
        if not skill.periods:
            for note in skill.notes:
                text.append(note, style="yellow")
            return text
        period = skill.periods[self.period_index % len(skill.periods)]
        thr = self.threshold if self.threshold is not None else 0.0
        text.append(f"\u2265{fmt.threshold(thr)} dBZ", style="bold")
        text.append(f" \u00b7 {period.label} \u00b7 {self.kind}")
        if skill.methods:
            n = period.forecasts(skill.methods[0], thr, self.kind)
            text.append(f" \u00b7 {n} verified", style="dim")
        for note in skill.notes:
            text.append(f"\n{note}", style="yellow")
        return text

    def _table(self, skill: Skill) -> Text:
        if not skill.periods or not skill.methods or self.threshold is None:
            return Text()
        period = skill.periods[self.period_index % len(skill.periods)]
        fit = max(1, (max(self.size.width, 40) - LEAD_WIDTH) // GROUP_WIDTH)
        methods = skill.methods[:fit]
        text = Text(" " * LEAD_WIDTH)
        for m in methods:
            text.append(m[: GROUP_WIDTH - 2].ljust(GROUP_WIDTH), style="bold")
        text.append("\n" + "lead".ljust(LEAD_WIDTH), style="dim")
        for _ in methods:
            text.append(" CSI  POD  FAR".ljust(GROUP_WIDTH), style="dim")
        for lead in skill.leads_s:
            text.append("\n" + fmt.lead(lead).ljust(LEAD_WIDTH))
            for m in methods:
                score = period.scores.get((m, lead, self.threshold, self.kind))
                if score is None:
                    text.append("   -    -    -".ljust(GROUP_WIDTH), style="dim")
                    continue
                csi = score.csi
                style = "green" if csi == csi and csi >= self.bar else "yellow"
                text.append(fmt.score(csi, 4), style=f"bold {style}")
                text.append(" " + fmt.score(score.pod, 4))
                text.append(" " + fmt.score(score.far, 4))
                text.append(" " * (GROUP_WIDTH - 14))
        return text

    def _chart(self, skill: Skill) -> None:
        title = Text(
            f"CSI \u2265{fmt.threshold(skill.chart_threshold)} {self.kind} hourly, "
            f"{len(skill.chart_times)} h: ",
            style="bold",
        )
        series = []
        for i, method in enumerate(skill.methods):
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            values = skill.chart.get((self.kind, method), ())
            series.append(Series(values, colour, method))
            title.append("\u2500 ", style=colour)
            title.append(f"{method} ")
        title.append("\u254c ", style=BAR_COLOUR)
        title.append(f"{self.bar:g} bar")
        self.query_one("#skill-chart-title", Static).update(title)
        times = skill.chart_times
        labels = ("", "", "")
        if times:
            mid = times[len(times) // 2]
            labels = tuple(f"{t:%m-%d %HZ}" for t in (times[0], mid, times[-1]))
        self.query_one("#skill-chart", ChartView).plot(
            list(reversed(series)),  # the model drawn last: on top
            y_range=(0.0, 1.0),
            hlines=[HLine(self.bar, BAR_COLOUR, "operational")],
            x_labels=labels,
            empty=f"no verified forecasts in the last {len(times)} h",
        )

    def _show(self) -> None:
        if not self.is_mounted or self.skill is None:
            return
        skill = self.skill
        self.query_one("#skill-head", Static).update(self._head(skill))
        self.query_one("#skill-table", Static).update(self._table(skill))
        self._chart(skill)
