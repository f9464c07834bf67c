"""Training loop on generated data: the loss goes down, interrupted runs resume bitwise, DDP on gloo works.

One small configuration everywhere (official loss and schedule, a narrow transformer so that a step takes
well under a second on 2 CPU cores): batch 4 (2 InstaVariety + 2 3DPW clips), 3 steps per epoch, 2 epochs.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lib.core.config import load_config
from lib.core.files import DB_SOURCES
from lib.train.distributed import RankShare
from lib.train.launch import train
from lib.train.loop import BEST_CHECKPOINT, CHECKPOINT, NonFiniteLossError
from lib.core.errors import UserError
from scripts.make_synthetic_data import make_synthetic_data

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    'DEVICE': 'cpu', 'NUM_WORKERS': 0, 'SEED_VALUE': 3, 'DATASET.SEQLEN': 16,
    'LOSS.KP_2D_W': 300.0, 'LOSS.KP_3D_W': 300.0, 'LOSS.SHAPE_W': 0.06, 'LOSS.POSE_W': 60.0,
    'LOSS.vel_or_accel_2d_weight': 10.0, 'LOSS.use_accel': False,
    'TRAIN.BATCH_SIZE': 4, 'TRAIN.DATA_2D_RATIO': 0.5, 'TRAIN.NUM_ITERS_PER_EPOCH': 3, 'TRAIN.END_EPOCH': 2,
    'TRAIN.LR_PATIENCE': 0, 'TRAIN.GEN_LR': 1e-4, 'TRAIN.GEN_MIN_LR': 1e-5, 'TRAIN.GEN_WD': 0.0,
    'TRAIN.val_epoch': 1, 'TRAIN.OVERLAP': 0.0, 'TRAIN.DATASETS_2D': "['Insta']",
    'TRAIN.DATASETS_3D': "['ThreeDPW']", 'TRAIN.DATASET_EVAL': 'ThreeDPW',
    'MODEL.d_model': 64, 'MODEL.n_layers': 1, 'MODEL.short_d_model': 64, 'MODEL.short_n_layers': 1,
    'MODEL.mask_ratio': 0.5, 'MODEL.dropout': 0.1, 'MODEL.drop_path_r': 0.2, 'TRAIN.LOG_EVERY': 2,
}


@pytest.fixture(scope='module')
def data_root(synthetic_root, tmp_path_factory) -> Path:
    """Generated assets plus tiny 3DPW train/val and InstaVariety databases."""
    root = tmp_path_factory.mktemp('train_data')
    (root / 'base_data').symlink_to(synthetic_root / 'base_data', target_is_directory=True)
    make_synthetic_data(root, seed=0, sizes={'3dpw_train': (2, 32), '3dpw_val': (1, 32), 'insta_train': (2, 32)},
                        raw_3dpw=False, occ_names=False, only=('3dpw_train', '3dpw_val', 'insta_train'))
    return root


def _cfg(data_root: Path, out: Path, **overrides):
    opts = {**SMALL, 'DATA_ROOT': str(data_root), 'OUTPUT_DIR': str(out), 'EXP_NAME': 'run', **overrides}
    return load_config(None, [str(x) for kv in opts.items() for x in kv])


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / 'run' / CHECKPOINT, map_location='cpu', weights_only=False)['gen_state_dict']


@pytest.fixture(scope='module')
def reference(data_root, tmp_path_factory):
    """An uninterrupted run: (output folder, summary)."""
    out = tmp_path_factory.mktemp('reference')
    return out, train(_cfg(data_root, out), progress=False)


def test_run_lowers_loss_and_writes_outputs(reference):
    out, result = reference
    history = result['history']
    assert [h['epoch'] for h in history] == [1, 2] and result['global_step'] == 6
    assert history[1]['loss'] < 0.8 * history[0]['loss']
    run = out / 'run'
    for name in ('config.yaml', 'log.txt', CHECKPOINT, BEST_CHECKPOINT):
        assert (run / name).is_file(), name
    assert list(run.glob('events.out.tfevents.*'))
    ckpt = torch.load(run / CHECKPOINT, map_location='cpu', weights_only=False)
    assert {'epoch', 'gen_state_dict', 'performance', 'gen_optimizer'} <= set(ckpt)
    assert ckpt['epoch'] == 1 and ckpt['trainer']['epoch'] == 2 and ckpt['trainer']['iteration'] == 0
    assert ckpt['performance'] == pytest.approx(history[1]['pa_mpjpe'])
    best = torch.load(run / BEST_CHECKPOINT, map_location='cpu', weights_only=False)
    assert best['performance'] == pytest.approx(min(h['pa_mpjpe'] for h in history))
    assert [h['lr'] for h in history] == pytest.approx([1e-4, 1e-5 + 9e-5 * (1 + np.cos(np.pi / 2)) / 2])
    log = (run / 'log.txt').read_text()
    assert 'batch: 4 clips per step (2 2D + 2 3D) over 1 process(es)' in log
    assert re.search(r'validation after epoch 2: mpjpe [\d.]+ mm, pa_mpjpe [\d.]+ mm, mpvpe [\d.]+ mm, '
                     r'accel [\d.]+ mm/frame\^2, accel_err [\d.]+ mm/frame\^2\n', log)
    # not on a terminal: a progress line every TRAIN.LOG_EVERY (2) steps
    assert re.search(r'epoch 2/2 step 2/3: loss [\d.]+, lr 5.5e-05, [\d.]+ it/s, left: epoch 0:\d\d, run 0:\d\d\n', log)
    assert 'epoch 1/2: 3 steps, ' in log and ', lr 0.0001\n' in log
    # TensorBoard: the lr per step like the losses, the validation metrics under their results.json names
    events = EventAccumulator(str(run)).Reload()
    lr = events.Scalars('train/lr')
    assert [e.step for e in lr] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in lr] == pytest.approx([1e-4] * 3 + [5.5e-5] * 3)
    assert [e.step for e in events.Scalars('train/loss')] == [1, 2, 3, 4, 5, 6]
    assert {'val/pa_mpjpe', 'val/mpjpe', 'val/mpvpe', 'val/accel', 'val/accel_err'} <= set(events.Tags()['scalars'])


class _Killed(Exception):
    """Stands in for SIGKILL: the process dies without writing anything."""


def test_interrupted_runs_resume_bitwise(data_root, reference, tmp_path):
    ref_out, ref_result = reference

    # 1) SIGTERM during step 1: step 2 still runs, then a mid-epoch checkpoint (epoch 1, step 2 of 3)
    def sigterm_at_step_1(trainer):
        if trainer.global_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    first = train(_cfg(data_root, tmp_path), after_step=sigterm_at_step_1, progress=False)
    assert first['stop_signal'] == signal.SIGTERM and (first['epoch'], first['iteration']) == (0, 2)
    saved = torch.load(tmp_path / 'run' / CHECKPOINT, map_location='cpu', weights_only=False)
    assert (saved['trainer']['epoch'], saved['trainer']['iteration']) == (0, 2)

    # 2) resume, then "SIGKILL" in epoch 2 after step 5: only the end-of-epoch-1 checkpoint survives
    def kill_at_step_5(trainer):
        if trainer.global_step == 5:
            raise _Killed

    with pytest.raises(_Killed):
        train(_cfg(data_root, tmp_path, **{'TRAIN.RESUME': 'auto'}), after_step=kill_at_step_5, progress=False)
    saved = torch.load(tmp_path / 'run' / CHECKPOINT, map_location='cpu', weights_only=False)
    assert (saved['trainer']['epoch'], saved['trainer']['iteration']) == (1, 0)

    # 3) resume again to the end: same weights, bit for bit, and the same losses and metrics
    final = train(_cfg(data_root, tmp_path, **{'TRAIN.RESUME': 'auto'}), progress=False)
    assert final['global_step'] == 6 and final['stop_signal'] is None
    ref_w, w = _weights(ref_out), _weights(tmp_path)
    assert ref_w.keys() == w.keys()
    assert all(torch.equal(ref_w[k], w[k]) for k in ref_w)
    assert final['history'] == ref_result['history']


class _NanFeatures:
    """Wraps the training iterator: from now on the 3D clips' features are NaN."""

    def __init__(self, inner):
        self.inner = inner

    def __next__(self):
        target_2d, target_3d = next(self.inner)
        return target_2d, {**target_3d, 'features': target_3d['features'] * float('nan')}

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_non_finite_loss_stops_before_update_and_keeps_checkpoint(data_root, tmp_path):
    def poison(trainer):
        if trainer.global_step == 1:        # the only step of epoch 1; its checkpoint is written next
            trainer.train_iter = _NanFeatures(trainer.train_iter)

    with pytest.raises(NonFiniteLossError, match=r'epoch 2 step 1 .*term kp_2d_global = nan.*last good checkpoint'):
        train(_cfg(data_root, tmp_path, **{'TRAIN.NUM_ITERS_PER_EPOCH': 1}), after_step=poison, progress=False)
    saved = torch.load(tmp_path / 'run' / CHECKPOINT, map_location='cpu', weights_only=False)
    assert saved['trainer']['global_step'] == 1
    assert all(torch.isfinite(v).all() for v in saved['gen_state_dict'].values() if v.is_floating_point())


def test_missing_files_reported_before_training(data_root, tmp_path):
    cfg = _cfg(data_root, tmp_path, **{'TRAIN.DATASETS_3D': "['ThreeDPW', 'MPII3D']",
                                       'TRAIN.PRETRAINED_REGRESSOR': 'base_data/nope.pth.tar'})
    with pytest.raises(UserError) as err:
        train(cfg, progress=False)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f'2 files needed to train are missing (nothing was run; paths in a config are under '
                               f'DATA_ROOT, here {data_root}')
    assert lines[1].startswith('  SPIN checkpoint (TRAIN.PRETRAINED_REGRESSOR): ') and 'nope.pth.tar  <- from' in lines[1]
    assert lines[2] == (f'  MPII3D train database (DATASET.FILES.MPII3D.TRAIN): '
                        f'{data_root}/preprocessed_data/mpii3d_train_scale12_db.pt  <- from {DB_SOURCES["MPII3D"]}')
    assert not (tmp_path / 'run').exists()


def test_run_without_validation_says_so(data_root, tmp_path):
    train(_cfg(data_root, tmp_path, **{'TRAIN.val_epoch': 3, 'TRAIN.END_EPOCH': 1, 'TRAIN.NUM_ITERS_PER_EPOCH': 1}),
          progress=False)
    log = (tmp_path / 'run' / 'log.txt').read_text()
    assert (f'training done without validation (TRAIN.val_epoch 3 > END_EPOCH 1), so no {BEST_CHECKPOINT}; the last '
            f'weights are in {tmp_path}/run/{CHECKPOINT}\n') in log
    assert not (tmp_path / 'run' / BEST_CHECKPOINT).exists()


def test_existing_run_needs_resume(reference, data_root):
    out, _ = reference
    with pytest.raises(UserError, match='--resume'):
        train(_cfg(data_root, out), progress=False)


def test_rank_share_splits_the_global_batch():
    class Clips:
        def __len__(self):
            return 100

        def get_batch(self, indices):
            return {'i': torch.as_tensor(indices)}

    parts = [RankShare(Clips(), r, 3).get_batch(np.arange(10, 17))['i'].tolist() for r in range(3)]
    assert parts == [[10, 11, 12], [13, 14], [15, 16]]
    assert [RankShare(Clips(), r, 3).get_batch(np.array([5, 6]))['i'].tolist() for r in range(3)] == [[5], [6], [5]]


def test_two_process_gloo_run(data_root, tmp_path):
    cfg_file = tmp_path / 'ddp.yaml'
    opts = {**SMALL, 'DATA_ROOT': str(data_root), 'OUTPUT_DIR': str(tmp_path), 'EXP_NAME': 'run',
            'TRAIN.NUM_ITERS_PER_EPOCH': 2, 'TRAIN.END_EPOCH': 1}
    cfg_file.write_text(load_config(None, [str(x) for kv in opts.items() for x in kv]).dump())
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           str(REPO_ROOT / 'train.py'), '--cfg', str(cfg_file)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Warning' not in proc.stderr, proc.stderr[-3000:]     # e.g. DDP's deprecated broadcast_buffers
    log = (tmp_path / 'run' / 'log.txt').read_text()
    assert 'batch: 4 clips per step (2 2D + 2 3D) over 2 process(es)' in log
    ckpt = torch.load(tmp_path / 'run' / CHECKPOINT, map_location='cpu', weights_only=False)
    assert len(ckpt['trainer']['ranks']) == 2 and ckpt['trainer']['global_step'] == 2
    assert np.isfinite(ckpt['performance'])


def test_train_cli_resume_flag_and_synthetic_config(monkeypatch):
    import importlib.util

    import lib.train.launch as trainer_module

    seen = {}

    def fake_train(cfg, require_resume=False):
        seen['cfg'], seen['required'] = cfg, require_resume
        return {'stop_signal': None}

    monkeypatch.setattr(trainer_module, 'train', fake_train)
    spec = importlib.util.spec_from_file_location('train_cli', REPO_ROOT / 'train.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    for tail in (['--resume', 'TRAIN.BATCH_SIZE', '4'], ['TRAIN.BATCH_SIZE', '4', '--resume']):
        cli.main(['--cfg', str(REPO_ROOT / 'configs' / 'synthetic.yaml'), *tail])
        cfg = seen['cfg']
        assert cfg.TRAIN.RESUME == 'auto' and cfg.TRAIN.BATCH_SIZE == 4 and seen['required']
    # the quick-start config trains the official architecture
    assert cfg.MODEL == load_config(REPO_ROOT / 'configs' / 'repr_table1_3dpw.yaml').MODEL
