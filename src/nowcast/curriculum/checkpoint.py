"""Training checkpoints: written atomically, read with ``weights_only=True``.

Contract
--------
A checkpoint is one ``torch.save`` file holding a ``dict`` of tensors, numbers,
strings, lists and dicts only, so :func:`load_checkpoint` can use
``torch.load(weights_only=True)`` (no pickled code runs when a file is read):

=================== ==========================================================
key                 content
=================== ==========================================================
``format``          :data:`FORMAT` (1)
``model``           the network's ``state_dict`` (never DDP-wrapped)
``init_kwargs``     the network's constructor keywords (``net.init_kwargs``)
``optimizer``       the optimiser's ``state_dict`` (None in an exported model)
``scheduler``       :class:`~nowcast.curriculum.phases.PhaseScheduler` state
``phase``           1, 2 or 3
``epoch``           the last epoch completed (global numbering)
``step``            optimiser steps taken in the whole run
``finished``        True once the phase has ended (its last epoch or settled)
``best``            the best validation so far (see :mod:`.trainer`)
``rules``           settle and area-ratio rule state, the loss weights in use
``metrics``         the validation of ``epoch`` (floats, lists of floats)
``data``            ``levels`` trained on, ``dbz_min``/``dbz_max``, frame counts
``config``          the settings as JSON text
``rng``             ``torch`` (CPU state tensor), ``cuda`` (list of tensors),
                    ``numpy`` (the legacy global state: key tensor and numbers),
                    ``python`` (``random.getstate()`` as lists)
``saved``           ISO time of writing
=================== ==========================================================

- :func:`save_checkpoint` writes to a temporary file beside the target and moves
  it into place (:func:`nowcast.fsutil.atomic_path`): a reader never sees a
  partial file and a failure leaves no file behind.
- :func:`load_checkpoint` and :func:`load_model` raise
  :class:`~nowcast.errors.ModelError` naming the file for a missing, unreadable,
  corrupt or incompatible checkpoint.
- :func:`rng_state` / :func:`set_rng_state` capture and restore every random
  generator training touches.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nowcast.errors import ModelError
from nowcast.fsutil import atomic_path

__all__ = [
    "FORMAT",
    "load_checkpoint",
    "load_model",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = 1
_REQUIRED = ("format", "model", "init_kwargs")


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as tensors, numbers and lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return {
        "torch": torch.get_rng_state().clone(),
        "cuda": cuda,
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": [int(version), [int(v) for v in internal], gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA only where there is one)."""
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda[:n]])
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["gauss"]),
        )
    )
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (see the contract) to ``path`` atomically.

    ``format`` and ``saved`` are filled in. Returns the path.
    """
    path = Path(path)
    state = {
        **state,
        "format": FORMAT,
        "saved": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Raises
    ------
    ModelError
        Naming the file: missing, unreadable, not a checkpoint, or of an unknown
        format.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"{path}: no such checkpoint (train one with `nowcast train`, or point "
            "paths.production_model / --model at one)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"{path}: not a readable nowcast checkpoint (corrupt, truncated or "
            f"not written by `nowcast train`): {type(exc).__name__} {first}"[:400]
        ) from None
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise ModelError(
            f"{path}: not a nowcast checkpoint (needs the keys {', '.join(_REQUIRED)})"
        )
    if state["format"] != FORMAT:
        raise ModelError(
            f"{path}: checkpoint format {state['format']}, this nowcast reads "
            f"format {FORMAT}"
        )
    return state


def meta_of(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's description: everything but weights and optimiser state."""
    skip = {"model", "optimizer", "scheduler", "rng"}
    return {k: v for k, v in state.items() if k not in skip}


def build_from_state(
    state: dict[str, Any], path: str | os.PathLike[str], **overrides: Any
) -> torch.nn.Module:
    """Rebuild the network of a loaded checkpoint and load its weights.

    ``overrides`` replace constructor keywords that do not change the weights
    (``checkpoint_steps``). Raises :class:`ModelError` naming the file when the
    weights do not fit the architecture.
    """
    from nowcast.model import build_network

    kwargs = {**dict(state["init_kwargs"]), **overrides}
    try:
        net = build_network(**kwargs)
        net.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"{path}: checkpoint does not fit this nowcast's network "
            f"({type(exc).__name__}: {first})"[:400]
        ) from None
    return net


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network of a checkpoint, on ``device`` in eval mode, and its meta.

    Returns
    -------
    net, meta
        ``meta`` is the checkpoint without weights, optimiser and RNG state
        (:func:`meta_of`), plus ``path``.
    """
    state = load_checkpoint(path, map_location="cpu")
    net = build_from_state(state, path, checkpoint_steps=False)
    try:
        net = net.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"{path}: cannot move the model to {device}: {exc}") from None
    net.eval()
    meta = meta_of(state)
    meta["path"] = str(path)
    return net, meta
