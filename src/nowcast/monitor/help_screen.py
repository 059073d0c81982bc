"""``HelpScreen``: every key of the monitor, and what it reads (``?``)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("f s t h", "show the Forecast, Skill, Training or Health panel"),
    ("] or \u2192", "next lead time (t+5 ... t+35)"),
    ("[ or \u2190", "previous lead time"),
    ("\u2191 \u2193", "level up / down (leaves the column maximum)"),
    ("c", "column maximum <-> one level"),
    ("space", "play the leads as a loop / stop"),
    ("v", "narrow screens: scan + forecast <-> earlier forecast + its scan"),
    ("d", "skill: next threshold (dBZ)"),
    ("w", "skill: next period (last hour, last day, since promotion)"),
    ("k", "skill: scores on the volume (3d) <-> on the column maximum"),
    ("l", "training: next loss term (total, each term)"),
    ("r", "read everything again now"),
    ("?", "this help"),
    ("q", "quit"),
)


class HelpScreen(ModalScreen[None]):
    """The keys (see the module docstring)."""

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", show=True),
    ]

    def __init__(self, sources: list[tuple[str, str]]) -> None:
        super().__init__()
        self.sources = sources

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold cyan", no_wrap=True)
        keys.add_column()
        for key, what in KEYS:
            keys.add_row(key, what)
        reads = Table.grid(padding=(0, 2))
        reads.add_column(style="dim", no_wrap=True)
        reads.add_column(overflow="fold")
        for what, where in self.sources:
            reads.add_row(what, where)
        with VerticalScroll(id="help-box"):
            yield Static(Text("nowcast-monitor keys (escape, ? or q closes)", "bold"))
            yield Static(keys)
            yield Static(Text("It only reads:", style="bold"))
            yield Static(reads)
