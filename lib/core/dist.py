"""The process context of every tool: which rank this process is, which device it uses, and the few
collectives the tools need.

A process started by ``torchrun`` finds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment; any
other process is rank 0 of 1 (:meth:`DistContext.from_env`). The device of a rank (:meth:`DistContext.device`)
is ``DEVICE`` resolved as everywhere (:func:`lib.core.config.resolve_device`), except that in a job of several
processes a CUDA device becomes ``cuda:LOCAL_RANK`` (one GPU per process). :func:`init_process` joins the
process group: NCCL on CUDA, gloo otherwise or when only CPU objects are exchanged (``cpu_collectives``).

Users: training (DistributedDataParallel, gathered validation, summed meters), the demo's batch mode (videos
shared out by rank, the summary rows gathered on rank 0) and the online mode (which refuses ``torchrun``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from lib.core.config import resolve_device
from lib.core.errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a ``torchrun`` job: ``rank`` of ``world_size``, ``local_rank`` on its
    machine (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> 'DistContext':
        """The context ``torchrun`` describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``."""
        try:
            return cls(int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1)),
                       int(os.environ.get('LOCAL_RANK', 0)))
        except ValueError:
            raise UserError('RANK, WORLD_SIZE and LOCAL_RANK must be integers (set by torchrun)') from None

    @property
    def enabled(self) -> bool:
        """Several processes share the work."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes shared files."""
        return self.rank == 0

    def share(self, items: list) -> list[int]:
        """Indices of ``items`` this rank takes: ``rank, rank + world_size, ...``."""
        return list(range(self.rank, len(items), self.world_size))

    def device(self, cfg_device: str) -> torch.device:
        """The device of this rank for a ``DEVICE`` value: ``cuda:LOCAL_RANK`` when it resolves to CUDA in a
        job of several processes, else ``DEVICE`` resolved (``auto``: CUDA when there is one)."""
        device = resolve_device(cfg_device)
        if self.enabled and device.type == 'cuda':
            return torch.device('cuda', self.local_rank)
        return device


def init_process(cfg_device: str, cpu_collectives: bool = False, timeout_min: float | None = None
                 ) -> tuple[DistContext, torch.device]:
    """This process's context and device (:meth:`DistContext.device`), having joined ``torchrun``'s process
    group when there are several processes: NCCL on CUDA, gloo on the CPU or with ``cpu_collectives`` (only
    Python objects are exchanged). ``timeout_min``: how long a collective waits for the other ranks."""
    ctx = DistContext.from_env()
    device = ctx.device(cfg_device)
    if not ctx.enabled:
        return ctx, device
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = 'nccl' if device.type == 'cuda' and not cpu_collectives else 'gloo'
        kwargs = {} if timeout_min is None else {'timeout': timedelta(minutes=timeout_min)}
        dist.init_process_group(backend, **kwargs)
    return ctx, device


def all_gather(ctx: DistContext, obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (just ``[obj]`` without distribution)."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over the ranks, in place (``values`` itself without distribution)."""
    if ctx.enabled:
        dist.all_reduce(values)
    return values


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (e.g. until rank 0's files are on disk: torchrun stops the others when one exits)."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()


def leave_group(ctx: DistContext) -> None:
    """Leave the process group joined by :func:`init_process` (nothing without distribution)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
