"""Fault injection: the ways real use goes wrong (reruns, races, kills, odd configs, bad data, unwritable
outputs), each run end to end on generated data, each checked for the promised outcome: a refusal in one
line, a repaired file, or an untouched earlier result, never a silent wrong result or lost work.

    python scripts/check_faults.py              # all cases, one line each, then a total (about a minute)
    python scripts/check_faults.py -k resume    # the cases whose name contains 'resume'

The cases are plain functions of a :class:`Workspace` (generated assets and tiny databases, a tiny GLoT
configuration); ``tests/test_faults.py`` runs the same functions under pytest.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from unittest import mock

import cv2
import joblib
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.core import io as core_io  # noqa: E402
from lib.core.config import load_config  # noqa: E402
from lib.core.errors import ConfigError, UserError  # noqa: E402
from lib.core.io import OutputError, RunLock, prepare_output_dir  # noqa: E402
from lib.demo.cache import video_key  # noqa: E402
from lib.demo.pipeline import DemoOptions, run_demo  # noqa: E402
from lib.vis.video import FrameReader  # noqa: E402
from lib.eval.run import run_evaluation  # noqa: E402
from lib.models import build_model, load_checkpoint, save_checkpoint  # noqa: E402
from lib.models.checkpoint import CheckpointError  # noqa: E402
from lib.train import loop  # noqa: E402
from lib.train.launch import train  # noqa: E402
from lib.train.loop import BEST_CHECKPOINT, CHECKPOINT  # noqa: E402
from scripts.make_synthetic_assets import make_synthetic_assets  # noqa: E402
from scripts.make_synthetic_data import make_synthetic_data  # noqa: E402
from scripts.make_synthetic_video import make_synthetic_video  # noqa: E402

# A GLoT small enough that a training step takes a fraction of a second on 2 CPU cores.
TINY = {
    'DEVICE': 'cpu', 'NUM_WORKERS': 0, 'SEED_VALUE': 3, 'TRAIN.BATCH_SIZE': 4, 'TRAIN.DATA_2D_RATIO': 0.5,
    'TRAIN.NUM_ITERS_PER_EPOCH': 2, 'TRAIN.END_EPOCH': 2, 'TRAIN.LR_PATIENCE': 0, 'TRAIN.val_epoch': 1,
    'TRAIN.DATASETS_2D': "['Insta']", 'TRAIN.DATASETS_3D': "['ThreeDPW']", 'TRAIN.DATASET_EVAL': 'ThreeDPW',
    'MODEL.d_model': 64, 'MODEL.n_layers': 1, 'MODEL.short_d_model': 64, 'MODEL.short_n_layers': 1,
    'EVAL.BATCH_SIZE': 32,
}
SIZES = {'3dpw_train': (2, 32), '3dpw_val': (1, 32), '3dpw_test': (2, 24), 'insta_train': (2, 32)}


class Killed(Exception):
    """Stands in for SIGKILL: the process stops at this point and writes nothing more."""


@dataclass
class Workspace:
    """Generated data under ``root`` and a fresh folder per case (:meth:`folder`)."""
    root: Path

    @classmethod
    def create(cls, root: Path) -> 'Workspace':
        make_synthetic_assets(root, seed=0)
        make_synthetic_data(root, seed=0, sizes=SIZES, raw_3dpw=False, occ_names=False, only=tuple(SIZES))
        return cls(root)

    def folder(self, name: str) -> Path:
        path = self.root / 'cases' / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cfg(self, out: Path | None = None, **overrides):
        opts = {**TINY, 'DATA_ROOT': str(self.root), 'OUTPUT_DIR': str(out or self.root / 'runs'),
                'EXP_NAME': 'run', **overrides}
        return load_config(None, [str(x) for kv in opts.items() for x in kv])

    def checkpoint(self, name: str, **cfg_overrides) -> tuple[Path, object]:
        """A checkpoint of a seeded tiny GLoT that stores its config, and that config."""
        cfg = self.cfg(**cfg_overrides)
        torch.manual_seed(0)
        path = save_checkpoint(self.folder('weights') / name, build_model(cfg), config=cfg.dump())
        return path, cfg


@contextmanager
def refused(match: str, kind: type = UserError):
    """The block must raise ``kind`` with ``match`` in its one-line message."""
    try:
        yield
    except kind as err:
        message = str(err)
        assert match in message, f'refused, but the message lacks {match!r}: {message}'
        assert '\n' not in message, f'the message is not one line: {message!r}'
        return
    raise AssertionError(f'not refused (expected {kind.__name__} with {match!r})')


def _state(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


# ------------------------------------------------------------------------------------------- runs
def case_two_runs_one_folder(ws: Workspace) -> None:
    """A second training into a folder in use is refused; the first one's files stay its own."""
    out = ws.folder('race')
    seen = {}

    def second_run(trainer):
        if trainer.global_step == 1 and 'refusal' not in seen:
            try:
                train(ws.cfg(out), progress=False)
            except UserError as err:
                seen['refusal'] = str(err)

    first = train(ws.cfg(out), after_step=second_run, progress=False)
    assert f'pid {os.getpid()}' in seen.get('refusal', ''), seen
    ckpt = _state(out / 'run' / CHECKPOINT)
    assert ckpt['trainer']['history'] == first['history'] and ckpt['trainer']['global_step'] == 4
    best = _state(out / 'run' / BEST_CHECKPOINT)
    assert best['performance'] == min(h['pa_mpjpe'] for h in first['history'])


def case_explicit_resume_path_wins(ws: Workspace) -> None:
    """``TRAIN.RESUME PATH`` with --resume continues from PATH, even into an empty folder."""
    out = ws.folder('explicit')
    train(ws.cfg(out, **{'TRAIN.END_EPOCH': 1}), progress=False)
    source = out / 'run' / CHECKPOINT
    result = train(ws.cfg(out, EXP_NAME='other', **{'TRAIN.RESUME': str(source)}), require_resume=True,
                   progress=False)
    assert result['global_step'] == 4 and [h['epoch'] for h in result['history']] == [1, 2]


def case_resume_with_nothing_to_resume(ws: Workspace) -> None:
    """--resume on a folder without a checkpoint is refused, nothing is trained."""
    out = ws.folder('nothing')
    with refused('nothing to resume'):
        train(ws.cfg(out, **{'TRAIN.RESUME': 'auto'}), require_resume=True, progress=False)
    assert not (out / 'run' / CHECKPOINT).exists()


def case_kill_between_checkpoint_and_best_copy(ws: Workspace) -> None:
    """Killed after the checkpoint, before the best-model copy: resume repairs model_best.pth.tar."""
    out = ws.folder('kill_best')
    real_copy = loop.atomic_copy

    def killed_copy(src, dst):
        if Path(dst).name == BEST_CHECKPOINT:
            raise Killed
        return real_copy(src, dst)

    with mock.patch.object(loop, 'atomic_copy', killed_copy):
        try:
            train(ws.cfg(out, **{'TRAIN.END_EPOCH': 1}), progress=False)
            raise AssertionError('the run was not killed')
        except Killed:
            pass
    run = out / 'run'
    assert not (run / BEST_CHECKPOINT).exists() and _state(run / CHECKPOINT)['trainer']['best_epoch'] == 0
    train(ws.cfg(out, **{'TRAIN.RESUME': 'auto', 'TRAIN.END_EPOCH': 1}), progress=False)
    ckpt, best = _state(run / CHECKPOINT), _state(run / BEST_CHECKPOINT)
    assert best['epoch'] == ckpt['trainer']['best_epoch'] == 0
    assert best['performance'] == ckpt['trainer']['best_performance']


def case_fresh_run_over_an_earlier_best_model(ws: Workspace) -> None:
    """A fresh start into a folder holding an earlier model_best.pth.tar is refused; the file is kept."""
    out = ws.folder('earlier_best')
    best = out / 'run' / BEST_CHECKPOINT
    best.parent.mkdir(parents=True)
    best.write_bytes(b'an earlier best model')
    with refused('model_best.pth.tar'):
        train(ws.cfg(out), progress=False)
    assert best.read_bytes() == b'an earlier best model'


def case_resume_with_other_batch_or_heads(ws: Workspace) -> None:
    """Resuming under another batch size or head count (same shapes) is refused, naming the keys."""
    out = ws.folder('changed')
    train(ws.cfg(out, **{'TRAIN.END_EPOCH': 1}), progress=False)
    for key, value in (('TRAIN.BATCH_SIZE', 6), ('MODEL.num_head', 4)):
        with refused(f'{key} '):
            train(ws.cfg(out, **{'TRAIN.RESUME': 'auto', key: value}), progress=False)
    assert _state(out / 'run' / CHECKPOINT)['trainer']['global_step'] == 2


def case_orphaned_temp_files_removed(ws: Workspace) -> None:
    """A temporary file of a writer killed during a save is removed at the next start."""
    out = ws.folder('orphans')
    orphan = out / 'run' / f'.{CHECKPOINT}.4194999.partial.tar'
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b'half a checkpoint')
    train(ws.cfg(out, **{'TRAIN.END_EPOCH': 1}), progress=False)
    assert not orphan.exists() and (out / 'run' / CHECKPOINT).is_file()


def case_disk_full_while_saving(ws: Workspace) -> None:
    """A full disk while writing a checkpoint: one line with the free space; the previous file is intact."""
    out = ws.folder('disk_full')
    path, _ = ws.checkpoint('full.pth.tar')
    before = path.read_bytes()

    def full_disk(obj, f):
        f.write(b'partial')
        raise RuntimeError('[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing '
                           'file data/0: file write failed')

    with mock.patch.object(torch, 'save', full_disk), refused('no space left', OutputError):
        save_checkpoint(path, build_model(ws.cfg(out)))
    assert path.read_bytes() == before and not list(path.parent.glob('.*.partial*'))


# ------------------------------------------------------------------------------------------- configs
def case_out_of_range_settings(ws: Workspace) -> None:
    """Ratios, batch sizes and choices out of range stop at start-up, naming the key and the range."""
    for key, value, match in (('TRAIN.DATA_2D_RATIO', 1.5, '[0.0, 1.0]'), ('TRAIN.VAL_BATCH_SIZE', 0, '>= 1'),
                              ('EVAL.BATCH_SIZE', 0, '>= 1'), ('TRAIN.AMP', 'fp8', 'not one of')):
        with refused(f'{key} ', ConfigError):
            ws.cfg(**{key: value})
        with refused(match, ConfigError):
            ws.cfg(**{key: value})


def case_checkpoint_of_another_architecture(ws: Workspace) -> None:
    """Evaluating a checkpoint with a config of another architecture (same shapes) is refused."""
    path, cfg = ws.checkpoint('heads8.pth.tar')
    other = ws.cfg(**{'MODEL.num_head': 4, 'TRAIN.PRETRAINED': str(path)})
    with refused('MODEL.num_head 8 -> 4', CheckpointError):
        load_checkpoint(build_model(other), path, other)
    out = ws.folder('eval_arch')
    with refused('MODEL.num_head 8 -> 4', CheckpointError):
        run_evaluation(other, '3dpw', output_dir=out / 'eval', progress=False)
    assert not (out / 'eval').exists()


# ------------------------------------------------------------------------------------------- data
def _evaluation_refused(ws: Workspace, name: str, change: Callable[[dict], None], match: str) -> None:
    """Evaluate a copy of the generated 3DPW test database changed by ``change``: it must be refused with
    ``match`` and leave no results."""
    db = joblib.load(ws.root / 'preprocessed_data' / '3dpw_test_db.pt')
    change(db)
    db_file = ws.folder('dbs') / f'{name}_db.pt'
    joblib.dump(db, db_file)
    path, _ = ws.checkpoint('eval.pth.tar')
    cfg = ws.cfg(**{'TRAIN.PRETRAINED': str(path), 'DATASET.FILES.ThreeDPW.TEST': str(db_file)})
    out = ws.folder(f'eval_{name}') / 'eval'
    with refused(match):
        run_evaluation(cfg, '3dpw', output_dir=out, progress=False)
    assert not (out / 'results.json').exists()


def case_nan_in_test_features(ws: Workspace) -> None:
    """NaN in a test database's features: refused naming file, key and frame; no results written."""
    def poison(db):
        db['features'][5, 7] = np.nan
    _evaluation_refused(ws, 'nan', poison, "'features' holds NaN or infinite values at row 5")


def case_nan_in_ground_truth(ws: Workspace) -> None:
    """Infinite ground-truth joints: refused at the door (before any SVD)."""
    def poison(db):
        db['joints3D'][3, 2, 1] = np.inf
    _evaluation_refused(ws, 'inf_gt', poison, "'joints3D' holds NaN or infinite values at row 3")


def case_nan_in_checkpoint_weights(ws: Workspace) -> None:
    """NaN weights in a checkpoint: refused naming the entry."""
    path, cfg = ws.checkpoint('nan.pth.tar')
    ckpt = _state(path)
    ckpt['gen_state_dict']['proj_short.weight'][0, 0] = float('nan')
    torch.save(ckpt, path)
    with refused('weight proj_short.weight holds NaN', CheckpointError):
        load_checkpoint(build_model(cfg), path, cfg)


def case_nothing_to_evaluate(ws: Workspace) -> None:
    """A test set in which no sequence has 16 valid frames: one line, nothing written."""
    def invalidate(db):
        db['valid'][:] = 0
    _evaluation_refused(ws, 'empty', invalidate, 'nothing to evaluate')


# ------------------------------------------------------------------------------------------- outputs
def case_output_path_is_a_file(ws: Workspace) -> None:
    """An output folder that is a file: one line before any computation."""
    path, _ = ws.checkpoint('eval.pth.tar')
    target = ws.folder('eval_file') / 'results'
    target.write_text('not a folder')
    with refused('it is a file', OutputError):
        run_evaluation(ws.cfg(**{'TRAIN.PRETRAINED': str(path)}), '3dpw', output_dir=target, progress=False)


def case_read_only_output(ws: Workspace) -> None:
    """A read-only output folder (simulated: the tests run as root): one line naming the reason."""
    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    with mock.patch.object(core_io, '_fsync_file', read_only), refused('Read-only file system', OutputError):
        prepare_output_dir(ws.folder('read_only') / 'out')


def case_replaced_frames_invalidate_the_cache(ws: Workspace) -> None:
    """Frames of an image folder replaced by files with older timestamps change the demo's cache key."""
    folder = ws.folder('frames')
    image = np.zeros((32, 24, 3), np.uint8)
    for i in range(3):
        cv2.imwrite(str(folder / f'{i:04d}.png'), image)
    before = video_key(FrameReader(folder).info)
    replaced = folder / '0001.png'
    cv2.imwrite(str(replaced), image + 9)
    old = time.time() - 3600
    os.utime(replaced, (old, old))
    assert video_key(FrameReader(folder).info) != before


def case_demo_rerun_removes_outputs_it_does_not_rewrite(ws: Workspace) -> None:
    """A demo rerun with --no_render removes the earlier run's overlay video instead of leaving it beside
    the new results; an output folder below a file is refused before any work."""
    folder = ws.folder('demo_rerun')
    boxes = folder / 'boxes.csv'
    video = make_synthetic_video(folder / 'walk.mp4', ws.root, num_frames=20, width=160, height=120, body_height_px=90,
                                 bbox_file=boxes)
    path, _ = ws.checkpoint('demo.pth.tar')
    cfg = ws.cfg(**{'DEMO.MIN_TRACK_LEN': 10})
    out = folder / 'out'
    run_demo(cfg, video.path, out, DemoOptions(bbox_file=str(boxes)), checkpoint=path)
    overlay = out / 'walk' / 'walk_glot_output.mp4'
    assert overlay.is_file()
    run_demo(cfg, video.path, out, DemoOptions(bbox_file=str(boxes), render=False), checkpoint=path)
    assert not overlay.exists() and (out / 'walk' / 'glot_output.pkl').is_file()
    blocker = folder / 'not_a_folder'
    blocker.write_text('a file')
    with refused('is a file', OutputError):
        run_demo(cfg, video.path, blocker / 'out', DemoOptions(bbox_file=str(boxes)), checkpoint=path)


def case_run_lock_names_the_holder(ws: Workspace) -> None:
    """The run lock is exclusive and names the pid that holds it."""
    folder = ws.folder('lock')
    with RunLock(folder):
        with refused(f'pid {os.getpid()}'):
            with RunLock(folder):
                pass
    with RunLock(folder):      # released: free again
        pass


CASES: dict[str, Callable[[Workspace], None]] = {
    name[len('case_'):]: fn for name, fn in sorted(globals().items()) if name.startswith('case_')}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-k', default='', help='run only the cases whose name contains this text')
    args = parser.parse_args(argv)
    names = [n for n in CASES if args.k in n]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        print(f'generating data in {tmp} ...', flush=True)
        ws = Workspace.create(Path(tmp))
        for name in names:
            start = time.perf_counter()
            try:
                CASES[name](ws)
                status = 'ok'
            except Exception as err:   # a failed case is reported, the others still run
                failed += 1
                status = f'FAILED: {type(err).__name__}: {err}'
            print(f'{name:<45s} {time.perf_counter() - start:6.1f} s  {status}', flush=True)
    print(f'{len(names) - failed} passed, {failed} failed')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
