"""nowcast.model: ConvLSTM3D cells and networks (explicit arguments, no config).

- :mod:`~nowcast.model.cell`: :class:`ConvLSTM3DCell`.
- :mod:`~nowcast.model.blocks`: the downsampling stem and the upsampling decoder.
- :mod:`~nowcast.model.warp`: differentiable semi-Lagrangian warping.
- :mod:`~nowcast.model.network`: :class:`ConvLSTM3DNet`, :class:`NetOutput` and
  :class:`MotionPrior`.
- :mod:`~nowcast.model.normalise`: dBZ <-> unit range.
- :mod:`~nowcast.model.factory`: ``ModelConfig`` -> keyword arguments (the only
  place that reads the config).
- :mod:`~nowcast.model.checkpoint`: the checkpoint file: write atomically, read
  safely (tensors only), rebuild the network.
- :mod:`~nowcast.model.device`: ``daemon.device`` / ``--device`` to a torch device.

Nothing here imports the trainer (:mod:`nowcast.curriculum`) or the forecasters
(:mod:`nowcast.forecasters`): the model forecaster, its optical-flow prior and its
storm-tracked prior live in :mod:`nowcast.forecasters` and import this package.
"""

from nowcast.model.cell import ConvLSTM3DCell
from nowcast.model.factory import build_network, network_kwargs
from nowcast.model.network import ConvLSTM3DNet, MotionPrior, NetOutput
from nowcast.model.normalise import from_unit, to_unit
from nowcast.model.warp import compose_displacement, warp

__all__ = [
    "ConvLSTM3DCell",
    "ConvLSTM3DNet",
    "MotionPrior",
    "NetOutput",
    "build_network",
    "compose_displacement",
    "from_unit",
    "network_kwargs",
    "to_unit",
    "warp",
]
