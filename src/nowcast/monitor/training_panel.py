"""``TrainingPanel``: the latest training run's curves and the last retrain decision.

A heading (run, status, epochs, phase), the loss per epoch for train and
validation on a log scale across the three phases with the phase boundaries as
dotted columns (``l`` cycles the total and each loss term), the last epoch's
terms, the learning rate and the validation CSI at 35 dBZ (mean over leads) as
sparklines, and the last retraining's promotion decision.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.widgets import Static

from nowcast.monitor import fmt
from nowcast.monitor.chart_view import ChartView
from nowcast.monitor.store_loaders import Training
from nowcast.monitor.plot import Series, spark

TRAIN_COLOUR = "#00d7ff"
VAL_COLOUR = "#ffaf00"
PHASE_COLOUR = "#808080"
TOTAL = "total"
NAN = math.nan


class TrainingPanel(Vertical):
    """Training curves (see the module docstring)."""

    def __init__(self, operational_csi: float = 0.4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bar = operational_csi
        self.training: Training | None = None
        self.term = TOTAL

    def compose(self) -> ComposeResult:
        yield Static("reading the metrics store...", id="training-head")
        yield Static(id="loss-title")
        yield ChartView(id="loss-chart")
        yield Static(id="training-terms")
        yield Static(id="training-spark")
        yield Static(id="retrain")

    def on_resize(self, event: Resize) -> None:
        self._show()

    def update_training(self, training: Training) -> None:
        self.training = training
        if self.term != TOTAL and self.term not in training.terms:
            self.term = TOTAL
        self._show()

    def show_error(self, text: str) -> None:
        """A loader failed: say so above whatever was shown before."""
        self.query_one("#training-head", Static).update(Text(text, style="bold red"))

    def next_term(self) -> None:
        if self.training is None:
            return
        names = (TOTAL, *self.training.terms)
        i = names.index(self.term) if self.term in names else 0
        self.term = names[(i + 1) % len(names)]
        self._show()

    # -- showing -----------------------------------------------------------------------

    def _head(self, t: Training) -> Text:
        text = Text()
        if t.run_id is None:
            for note in t.notes:
                text.append(note, style="yellow")
            return text
        status_style = {"completed": "green", "running": "cyan"}.get(t.status, "red")
        text.append(f"Run #{t.run_id} ", style="bold")
        text.append(t.status, style=status_style)
        last = t.epochs[-1] if t.epochs else None
        if last is not None:
            text.append(f" \u00b7 epoch {last.epoch} (phase {last.phase})")
        else:
            text.append(" \u00b7 no epoch recorded yet", style="dim")
        text.append(f" \u00b7 started {fmt.stamp(t.started)}", style="dim")
        if t.finished is not None:
            text.append(f" \u00b7 finished {fmt.stamp(t.finished)}", style="dim")
        if t.message:
            text.append(f"\n{t.message}", style="dim")
        return text

    def _loss_values(self, t: Training, split: str) -> list[float]:
        out = []
        for row in t.epochs:
            if self.term == TOTAL:
                out.append(row.train_loss if split == "train" else row.val_loss)
            else:
                terms = row.train_terms if split == "train" else row.val_terms
                out.append(terms.get(self.term, math.nan))
        return out

    def _loss(self, t: Training) -> None:
        if t.run_id is None:
            self.query_one("#loss-title", Static).update("")
            self.query_one("#loss-chart", ChartView).plot([], empty="")
            return
        title = Text(f"Loss ({self.term}, log)  ", style="bold")
        title.append("\u2500 ", style=TRAIN_COLOUR)
        title.append("train  ")
        title.append("\u2500 ", style=VAL_COLOUR)
        title.append("validation  ")
        title.append("\u250a ", style=PHASE_COLOUR)
        title.append("phase", style="dim")
        self.query_one("#loss-title", Static).update(title)
        starts = t.phase_starts
        labels = ("", "", "")
        if t.epochs:
            phases = " ".join(f"P{p}@{t.epochs[i].epoch}" for i, p in starts)
            labels = (f"epoch {t.epochs[0].epoch}", phases, f"{t.epochs[-1].epoch}")
        self.query_one("#loss-chart", ChartView).plot(
            [
                Series(self._loss_values(t, "train"), TRAIN_COLOUR, "train"),
                Series(self._loss_values(t, "val"), VAL_COLOUR, "val"),
            ],
            vlines=[(i, PHASE_COLOUR) for i, _ in starts[1:]],
            x_labels=labels,
            log=True,
            empty="no epochs recorded yet",
        )

    def _terms(self, t: Training) -> Text:
        if not t.epochs:
            return Text()
        last = t.epochs[-1]
        text = Text(f"epoch {last.epoch} train/val: ", style="dim")
        items = [(TOTAL, last.train_loss, last.val_loss)] + [
            (name, last.train_terms.get(name, NAN), last.val_terms.get(name, NAN))
            for name in t.terms
        ]
        for name, train, val in items:
            style = "bold" if name == self.term else ""
            text.append(f"{name} ", style=style)
            text.append(f"{fmt.number(train, '.3g')}/{fmt.number(val, '.3g')}  ")
        return text

    def _spark(self, t: Training) -> Text:
        if not t.epochs:
            return Text()
        width = max(10, (self.size.width - 40) // 2)
        lrs = [row.lr for row in t.epochs]
        csi = [row.mean_csi35 for row in t.epochs]
        last = t.epochs[-1]
        text = Text("lr ", style="dim")
        text.append(spark(lrs, width, log=True), style="magenta")
        text.append(f" {fmt.number(last.lr, '.1e')}   ")
        text.append("val CSI35 ", style="dim")
        text.append(spark(csi, width), style="green")
        value = last.mean_csi35
        style = "green" if value == value and value >= self.bar else "yellow"
        text.append(f" {fmt.number(value, '.2f')}", style=f"bold {style}")
        return text

    def _retrain(self, t: Training) -> Text:
        d = t.decision
        if d is None:
            return Text("No retraining decision recorded yet.", style="dim")
        text = Text("Last retrain ", style="dim")
        text.append(fmt.stamp(d.time), style="bold")
        if d.promoted:
            text.append(f": promoted {d.candidate}", style="green")
        else:
            text.append(f": kept {d.production or 'production'}", style="yellow")
        text.append(
            f" (candidate {fmt.number(d.candidate_score, '.3f')} vs production "
            f"{fmt.number(d.production_score, '.3f')}, margin "
            f"{fmt.number(d.margin, '.3f')})"
        )
        if d.reason:
            text.append(f" {d.reason}", style="dim")
        return text

    def _show(self) -> None:
        if not self.is_mounted or self.training is None:
            return
        t = self.training
        self.query_one("#training-head", Static).update(self._head(t))
        self._loss(t)
        self.query_one("#training-terms", Static).update(self._terms(t))
        self.query_one("#training-spark", Static).update(self._spark(t))
        self.query_one("#retrain", Static).update(self._retrain(t))
