"""ConvLSTM3D Enhanced: an encoder-forecaster of 3D ConvLSTM cells.

Contract
--------
``ConvLSTM3DNet(...)(x, flow=None) -> NetOutput(frames, motion)``

- ``x``: ``(B, T_in, Z, Y, X)`` past volumes in unit range (:func:`to_unit`),
  oldest first; any ``Z >= 1`` and any ``Y, X``.
- ``flow``: optional optical-flow prior ``(B, 2, Y, X)`` in px/step (x then y, as
  pysteps' Lucas-Kanade gives it). Fed to the stem as two extra channels when
  ``flow_input=True`` (then required) and, with the advection head, the starting
  motion that the network corrects.
- ``frames``: ``(B, T_out, Z, Y, X)`` float32 in ``[0, 1]``.
- ``motion``: ``(B, T_out, 2, Y, X)`` float32 motion of each step in px/step (the
  displacement from lead ``k-1`` to lead ``k``) for the advection head, else None.
- ``prior``: optional :class:`MotionPrior` (advection head only): the
  storm-tracked prior of :mod:`nowcast.forecasters.storm_prior`. Inside
  ``prior.mask[k]`` (pixels that move with a tracked storm) lead ``k`` is warped by
  ``prior.disp[k] + R_k``, ``R_k`` the network's residual motion composed on its
  own; elsewhere by the usual composed ``flow + residual``, so an empty mask gives
  exactly the frames without the prior. Where ``prior.ceiling`` is given,
  pixels outside the mask are sampled from ``min(last, ceiling)``. ``motion``
  inside the mask is ``prior.disp[k] - prior.disp[k-1]`` plus the residual.
- ``network=False`` (advection head only): the prior alone, the same forecast
  with the network's residual motion and intensity change at zero (the cells are
  not run): the last volume moved along the flow (and ``prior``). It is what the
  network's own skill is measured against.

Layout
------
1. Stem (the same weights for every frame, run frame by frame): strided
   ``Conv3d + GroupNorm + SiLU`` blocks, e.g. 250 x 250 x 18 -> 125 -> 63 x 63 x 18.
   With ``flow_input`` the stem sees ``flow / flow_scale`` as two more channels.
2. Encoder: a stack of :class:`ConvLSTM3DCell` run over the ``T_in`` frames.
3. Forecaster: a second stack (own weights) starting from the encoder's final
   ``(h, c)``, unrolled ``T_out`` steps. Its input at each step is its own top
   hidden state of the step before (the encoder's at the first step): the
   forecast is fed back as features, without re-encoding a predicted frame.
4. Head, every lead: a :class:`Decoder` back to the full grid with skips from the
   last observed frame, then

   - ``"plain"``: ``Conv3d -> 1`` channel, clamped to ``[0, 1]``: the future
     volume painted from scratch;
   - ``"advection"``: a residual motion ``flow_scale * Conv3d(h_top)`` averaged over
     levels (one motion for the whole column), resized to the full grid and added
     to the flow prior; an intensity change ``tanh(Conv3d(decoder))``. The
     forecast is the last observed volume warped (:func:`warp`, no echo flows
     in) along the accumulated displacement (:func:`compose_displacement`) plus
     the change, clamped to ``[0, 1]``. The residual layers start at exactly
     zero, so an untrained network is its prior (the optical-flow extrapolation,
     or the storm-tracked prior where one is given).

   ``frame`` (advection head with the flow input): ``"eulerian"`` adds the
   change where the echo arrives, computed from features of the last frame
   where it was; ``"lagrangian"`` makes the change on the last frame's grid and
   moves it with the echo (lead ``k`` is ``last + change`` warped, so a growing
   cell grows where it goes), and the encoder reads the past frames aligned
   along the flow (:meth:`ConvLSTM3DNet.aligned`: frame ``t`` moved on
   ``T - 1 - t`` steps), so that what differs between them is growth, decay
   and the flow's error, not the motion. The prior alone is the same in both.

   The clamps pass gradients straight through (forward exact, identity backward),
   so a voxel stuck outside the range can still learn.

Compute: the gates may run under bf16 autocast (cell state stays float32, warp
and output in float32); ``checkpoint_steps=True`` recomputes every time step in
backward (activation checkpointing, same results; one step is stem + encoder
cells, or forecaster cells + head); :meth:`compile_cells` wraps the cell steps in
``torch.compile``. ``init_kwargs`` holds the constructor arguments for checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from nowcast.model.blocks import Decoder, LevelConv3d, Stem
from nowcast.model.cell import ConvLSTM3DCell, State
from nowcast.model.warp import (
    compose_displacement,
    steady_displacements,
    warp,
    warp_masked,
)

__all__ = ["ConvLSTM3DNet", "MotionPrior", "NetOutput"]


class MotionPrior(NamedTuple):
    """Per-lead prior displacements for the advection head (module contract)."""

    disp: torch.Tensor
    """``(B, T, 2, Y, X)`` px, ``T >= out_frames``."""
    mask: torch.Tensor
    """``(B, T, Y, X)`` float, 1 where the pixel moves with a storm."""
    ceiling: torch.Tensor | None = None
    """``(B, Y, X)`` unit-range cap of the field moved outside ``mask``."""
    motion: torch.Tensor | None = None
    """``(B, T, 2, Y, X)`` px/step motion of each step inside ``mask`` (None:
    ``disp[k] - disp[k-1]``)."""


class NetOutput(NamedTuple):
    """What :class:`ConvLSTM3DNet` returns (see the module contract)."""

    frames: torch.Tensor
    motion: torch.Tensor | None


def _clamp_unit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] in the forward pass, identity gradient in the backward."""
    return x + (x.clamp(0.0, 1.0) - x).detach()


def _zero_init(conv: nn.Conv3d) -> None:
    """The last layer of a residual starts at exactly zero (its gradient is not:
    the features it reads are not zero), so the untrained network is its prior."""
    with torch.no_grad():
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()


class ConvLSTM3DNet(nn.Module):
    """The ConvLSTM3D Enhanced encoder-forecaster (explicit arguments only)."""

    def __init__(
        self,
        in_frames: int = 8,
        out_frames: int = 7,
        hidden_channels: Sequence[int] = (32, 32),
        kernel_size: Sequence[int] = (3, 3, 3),
        stem_channels: int = 16,
        stem_strides: Sequence[Sequence[int]] = ((1, 2, 2), (1, 2, 2)),
        groups: int = 4,
        head: Literal["advection", "plain"] = "advection",
        flow_input: bool = False,
        checkpoint_steps: bool = False,
        flow_scale: float = 10.0,
        frame: Literal["eulerian", "lagrangian"] = "eulerian",
    ) -> None:
        super().__init__()
        if frame not in ("eulerian", "lagrangian"):
            raise ValueError(f"frame must be 'eulerian' or 'lagrangian', got {frame!r}")
        if frame == "lagrangian" and (head != "advection" or not flow_input):
            raise ValueError(
                "frame='lagrangian' needs the advection head and the flow input: the "
                "past frames are aligned along the flow and the change moves with it"
            )
        if head not in ("advection", "plain"):
            raise ValueError(f"head must be 'advection' or 'plain', got {head!r}")
        if in_frames < 1 or out_frames < 1:
            raise ValueError(
                f"in_frames ({in_frames}) and out_frames ({out_frames}) must be >= 1"
            )
        hidden = [int(h) for h in hidden_channels]
        if not hidden:
            raise ValueError("hidden_channels needs at least one layer")
        if flow_scale <= 0:
            raise ValueError(f"flow_scale must be > 0, got {flow_scale}")
        self.init_kwargs = {
            "in_frames": in_frames,
            "out_frames": out_frames,
            "hidden_channels": hidden,
            "kernel_size": [int(k) for k in kernel_size],
            "stem_channels": stem_channels,
            "stem_strides": [[int(v) for v in s] for s in stem_strides],
            "groups": groups,
            "head": head,
            "flow_input": flow_input,
            "checkpoint_steps": checkpoint_steps,
            "flow_scale": flow_scale,
            "frame": frame,
        }
        self.in_frames = in_frames
        self.out_frames = out_frames
        self.head = head
        self.flow_input = flow_input
        self.checkpoint_steps = checkpoint_steps
        self.flow_scale = float(flow_scale)
        self.frame = frame

        in_ch = 3 if flow_input else 1
        self.stem = Stem(in_ch, stem_channels, stem_strides, groups)
        cell_in = [self.stem.out_channels] + hidden[:-1]
        self.encoder = nn.ModuleList(
            ConvLSTM3DCell(i, h, kernel_size, groups)
            for i, h in zip(cell_in, hidden, strict=True)
        )
        fore_in = [hidden[-1]] + hidden[:-1]
        self.forecaster = nn.ModuleList(
            ConvLSTM3DCell(i, h, kernel_size, groups)
            for i, h in zip(fore_in, hidden, strict=True)
        )
        n_levels = len(self.stem.strides)
        skips = [in_ch] + [stem_channels] * (n_levels - 1) if n_levels else []
        self.decoder = Decoder(hidden[-1], skips, stem_channels, groups)
        dec_ch = self.decoder.out_channels
        if head == "plain":
            self.out = LevelConv3d(dec_ch, 1, 3, padding=1)
        else:
            self.change = LevelConv3d(dec_ch, 1, 3, padding=1)
            self.motion = LevelConv3d(hidden[-1], 2, 3, padding=1)
            _zero_init(self.change)
            _zero_init(self.motion)

    def compile_cells(self, **kwargs) -> None:
        """Wrap every cell's step in ``torch.compile`` (in place; GPU use)."""
        for cell in [*self.encoder, *self.forecaster]:
            cell.compile(**kwargs)

    # -- pieces run per time step (checkpointed when asked) ---------------------

    def _maybe_checkpoint(self, fn, *args):
        if self.checkpoint_steps and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    @staticmethod
    def _cells_step(
        cells: nn.ModuleList, inp: torch.Tensor, states: list[State | None]
    ) -> list[State]:
        new = []
        for cell, state in zip(cells, states, strict=True):
            inp, state = cell(inp, state)
            new.append(state)
        return new

    def _stem_frame(self, frame: torch.Tensor, flow: torch.Tensor | None):
        """One frame ``(B, Z, Y, X)`` -> coarse features and its skips (finest
        first: the stem input, then every stem level but the last)."""
        inp = frame.unsqueeze(1)
        if self.flow_input:
            f = (flow.float() / self.flow_scale)[:, :, None]
            inp = torch.cat((inp, f.expand(-1, -1, inp.shape[2], -1, -1)), dim=1)
        levels = self.stem(inp)
        if not levels:
            return inp, []
        return levels[-1], [inp, *levels[:-1]]

    def _encoder_step(self, frame, flow, states):
        coarse, skips = self._stem_frame(frame, flow)
        return self._cells_step(self.encoder, coarse, states), skips

    def _forecaster_step(self, inp, states, skips):
        states = self._cells_step(self.forecaster, inp, states)
        return states, self._head(states[-1][0], skips)

    def _head(self, h_top: torch.Tensor, skips: list[torch.Tensor]):
        feat = self.decoder(h_top, skips)
        if self.head == "plain":
            return (self.out(feat)[:, 0].float(),)
        residual = self.motion(h_top).float().mean(dim=2) * self.flow_scale
        change = torch.tanh(self.change(feat)[:, 0].float())
        return residual, change

    # -- forward ------------------------------------------------------------

    def residual_parameters(self) -> list[nn.Parameter]:
        """The advection head's residual layers (motion correction, intensity
        change): they start at zero; the optimiser may give them a lower rate."""
        if self.head != "advection":
            return []
        return [*self.motion.parameters(), *self.change.parameters()]

    def forward(
        self,
        x: torch.Tensor,
        flow: torch.Tensor | None = None,
        prior: MotionPrior | None = None,
        network: bool = True,
    ) -> NetOutput:
        if x.ndim != 5 or x.shape[1] != self.in_frames:
            raise ValueError(
                f"x must be (B, {self.in_frames}, Z, Y, X) in unit range, got "
                f"{tuple(x.shape)}"
            )
        b, _, z, ny, nx = x.shape
        if flow is not None and flow.shape != (b, 2, ny, nx):
            raise ValueError(
                f"flow must be (B, 2, Y, X) = {(b, 2, ny, nx)} px/step, got "
                f"{tuple(flow.shape)}"
            )
        if self.flow_input and flow is None:
            raise ValueError(
                "this network was built with flow_input=True: pass flow (B, 2, Y, X) "
                "in px/step (zeros if no optical flow is available)"
            )
        if prior is not None:
            self._check_prior(prior, b, ny, nx)
        if not network and self.head != "advection":
            raise ValueError("network=False (the prior alone) needs the advection head")
        x = x.float()
        lagrangian = self.frame == "lagrangian"
        seen = self.aligned(x, flow) if (lagrangian and network) else x
        states: list[State | None] = [None] * len(self.encoder)
        skips: list[torch.Tensor] = []
        for t in range(self.in_frames if network else 0):
            states, skips = self._maybe_checkpoint(
                self._encoder_step, seen[:, t], flow, states
            )

        last = x[:, -1]
        disp = rdisp = None
        frames, motions = [], []
        inp = states[-1][0] if network else None
        for k in range(self.out_frames):
            if network:
                states, out = self._maybe_checkpoint(
                    self._forecaster_step, inp, states, skips
                )
                inp = states[-1][0]
            else:  # the prior alone: no residual motion, no intensity change
                out = (x.new_zeros((b, 2, ny, nx)), torch.zeros_like(last))
            if self.head == "plain":
                frames.append(_clamp_unit(out[0]))
                continue
            residual, change = out
            if residual.shape[-2:] != (ny, nx):
                residual = F.interpolate(
                    residual, size=(ny, nx), mode="bilinear", align_corners=False
                )
            motion = residual if flow is None else flow.float() + residual
            disp = compose_displacement(disp, motion)
            # Eulerian: the change is added where the echo arrives; Lagrangian:
            # it is made on the last frame's grid and moves with the echo
            if lagrangian:
                field, after = _clamp_unit(last + change), 0.0
            else:
                field, after = last, change
            if prior is None:
                frames.append(_clamp_unit(warp(field, disp) + after))
                motions.append(motion)
                continue
            rdisp = compose_displacement(rdisp, residual)
            source, motion = self._prior_step(
                prior, k, field, disp, rdisp, motion, residual
            )
            frames.append(_clamp_unit(source + after))
            motions.append(motion)
        motion_out = torch.stack(motions, dim=1) if motions else None
        return NetOutput(torch.stack(frames, dim=1), motion_out)

    def aligned(self, x: torch.Tensor, flow: torch.Tensor | None) -> torch.Tensor:
        """``x`` ``(B, T, Z, Y, X)`` with each past frame moved on along ``flow`` to
        the time of the last (frame ``t`` by ``T - 1 - t`` steps, the extrapolation
        of it to now): the series the Lagrangian frame reads, where what changed
        along the motion is growth and decay, not displacement. Without a flow,
        ``x`` as it is."""
        if flow is None or x.shape[1] < 2:
            return x
        n = x.shape[1]
        disp = steady_displacements(flow.float(), n - 1)
        moved = [warp(x[:, t], disp[:, n - 2 - t]) for t in range(n - 1)]
        return torch.stack([*moved, x[:, -1]], dim=1)

    def _check_prior(self, prior: MotionPrior, b: int, ny: int, nx: int) -> None:
        if self.head != "advection":
            raise ValueError("a motion prior needs the advection head")
        d = prior.disp
        if d.ndim != 5 or d.shape[0] != b or d.shape[2:] != (2, ny, nx):
            raise ValueError(
                f"prior.disp must be (B, T, 2, Y, X) = ({b}, T, 2, {ny}, {nx}) px, "
                f"got {tuple(d.shape)}"
            )
        if d.shape[1] < self.out_frames:
            raise ValueError(
                f"prior.disp has {d.shape[1]} leads, the network forecasts "
                f"{self.out_frames}"
            )
        if prior.mask.shape != (b, d.shape[1], ny, nx):
            raise ValueError(
                f"prior.mask must be (B, T, Y, X) = ({b}, {d.shape[1]}, {ny}, {nx}), "
                f"got {tuple(prior.mask.shape)}"
            )

    @staticmethod
    def _prior_step(prior: MotionPrior, k: int, last, disp, rdisp, motion, residual):
        """Lead ``k`` with the prior: (moved field, motion of the step). ``disp``
        and ``motion`` are the network's own (flow + residual), ``rdisp`` and
        ``residual`` its residual displacement and motion alone."""
        pd = prior.disp[:, k].float()
        inside = prior.mask[:, k, None].float()
        outside = 1.0 - inside
        moved = inside * (pd + rdisp) + outside * disp
        ceiling = None if prior.ceiling is None else prior.ceiling[:, None]
        source = warp_masked(last, moved, inside, ceiling)
        if prior.motion is not None:
            step = prior.motion[:, k].float()
        else:
            step = pd if k == 0 else pd - prior.disp[:, k - 1].float()
        return source, inside * (step + residual) + outside * motion
