"""The official learning-rate schedule: per-epoch linear warm-up, then half a cosine (as the released ``lr_scheduler``).

With peak ``max_lr`` (``TRAIN.GEN_LR``), floor ``min_lr`` (``TRAIN.GEN_MIN_LR``, officially ``GEN_LR / 10``),
``W`` warm-up epochs (``TRAIN.LR_PATIENCE``) and ``E`` epochs (``TRAIN.END_EPOCH``), epoch ``e`` (0-based)
trains at::

    e < W:   min_lr + (max_lr - min_lr) * e / W
    e >= W:  min_lr + (max_lr - min_lr) * (1 + cos(pi * (e - W) / (E - W))) / 2

This is what the release's ``CosineAnnealingWarmupRestarts(first_cycle_steps=E, warmup_steps=W,
cycle_mult=1, gamma=1)`` gives when stepped once per epoch (epoch 0 at ``min_lr``). Epochs past ``E`` restart
the cycle (``e mod E``), as that scheduler does.
"""
from __future__ import annotations

import math

import torch

from lib.core.config import ConfigError


def warmup_cosine_lr(epoch: int, max_lr: float, min_lr: float, warmup_epochs: int, total_epochs: int) -> float:
    """Learning rate of 0-based ``epoch`` (formula in the module docstring)."""
    e = epoch % total_epochs
    if e < warmup_epochs:
        return (max_lr - min_lr) * e / warmup_epochs + min_lr
    progress = (e - warmup_epochs) / (total_epochs - warmup_epochs)
    return min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


class WarmupCosineLR:
    """Sets every parameter group of ``optimizer`` to :func:`warmup_cosine_lr` of the current epoch.

    Construction applies the rate of ``epoch``; :meth:`step` moves to the next epoch (call it once at the end
    of every epoch). ``state_dict`` records the epoch and the constants; ``load_state_dict`` restores the epoch.

    Raises:
        ConfigError: ``warmup_epochs`` not in ``[0, total_epochs)`` or ``min_lr > max_lr``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, min_lr: float, warmup_epochs: int,
                 total_epochs: int, epoch: int = 0):
        if not 0 <= warmup_epochs < total_epochs:
            raise ConfigError(f"TRAIN.LR_PATIENCE (warm-up epochs, {warmup_epochs}) must be >= 0 and smaller "
                              f"than TRAIN.END_EPOCH ({total_epochs})")
        if not 0 <= min_lr <= max_lr:
            raise ConfigError(f"TRAIN.GEN_MIN_LR ({min_lr}) must be between 0 and TRAIN.GEN_LR ({max_lr})")
        self.optimizer = optimizer
        self.max_lr = max_lr
        self.min_lr = min_lr
        self.warmup_epochs = warmup_epochs
        self.total_epochs = total_epochs
        self.epoch = epoch
        self._apply()

    def lr(self, epoch: int | None = None) -> float:
        """The rate of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        return warmup_cosine_lr(epoch, self.max_lr, self.min_lr, self.warmup_epochs, self.total_epochs)

    def step(self) -> None:
        """Advance to the next epoch and set its rate."""
        self.epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """Current rate of each parameter group."""
        return [group['lr'] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {'epoch': self.epoch, 'max_lr': self.max_lr, 'min_lr': self.min_lr,
                'warmup_epochs': self.warmup_epochs, 'total_epochs': self.total_epochs}

    def load_state_dict(self, state: dict) -> None:
        """Restore the epoch; the schedule constants stay those given at construction (the config's)."""
        self.epoch = int(state['epoch'])
        self._apply()

    def _apply(self) -> None:
        lr = self.lr()
        for group in self.optimizer.param_groups:
            group['lr'] = lr


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer, epoch: int = 0) -> WarmupCosineLR:
    """The schedule of ``cfg.TRAIN`` (GEN_LR, GEN_MIN_LR, LR_PATIENCE, END_EPOCH) at ``epoch``."""
    t = cfg.TRAIN
    return WarmupCosineLR(optimizer, max_lr=t.GEN_LR, min_lr=t.GEN_MIN_LR, warmup_epochs=t.LR_PATIENCE,
                          total_epochs=t.END_EPOCH, epoch=epoch)
