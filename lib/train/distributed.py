"""Distributed training helpers: the ``torchrun`` process group, each rank's share of a batch, gathering.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank draws the same global batch (same seed) and computes its
own contiguous part of it (:class:`RankShare`); gradients are averaged by DistributedDataParallel. NCCL with
one GPU per process on CUDA, gloo otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from lib.core.config import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a ``torchrun`` job (rank 0 of 1 without one)."""
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(cfg) -> tuple[DistContext, torch.device]:
    """Join the ``torchrun`` process group if there is one (``WORLD_SIZE`` > 1), and pick the device.

    NCCL with one GPU per process (``cuda:LOCAL_RANK``) when ``DEVICE`` resolves to CUDA, gloo otherwise.
    """
    device = resolve_device(cfg.DEVICE)
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return DistContext(), device
    rank = int(os.environ['RANK'])
    if device.type == 'cuda':
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return DistContext(rank, world_size), device


class RankShare:
    """This rank's share of every batch of a clip dataset (``__len__`` + ``get_batch(indices)``).

    All ranks draw the same batch indices (same seed); rank r keeps the r-th of ``world_size`` near-equal
    contiguous parts. A part that would be empty (a batch with fewer clips than ranks, only possible at the
    end of a pass) takes one clip of the batch instead, so every rank always has data.
    """

    def __init__(self, clips, rank: int, world_size: int):
        self.clips = clips
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.clips)

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        indices = np.asarray(indices, dtype=np.int64)
        part = np.array_split(indices, self.world_size)[self.rank]
        if len(part) == 0:
            part = indices[self.rank % len(indices):][:1]
        return self.clips.get_batch(part)


def all_gather(ctx: DistContext, obj):
    """``[obj of rank 0, obj of rank 1, ...]`` (just ``[obj]`` without distribution)."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over the ranks (``values`` itself without distribution)."""
    if ctx.enabled:
        dist.all_reduce(values)
    return values
