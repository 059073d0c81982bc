"""The ConvLSTM3D cell: an LSTM whose gates are 3D convolutions over (level, y, x).

Contract
--------
``ConvLSTM3DCell(in_channels, hidden_channels, kernel_size, groups)`` maps an input
``x`` ``(B, in_channels, Z, Y, X)`` and a state ``(h, c)`` (both
``(B, hidden_channels, Z, Y, X)``, or ``None`` for zeros) to ``(h', (h', c'))``:

- one ``Conv3d`` over ``concat(x, h)`` makes the ``4 * hidden`` gate
  pre-activations, in the order input, forget, output, candidate; a ``GroupNorm``
  with ``groups`` groups normalises them (with ``groups=4`` each gate is one group).
  The forget-gate share of the GroupNorm bias starts at 1 (remember by default);
- the update is the standard, peephole-free one:
  ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``, ``h' = sigmoid(o) * tanh(c')``;
- the gates may run under autocast (bf16), but ``c'`` is always float32 and the
  update itself runs in float32; ``h'`` is cast back to the autocast dtype (the
  input's dtype when autocast is off).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nowcast.model.blocks import LevelConv3d

__all__ = ["ConvLSTM3DCell", "State"]

State = tuple[torch.Tensor, torch.Tensor]


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    if isinstance(value, int):
        value = (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3 or any(v < 1 for v in value):
        raise ValueError(f"{name} must be 3 positive integers (z, y, x), got {value}")
    return value  # type: ignore[return-value]


class ConvLSTM3DCell(nn.Module):
    """A convolutional LSTM cell over (level, y, x) with GroupNorm on its gates."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int | Sequence[int] = (3, 3, 3),
        groups: int = 4,
    ) -> None:
        super().__init__()
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(
                f"in_channels ({in_channels}) and hidden_channels "
                f"({hidden_channels}) must be >= 1"
            )
        kernel = _triple(kernel_size, "kernel_size")
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(
                f"kernel_size must be odd in every axis to keep the grid, got {kernel}"
            )
        gates = 4 * hidden_channels
        if groups < 1 or gates % groups:
            raise ValueError(
                f"groups ({groups}) must divide the {gates} gate channels "
                f"(4 * hidden_channels={hidden_channels}); try 1, 2, 4 or a divisor "
                "of 4 * hidden_channels"
            )
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.conv = LevelConv3d(
            in_channels + hidden_channels,
            gates,
            kernel,
            padding=tuple(k // 2 for k in kernel),
        )
        self.norm = nn.GroupNorm(groups, gates)
        with torch.no_grad():
            self.norm.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def init_state(self, x: torch.Tensor) -> State:
        """Zero ``(h, c)`` for an input ``x``; float32."""
        b, _, z, y, w = x.shape
        shape = (b, self.hidden_channels, z, y, w)
        h = torch.zeros(shape, device=x.device, dtype=torch.float32)
        return h, torch.zeros_like(h)

    def forward(
        self, x: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        h, c = self.init_state(x) if state is None else state
        device = x.device.type
        if torch.is_autocast_enabled(device):
            out_dtype = torch.get_autocast_dtype(device)
        else:
            out_dtype = x.dtype
        pre = self.norm(self.conv(torch.cat((x, h.to(x.dtype)), dim=1)))
        with torch.autocast(device_type=device, enabled=False):
            i, f, o, g = pre.float().chunk(4, dim=1)
            c = torch.sigmoid(f) * c.float() + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        h = h.to(out_dtype)
        return h, (h, c)
