"""From the configuration to the network's explicit arguments.

Contract
--------
This is the only module of :mod:`nowcast.model` that reads a configuration object:
:func:`network_kwargs` maps a :class:`~nowcast.config.ModelConfig` (plus the frame
counts of ``[grid]`` and the compute switches of ``[curriculum]``, given as
keywords) to the keyword arguments of :class:`ConvLSTM3DNet`; :func:`build_network`
builds the network from such keywords. The network classes never see the config.
"""

from __future__ import annotations

from typing import Any

from nowcast.model.network import ConvLSTM3DNet

__all__ = ["build_network", "network_kwargs"]


def network_kwargs(
    model_cfg: Any,
    *,
    in_frames: int = 8,
    out_frames: int = 7,
    checkpoint_steps: bool = False,
) -> dict[str, Any]:
    """The :class:`ConvLSTM3DNet` keywords for a ``ModelConfig``.

    Parameters
    ----------
    model_cfg
        ``settings.model``.
    in_frames, out_frames
        ``settings.grid.input_frames`` and ``settings.grid.output_frames``.
    checkpoint_steps
        ``settings.curriculum.checkpoint_activations`` when training.
    """
    return {
        "in_frames": int(in_frames),
        "out_frames": int(out_frames),
        "hidden_channels": tuple(int(h) for h in model_cfg.hidden_channels),
        "kernel_size": tuple(int(k) for k in model_cfg.kernel_size),
        "stem_channels": int(model_cfg.stem_channels),
        "stem_strides": tuple(
            tuple(int(v) for v in s) for s in model_cfg.stem_strides
        ),
        "groups": int(model_cfg.groups),
        "head": model_cfg.head,
        "flow_input": bool(model_cfg.use_flow_input),
        "frame": str(getattr(model_cfg, "frame", "eulerian")),
        "checkpoint_steps": bool(checkpoint_steps),
    }


def build_network(**kwargs: Any) -> ConvLSTM3DNet:
    """Build a :class:`ConvLSTM3DNet` from explicit keyword arguments.

    ``net.init_kwargs`` holds them again (JSON-friendly) for checkpoints, so
    ``build_network(**net.init_kwargs)`` rebuilds the same architecture.
    """
    return ConvLSTM3DNet(**kwargs)
