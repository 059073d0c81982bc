"""Messages the worker threads post to the screen (the only way data reaches it).

Each carries one loader's result (:mod:`.data`, :mod:`.history`,
:mod:`.forecasts`), or the error
a loader raised, so that the UI thread never waits on a disk.
"""

from __future__ import annotations

from textual.message import Message

from nowcast.monitor.data import Health
from nowcast.monitor.forecasts import Field, ForecastSet
from nowcast.monitor.store_loaders import Skill, Training

FieldKey = tuple[str, int | None]


class HealthLoaded(Message):
    """``status.json``, the store's latest forecast and events, the newest files."""

    def __init__(self, health: Health, forecast_set: ForecastSet) -> None:
        super().__init__()
        self.health = health
        self.forecast_set = forecast_set


class SkillLoaded(Message):
    """Scores from the store."""

    def __init__(self, skill: Skill) -> None:
        super().__init__()
        self.skill = skill


class TrainingLoaded(Message):
    """The latest training run and retrain decision."""

    def __init__(self, training: Training) -> None:
        super().__init__()
        self.training = training


class FieldsLoaded(Message):
    """Fields read for the Forecast panel: by (path, level), a Field or why not."""

    def __init__(self, fields: dict[FieldKey, Field | str]) -> None:
        super().__init__()
        self.fields = fields


class LoadFailed(Message):
    """A loader raised something unexpected: shown, never swallowed."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__()
        self.what = what
        self.error = error
