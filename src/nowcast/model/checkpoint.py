"""Model checkpoint files: written atomically, read with ``weights_only=True``.

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
- A checkpoint that would run pickled code is refused as unsafe
  (:class:`~nowcast.errors.ModelError`); it is never loaded another way.
- The training state (optimiser, scheduler, RNG) is the trainer's business
  (:mod:`nowcast.curriculum.trainer`, :mod:`nowcast.curriculum.rng`); this
  module only writes and reads the file and rebuilds the network.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from nowcast.errors import ModelError
from nowcast.fsutil import atomic_path
from nowcast.times import iso_z, utc_now

__all__ = [
    "FORMAT",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]

FORMAT = 1
_REQUIRED = ("format", "model", "init_kwargs")


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (see the contract) to ``path`` atomically.

    ``format`` and ``saved`` are filled in. Returns the path.
    """
    path = Path(path)
    state = {
        **state,
        "format": FORMAT,
        "saved": iso_z(utc_now()),
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
    except pickle.UnpicklingError as exc:
        if not (zipfile.is_zipfile(path) or "Unsupported global" in str(exc)):
            raise ModelError(  # not an archive torch.save wrote at all
                f"{path}: not a readable nowcast checkpoint (corrupt, truncated or "
                "not written by `nowcast train`): not a tensor archive"
            ) from None
        # weights_only refused an object that would run code when unpickled;
        # PyTorch's own message suggests loading it unsafely: we never do
        raise ModelError(
            f"{path}: refused as unsafe: it holds pickled Python objects that "
            "would run code when loaded (a nowcast checkpoint holds only tensors, "
            "numbers, strings, lists and dicts); re-export it with `nowcast train`"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if "weights_only" in first:
            first = "the file is not a plain tensor archive"
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
