"""Which torch device to run on: the one rule for the daemon, training and forecasts.

Contract: :func:`resolve_device` turns a setting (``auto``, ``cpu``, ``cuda``,
``cuda:N``; ``None`` is ``auto``) into a device string. ``auto`` is ``cuda`` when
torch sees a GPU, else ``cpu`` (a broken CUDA install counts as no GPU). Asking
for CUDA where there is none raises a :class:`~nowcast.errors.NowcastError`
unless ``fallback_to_cpu`` is set: then it logs a warning and gives ``cpu``
(the daemon's choice: an operational service forecasts on what it has, while a
training run asked for a GPU stops instead of crawling on the CPU). Any other
value raises. torch is imported on the first call, not at import.
"""

from __future__ import annotations

import structlog

from nowcast.errors import NowcastError

log = structlog.get_logger(__name__)

__all__ = ["cuda_available", "resolve_device"]


def cuda_available() -> bool:
    """Whether torch sees a GPU (False when CUDA itself is broken)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA install must not stop anything
        return False


def resolve_device(setting: str | None, *, fallback_to_cpu: bool = False) -> str:
    """The device for ``setting`` (see the module contract)."""
    choice = (setting or "auto").strip().lower()
    if choice == "cpu":
        return "cpu"
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    if choice != "cuda" and not choice.startswith("cuda:"):
        raise NowcastError(f"device {setting!r}: choose auto, cpu or cuda")
    if cuda_available():
        return choice
    if fallback_to_cpu:
        log.warning(
            "device is cuda but torch sees no GPU; using the CPU", setting=setting
        )
        return "cpu"
    raise NowcastError(
        f"device {setting!r}: torch sees no CUDA device here (use auto or cpu)"
    )
