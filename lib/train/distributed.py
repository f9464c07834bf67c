"""Each rank's share of a training batch under ``torchrun`` (the process context itself: :mod:`lib.core.dist`).

Every rank draws the same global batch (same seed) and computes its own contiguous part of it
(:class:`RankShare`); gradients are averaged by DistributedDataParallel.
"""
from __future__ import annotations

import numpy as np
import torch


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
