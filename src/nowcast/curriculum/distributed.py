"""Devices and data-parallel training (``torchrun --nproc-per-node N``).

Contract
--------
- The device comes from :func:`nowcast.model.device.resolve_device` (asking
  for CUDA without one raises a ``NowcastError``).
- :func:`setup` reads torchrun's environment (``WORLD_SIZE``, ``RANK``,
  ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). With ``WORLD_SIZE > 1`` it
  joins the process group (``nccl`` on CUDA, each rank on ``cuda:LOCAL_RANK``;
  ``gloo`` on the CPU) and returns a :class:`Dist` whose ``is_main`` is rank 0,
  the only rank that writes checkpoints, store rows and progress. Without
  torchrun it is a one-process :class:`Dist` and touches nothing.
- :meth:`Dist.wrap` wraps the network in ``DistributedDataParallel`` (gradients
  averaged every step); :func:`unwrap` gives the bare network back (checkpoints
  never hold the ``module.`` prefix).
- :meth:`Dist.close` leaves the group (idempotent), and the group is then
  gone: its gloo worker threads are joined before the interpreter exits.
  ``torch.distributed.nn.functional`` binds ``group.WORLD`` as a default
  argument when first imported (DDP imports it on wrapping); imported after
  the group exists it would keep the group alive forever, its threads would
  outlive Python, and a thread dropping the last reference to a finished
  all-reduce during interpreter shutdown aborted the rank (``terminate called
  without an active exception``) in 11 of 140 two-rank runs on CPU-2. So
  :func:`setup` imports it before joining the group.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nowcast.model.device import resolve_device

__all__ = ["Dist", "setup", "unwrap"]


@dataclass
class Dist:
    """Where this process stands in a (maybe one-process) training job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"
    initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return DistributedDataParallel(net, device_ids=ids)

    def barrier(self) -> None:
        if self.initialised:
            dist.barrier()

    def close(self) -> None:
        if self.initialised and dist.is_initialized():
            dist.destroy_process_group()
        self.initialised = False


def setup(device_setting: str | None = "auto") -> Dist:
    """Join torchrun's process group when there is one (see the contract)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_setting)
    if world <= 1:
        if device == "cuda":
            device = "cuda:0" if torch.cuda.device_count() else device
        return Dist(device=device)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        importlib.import_module("torch.distributed.nn.functional")  # the contract
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local, device, True)


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside a DDP (or compiled) wrapper."""
    while hasattr(net, "module"):
        net = net.module
    return net
