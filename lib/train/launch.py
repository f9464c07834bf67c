"""Setting up and running a training: output folder, resume point, file checks, the model, optimizer,
schedule and loaders, then :meth:`lib.train.loop.Trainer.fit`.

:func:`train` is what ``train.py`` runs. The output folder ``OUTPUT_DIR/EXP_NAME`` receives ``config.yaml``,
``log.txt``, TensorBoard events and the checkpoints. Resume (``TRAIN.RESUME`` = a path, or ``auto`` = this
experiment's ``checkpoint.pth.tar`` if present) continues a run exactly (see :mod:`lib.train.loop`).

Before anything touches the output folder, the main process probes it (:func:`lib.core.io.probe_output_dir`): a
read-only folder or mount, a path through a file or a full disk stops the run in one line. A folder holding an
earlier run's checkpoint is refused for a fresh start; a folder whose earlier run left no checkpoint (it was
stopped before writing its first one) does not block anything: a fresh start or ``auto`` starts afresh, and
that run's ``config.yaml``, ``log.txt`` and TensorBoard events move to ``earlier_<time>/`` beside the new ones.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the model runs in DistributedDataParallel (NCCL on GPUs,
gloo on CPU). Every rank draws the same global batch of ``TRAIN.BATCH_SIZE`` clips (the single-process batch)
and computes only its own share of the 2D and of the 3D clips; gradients are averaged. Validation windows are
split across ranks. Only rank 0 writes files.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

from lib.core.config import ConfigError, stored_config_changes
from lib.core.dist import DistContext, all_gather, init_process, leave_group
from lib.core.errors import UserError
from lib.core.files import NeededFile, body_model_files, database_file, spin_checkpoint_file
from lib.core.files import check_files as check_needed_files
from lib.core.io import RunLock, prepare_output_dir, probe_output_dir
from lib.core.logs import LOG_FILE, log_file, log_run, write_run_config
from lib.dataset.loaders import batch_split, build_train_loaders, build_val_dataset
from lib.models import build_model
from lib.models.checkpoint import read_checkpoint
from lib.models.smpl import load_h36m_regressor
from lib.train.distributed import RankShare
from lib.train.loop import BEST_CHECKPOINT, CHECKPOINT, Trainer
from lib.train.loss import build_loss
from lib.train.rng import seed_everything
from lib.train.schedule import build_lr_scheduler

logger = logging.getLogger(__name__)

OPTIMIZERS = ('Adam', 'AdamW', 'SGD')
OUTPUT_FIX = 'set OUTPUT_DIR to a folder that can be written'   # what an unwritable output folder error says
# What a resumed run must keep: the architecture, the data mix and the batch layout (the saved loader position
# and RNG states only mean the same clips under them). Everything else (END_EPOCH, learning rates, workers,
# device, validation settings, ...) may change on resume.
PINNED_KEYS = ('MODEL', 'DATASET.SEQLEN', 'DATASET.FILES', 'DATASET.H36M_USE_SMPL', 'TRAIN.DATASETS_2D',
               'TRAIN.DATASETS_3D', 'TRAIN.DATA_2D_RATIO', 'TRAIN.BATCH_SIZE', 'TRAIN.OVERLAP',
               'TRAIN.NUM_ITERS_PER_EPOCH', 'TRAIN.DATASET_EVAL', 'LOSS')


def output_dir(cfg) -> Path:
    """``OUTPUT_DIR/EXP_NAME`` (relative to the working directory)."""
    return Path(cfg.OUTPUT_DIR).expanduser() / cfg.EXP_NAME


def resume_path(cfg, out_dir: Path, required: bool = False) -> Path | None:
    """The checkpoint to resume from: ``TRAIN.RESUME`` as a path (relative to the working directory), or
    for ``auto`` this experiment's checkpoint if it exists; None for a fresh start.

    Args:
        required: ``train.py --resume``: a run to continue must exist.
    Raises:
        UserError: an explicit ``TRAIN.RESUME`` file that does not exist; nothing to resume when ``required``.
    """
    value = cfg.TRAIN.RESUME
    if not value or value == 'auto':
        path = out_dir / CHECKPOINT
        if path.is_file() and value == 'auto':
            return path
        if required:
            raise UserError(f"--resume: nothing to resume, {_why_no_checkpoint(out_dir)}; run without --resume "
                            "to start afresh (or name a checkpoint with TRAIN.RESUME PATH)")
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"TRAIN.RESUME checkpoint not found: {path} (use 'auto' for {out_dir / CHECKPOINT}, "
                        "or '' to start afresh)")
    return path


def _why_no_checkpoint(out_dir: Path) -> str:
    """Why ``out_dir`` has no checkpoint to resume, for the --resume refusal."""
    if (out_dir / BEST_CHECKPOINT).is_file():
        return (f"{out_dir} holds {BEST_CHECKPOINT} but no {CHECKPOINT} (continue from the best model with "
                f"TRAIN.RESUME {out_dir / BEST_CHECKPOINT}, or move it away to start afresh)")
    if earlier_run_logs(out_dir):
        return (f"the earlier run in {out_dir} left no checkpoint (it was stopped before writing its first "
                "one; a fresh start sets its logs aside, deleting nothing)")
    return f"{out_dir / CHECKPOINT} does not exist"


def required_files(cfg, fresh: bool) -> list[NeededFile]:
    """Every file training reads: SMPL assets, the SPIN checkpoint (``fresh`` runs), the training databases
    with a non-zero batch share and the validation database."""
    files = body_model_files(cfg, h36m_regressor=True)
    if fresh:
        files.append(spin_checkpoint_file(cfg))
    n_2d, n_3d = batch_split(cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.DATA_2D_RATIO)
    for names, n in ((cfg.TRAIN.DATASETS_2D, n_2d), (cfg.TRAIN.DATASETS_3D, n_3d)):
        if n > 0:
            files += [database_file(cfg, name, 'TRAIN') for name in names]
    files.append(database_file(cfg, cfg.TRAIN.DATASET_EVAL, 'VAL'))
    return files


def earlier_checkpoints(out_dir: Path) -> list[Path]:
    """The checkpoints of an earlier run in ``out_dir`` (``checkpoint.pth.tar``, ``model_best.pth.tar``)."""
    return [p for p in (out_dir / CHECKPOINT, out_dir / BEST_CHECKPOINT) if p.is_file()]


def earlier_run_logs(out_dir: Path) -> list[Path]:
    """What an earlier run that wrote no checkpoint left in ``out_dir``: config, log, TensorBoard events."""
    names = [out_dir / 'config.yaml', out_dir / LOG_FILE]
    return [p for p in names if p.is_file()] + sorted(out_dir.glob('events.out.tfevents.*'))


def set_aside_earlier_logs(out_dir: Path, files: list[Path]) -> Path:
    """Move ``files`` (:func:`earlier_run_logs`) into ``out_dir/earlier_<time>/`` so that the new run's log and
    TensorBoard curves do not mix with them; returns that folder. Renames only: nothing is copied or deleted."""
    stamp = time.strftime('%Y%m%d-%H%M%S')
    folder, count = out_dir / f'earlier_{stamp}', 1
    while folder.exists():
        folder, count = out_dir / f'earlier_{stamp}.{count}', count + 1
    folder.mkdir()
    for path in files:
        os.replace(path, folder / path.name)
    return folder


def check_resume_settings(cfg, path: Path) -> None:
    """Refuse to resume ``path`` under settings of :data:`PINNED_KEYS` other than those it was trained with
    (one line listing them). A checkpoint without a stored config (an official one) is not checked."""
    changes = stored_config_changes(read_checkpoint(path).get('config'), cfg, PINNED_KEYS)
    if changes:
        raise UserError(f"cannot resume {path} with other settings than it was trained with: {'; '.join(changes)}; "
                        "put them back, or start a new run (another EXP_NAME)")


def check_files(cfg, fresh: bool) -> None:
    """Raise one :class:`~lib.core.files.MissingFilesError` listing every missing file, before anything is
    built or trained."""
    check_needed_files(cfg, required_files(cfg, fresh), 'train')


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
    train_iter = build_train_loaders(cfg, seed)
    if ctx.enabled:
        for stream in train_iter.streams.values():
            if stream is not None:
                stream.clips = RankShare(stream.clips, ctx.rank, ctx.world_size)
    return train_iter


def train(cfg, after_step: Callable[[Trainer], None] | None = None, progress: bool | None = None,
          require_resume: bool = False) -> dict:
    """Run (or resume) the training of ``cfg``; see the module docstring.

    The main process probes ``OUTPUT_DIR/EXP_NAME`` first, then holds :class:`lib.core.io.RunLock` on it for
    the whole run, so a second run into the same folder is refused. A fresh start refuses a folder that holds
    an earlier run's checkpoint (one that left none is set aside, see the module docstring); a resume refuses
    changed :data:`PINNED_KEYS`.

    Args:
        after_step: hook called after every step (tests).
        progress: tqdm bars (None: only on a terminal).
        require_resume: ``train.py --resume``: fail when there is nothing to resume.
    Returns:
        :meth:`Trainer.summary`; ``stop_signal`` is set when SIGINT / SIGTERM ended the run early.
    Raises:
        UserError: missing files, a folder in use or holding another run, nothing to resume, changed
            settings on resume, an output that cannot be written, bad settings, a non-finite loss.
    """
    ctx, device = init_process(cfg.DEVICE)
    out_dir = output_dir(cfg)
    if ctx.is_main:
        probe_output_dir(out_dir, OUTPUT_FIX)
    check_files(cfg, fresh=resume_path(cfg, out_dir, require_resume) is None)
    if cfg.TRAIN.BATCH_SIZE < ctx.world_size:
        raise ConfigError(f"TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE} is smaller than the {ctx.world_size} processes")
    try:
        with RunLock(out_dir, 'training run') if ctx.is_main else nullcontext():
            resume = resume_path(cfg, out_dir, require_resume)     # again, now that the folder is ours
            earlier = earlier_checkpoints(out_dir) if resume is None else []
            if earlier and (out_dir / CHECKPOINT).is_file():
                raise UserError(f"{out_dir} holds an earlier run ({', '.join(p.name for p in earlier)}): continue it "
                                "with --resume, or choose another OUTPUT_DIR / EXP_NAME")
            if earlier:
                raise UserError(f"{out_dir} holds {BEST_CHECKPOINT} of an earlier run (and no {CHECKPOINT} to "
                                "resume): move it away, or choose another OUTPUT_DIR / EXP_NAME")
            if resume is not None:
                check_resume_settings(cfg, resume)
            leftovers = earlier_run_logs(out_dir) if resume is None and ctx.is_main else []
            return _train(cfg, ctx, device, out_dir, resume, leftovers, after_step, progress)
    finally:
        leave_group(ctx)


def _train(cfg, ctx: DistContext, device: torch.device, out_dir: Path, resume: Path | None,
           leftovers: list[Path], after_step, progress) -> dict:
    set_aside = None
    if ctx.is_main:
        prepare_output_dir(out_dir, OUTPUT_FIX)
        if leftovers:
            set_aside = set_aside_earlier_logs(out_dir, leftovers)
        write_run_config(out_dir, cfg)
    with log_file(out_dir, ctx.is_main):
        log_run(cfg, device, out_dir, ctx.world_size)
        if set_aside is not None:
            logger.info('the earlier run in %s left no checkpoint (it was stopped before writing its first one): '
                        'starting afresh; its %s moved to %s', out_dir, ', '.join(p.name for p in leftovers),
                        set_aside)
        logger.info('output: %s', out_dir)
        torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
        torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
        torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
        seed = cfg.SEED_VALUE if cfg.SEED_VALUE >= 0 else int.from_bytes(os.urandom(4), 'little')
        if ctx.enabled:
            seed = all_gather(ctx, seed)[0]
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
        elif math.isfinite(result['best_pa_mpjpe']):
            logger.info('training done: best validation PA-MPJPE %.2f mm (%s)', result['best_pa_mpjpe'],
                        out_dir / BEST_CHECKPOINT)
        else:
            logger.info('training done without validation (TRAIN.val_epoch %d > END_EPOCH %d), so no %s; the '
                        'last weights are in %s', cfg.TRAIN.val_epoch, cfg.TRAIN.END_EPOCH, BEST_CHECKPOINT,
                        out_dir / CHECKPOINT)
        return result
