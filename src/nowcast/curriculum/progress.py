"""Training progress: a rich bar on a terminal, one log event an epoch otherwise.

Contract
--------
:class:`Progress` is driven by the trainer: :meth:`~Progress.start_epoch`,
:meth:`~Progress.advance` per batch, :meth:`~Progress.end_epoch` with the
epoch's summary, :meth:`~Progress.close` at the end.

- When ``stream`` (stderr) is a terminal: a ``rich`` progress bar per epoch
  (batches, running loss, elapsed) and one coloured summary line per epoch.
- Otherwise (journald, a pipe, a test): nothing per batch, and one structlog
  event ``epoch`` per epoch with the same summary fields.
- ``enabled=False`` (data-parallel ranks other than 0) prints nothing.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

import structlog

log = structlog.get_logger("nowcast.train")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


class Progress:
    """Per-batch bar (terminal) and per-epoch summary (see the contract)."""

    def __init__(
        self,
        enabled: bool = True,
        stream: TextIO | None = None,
        bar: bool | None = None,
    ) -> None:
        self.enabled = enabled
        stream = stream or sys.stderr
        if bar is None:
            bar = hasattr(stream, "isatty") and stream.isatty()
        self.bar = bool(bar) and enabled
        self._progress = None
        self._task = None
        self._console = None
        if self.bar:
            from rich.console import Console

            self._console = Console(file=stream)

    def start_epoch(self, phase: int, epoch: int, n_batches: int) -> None:
        if not self.bar:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        if self._progress is None:
            self._progress = RichProgress(
                TextColumn(
                    "[bold]phase {task.fields[phase]} epoch {task.fields[epoch]}"
                ),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(
            "train", total=n_batches, phase=phase, epoch=epoch, loss="-"
        )

    def advance(self, loss: float) -> None:
        if self.bar and self._task is not None:
            self._progress.update(self._task, advance=1, loss=_fmt(float(loss)))

    def validating(self) -> None:
        if self.bar and self._task is not None:
            self._progress.update(self._task, loss="validating")

    def end_epoch(self, summary: dict[str, Any]) -> None:
        """Report one epoch (``phase``, ``epoch`` and any numbers)."""
        if not self.enabled:
            return
        if self.bar:
            parts = [f"{k}={_fmt(v)}" for k, v in summary.items()]
            self._console.print("[green]epoch[/green] " + " ".join(parts))
        else:
            log.info("epoch", **summary)

    def note(self, message: str, **fields: Any) -> None:
        """A one-off line (a rule fired, a checkpoint written)."""
        if not self.enabled:
            return
        if self.bar:
            extra = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
            self._console.print(f"[yellow]{message}[/yellow] {extra}".rstrip())
        else:
            log.info(message, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
