"""GLoT training (spec B.4): epochs of ``NUM_ITERS_PER_EPOCH`` steps, validation, checkpoints, exact resume, DDP.

:func:`train` is what ``train.py`` runs. It checks the data files, sets up the output folder
``OUTPUT_DIR/EXP_NAME`` (``config.yaml``, ``log.txt``, TensorBoard events, checkpoints), builds the model (global
regressor from the SPIN checkpoint), the loss, Adam, the schedule and the loaders, and calls
:meth:`Trainer.fit`.

Order of events in one epoch (``Trainer.fit``):

1. ``NUM_ITERS_PER_EPOCH`` steps. One step: next (2D, 3D) batch (2D clips first) -> forward with masking
   (``is_train=True``) -> :class:`~lib.train.loss.GLoTLoss` -> finite check (stops *before* any update, with
   the step and the first non-finite term) -> backward -> optimizer step -> TensorBoard scalars, tqdm
   running loss -> ``after_step`` hook -> stop request (SIGINT / SIGTERM) honoured here.
2. Validation on the ``TRAIN.DATASET_EVAL`` VAL file when ``epoch + 1 >= val_epoch`` (official): MPJPE,
   PA-MPJPE, PVE, ACCEL, ACCEL_ERR in mm, pooled over all validation windows in order.
3. The learning rate of the finished epoch is logged, the schedule steps to the next epoch.
4. ``checkpoint.pth.tar`` is written (every epoch), and copied to ``model_best.pth.tar`` when PA-MPJPE is the
   lowest so far. Both are written atomically and have the official layout (``epoch``, ``gen_state_dict``,
   ``performance``, ``gen_optimizer``) plus ``scheduler``, ``grad_scaler``, ``config`` and ``trainer`` (next
   epoch and iteration, global step, best and last PA-MPJPE, and per rank the python / numpy / torch RNG
   states and the loader position).

Resume (``TRAIN.RESUME`` = a path, or ``auto`` = this experiment's ``checkpoint.pth.tar`` if present) restores
all of it, so an interrupted run continues exactly: on the CPU, a run killed with SIGKILL and resumed ends
with bitwise the same weights as an uninterrupted one. SIGINT / SIGTERM finish the current step, write the
checkpoint (mid-epoch, with the iteration) and stop; a second SIGINT stops at once.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the model runs in DistributedDataParallel (NCCL on GPUs,
gloo on CPU). Every rank draws the same global batch of ``TRAIN.BATCH_SIZE`` clips (the single-process batch)
and computes only its own share of the 2D and of the 3D clips; gradients are averaged. Validation windows are
split across ranks. Only rank 0 writes files.

Official differences, on purpose: checkpoints every epoch (the release writes them only from ``val_epoch``
on), no forward pass over the validation set before ``val_epoch`` (the release runs one and discards it),
optional AMP / ``torch.compile`` (off by default).
"""
from __future__ import annotations

import logging
import math
import os
import platform
import random
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from lib.core.config import ConfigError, db_path, resolve_device, resolve_path
from lib.train.loss import GLoTLoss, build_loss
from lib.train.schedule import WarmupCosineLR, build_lr_scheduler
from lib.utils import metrics
from lib.core.errors import UserError
from lib.core.io import atomic_copy, atomic_write
from lib.utils.geometry import axis_angle_to_rotmat
from lib.utils.joints import MPII3D_TEST_PELVIS, perm_indices

logger = logging.getLogger(__name__)

CHECKPOINT = 'checkpoint.pth.tar'
BEST_CHECKPOINT = 'model_best.pth.tar'
M_TO_MM = 1000.0
AMP_DTYPES = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
OPTIMIZERS = ('Adam', 'AdamW', 'SGD')
TARGET_3D_KEYS = ('kp_3d', 'theta', 'w_3d', 'w_smpl')


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; training stopped before applying that step."""


# ------------------------------------------------------------------------------------------- distributed
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


def share(n: int, rank: int, world_size: int) -> int:
    """Size of rank ``rank``'s part of ``n`` items split as :class:`RankShare` does (``np.array_split``)."""
    return n // world_size + (1 if rank < n % world_size else 0)


def _all_gather(ctx: DistContext, obj):
    """``[obj of rank 0, obj of rank 1, ...]`` (just ``[obj]`` without distribution)."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


# ------------------------------------------------------------------------------------------- RNG state
def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict:
    """Every global random generator state this process uses."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if device.type == 'cuda' and state.get('cuda') is not None:
        torch.cuda.set_rng_state(state['cuda'], device)


# ------------------------------------------------------------------------------------------- trainer
class Trainer:
    """The training loop (event order in the module docstring).

    Args:
        cfg: frozen config.
        model: the bare GLoT on ``device`` (wrapped here for DDP / torch.compile when configured).
        criterion: the loss.
        optimizer, scheduler: over ``model.parameters()``; the schedule is per epoch.
        train_iter: yields ``(target_2d, target_3d)`` batches (either may be None) and has
            ``state_dict()`` / ``load_state_dict()`` (``lib.dataset.loaders.MixedTrainIterator``).
        val_dataset: ``__len__`` and ``get_batch(indices)`` giving ``features (B, T, 2048)``, middle-frame
            ``kp_3d (B, J, 3)`` (J = 14 LSP, or 17 MPI-INF-3DHP test joints), ``theta (B, 85)``,
            ``w_smpl (B,)`` (``lib.dataset.dataset3d.ValidationDataset3D``).
        j_regressor: ``(17, 6890)`` Human3.6M regressor for the 14 validation joints.
        out_dir: where rank 0 writes checkpoints and TensorBoard events (``tb_dir``, default ``out_dir``).
        seed: the run's seed (re-seeds the generators when a checkpoint of another world size is resumed).
        after_step: called with the trainer after every step (tests use it to interrupt a run).
        progress: show tqdm bars (None: only on a terminal).
    """

    def __init__(self, cfg, model: torch.nn.Module, criterion: GLoTLoss, optimizer: torch.optim.Optimizer,
                 scheduler: WarmupCosineLR, train_iter, val_dataset, *, device: torch.device, out_dir: Path,
                 j_regressor: torch.Tensor | None = None, ctx: DistContext = DistContext(),
                 tb_dir: Path | None = None, seed: int = 0,
                 after_step: Callable[['Trainer'], None] | None = None, progress: bool | None = None):
        self.cfg = cfg
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_iter = train_iter
        self.val_dataset = val_dataset
        self.device = device
        self.out_dir = Path(out_dir)
        self.j_regressor = None if j_regressor is None else j_regressor.to(device)
        self.ctx = ctx
        self.seed = seed
        self.after_step = after_step
        self.progress = progress if ctx.is_main else False
        self.amp_dtype = _amp_dtype(cfg.TRAIN.AMP, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.train_model = self._wrap(model, cfg.TRAIN.COMPILE)
        self.num_iters = cfg.TRAIN.NUM_ITERS_PER_EPOCH
        self.value_names = ['loss'] + criterion.term_names()   # what train_step returns, in order
        self.end_epoch = cfg.TRAIN.END_EPOCH
        self.epoch = cfg.TRAIN.START_EPOCH          # next epoch to train (0-based)
        self.iteration = 0                          # next step within that epoch
        self.global_step = 0
        self.best_performance = math.inf            # lowest validation PA-MPJPE (mm)
        self.last_performance: float | None = None  # PA-MPJPE of the latest validation
        self.history: list[dict] = []               # per finished epoch: mean loss, lr, validation metrics
        self.epoch_losses: list[float] = []         # total loss of each step of the current epoch so far
        self.stop_signal: int | None = None
        self.batch_sizes: tuple[int, int] | None = None   # global (2D, 3D) clips of the first step
        self.writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(tb_dir or out_dir))

    # ----------------------------------------------------------------------------------------- setup
    def _wrap(self, model: torch.nn.Module, compile_model: bool) -> torch.nn.Module:
        wrapped = model
        if self.ctx.enabled:
            # find_unused_parameters: the official dead weights (global fc2, KTD decshape/deccam) get no
            # gradient, and DDP must know that every step. The buffers (SMPL, mean parameters) are constants,
            # identical on every rank: no need to broadcast them each step.
            ids = [self.device.index] if self.device.type == 'cuda' else None
            wrapped = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True,
                                              broadcast_buffers=False)
        if compile_model:
            wrapped = torch.compile(wrapped)
        return wrapped

    def resume(self, path: Path) -> None:
        """Restore model, optimizer, schedule, loop position, best metric, RNG and loader states from
        ``path``. A checkpoint without trainer state (e.g. an official one) restores weights, epoch and
        performance only, like the release's resume, and the run is then not an exact continuation."""
        from lib.models import load_checkpoint

        ckpt = load_checkpoint(self.model, path)
        state = ckpt.get('trainer')
        if state is None:
            self.epoch = int(ckpt.get('epoch', -1)) + 1
            perf = ckpt.get('performance')
            self.best_performance = math.inf if perf is None else float(perf)
            try:
                self.optimizer.load_state_dict(ckpt['gen_optimizer'])
            except (KeyError, TypeError, ValueError) as err:
                logger.warning('optimizer state of %s not used (%s); Adam starts afresh', path, err)
            self.scheduler.load_state_dict({'epoch': self.epoch})
            logger.warning('%s has no trainer state (RNG, loader position): resuming at epoch %d with fresh '
                           'sampling, not an exact continuation', path, self.epoch + 1)
            return
        self.optimizer.load_state_dict(ckpt['gen_optimizer'])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        if ckpt.get('grad_scaler') and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt['grad_scaler'])
        self.epoch, self.iteration = int(state['epoch']), int(state['iteration'])
        self.global_step = int(state['global_step'])
        self.best_performance = float(state['best_performance'])
        self.last_performance = state['last_performance']
        self.history = list(state['history'])
        self.epoch_losses = list(state['epoch_losses'])
        ranks = state['ranks']
        if len(ranks) == self.ctx.world_size:
            mine = ranks[self.ctx.rank]
            self.train_iter.load_state_dict(mine['loader'])
            set_rng_state(mine['rng'], self.device)
        else:
            self.train_iter.load_state_dict(ranks[0]['loader'])
            seed_everything(int(state.get('seed', 0)) + 1000 * self.epoch + self.ctx.rank)
            logger.warning('%s was written by %d processes, this run has %d: loader position restored, '
                           'random generators re-seeded (not an exact continuation)',
                           path, len(ranks), self.ctx.world_size)
        best = f'{self.best_performance:.2f} mm' if math.isfinite(self.best_performance) else 'none yet'
        logger.info('resumed from %s at epoch %d, step %d of %d (best PA-MPJPE %s)', path, self.epoch + 1,
                    self.iteration, self.num_iters, best)

    # ----------------------------------------------------------------------------------------- loop
    def fit(self) -> dict:
        """Train until ``END_EPOCH`` or a stop signal; returns :meth:`summary`."""
        with self._stop_signals():
            try:
                if self.cfg.TRAIN.VAL_AT_START and self.global_step == 0 and self.iteration == 0:
                    self._log_validation(self.validate(), step=self.epoch)
                while self.epoch < self.end_epoch:
                    self._train_epoch()
                    if self.iteration < self.num_iters:       # stopped mid-epoch by a signal
                        self.save_checkpoint()
                        return self.summary()
                    self._end_epoch()
                    if self._stop_agreed():
                        return self.summary()
            finally:
                if self.writer is not None:
                    self.writer.flush()
        return self.summary()

    def summary(self) -> dict:
        """``epoch`` / ``iteration`` (next to run), ``best_pa_mpjpe`` (mm), ``history``, ``stop_signal``."""
        return {'epoch': self.epoch, 'iteration': self.iteration, 'global_step': self.global_step,
                'best_pa_mpjpe': self.best_performance, 'history': list(self.history),
                'stop_signal': self.stop_signal}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        close = getattr(self.train_iter, 'close', None)
        if close is not None:
            close()

    def _train_epoch(self) -> None:
        """Steps ``self.iteration .. NUM_ITERS_PER_EPOCH - 1`` of ``self.epoch`` (or until a stop request)."""
        self.train_model.train()
        totals = self.epoch_losses
        bar = tqdm(total=self.num_iters, initial=self.iteration, desc=f'epoch {self.epoch + 1}/{self.end_epoch}',
                   disable=None if self.progress is None else not self.progress, dynamic_ncols=True, leave=False)
        start = time.perf_counter()
        first = self.iteration
        while self.iteration < self.num_iters:
            values, stop = self.train_step()
            totals.append(values[0])
            self.iteration += 1
            self.global_step += 1
            if self.writer is not None:
                for name, value in zip(self.value_names, values):
                    self.writer.add_scalar(f'train/{name}', value, self.global_step)
            bar.update(1)
            bar.set_postfix(loss=f'{sum(totals) / len(totals):.3f}')
            if self.after_step is not None:
                self.after_step(self)
            if stop:
                break
        bar.close()
        steps = self.iteration - first
        if steps:
            logger.info('epoch %d/%d: %d steps, %.2f it/s, mean loss %.4f', self.epoch + 1, self.end_epoch, steps,
                        steps / (time.perf_counter() - start), sum(totals) / len(totals))

    def train_step(self) -> tuple[list[float], bool]:
        """One optimisation step (the model must be in train mode).

        Returns:
            The rank-averaged ``[total, *terms]`` (named by :attr:`value_names`) and whether any rank asked to
            stop after this step.
        Raises:
            NonFiniteLossError: a NaN / inf total or term, before anything is updated.
        """
        names = self.value_names
        with torch.random.fork_rng(devices=[]):
            # loaders may draw from torch's global generator (DataLoader seeds); keep the model's stream intact
            target_2d, target_3d = next(self.train_iter)
        features, target, n_2d = merge_batch(target_2d, target_3d, self.device)
        with self._autocast():
            local, mask, glob = self.train_model(features, is_train=True)
        total, terms = self.criterion(local[-1], glob[-1], target, mask)

        flags = [float(self.stop_signal is not None)]
        if self.batch_sizes is None:
            flags += [float(n_2d), float(features.shape[0] - n_2d)]
        vec = torch.cat([torch.stack([total.detach(), *(t.detach() for t in terms.values())]).float(),
                         total.new_tensor(flags, dtype=torch.float32)])
        if self.ctx.enabled:
            dist.all_reduce(vec)
        vec = vec.tolist()
        n_values = len(names)
        values = [v / self.ctx.world_size for v in vec[:n_values]]
        if self.batch_sizes is None:
            self.batch_sizes = (int(vec[n_values + 1]), int(vec[n_values + 2]))
            logger.info('batch: %d clips per step (%d 2D + %d 3D) over %d process(es)', sum(self.batch_sizes),
                        *self.batch_sizes, self.ctx.world_size)
        if not all(math.isfinite(v) for v in values):
            self._raise_non_finite(names, values)

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return values, vec[n_values] > 0

    def _raise_non_finite(self, names: list[str], values: list[float]) -> None:
        # name the first non-finite term; the total only if every term is finite (an overflowing sum)
        pairs = list(zip(names[1:], values[1:])) + [(names[0], values[0])]
        bad = next((n, v) for n, v in pairs if not math.isfinite(v))
        last = self.out_dir / CHECKPOINT
        kept = f'last good checkpoint: {last}' if last.is_file() else 'no checkpoint written yet'
        raise NonFiniteLossError(f"non-finite loss at epoch {self.epoch + 1} step {self.iteration + 1} (global step "
                                 f"{self.global_step + 1}): term {bad[0]} = {bad[1]}; stopped before updating the "
                                 f"weights; {kept}")

    def _end_epoch(self) -> None:
        """Validation, lr log, schedule step, checkpoints (steps 2-4 of the module docstring)."""
        epoch, losses = self.epoch, self.epoch_losses
        record = {'epoch': epoch + 1, 'lr': self.scheduler.get_last_lr()[0],
                  'loss': sum(losses) / len(losses) if losses else None}
        is_best = False
        if epoch + 1 >= self.cfg.TRAIN.val_epoch:
            val = self.validate()
            self._log_validation(val, step=epoch + 1)
            record.update(val)
            self.last_performance = val['pa_mpjpe']
            is_best = val['pa_mpjpe'] < self.best_performance
            if is_best:
                self.best_performance = val['pa_mpjpe']
        if self.writer is not None:
            self.writer.add_scalar('train/lr', record['lr'], epoch + 1)
        self.history.append(record)
        self.scheduler.step()
        self.epoch += 1
        self.iteration = 0
        self.epoch_losses = []
        self.save_checkpoint(best=is_best)

    # ----------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """The loop state saved under ``trainer`` (collective under DDP: every rank must call it)."""
        mine = {'rng': rng_state(self.device), 'loader': self.train_iter.state_dict()}
        return {'epoch': self.epoch, 'iteration': self.iteration, 'global_step': self.global_step,
                'best_performance': self.best_performance, 'last_performance': self.last_performance,
                'history': list(self.history), 'epoch_losses': list(self.epoch_losses), 'seed': self.seed,
                'ranks': _all_gather(self.ctx, mine)}

    def save_checkpoint(self, best: bool = False) -> None:
        """Write ``checkpoint.pth.tar`` (and ``model_best.pth.tar``); collective under DDP, rank 0 writes."""
        from lib.models import save_checkpoint

        state = self.state_dict()
        if not self.ctx.is_main:
            return
        # 'epoch' keeps the official meaning: the last finished epoch (0-based)
        path = save_checkpoint(self.out_dir / CHECKPOINT, self.model, epoch=self.epoch - 1,
                               performance=self.last_performance, gen_optimizer=self.optimizer,
                               scheduler=self.scheduler.state_dict(),
                               grad_scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
                               config=self.cfg.dump(), trainer=state)
        where = f'epoch {self.epoch} done' if self.iteration == 0 else \
            f'epoch {self.epoch + 1} step {self.iteration}/{self.num_iters}'
        logger.info('saved %s (%s)', path, where)
        if best:
            atomic_copy(path, self.out_dir / BEST_CHECKPOINT)
            logger.info('new best PA-MPJPE %.2f mm: saved %s', self.best_performance, self.out_dir / BEST_CHECKPOINT)

    # ----------------------------------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Metrics (mm) of the current weights on the validation windows (eval mode, middle frame).

        ``mpjpe`` / ``pa_mpjpe``: per window, joints centred on the hips (14 LSP joints, as the release's
        trainer) or on the pelvis (17 MPI-INF-3DHP joints); ``pve``: vertex error against the neutral SMPL
        of the ground-truth theta (NaN without SMPL labels); ``accel`` / ``accel_err``: second differences
        along the pooled window sequence, as the release's trainer computes them.
        """
        model = self.model
        was_training = model.training
        model.eval()
        n = len(self.val_dataset)
        size = self.cfg.TRAIN.VAL_BATCH_SIZE
        starts = list(range(0, n, size))[self.ctx.rank::self.ctx.world_size]
        parts = []
        for start in tqdm(starts, desc='validation', leave=False, dynamic_ncols=True,
                          disable=None if self.progress is None else not self.progress):
            batch = self.val_dataset.get_batch(np.arange(start, min(start + size, n)))
            parts.append((start, *self._validation_batch(batch)))
        model.train(was_training)
        gathered = sorted((p for rank_parts in _all_gather(self.ctx, parts) for p in rank_parts),
                          key=lambda p: p[0])
        pred = torch.cat([p[1] for p in gathered])
        gt = torch.cat([p[2] for p in gathered])
        pve = torch.cat([p[3] for p in gathered])
        return validation_metrics(pred, gt, pve)

    def _validation_batch(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centred predicted / target joints ``(B, J, 3)`` and per-window vertex error ``(B,)``, metres, CPU."""
        features = batch['features'].to(self.device)
        gt = batch['kp_3d'].to(self.device).float()
        lsp = gt.shape[1] == 14
        with self._autocast():
            local, _, _ = self.model(features, is_train=False, J_regressor=self.j_regressor if lsp else None,
                                     decode_global=False)
        out = local[-1]
        pred = out['kp_3d'].float()
        if lsp:
            pred, gt = metrics.centre_on_hips(pred), metrics.centre_on_hips(gt)
        else:
            pred = pred[:, perm_indices('spin', 'mpii3d_test')]
            pred = metrics.centre_on_joint(pred, MPII3D_TEST_PELVIS)
            gt = metrics.centre_on_joint(gt, MPII3D_TEST_PELVIS)
        if bool(batch['w_smpl'].bool().all()):
            pve = metrics.per_vertex_error(out['verts'].float(), self._gt_vertices(batch['theta'].to(self.device)))
        else:
            pve = torch.full((len(gt),), math.nan, device=self.device)
        return pred.cpu(), gt.cpu(), pve.cpu()

    def _gt_vertices(self, theta: torch.Tensor) -> torch.Tensor:
        """Neutral-SMPL vertices ``(B, 6890, 3)`` of ground-truth ``theta (B, 85)`` (axis-angle pose, betas)."""
        rot = axis_angle_to_rotmat(theta[:, 3:75].float().reshape(-1, 24, 3))
        out = self.model.smpl(betas=theta[:, 75:85].float(), body_pose=rot[:, 1:], global_orient=rot[:, :1])
        return out.vertices

    def _log_validation(self, val: dict[str, float], step: int) -> None:
        logger.info('validation after epoch %d: %s', step,
                    ', '.join(f'{k.upper()} {v:.2f}' for k, v in val.items()) + ' (mm)')
        if self.writer is not None:
            for key, value in val.items():
                self.writer.add_scalar(f'val/{key}_mm', value, step)

    # ----------------------------------------------------------------------------------------- helpers
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _stop_agreed(self) -> bool:
        """Whether any rank received a stop signal (collective under DDP)."""
        flag = float(self.stop_signal is not None)
        if self.ctx.enabled:
            t = torch.tensor([flag], device=self.device)
            dist.all_reduce(t)
            flag = t.item()
        return flag > 0

    @contextmanager
    def _stop_signals(self):
        """SIGINT / SIGTERM set :attr:`stop_signal` (honoured after the current step); a second SIGINT raises
        KeyboardInterrupt at once. Previous handlers come back afterwards."""
        def request_stop(signum, frame):
            if signum == signal.SIGINT and self.stop_signal is not None:
                raise KeyboardInterrupt
            self.stop_signal = signum
            logger.warning('received %s: finishing the current step, then writing a checkpoint',
                           signal.Signals(signum).name)

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, request_stop)
        except ValueError:          # not the main thread: no signal handling
            previous = {}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


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


def validation_metrics(pred: torch.Tensor, gt: torch.Tensor, pve: torch.Tensor) -> dict[str, float]:
    """MPJPE, PA-MPJPE, PVE, ACCEL, ACCEL_ERR in mm from centred ``(N, J, 3)`` joints and ``(N,)`` vertex
    errors (metres), N windows in order (the release's trainer pools them into one sequence)."""
    out = {'mpjpe': metrics.mpjpe(pred, gt).mean().item() * M_TO_MM,
           'pa_mpjpe': metrics.pa_mpjpe(pred, gt).mean().item() * M_TO_MM,
           'pve': pve.mean().item() * M_TO_MM}
    if len(pred) >= 3:
        accel = torch.linalg.vector_norm(pred[:-2] - 2 * pred[1:-1] + pred[2:], dim=-1).mean()
        out['accel'] = accel.item() * M_TO_MM
        out['accel_err'] = metrics.accel_error(pred, gt).mean().item() * M_TO_MM
    return out


def _amp_dtype(name: str, device: torch.device):
    if name not in AMP_DTYPES:
        raise ConfigError(f"TRAIN.AMP '{name}' is not one of {', '.join(AMP_DTYPES)}")
    if name == 'fp16' and device.type != 'cuda':
        raise ConfigError("TRAIN.AMP fp16 needs a CUDA device (gradient scaling); use bf16 or none on "
                          f"'{device.type}'")
    return AMP_DTYPES[name]


# ------------------------------------------------------------------------------------------- setup
def output_dir(cfg) -> Path:
    """``OUTPUT_DIR/EXP_NAME`` (relative to the working directory)."""
    return Path(cfg.OUTPUT_DIR).expanduser() / cfg.EXP_NAME


def resume_path(cfg, out_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``TRAIN.RESUME`` as a path (relative to the working directory), or
    for ``auto`` this experiment's checkpoint if it exists; None for a fresh start.

    Raises:
        UserError: an explicit ``TRAIN.RESUME`` file that does not exist.
    """
    value = cfg.TRAIN.RESUME
    if not value:
        return None
    if value == 'auto':
        path = out_dir / CHECKPOINT
        return path if path.is_file() else None
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"TRAIN.RESUME checkpoint not found: {path} (use 'auto' for {out_dir / CHECKPOINT}, "
                        "or '' to start afresh)")
    return path


def required_files(cfg, fresh: bool) -> list[tuple[str, Path]]:
    """``(what, path)`` of every file training reads: SMPL assets, the SPIN checkpoint (``fresh`` runs),
    the training databases with a non-zero batch share and the validation database."""
    from lib.dataset.loaders import batch_split

    smpl_dir = resolve_path(cfg, cfg.SMPL.MODEL_DIR)
    files = [('SMPL neutral model', smpl_dir if smpl_dir.suffix == '.pkl' else smpl_dir / 'SMPL_NEUTRAL.pkl'),
             ('SMPL mean parameters', resolve_path(cfg, cfg.SMPL.MEAN_PARAMS)),
             ('J_regressor_extra', resolve_path(cfg, cfg.SMPL.J_REGRESSOR_EXTRA)),
             ('J_regressor_h36m', resolve_path(cfg, cfg.SMPL.J_REGRESSOR_H36M))]
    if fresh:
        files.append(('SPIN checkpoint (TRAIN.PRETRAINED_REGRESSOR)',
                      resolve_path(cfg, cfg.TRAIN.PRETRAINED_REGRESSOR)))
    n_2d, n_3d = batch_split(cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.DATA_2D_RATIO)
    for names, n in ((cfg.TRAIN.DATASETS_2D, n_2d), (cfg.TRAIN.DATASETS_3D, n_3d)):
        if n > 0:
            files += [(f'{name} training database', db_path(cfg, name, 'TRAIN')) for name in names]
    files.append((f'{cfg.TRAIN.DATASET_EVAL} validation database', db_path(cfg, cfg.TRAIN.DATASET_EVAL, 'VAL')))
    return files


def check_files(cfg, fresh: bool) -> None:
    """Raise one :class:`UserError` naming every missing file, before anything is built or trained."""
    missing = [f'{what} {path}' for what, path in required_files(cfg, fresh) if not path.is_file()]
    if missing:
        raise UserError(f"{len(missing)} file(s) needed for training are missing, nothing was trained: "
                        f"{'; '.join(missing)}. README 'Real data' says where each one comes from (DATA_ROOT "
                        f"{resolve_path(cfg, '.').resolve()})")


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``TRAIN.GEN_OPTIM`` over all parameters: Adam with L2 weight decay (official), AdamW or SGD."""
    name, lr, wd = cfg.TRAIN.GEN_OPTIM, cfg.TRAIN.GEN_LR, cfg.TRAIN.GEN_WD
    kind = {o.lower(): o for o in OPTIMIZERS}.get(name.lower())
    if kind == 'Adam':
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    if kind == 'AdamW':
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    if kind == 'SGD':
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.TRAIN.GEN_MOMENTUM, weight_decay=wd)
    raise ConfigError(f"TRAIN.GEN_OPTIM '{name}' is not one of {', '.join(OPTIMIZERS)}")


def build_train_iterator(cfg, seed: int, ctx: DistContext):
    """The mixed 2D/3D training iterator; under DDP each stream serves this rank's :class:`RankShare`."""
    from lib.dataset.loaders import build_train_loaders

    train_iter = build_train_loaders(cfg, seed)
    if ctx.enabled:
        for stream in train_iter.streams.values():
            if stream is not None:
                stream.clips = RankShare(stream.clips, ctx.rank, ctx.world_size)
    return train_iter


class _TqdmHandler(logging.StreamHandler):
    """Console log lines that do not break tqdm bars; records logged with ``extra={'file_only': True}`` are
    skipped (they go to log.txt only)."""

    def emit(self, record):
        if getattr(record, 'file_only', False):
            return
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextmanager
def _logging(out_dir: Path | None, is_main: bool):
    """INFO logs of ``lib.*`` to the console and ``out_dir/log.txt`` on rank 0; warnings only elsewhere."""
    package = logging.getLogger('lib')
    old_level = package.level
    handlers: list[logging.Handler] = []
    if is_main:
        fmt = logging.Formatter('[%(asctime)s] %(message)s', '%Y-%m-%d %H:%M:%S')
        handlers = [_TqdmHandler(), logging.FileHandler(out_dir / 'log.txt')]
        for handler in handlers:
            handler.setFormatter(fmt)
            package.addHandler(handler)
    package.setLevel(logging.INFO if is_main else logging.WARNING)
    try:
        yield
    finally:
        for handler in handlers:
            package.removeHandler(handler)
            handler.close()
        package.setLevel(old_level)


def train(cfg, after_step: Callable[[Trainer], None] | None = None, progress: bool | None = None) -> dict:
    """Run (or resume) the training of ``cfg``; see the module docstring.

    Args:
        after_step: hook called after every step (tests).
        progress: tqdm bars (None: only on a terminal).
    Returns:
        :meth:`Trainer.summary`; ``stop_signal`` is set when SIGINT / SIGTERM ended the run early.
    Raises:
        UserError: missing files, an output folder that already holds a checkpoint of another run (resume
            it or pick another EXP_NAME), bad settings, a non-finite loss.
    """
    ctx, device = init_distributed(cfg)
    try:
        return _train(cfg, ctx, device, after_step, progress)
    finally:
        if ctx.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg, ctx: DistContext, device: torch.device, after_step, progress) -> dict:
    from lib.dataset.loaders import build_val_dataset
    from lib.models import build_model
    from lib.models.smpl import load_h36m_regressor

    out_dir = output_dir(cfg)
    resume = resume_path(cfg, out_dir)
    if resume is None and (out_dir / CHECKPOINT).is_file():
        raise UserError(f"{out_dir / CHECKPOINT} exists: continue that run with --resume (TRAIN.RESUME auto), or "
                        "choose another OUTPUT_DIR / EXP_NAME")
    check_files(cfg, fresh=resume is None)
    if cfg.TRAIN.BATCH_SIZE < ctx.world_size:
        raise ConfigError(f"TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} is smaller than the {ctx.world_size} processes")
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / 'config.yaml', cfg.dump())
    with _logging(out_dir, ctx.is_main):
        logger.info('command: %s', ' '.join(sys.argv))
        logger.info('python %s, torch %s, %s, device %s, %d process(es)', platform.python_version(),
                    torch.__version__, platform.platform(), device, ctx.world_size)
        logger.info('config (also in %s):\n%s', out_dir / 'config.yaml', cfg.dump(), extra={'file_only': True})
        logger.info('output: %s', out_dir)
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
        torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
        torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
        seed = cfg.SEED_VALUE if cfg.SEED_VALUE >= 0 else int.from_bytes(os.urandom(4), 'little')
        if ctx.enabled:
            seed = _all_gather(ctx, seed)[0]
        seed_everything(seed)

        model = build_model(cfg, pretrained_regressor=resume is None).to(device)
        logger.info('GLoT: %d parameters', sum(p.numel() for p in model.parameters()))
        optimizer = build_optimizer(cfg, model)
        scheduler = build_lr_scheduler(cfg, optimizer, epoch=cfg.TRAIN.START_EPOCH)
        train_iter = build_train_iterator(cfg, seed, ctx)
        val_dataset = build_val_dataset(cfg)
        logger.info('validation: %d windows of %s', len(val_dataset), cfg.TRAIN.DATASET_EVAL)
        if ctx.enabled and ctx.rank > 0:
            seed_everything(seed + ctx.rank)     # own dropout / masking stream per rank (weights come from rank 0)
        trainer = Trainer(cfg, model, build_loss(cfg), optimizer, scheduler, train_iter, val_dataset,
                          device=device, out_dir=out_dir, j_regressor=load_h36m_regressor(cfg), ctx=ctx,
                          tb_dir=Path(cfg.LOGDIR) if cfg.LOGDIR else None, seed=seed, after_step=after_step,
                          progress=progress)
        try:
            if resume is not None:
                trainer.resume(resume)
            result = trainer.fit()
        finally:
            trainer.close()
        if result['stop_signal'] is not None:
            logger.info('stopped by %s at epoch %d step %d; resume with --resume',
                        signal.Signals(result['stop_signal']).name, result['epoch'] + 1, result['iteration'])
        else:
            logger.info('training done: best validation PA-MPJPE %.2f mm (%s)', result['best_pa_mpjpe'],
                        out_dir / BEST_CHECKPOINT)
        return result
