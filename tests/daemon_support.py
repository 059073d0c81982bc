"""Helpers for the daemon tests: a tiny workspace, scans, a fake clock, fake models."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from conftest import moving_cell_scans
from nowcast.forecasters.interface import Forecaster, ForecastResult
from nowcast.config import load_config
from nowcast.errors import ModelError
from nowcast.radar import Scan, write_scan

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
NZ, SIZE = 3, 32


def workspace(tmp_path: Path, extra: str = "", **daemon) -> object:
    """Settings for a workspace under ``tmp_path`` (3 x 32 x 32 scans expected)."""
    opts = {
        "quiet_s": 0.0, "reconcile_interval_s": 60.0, "retry_interval_s": 5.0,
        "reject_after_s": 0.0,  # files here are complete when they appear
        **daemon,
    }
    lines = "\n".join(f"{k} = {_toml(v)}" for k, v in opts.items())
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [paths]
            input_dir = "scans"
            output_dir = "out"
            state_dir = "state"
            archive_dir = "archive"
            rejected_dir = "rejected"
            store = "state/nowcast.sqlite"
            status_file = "state/status.json"
            production_model = "models/production.pt"
            [radar]
            expected_levels = {NZ}
            expected_ny = {SIZE}
            expected_nx = {SIZE}
            [daemon]
            """
        )
        + lines
        + "\n"
        + extra
    )
    (tmp_path / "scans").mkdir(exist_ok=True)
    return load_config(cfg, environ={})


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def cell_scans(n: int = 10, start: datetime = T0) -> list[Scan]:
    return moving_cell_scans(n=n, nz=NZ, size=SIZE, start=start)


def write(settings, scan: Scan, sub: str | None = None) -> Path:
    """Write a scan into the input directory (atomically, as a moved-in file)."""
    root = settings.paths.input_dir / sub if sub else settings.paths.input_dir
    return write_scan(scan, root)


def copy_in(settings, src: Path, rel: str) -> Path:
    target = settings.paths.input_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return target


class FakeClock:
    """A step clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class FakeModel(Forecaster):
    """Persistence under a model's name; ``mode`` makes it misbehave."""

    name = "convlstm3d"

    def __init__(self, mode: str = "good", hook: Callable[[], None] | None = None):
        self.mode = mode
        self.hook = hook
        self.calls = 0

    def forecast(
        self,
        frames: np.ndarray,
        times: Sequence[datetime],
        n_leads: int,
        *,
        dx_m: float,
        interval_s: float | None = None,
        context=None,
    ) -> ForecastResult:
        self.calls += 1
        if self.hook is not None:
            self.hook()
        if self.mode == "bad":
            return ForecastResult(np.zeros((1, 1, 1, 1), np.float32), self.name)
        if self.mode == "flaky" and self.calls > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        dbz = np.repeat(np.asarray(frames[-1:], np.float32), n_leads, axis=0)
        return ForecastResult(dbz, self.name)


def fake_provider(hook: Callable[[], None] | None = None, loads: list | None = None):
    """Builds a :class:`FakeModel` from the checkpoint's text: its first word is the
    mode (``good``, ``bad``, ``flaky``) or ``boom`` (the load itself fails)."""

    def load(checkpoint: Path, device: str) -> Forecaster:
        text = checkpoint.read_text().split()[0]
        if loads is not None:
            loads.append((checkpoint.read_text(), device))
        if text == "boom":
            raise ModelError(f"{checkpoint}: not a checkpoint")
        return FakeModel(text, hook)

    return load


def write_checkpoint(settings, text: str) -> Path:
    path = settings.paths.production_model
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-ckpt")
    tmp.write_text(text)
    tmp.replace(path)
    return path


def forecast_files(settings) -> list[Path]:
    return sorted(settings.paths.output_dir.glob("*/g_*/f_*.nc"))


def hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file()]
