"""The production model and its fallback, with hot reload.

Contract
--------
- A *provider* builds the production forecaster from a checkpoint:
  ``provider(checkpoint: Path, device: str) -> Forecaster``.
  :func:`model_provider` is the real one, ``get_forecaster("model", settings,
  checkpoint=PATH, device=DEVICE)``; tests pass fakes.
- :class:`ModelManager` holds the loaded model (if any) and the fallback.
  :meth:`~ModelManager.start` loads ``paths.production_model``; every load builds
  the new forecaster *beside* the old one, runs a test forecast on a probe
  sequence (the buffer's newest run, else zeros on the scans' grid, else on the
  expected grid with the levels the model was trained on) and checks its shape
  and that it is finite where the input is; only then does it replace the old one.
  Anything that fails (no checkpoint, a load error, out of memory, a wrong shape)
  keeps the old model, or the fallback when there is none, and says why
  (:attr:`~ModelManager.fallback_reason`, :attr:`~ModelManager.last_reload`).
- :meth:`~ModelManager.poll` (every step) notices a replaced checkpoint (size,
  mtime or inode changed), waits until it has been still for ``quiet_s`` of the
  step clock, then reloads as above. A version that failed is not tried again
  until the file changes. :meth:`~ModelManager.reload` does it at once (SIGHUP).
- :meth:`~ModelManager.fallback` is ``daemon.fallback`` (default
  ``extrapolation``), else ``titan``, else ``persistence``: the first that builds
  and passes its own test forecast. The method that made a forecast is written in
  its files (``nowcast_method``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from nowcast.config import Settings

from nowcast.forecasters.fallback import WithFallback
from nowcast.forecasters.interface import Forecaster, get_forecaster, output_problem
from nowcast.daemon.watcher import Signature, stat_signature

log = structlog.get_logger(__name__)

Provider = Callable[[Path, str], Forecaster]
#: forecaster -> (frames (t, z, y, x), times, dx_m): the input of its test forecast.
Probe = Callable[[Forecaster], tuple[np.ndarray, list[datetime], float]]


def model_provider(settings: Settings) -> Provider:
    """The real provider: the ``model`` forecaster of the registry."""

    def load(checkpoint: Path, device: str) -> Forecaster:
        return get_forecaster("model", settings, checkpoint=checkpoint, device=device)

    return load


@dataclass
class LoadedModel:
    forecaster: Forecaster
    checkpoint: Path
    signature: Signature
    checkpoint_time: datetime
    loaded: datetime

    @property
    def name(self) -> str:
        return self.checkpoint.name


class ModelManager:
    """Production model, fallback and hot reload (see the module contract)."""

    def __init__(
        self,
        checkpoint: Path,
        provider: Provider | None,
        device: str,
        probe: Probe,
        *,
        n_leads: int,
        interval_s: float,
        quiet_s: float,
        fallback_method: str,
        build: Callable[[str], Forecaster],
    ) -> None:
        self.provider = provider
        self.device = device
        self.probe = probe
        self.checkpoint = Path(checkpoint)
        self.n_leads = int(n_leads)
        self.interval_s = float(interval_s)
        self.quiet_s = float(quiet_s)
        self.fallback_method = fallback_method
        self.build = build
        self.current: LoadedModel | None = None
        self.fallback_reason: str | None = "not started"
        self.last_reload: dict[str, Any] | None = None
        self._fallback: Forecaster | None = None
        self._failed: Signature | None = None
        self._pending: tuple[Signature, datetime] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        provider: Provider | None,
        device: str,
        probe: Probe,
        *,
        checkpoint: Path | None = None,
    ) -> ModelManager:
        """The manager of ``paths.production_model`` (or ``checkpoint``)."""
        return cls(
            settings.paths.production_model if checkpoint is None else checkpoint,
            provider,
            device,
            probe,
            n_leads=settings.grid.output_frames,
            interval_s=settings.grid.interval_s,
            quiet_s=settings.daemon.quiet_s,
            fallback_method=settings.daemon.fallback,
            build=lambda name: get_forecaster(name, settings),
        )

    # -- loading --------------------------------------------------------------

    def _test(self, forecaster: Forecaster) -> None:
        frames, times, dx_m = self.probe(forecaster)
        n_leads = self.n_leads
        result = forecaster.forecast(
            frames, times, n_leads, dx_m=dx_m, interval_s=self.interval_s
        )
        problem = output_problem(result, frames, n_leads)
        if problem is not None:
            raise ValueError(f"test forecast {problem}")

    def _load(self, now: datetime) -> tuple[LoadedModel | None, str]:
        sig = stat_signature(self.checkpoint)
        if sig is None:
            return None, f"no checkpoint at {self.checkpoint} (paths.production_model)"
        if self.provider is None:
            return None, "no model provider"
        try:
            forecaster = self.provider(self.checkpoint, self.device)
        except Exception as exc:  # ModelError, OOM, a bad file: keep the old one
            return None, f"cannot load {self.checkpoint.name}: {exc}"
        try:
            self._test(forecaster)
        except Exception as exc:
            del forecaster
            _release_memory()
            return None, f"{self.checkpoint.name} failed its test forecast: {exc}"
        mtime = datetime.fromtimestamp(sig.mtime_ns / 1e9, tz=timezone.utc)
        return LoadedModel(forecaster, self.checkpoint, sig, mtime, now), "loaded"

    def _swap(self, now: datetime) -> dict[str, Any]:
        new, message = self._load(now)
        ok = new is not None
        if ok:
            old, self.current = self.current, new
            self.fallback_reason = None
            self._failed = None
            del old
            _release_memory()
            message = f"loaded {new.name} (checkpoint of {new.checkpoint_time:%F %T}Z)"
        else:
            self._failed = stat_signature(self.checkpoint)
            if self.current is None:
                self.fallback_reason = message
            else:
                message += f"; still running {self.current.name}"
        self._pending = None
        self.last_reload = {"time": now, "ok": ok, "message": message}
        (log.info if ok else log.warning)("model load", ok=ok, message=message)
        return self.last_reload

    def start(self, now: datetime) -> dict[str, Any]:
        """Load the production checkpoint (or settle on the fallback)."""
        result = self._swap(now)
        if self.current is None:
            self.fallback()  # built and tested now, not at the first forecast
        return result

    def reload(self, now: datetime) -> dict[str, Any]:
        """Load the checkpoint again at once (SIGHUP)."""
        return self._swap(now)

    def poll(self, now: datetime) -> dict[str, Any] | None:
        """Reload when the checkpoint was replaced and is still (see contract)."""
        sig = stat_signature(self.checkpoint)
        if sig is None or sig == self._failed:
            self._pending = None
            return None
        if self.current is not None and sig == self.current.signature:
            self._pending = None
            return None
        if self._pending is None or self._pending[0] != sig:
            self._pending = (sig, now)
        if (now - self._pending[1]).total_seconds() < self.quiet_s:
            return None
        return self._swap(now)

    # -- choosing ---------------------------------------------------------------

    def production(self) -> tuple[Forecaster, str]:
        """``(forecaster, model name)`` for the next forecast: the loaded model
        with the fallback standing in when it fails
        (:class:`~nowcast.forecasters.fallback.WithFallback`), else the fallback
        and ``""``."""
        if self.current is not None:
            model = WithFallback(self.current.forecaster, self.fallback)
            return model, self.current.name
        return self.fallback(), ""

    def fallback(self) -> Forecaster:
        """The fallback forecaster, built (and tested) on first use."""
        if self._fallback is not None:
            return self._fallback
        names = list(dict.fromkeys([self.fallback_method, "titan"]))
        for name in [*names, "persistence"]:
            try:
                forecaster = self.build(name)
                if name != "persistence":
                    self._test(forecaster)
            except Exception as exc:
                log.error("fallback forecaster unusable", method=name, error=str(exc))
                continue
            self._fallback = forecaster
            return forecaster
        raise RuntimeError("no forecaster works, not even persistence")

    def describe(self) -> dict[str, Any]:
        """The ``model`` part of ``status.json``."""
        cur = self.current
        fb = self._fallback
        return {
            "method": (cur.forecaster.name or "model") if cur else (
                fb.name if fb else None
            ),
            "name": cur.name if cur else None,
            "checkpoint": str(self.checkpoint),
            "checkpoint_time": cur.checkpoint_time if cur else None,
            "loaded": cur.loaded if cur else None,
            "fallback": self.fallback_method,
            "fallback_reason": self.fallback_reason,
            "last_reload": self.last_reload,
        }


def probe_input(
    n_frames: int,
    shape: tuple[int, int, int],
    end: datetime,
    interval_s: float,
) -> tuple[np.ndarray, list[datetime]]:
    """Zeros (no echo) on ``shape`` for ``n_frames`` times ending at ``end``."""
    frames = np.zeros((n_frames, *shape), dtype=np.float32)
    times = [end - timedelta(seconds=interval_s * k) for k in range(n_frames)][::-1]
    return frames, times


def _release_memory() -> None:
    gc.collect()
    try:
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass
