"""Training and validation loaders built from the config.

Training (official ``get_data_loaders`` + the trainer's iterator restarts)::

    train_iter = build_train_loaders(cfg, seed)
    target_2d, target_3d = next(train_iter)      # dicts of (B2, T, ...) / (B3, T, ...) tensors (None if absent)
    inp = torch.cat([target_2d['features'], target_3d['features']])   # 2D clips first, as the official batch
    state = train_iter.state_dict()              # save with the checkpoint ...
    train_iter.load_state_dict(state)            # ... and the next batches are exactly those of the old run

- ``int(BATCH_SIZE * DATA_2D_RATIO)`` clips per step from the 2D datasets (``TRAIN.DATASETS_2D``) and the
  rest from the concatenation of the 3D datasets (``TRAIN.DATASETS_3D``), sampled in proportion to their
  numbers of windows. The official split is 38 InstaVariety + 26 3D clips for BATCH_SIZE 64, ratio 0.6.
- Each stream visits its windows in a random order and restarts with a new order when exhausted; the last
  batch of a pass may be smaller (like the official DataLoader with drop_last=False).
- The order of pass ``p`` of stream ``s`` is a permutation drawn from ``numpy.random.default_rng([seed, s, p])``,
  so the state of a stream is just (pass, batches taken in it): resuming regenerates the permutation and
  skips the batches already taken without loading them. The datasets have no random augmentation, so this is
  an exact resume whatever ``NUM_WORKERS`` is.
- Workers build whole batches (one vectorised gather per key, see ``get_batch`` of the datasets).

Validation: :func:`build_val_loader` gives a DataLoader over the ``TRAIN.DATASET_EVAL`` VAL database (official:
3DPW val) with the TCMR-style stride-1 windows of :class:`~lib.dataset.dataset3d.ValidationDataset3D`, in order.
"""
from __future__ import annotations

import functools
import logging
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lib.core.config import resolve_device
from lib.dataset.db import read_db
from lib.dataset.dataset2d import InstaDataset
from lib.dataset.dataset3d import DATASETS_3D, Dataset3D, ValidationDataset3D
from lib.core.errors import UserError

logger = logging.getLogger(__name__)

DATASETS_2D = ('Insta',)
STREAM_2D, STREAM_3D = 0, 1


def build_train_dataset(cfg, name: str):
    """The training dataset ``name`` ('Insta', 'ThreeDPW', 'MPII3D', 'Human36M') read from its TRAIN file."""
    if name in DATASETS_2D:
        return InstaDataset(read_db(cfg, name, 'TRAIN'), cfg.DATASET.SEQLEN, cfg.TRAIN.OVERLAP)
    if name in DATASETS_3D:
        return Dataset3D(read_db(cfg, name, 'TRAIN'), name, cfg.DATASET.SEQLEN, cfg.TRAIN.OVERLAP,
                         use_smpl=cfg.DATASET.H36M_USE_SMPL)
    raise UserError(f"unknown training dataset '{name}'; TRAIN.DATASETS_2D takes {', '.join(DATASETS_2D)}, "
                    f"TRAIN.DATASETS_3D takes {', '.join(DATASETS_3D)}")


class ConcatClips:
    """Several clip datasets behind one index range (like ``ConcatDataset``), serving whole batches."""

    def __init__(self, datasets: list):
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        """Clips at global ``indices`` (B,), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        which = np.searchsorted(self.offsets, indices, side='right') - 1
        parts, positions = [], []
        for d in np.unique(which):
            pos = np.flatnonzero(which == d)
            parts.append(self.datasets[d].get_batch(indices[pos] - self.offsets[d]))
            positions.append(pos)
        if len(parts) == 1:
            return parts[0]
        # rows of the concatenated parts, put back in the order of ``indices``
        back = torch.from_numpy(np.argsort(np.concatenate(positions)))
        return {key: torch.cat([part[key] for part in parts])[back] for key in parts[0]}


class _Batches(Dataset):
    """Map-style view whose items are whole batches: ``view[list_of_indices] = dataset.get_batch(indices)``."""

    def __init__(self, clips):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, indices):
        return self.clips.get_batch(np.asarray(indices, dtype=np.int64))


class ClipStream:
    """Endless, seeded, resumable batches of one clip dataset.

    Args:
        clips: object with ``__len__`` and ``get_batch(indices)``.
        batch_size: clips per batch.
        seed, stream_id: the permutation of pass ``p`` comes from ``default_rng([seed, stream_id, p])``.
        num_workers, pin_memory: DataLoader options.
    """

    def __init__(self, clips, batch_size: int, seed: int, stream_id: int, num_workers: int = 0,
                 pin_memory: bool = False):
        if len(clips) == 0:
            raise UserError("a training dataset has no windows: every sequence is shorter than DATASET.SEQLEN")
        self.clips = clips
        self.batch_size = batch_size
        self.seed = seed
        self.stream_id = stream_id
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.pass_index = 0
        self.batches_taken = 0
        self._iter = None

    def order(self, pass_index: int) -> np.ndarray:
        """The window order of pass ``pass_index``."""
        rng = np.random.default_rng([self.seed % 2**32, self.stream_id, pass_index])
        return rng.permutation(len(self.clips))

    def _start(self) -> None:
        order = self.order(self.pass_index)[self.batches_taken * self.batch_size:]
        batches = [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        loader = DataLoader(_Batches(self.clips), sampler=batches, batch_size=None,
                            num_workers=self.num_workers, pin_memory=self.pin_memory)
        self._iter = iter(loader)

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._iter is None:
            self._start()
        try:
            batch = next(self._iter)
        except StopIteration:
            self.pass_index += 1
            self.batches_taken = 0
            self._start()
            batch = next(self._iter)
        self.batches_taken += 1
        return batch

    def __iter__(self):
        return self

    def close(self) -> None:
        """Stop the worker processes (a later ``next`` restarts them where the stream stands)."""
        self._iter = None

    def state_dict(self) -> dict:
        return {'seed': self.seed, 'pass': self.pass_index, 'batches': self.batches_taken}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.seed, self.pass_index, self.batches_taken = int(state['seed']), int(state['pass']), int(state['batches'])


class MixedTrainIterator:
    """Yields ``(target_2d, target_3d)`` forever; either is None when its stream is absent (no datasets, or a
    batch share of 0). ``state_dict()`` / ``load_state_dict()`` save and restore the exact position."""

    def __init__(self, stream_2d: ClipStream | None, stream_3d: ClipStream | None):
        if stream_2d is None and stream_3d is None:
            raise UserError("no training data: TRAIN.DATASETS_2D and TRAIN.DATASETS_3D give no clips per batch")
        self.streams = {'2d': stream_2d, '3d': stream_3d}

    def __iter__(self):
        return self

    def __next__(self):
        return tuple(None if s is None else next(s) for s in (self.streams['2d'], self.streams['3d']))

    def close(self) -> None:
        for stream in self.streams.values():
            if stream is not None:
                stream.close()

    def state_dict(self) -> dict:
        return {name: None if s is None else s.state_dict() for name, s in self.streams.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, stream in self.streams.items():
            if (stream is None) != (state.get(name) is None):
                raise UserError(f"the saved loader state does not match this config's {name} datasets "
                                f"(TRAIN.DATASETS_2D/3D or DATA_2D_RATIO changed since the checkpoint)")
            if stream is not None:
                stream.load_state_dict(state[name])


def _pin(cfg) -> bool:
    return resolve_device(cfg.DEVICE).type == 'cuda'


def num_workers(cfg) -> int:
    """``NUM_WORKERS``, capped at the CPUs this process may use (said once per process and value)."""
    return _capped_workers(cfg.NUM_WORKERS)


@functools.lru_cache(maxsize=None)
def _capped_workers(requested: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    if requested <= cpus:
        return requested
    logger.info('NUM_WORKERS %d: using %d loader worker processes, the number of CPUs available', requested, cpus)
    return cpus


def batch_split(batch_size: int, ratio_2d: float) -> tuple[int, int]:
    """Clips per batch from 2D and 3D data: ``(int(batch_size * ratio_2d), rest)``."""
    n_2d = int(batch_size * ratio_2d)
    return n_2d, batch_size - n_2d


def build_train_loaders(cfg, seed: int) -> MixedTrainIterator:
    """The mixed 2D/3D training iterator of ``cfg`` (see the module docstring)."""
    n_2d, n_3d = batch_split(cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.DATA_2D_RATIO)
    pin = _pin(cfg)
    streams = []
    for names, size, stream_id in ((cfg.TRAIN.DATASETS_2D, n_2d, STREAM_2D), (cfg.TRAIN.DATASETS_3D, n_3d, STREAM_3D)):
        if not names or size <= 0:
            streams.append(None)
            continue
        clips = ConcatClips([build_train_dataset(cfg, name) for name in names])
        streams.append(ClipStream(clips, size, seed, stream_id, num_workers(cfg), pin))
    return MixedTrainIterator(*streams)


def build_val_dataset(cfg) -> ValidationDataset3D:
    """Validation windows of ``TRAIN.DATASET_EVAL``'s VAL database."""
    name = cfg.TRAIN.DATASET_EVAL
    if name not in DATASETS_3D:
        raise UserError(f"TRAIN.DATASET_EVAL '{name}' is not a 3D dataset; use one of {', '.join(DATASETS_3D)}")
    dataset = ValidationDataset3D(read_db(cfg, name, 'VAL'), name, cfg.DATASET.SEQLEN)
    if len(dataset) == 0:
        raise UserError(f"the {name} validation database has no sequence of at least {cfg.DATASET.SEQLEN} frames")
    return dataset


def build_val_loader(cfg) -> DataLoader:
    """Batches of ``TRAIN.VAL_BATCH_SIZE`` validation windows, in order (dicts as in ``ValidationDataset3D``)."""
    dataset = build_val_dataset(cfg)
    size = cfg.TRAIN.VAL_BATCH_SIZE
    batches = [list(range(i, min(i + size, len(dataset)))) for i in range(0, len(dataset), size)]
    return DataLoader(_Batches(dataset), sampler=batches, batch_size=None, num_workers=num_workers(cfg),
                      pin_memory=_pin(cfg))


TARGET_3D_KEYS = ('kp_3d', 'theta', 'w_3d', 'w_smpl')


def merge_batch(target_2d: dict | None, target_3d: dict | None,
                device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """One batch from the 2D and 3D halves, 2D clips first (official order).

    Returns:
        ``features (B, T, 2048)``, the loss target (``kp_2d (B, T, 49, 3)``, ``kp_3d (B, T, 49, 3)``,
        ``theta (B, T, 85)``, ``w_3d`` / ``w_smpl`` ``(B, T)``; 2D clips get zero 3D targets and weights) and
        the number of 2D clips.
    """
    parts = [p for p in (target_2d, target_3d) if p is not None]
    features = torch.cat([p['features'] for p in parts]).to(device, non_blocking=True)
    target = {'kp_2d': torch.cat([p['kp_2d'] for p in parts]).to(device, non_blocking=True)}
    n_2d = 0 if target_2d is None else len(target_2d['features'])
    b, t = features.shape[:2]
    shapes = {'kp_3d': (t, 49, 3), 'theta': (t, 85), 'w_3d': (t,), 'w_smpl': (t,)}
    for key in TARGET_3D_KEYS:
        pieces = [torch.zeros((n_2d, *shapes[key]))] if n_2d else []
        if target_3d is not None:
            pieces.append(target_3d[key].float())
        target[key] = torch.cat(pieces).to(device, non_blocking=True)
    return features, target, n_2d
