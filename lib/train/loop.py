"""The training loop: epochs of steps, validation, checkpoints, exact resume, stop signals.

Order of events in one epoch (:meth:`Trainer.fit`):

1. ``NUM_ITERS_PER_EPOCH`` steps. One step: next (2D, 3D) batch (2D clips first) -> forward with masking
   (``is_train=True``) -> :class:`~lib.train.loss.GLoTLoss` -> finite check (stops *before* any update, with
   the step and the first non-finite term) -> backward -> optimizer step -> TensorBoard scalars (every loss
   term and the lr, per step), tqdm running loss on a terminal, else a log line every ``TRAIN.LOG_EVERY``
   steps (loss, lr, it/s, time left) -> ``after_step`` hook -> stop request (SIGINT / SIGTERM) honoured here.
2. Validation (:mod:`lib.train.validation`) on the ``TRAIN.DATASET_EVAL`` VAL file when
   ``epoch + 1 >= val_epoch`` (as the release): mpjpe, pa_mpjpe, mpvpe, accel, accel_err in mm.
3. The schedule steps to the next epoch.
4. ``checkpoint.pth.tar`` is written (every epoch), and copied to ``model_best.pth.tar`` when PA-MPJPE is the
   lowest so far. Both are written atomically and have the official layout (``epoch``, ``gen_state_dict``,
   ``performance``, ``gen_optimizer``, both as the official trainer writes them, so each trainer resumes the
   other's files: :mod:`lib.models.checkpoint`) plus ``scheduler``, ``grad_scaler``, ``config`` and ``trainer`` (next
   epoch and iteration, global step, best and last PA-MPJPE, and per rank the python / numpy / torch RNG
   states and the loader position).

Resume restores all of it, so an interrupted run continues exactly: on the CPU, a run killed with SIGKILL and
resumed ends with bitwise the same weights as an uninterrupted one. SIGINT / SIGTERM finish the current step,
write the checkpoint (mid-epoch, with the iteration) and stop; a second SIGINT stops at once.

Differences from the release, on purpose: checkpoints every epoch (the release writes them only from
``val_epoch`` on), no forward pass over the validation set before ``val_epoch`` (the release runs one and
discards it), optional AMP / ``torch.compile`` (off by default).
"""
from __future__ import annotations

import inspect
import logging
import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from lib.core.config import ConfigError
from lib.core.dist import DistContext, all_gather, all_reduce_sum
from lib.core.errors import UserError
from lib.core.io import atomic_copy
from lib.dataset.loaders import merge_batch
from lib.models import load_checkpoint, save_checkpoint
from lib.models.checkpoint import load_optimizer_state
from lib.train.loss import GLoTLoss
from lib.train.signals import stop_signals
from lib.train.rng import rng_state, seed_everything, set_rng_state
from lib.train.schedule import WarmupCosineLR
from lib.train.validation import validate
from lib.utils.metrics import METRIC_UNITS

logger = logging.getLogger(__name__)

CHECKPOINT = 'checkpoint.pth.tar'
BEST_CHECKPOINT = 'model_best.pth.tar'
AMP_DTYPES = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# DDP without per-step buffer broadcasts (newer torch renamed the argument and warns about the old name).
NO_BUFFER_SYNC = ({'forward_sync_buffers': False}
                  if 'forward_sync_buffers' in inspect.signature(DistributedDataParallel).parameters
                  else {'broadcast_buffers': False})


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; training stopped before applying that step."""


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
        self.best_epoch: int | None = None          # checkpoint 'epoch' (0-based) that holds it
        self.last_performance: float | None = None  # PA-MPJPE of the latest validation
        self.history: list[dict] = []               # per finished epoch: mean loss, lr, validation metrics
        self.epoch_losses: list[float] = []         # total loss of each step of the current epoch so far
        self.stop_signal: int | None = None
        self.batch_sizes: tuple[int, int] | None = None   # global (2D, 3D) clips of the first step
        self.writer = SummaryWriter(log_dir=str(tb_dir or out_dir)) if ctx.is_main else None

    # ----------------------------------------------------------------------------------------- setup
    def _wrap(self, model: torch.nn.Module, compile_model: bool) -> torch.nn.Module:
        wrapped = model
        if self.ctx.enabled:
            # find_unused_parameters: the official dead weights (global fc2, KTD decshape/deccam) get no
            # gradient, and DDP must know that every step. The buffers (SMPL, mean parameters) are constants,
            # identical on every rank: no need to broadcast them each step.
            ids = [self.device.index] if self.device.type == 'cuda' else None
            wrapped = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True, **NO_BUFFER_SYNC)
        if compile_model:
            wrapped = torch.compile(wrapped)
        return wrapped

    def resume(self, path: Path) -> None:
        """Restore model, optimizer, schedule, loop position, best metric, RNG and loader states from
        ``path``. A checkpoint without trainer state (e.g. an official one) restores weights, epoch and
        performance only, like the release's resume, and the run is then not an exact continuation."""
        ckpt = load_checkpoint(self.model, path)
        state = ckpt.get('trainer')
        if state is None:
            self.epoch = int(ckpt.get('epoch', -1)) + 1
            perf = ckpt.get('performance')
            self.best_performance = math.inf if perf is None else float(perf)
            try:
                load_optimizer_state(self.optimizer, self.model, ckpt['gen_optimizer'])
            except (KeyError, TypeError, ValueError) as err:
                logger.warning('optimizer state of %s not used (%s); Adam starts afresh', path, err)
            self.scheduler.load_state_dict({'epoch': self.epoch})
            logger.warning('%s has no trainer state (RNG, loader position): resuming at epoch %d with fresh '
                           'sampling, not an exact continuation', path, self.epoch + 1)
            return
        load_optimizer_state(self.optimizer, self.model, ckpt['gen_optimizer'])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        if ckpt.get('grad_scaler') and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt['grad_scaler'])
        self.epoch, self.iteration = int(state['epoch']), int(state['iteration'])
        self.global_step = int(state['global_step'])
        self.best_performance = float(state['best_performance'])
        self.best_epoch = state.get('best_epoch')
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
        if self.ctx.is_main and Path(path).resolve() == (self.out_dir / CHECKPOINT).resolve():
            self._repair_best(path, int(ckpt['epoch']) if self.iteration == 0 else None)
        best = f'{self.best_performance:.2f} mm' if math.isfinite(self.best_performance) else 'none yet'
        logger.info('resumed from %s at epoch %d, step %d of %d (best PA-MPJPE %s)', path, self.epoch + 1,
                    self.iteration, self.num_iters, best)

    def _repair_best(self, path: Path, finished_epoch: int | None) -> None:
        """Make ``model_best.pth.tar`` hold the recorded best epoch again after a kill between the checkpoint
        write and the best-model copy: the checkpoint of that epoch is then the last one written."""
        best_file = self.out_dir / BEST_CHECKPOINT
        if self.best_epoch is None or _saved_epoch(best_file) == self.best_epoch:
            return
        if finished_epoch != self.best_epoch:
            logger.warning('%s does not hold the best epoch %d recorded in %s and cannot be rebuilt from it',
                           best_file, self.best_epoch + 1, path)
            return
        atomic_copy(path, best_file)
        logger.warning('repaired %s: it did not hold the recorded best epoch %d (a run stopped between the '
                       'checkpoint and the best-model copy)', best_file, self.best_epoch + 1)

    # ----------------------------------------------------------------------------------------- loop
    def fit(self) -> dict:
        """Train until ``END_EPOCH`` or a stop signal; returns :meth:`summary`."""
        with stop_signals(self._request_stop):
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
        lr = self.scheduler.get_last_lr()[0]
        log_every = self.cfg.TRAIN.LOG_EVERY if bar.disable and self.ctx.is_main else 0
        while self.iteration < self.num_iters:
            values, stop = self.train_step()
            totals.append(values[0])
            self.iteration += 1
            self.global_step += 1
            if self.writer is not None:
                for name, value in zip(self.value_names, values):
                    self.writer.add_scalar(f'train/{name}', value, self.global_step)
                self.writer.add_scalar('train/lr', lr, self.global_step)
            if log_every and self.iteration % log_every == 0:
                self._log_progress(self.iteration - first, time.perf_counter() - start, lr)
            bar.update(1)
            bar.set_postfix(loss=f'{sum(totals) / len(totals):.3f}')
            if self.after_step is not None:
                self.after_step(self)
            if stop:
                break
        bar.close()
        steps = self.iteration - first
        if steps:
            logger.info('epoch %d/%d: %d steps, %.2f it/s, mean loss %.4f, lr %.3g', self.epoch + 1, self.end_epoch,
                        steps, steps / (time.perf_counter() - start), sum(totals) / len(totals), lr)

    def _log_progress(self, steps: int, seconds: float, lr: float) -> None:
        """One progress line: position, running mean loss, lr, speed of this session's ``steps`` steps in
        ``seconds``, and the training time left in the epoch and in the run (validation not included)."""
        rate = steps / seconds
        left = self.num_iters - self.iteration
        run_left = left + (self.end_epoch - self.epoch - 1) * self.num_iters
        logger.info('epoch %d/%d step %d/%d: loss %.4f, lr %.3g, %.2f it/s, left: epoch %s, run %s',
                    self.epoch + 1, self.end_epoch, self.iteration, self.num_iters,
                    sum(self.epoch_losses) / len(self.epoch_losses), lr, rate, _duration(left / rate),
                    _duration(run_left / rate))

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

        values = torch.stack([total.detach(), *(t.detach() for t in terms.values())]).float()
        values = (all_reduce_sum(self.ctx, values) / self.ctx.world_size).tolist()
        if self.batch_sizes is None:
            sizes = all_reduce_sum(self.ctx, torch.tensor([n_2d, features.shape[0] - n_2d], device=self.device))
            self.batch_sizes = tuple(int(n) for n in sizes.tolist())
            logger.info('batch: %d clips per step (%d 2D + %d 3D) over %d process(es)', sum(self.batch_sizes),
                        *self.batch_sizes, self.ctx.world_size)
        if not all(math.isfinite(v) for v in values):
            self._raise_non_finite(names, values)

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return values, self._stop_agreed()

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
                self.best_epoch = epoch
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
                'best_performance': self.best_performance, 'best_epoch': self.best_epoch,
                'last_performance': self.last_performance,
                'history': list(self.history), 'epoch_losses': list(self.epoch_losses), 'seed': self.seed,
                'ranks': all_gather(self.ctx, mine)}

    def save_checkpoint(self, best: bool = False) -> None:
        """Write ``checkpoint.pth.tar`` (and ``model_best.pth.tar``); collective under DDP, rank 0 writes."""
        state = self.state_dict()
        if not self.ctx.is_main:
            return
        # 'epoch' keeps the official meaning: the last finished epoch (0-based)
        # 'performance': the latest validation PA-MPJPE, inf before the first one (the official "no best yet",
        # which the official resume takes as its best so far)
        performance = math.inf if self.last_performance is None else self.last_performance
        path = save_checkpoint(self.out_dir / CHECKPOINT, self.model, epoch=self.epoch - 1,
                               performance=performance, gen_optimizer=self.optimizer,
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
    def validate(self) -> dict[str, float]:
        """Metrics (mm) of the current weights on the validation windows (:func:`lib.train.validation.validate`)."""
        return validate(self.model, self.val_dataset, batch_size=self.cfg.TRAIN.VAL_BATCH_SIZE, device=self.device,
                        j_regressor=self.j_regressor, ctx=self.ctx, autocast=self._autocast, progress=self.progress)

    def _log_validation(self, val: dict[str, float], step: int) -> None:
        logger.info('validation after epoch %d: %s', step,
                    ', '.join(f'{k} {v:.2f} {METRIC_UNITS[k]}' for k, v in val.items()))
        if self.writer is not None:
            for key, value in val.items():
                self.writer.add_scalar(f'val/{key}', value, step)

    # ----------------------------------------------------------------------------------------- helpers
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _request_stop(self, signum: int) -> None:
        self.stop_signal = signum
        logger.warning('received %s: finishing the current step, then writing a checkpoint',
                       signal.Signals(signum).name)

    def _stop_agreed(self) -> bool:
        """Whether any rank received a stop signal (collective under DDP)."""
        flag = float(self.stop_signal is not None)
        return all_reduce_sum(self.ctx, torch.tensor([flag], device=self.device)).item() > 0





def _saved_epoch(path: Path) -> int | None:
    """The ``epoch`` entry of a checkpoint file; None when it is missing or unreadable."""
    try:
        return int(torch.load(path, map_location='cpu', weights_only=False, mmap=True)['epoch'])
    except Exception:   # missing, truncated or foreign: treated as not holding any epoch
        return None


def _duration(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


def _amp_dtype(name: str, device: torch.device):
    if name == 'fp16' and device.type != 'cuda':
        raise ConfigError("TRAIN.AMP fp16 needs a CUDA device (gradient scaling); use bf16 or none on "
                          f"'{device.type}'")
    return AMP_DTYPES[name]
