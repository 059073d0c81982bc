"""Building blocks of the network: the downsampling stem and the upsampling decoder.

Contract
--------
- :class:`Stem`: one ``Conv3d(kernel 3, stride s, padding 1) + GroupNorm + SiLU``
  per stride ``s`` in ``strides``. A stride of 2 maps ``n`` to ``ceil(n / 2)``
  (250 -> 125 -> 63), so any size >= 1 works; ``forward`` returns the output of
  every level, finest first.
- :class:`Decoder`: the mirror of the stem. From coarse features it climbs back one
  level at a time: trilinear resize to the exact size of the level below (no
  rounding trouble with odd sizes), concatenation with that level's skip features
  (the stem input or output of the last observed frame), then
  ``Conv3d(3) + GroupNorm + SiLU``. It ends at the full input grid.
- :class:`LevelConv3d`: the ``nn.Conv3d`` every block uses. On a one-level input
  it runs the central depth slice of its kernel as a 2D convolution (the same
  result, since the other slices only meet zero padding): PyTorch's CPU backend
  would otherwise pick its slow reference kernel for small one-level inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Decoder", "LevelConv3d", "Stem", "conv_block"]


class LevelConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters) that runs as a 2D convolution when ``Z = 1``.

    The shortcut applies when the depth padding is "same" (``padding = k // 2``
    with an odd depth kernel ``k``, zero padding, no depth dilation), which is
    every convolution of this package.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kz = self.kernel_size[0]
        if (
            x.shape[2] == 1
            and kz % 2 == 1
            and self.padding == (kz // 2, *self.padding[1:])
            and self.dilation[0] == 1
            and self.padding_mode == "zeros"
        ):
            out = F.conv2d(
                x[:, :, 0],
                self.weight[:, :, kz // 2],
                self.bias,
                self.stride[1:],
                self.padding[1:],
                self.dilation[1:],
                self.groups,
            )
            return out.unsqueeze(2)
        return super().forward(x)


def conv_block(
    in_channels: int,
    out_channels: int,
    groups: int,
    stride: Sequence[int] = (1, 1, 1),
) -> nn.Sequential:
    """``Conv3d(3, stride, padding 1) + GroupNorm(groups) + SiLU``."""
    if groups < 1 or out_channels % groups:
        raise ValueError(
            f"groups ({groups}) must divide the {out_channels} channels of a "
            "stem/decoder block (stem_channels)"
        )
    return nn.Sequential(
        LevelConv3d(in_channels, out_channels, 3, stride=tuple(stride), padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.SiLU(),
    )


def _check_strides(strides: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    out = []
    for s in strides:
        s = tuple(int(v) for v in s)
        if len(s) != 3 or any(v < 1 for v in s):
            raise ValueError(
                f"every stem stride must be 3 positive integers (z, y, x), got {s}"
            )
        out.append(s)
    return out


class Stem(nn.Module):
    """Strided ``Conv3d`` blocks: ``(N, C_in, Z, Y, X)`` -> a list of levels."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        strides: Sequence[Sequence[int]],
        groups: int,
    ) -> None:
        super().__init__()
        self.strides = _check_strides(strides)
        self.out_channels = channels if self.strides else in_channels
        self.blocks = nn.ModuleList(
            conv_block(in_channels if i == 0 else channels, channels, groups, s)
            for i, s in enumerate(self.strides)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for block in self.blocks:
            x = block(x)
            levels.append(x)
        return levels


class Decoder(nn.Module):
    """Climb from the coarse grid back to the input grid with skip features."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: Sequence[int],
        channels: int,
        groups: int,
    ) -> None:
        """``skip_channels[i]``: channels of the skip at level ``i`` (0 = input)."""
        super().__init__()
        self.blocks = nn.ModuleList()
        prev = in_channels
        for skip in reversed(list(skip_channels)):
            self.blocks.append(conv_block(prev + skip, channels, groups))
            prev = channels
        self.out_channels = prev

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """``skips`` finest first, one per level; returns features on ``skips[0]``'s
        grid (or ``x`` unchanged without levels)."""
        for block, skip in zip(self.blocks, reversed(list(skips)), strict=True):
            if x.shape[-3:] != skip.shape[-3:]:
                x = F.interpolate(
                    x, size=skip.shape[-3:], mode="trilinear", align_corners=False
                )
            x = block(torch.cat((x, skip.to(x.dtype)), dim=1))
        return x
