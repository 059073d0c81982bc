"""The three phases: optimiser, learning-rate schedule, loss weights and rules.

Contract
--------
Everything a phase changes comes from ``[curriculum.phaseN]`` (a
:class:`~nowcast.config.PhaseConfig`) and ``[curriculum]``; the network never
sees it.

- :func:`phase_config` ``(curriculum, n)`` -> the phase's settings, with
  ``--epochs`` applied by :func:`phase_epochs` (the phase runs epochs
  ``first_epoch .. first_epoch + n_epochs - 1``; the numbers are global across
  phases so the monitor's curves line up).
- :func:`make_optimizer`: AdamW at the phase's ``lr`` (PyTorch's default weight
  decay 0.01; the fused kernel on CUDA). The advection head's residual layers
  (motion correction, intensity change) learn at ``curriculum.residual_lr_scale``
  times that rate: they start at zero so the untrained network is its prior
  (the optical-flow extrapolation, or the storm-tracked prior), and the motion
  is ``flow_scale`` (10 px) times their output, so at the full rate one Adam
  step (about ``lr`` on every weight, whatever the gradient's size) could move
  the forecast by pixels and undo the prior it starts from (measured: CSI35
  falls from the first epoch at lr 1e-3 and 1e-4). Every learning rate below is
  a group's ``lr_scale`` times the schedule's.
- :class:`PhaseScheduler`: stepped **once an epoch**, after validation, with the
  validation loss. The first ``warmup_epochs`` epochs of the phase run at
  ``lr * (k + 1) / (warmup_epochs + 1)`` (epoch ``k`` of the phase, so the ramp
  never starts at 0 and reaches ``lr`` at epoch ``warmup_epochs``); then
  ``constant`` keeps ``lr``, ``plateau`` is ``ReduceLROnPlateau(patience,
  factor)`` on the validation loss, ``cosine`` is ``CosineAnnealingLR`` from
  ``lr`` to 0 over the epochs left after the warm-up. Its ``state_dict`` holds
  only primitives (``torch.load(weights_only=True)`` reads it).
- :func:`make_loss`: :class:`~nowcast.curriculum.losses.CombinedLoss` with the
  phase's weights, ``high_threshold_dbz`` mapped to unit range and
  ``huber_delta``; the event and quantile terms from ``[curriculum]`` (the same
  in every phase).
- :class:`SettleRule` ("or until the validation loss settles"): the phase stops
  early when the validation loss has not improved (by a relative ``1e-4``) for
  ``settle_patience`` epochs; 0 turns it off.
- :class:`AreaRatioRule` ("if cells still grow fat, raise SSIM to 30"), phase 2
  only: at mid-phase (after epoch ``n_epochs // 2`` of the phase) it takes the
  mean forecast / observed area >= 35 dBZ at the last lead over the last (up to)
  three validations; above ``area_ratio_bound`` it raises the SSIM weight to
  ``area_ratio_ssim`` (never lowers it) and returns a message for the log and the
  store. It fires at most once a phase; a resumed phase remembers it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from nowcast.config import CurriculumConfig, PhaseConfig
from nowcast.curriculum.losses import CombinedLoss

__all__ = [
    "AreaRatioRule",
    "PhaseScheduler",
    "SettleRule",
    "make_loss",
    "make_optimizer",
    "phase_config",
    "phase_epochs",
]

PHASES = (1, 2, 3)
#: the phase whose SSIM weight the area-ratio rule may raise
AREA_RATIO_PHASE = 2


def phase_config(curriculum: CurriculumConfig, number: int) -> PhaseConfig:
    """``[curriculum.phase<number>]``; a ``ValueError`` for another number."""
    if number not in PHASES:
        raise ValueError(f"phase must be 1, 2 or 3, got {number}")
    return getattr(curriculum, f"phase{number}")


def phase_epochs(phase: PhaseConfig, override: int | None = None) -> range:
    """The global epoch numbers of a phase (``override``: its length instead)."""
    n = phase.last_epoch - phase.first_epoch + 1 if override is None else override
    if n < 1:
        raise ValueError(f"a phase needs at least one epoch, got {n}")
    return range(phase.first_epoch, phase.first_epoch + int(n))


def make_optimizer(
    params: Iterable[torch.nn.Parameter] | torch.nn.Module,
    phase: PhaseConfig,
    device: str = "cpu",
    residual_lr_scale: float = 1.0,
    train_motion: bool = True,
) -> torch.optim.AdamW:
    """AdamW at the phase's learning rate (fused on CUDA).

    Given a network with ``residual_parameters()`` (the advection head's motion
    and intensity-change layers), those form a second group whose rate is
    ``residual_lr_scale`` times the phase's (its ``lr_scale``, which
    :class:`PhaseScheduler` keeps). ``train_motion=False`` leaves the advection
    head's residual motion layer as it is (``requires_grad`` off, in no group):
    the forecast moves along the prior, and the network learns the intensity
    change alone.
    """
    kwargs: dict[str, Any] = {"lr": phase.lr}
    if device.startswith("cuda"):
        kwargs["fused"] = True
    groups: Any = params
    if isinstance(params, torch.nn.Module):
        frozen: set[int] = set()
        if not train_motion and getattr(params, "head", None) == "advection":
            for p in params.motion.parameters():
                p.requires_grad_(False)
                frozen.add(id(p))
        residual = [
            p
            for p in getattr(params, "residual_parameters", list)()
            if id(p) not in frozen
        ]
        ids = {id(p) for p in residual} | frozen
        rest = [p for p in params.parameters() if id(p) not in ids]
        groups = [{"params": rest, "lr_scale": 1.0}]
        if residual:
            groups.append(
                {
                    "params": residual,
                    "lr": phase.lr * residual_lr_scale,
                    "lr_scale": float(residual_lr_scale),
                }
            )
    return torch.optim.AdamW(groups, **kwargs)


def make_loss(
    curriculum: CurriculumConfig,
    phase: PhaseConfig,
    dbz_min: float = 0.0,
    dbz_max: float = 70.0,
) -> CombinedLoss:
    """The phase's :class:`CombinedLoss` (thresholds in unit range)."""
    span = dbz_max - dbz_min
    high = (curriculum.high_threshold_dbz - dbz_min) / span
    return CombinedLoss(
        high_penalty_weight=phase.high_penalty_weight,
        ssim_weight=phase.ssim_weight,
        high_threshold=high,
        huber_delta=curriculum.huber_delta,
        event_weight=curriculum.event_loss_weight,
        event_thresholds=tuple(
            (t - dbz_min) / span for t in curriculum.event_thresholds_dbz
        ),
        event_width=curriculum.event_width_db / span,
        quantile_weight=curriculum.quantile_loss_weight,
        quantile_tau=tuple(float(t) for t in curriculum.quantile_tau),
        quantile_echo=(curriculum.quantile_echo_dbz - dbz_min) / span,
        quantile_core=(curriculum.quantile_core_dbz - dbz_min) / span,
        quantile_core_weight=curriculum.quantile_core_weight,
    )


class PhaseScheduler:
    """Warm-up, then constant / plateau / cosine; one ``step`` an epoch.

    Parameters
    ----------
    optimizer
        The phase's optimiser (its ``lr`` is the phase's base rate).
    phase
        The phase's settings.
    n_epochs
        Epochs of the phase (after any ``--epochs`` override).
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, phase: PhaseConfig, n_epochs: int
    ) -> None:
        self.optimizer = optimizer
        self.kind = phase.scheduler
        self.base_lr = float(phase.lr)
        self.warmup = min(int(phase.warmup_epochs), max(n_epochs - 1, 0))
        self.epoch = 0  # epochs of the phase completed
        self.inner: Any = None
        if self.kind == "plateau":
            self.inner = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=phase.plateau_factor,
                patience=phase.plateau_patience,
            )
        elif self.kind == "cosine":
            self._set(self.base_lr)
            self.inner = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(n_epochs - self.warmup, 1), eta_min=0.0
            )
        self._set(self._warmup_lr(0) if self.warmup else self.base_lr)

    def _warmup_lr(self, k: int) -> float:
        return self.base_lr * (k + 1) / (self.warmup + 1)

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    @property
    def lr(self) -> float:
        """The learning rate of the next epoch."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, val_loss: float) -> None:
        """End of an epoch of the phase: set the next epoch's learning rate."""
        self.epoch += 1
        if self.epoch < self.warmup:
            self._set(self._warmup_lr(self.epoch))
            return
        if self.epoch == self.warmup:
            self._set(self.base_lr)
            return
        if self.kind == "plateau":
            loss = val_loss if math.isfinite(val_loss) else math.inf
            self.inner.step(loss)
        elif self.kind == "cosine":
            self.inner.step()

    def restart_plateau(self) -> None:
        """Forget the plateau's best loss (the loss weights changed)."""
        if self.kind == "plateau":
            self.inner.best = math.inf
            self.inner.num_bad_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        inner = None if self.inner is None else self.inner.state_dict()
        return {"epoch": self.epoch, "kind": self.kind, "inner": inner}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(
                f"scheduler {state.get('kind')!r} in the checkpoint, {self.kind!r} "
                "in the config"
            )
        self.epoch = int(state["epoch"])
        if self.inner is not None and state.get("inner") is not None:
            self.inner.load_state_dict(state["inner"])


@dataclass
class SettleRule:
    """Stop a phase when the validation loss stops improving (0: never)."""

    patience: int
    best: float = math.inf
    since: int = 0

    def update(self, val_loss: float) -> bool:
        """Record an epoch's validation loss; True when the phase should stop."""
        better = math.isfinite(val_loss) and (
            not math.isfinite(self.best) or val_loss < self.best - 1e-4 * abs(self.best)
        )
        if better:
            self.best = float(val_loss)
            self.since = 0
        else:
            self.since += 1
        return self.patience > 0 and self.since >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "since": self.since}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.since = int(state["since"])


@dataclass
class AreaRatioRule:
    """Raise the SSIM weight at mid phase 2 when forecast cells grow fat.

    Parameters
    ----------
    bound
        ``curriculum.area_ratio_bound`` (1.2).
    raised_ssim
        ``curriculum.area_ratio_ssim`` (30).
    check_at
        The phase epoch index (0-based) after which the rule looks:
        ``n_epochs // 2``.
    active
        False outside phase 2.
    window
        How many of the latest validations are averaged.
    """

    bound: float
    raised_ssim: float
    check_at: int
    active: bool = True
    window: int = 3
    history: list[float] = field(default_factory=list)
    fired: bool = False

    @classmethod
    def for_phase(
        cls, curriculum: CurriculumConfig, number: int, n_epochs: int
    ) -> "AreaRatioRule":
        return cls(
            bound=curriculum.area_ratio_bound,
            raised_ssim=curriculum.area_ratio_ssim,
            check_at=n_epochs // 2,
            active=number == AREA_RATIO_PHASE,
        )

    def update(self, index: int, area_ratio: float, loss: CombinedLoss) -> str | None:
        """After phase epoch ``index``: maybe raise ``loss.ssim_weight``.

        Returns a one-line message when the weight was raised, else None.
        """
        if math.isfinite(area_ratio):
            self.history.append(float(area_ratio))
            self.history = self.history[-self.window :]
        if not self.active or self.fired or index < self.check_at:
            return None
        self.fired = True  # looked once, at mid-phase
        if not self.history:
            return None
        ratio = sum(self.history) / len(self.history)
        if ratio <= self.bound or loss.ssim_weight >= self.raised_ssim:
            return None
        old = loss.ssim_weight
        loss.ssim_weight = float(self.raised_ssim)
        return (
            f"area ratio >= 35 dBZ at the last lead {ratio:.2f} > "
            f"{self.bound:g} at mid-phase (mean of the last {len(self.history)} "
            f"validations): cells grow fat, SSIM weight {old:g} -> "
            f"{loss.ssim_weight:g}"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "fired": self.fired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [float(v) for v in state["history"]]
        self.fired = bool(state["fired"])
