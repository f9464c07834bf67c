"""Fault injection: the ways real use goes wrong (reruns, races, kills, odd configs, bad data, unwritable
outputs), each run end to end on generated data, each checked for the promised outcome: a refusal in one
line, a repaired file, or an untouched earlier result, never a silent wrong result or lost work.

    python scripts/check_faults.py              # all cases, one line each, then a total (about a minute)
    python scripts/check_faults.py -k resume    # the cases whose name contains 'resume'

The cases are plain functions of a :class:`Workspace` (generated assets and tiny databases, a tiny GLoT
configuration); ``tests/test_faults.py`` runs the same functions under pytest.

Unwritable outputs are tested on real file systems where the machine allows it: run as root with permission
to mount, each such case mounts a small tmpfs read-only (or a tiny one, filled, for a full disk) and unmounts
it at the end. Elsewhere the case falls back to injected errors (the same errno from the same calls) and its
line says so (under pytest: a warning). A kill inside the first checkpoint write is a real SIGKILL of a child
process.
"""
from __future__ import annotations

import argparse
import builtins
import errno
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import cv2
import joblib
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.core.config import load_config  # noqa: E402
from lib.core.errors import ConfigError, UserError  # noqa: E402
from lib.core.io import OutputError, RunLock  # noqa: E402
from lib.demo.batch import run_videos  # noqa: E402
from lib.demo.cache import video_key  # noqa: E402
from lib.demo.pipeline import DemoOptions, run_demo  # noqa: E402
from lib.demo.stream import run_stream  # noqa: E402
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
    """Generated data under ``root`` and a fresh folder per case (:meth:`folder`). ``notes`` collects what a
    case could only simulate here (printed by :func:`main`, warned by the tests)."""
    root: Path
    notes: list[str] = field(default_factory=list)

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

    def video(self) -> Path:
        """A short generated video, alone in its folder (a one-video batch input); made once."""
        path = self.root / 'video' / 'walk.mp4'
        if not path.is_file():
            make_synthetic_video(path, self.root, num_frames=20, width=160, height=120, body_height_px=90)
        return path


@contextmanager
def refused(match: str, kind: type = UserError):
    """The block must raise ``kind`` with ``match`` in its one-line message; yields a list that then holds the
    message."""
    seen: list[str] = []
    try:
        yield seen
    except kind as err:
        message = str(err)
        seen.append(message)
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


# A child process that trains ws.cfg(...) and dies by SIGKILL halfway through writing its first checkpoint.
_KILLED_IN_FIRST_SAVE = textwrap.dedent("""
    import os, signal, sys
    import torch
    sys.path.insert(0, sys.argv[1])
    from lib.core.config import load_config
    from lib.train.launch import train

    def save_half_then_die(obj, f, *args, **kwargs):
        f.write(b'the first half of a checkpoint')
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save_half_then_die
    train(load_config(None, sys.argv[2:]), progress=False)
""")


def case_kill_inside_the_first_checkpoint_write(ws: Workspace) -> None:
    """SIGKILL while the first checkpoint is written leaves logs and events but no checkpoint: ``--resume``
    says so and how to start; ``TRAIN.RESUME auto`` and a fresh start both start afresh (the earlier logs
    set aside) and end with the weights of an uninterrupted run, bit for bit."""
    out = ws.folder('kill_first_save')
    overrides = {'TRAIN.END_EPOCH': 2}
    opts = {**TINY, 'DATA_ROOT': str(ws.root), 'OUTPUT_DIR': str(out / 'auto'), 'EXP_NAME': 'run', **overrides}
    done = subprocess.run([sys.executable, '-c', _KILLED_IN_FIRST_SAVE, str(REPO),
                           *(str(x) for kv in opts.items() for x in kv)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-2000:])
    run = out / 'auto' / 'run'
    assert not (run / CHECKPOINT).exists() and list(run.glob('events.out.tfevents.*')) and list(run.glob('.*.partial*'))
    shutil.copytree(run, out / 'fresh' / 'run')
    with refused('left no checkpoint') as seen:
        train(ws.cfg(out / 'auto', **overrides, **{'TRAIN.RESUME': 'auto'}), require_resume=True, progress=False)
    assert 'run without --resume to start afresh' in seen[0]
    reference = train(ws.cfg(out / 'reference', **overrides), progress=False)
    expected = _state(out / 'reference' / 'run' / CHECKPOINT)['gen_state_dict']
    for name, resume in (('auto', 'auto'), ('fresh', '')):
        result = train(ws.cfg(out / name, **overrides, **{'TRAIN.RESUME': resume}), progress=False)
        run = out / name / 'run'
        weights = _state(run / CHECKPOINT)['gen_state_dict']
        assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in expected), name
        assert result['history'] == reference['history'], name
        assert 'left no checkpoint (it was stopped before writing its first one): starting afresh' in \
            (run / 'log.txt').read_text(), name
        earlier = list(run.glob('earlier_*/events.out.tfevents.*'))
        assert len(earlier) == 1 and len(list(run.glob('events.out.tfevents.*'))) == 1, name
        assert not list(run.glob('.*.partial*')), name


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
def _run_tool(ws: Workspace, tool: str, out: Path) -> None:
    """Run ``tool`` (train, evaluate, demo, batch, online) on generated inputs with its outputs under ``out``."""
    if tool == 'train':
        train(ws.cfg(out), progress=False)
        return
    path = ws.root / 'cases' / 'weights' / 'tools.pth.tar'
    if not path.is_file():
        ws.checkpoint(path.name)
    cfg = ws.cfg(**{'TRAIN.PRETRAINED': str(path)})
    if tool == 'evaluate':
        run_evaluation(cfg, '3dpw', output_dir=out / 'eval', progress=False)
    elif tool == 'demo':
        run_demo(cfg, ws.video(), out, DemoOptions(), checkpoint=path)
    elif tool == 'batch':
        run_videos(cfg, ws.video().parent, out, DemoOptions(), checkpoint=path)
    else:
        run_stream(cfg, str(ws.video()), out, DemoOptions(), checkpoint=path)


TOOLS = ('train', 'evaluate', 'demo', 'batch', 'online')


def _listing(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob('*'))}


_MOUNT_REFUSAL: list[str] = []   # why mounting failed here, once known


@contextmanager
def tmpfs(folder: Path, size: str = '1m') -> Iterator[bool]:
    """Mount a ``size`` tmpfs on ``folder`` for the block (True), or yield False where mounting is not
    permitted (not root, no CAP_SYS_ADMIN, no ``mount``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if _MOUNT_REFUSAL:
        yield False
        return
    try:
        done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size},mode=755', 'tmpfs', str(folder)],
                              capture_output=True, text=True)
    except OSError as err:
        done = subprocess.CompletedProcess([], 1, '', str(err))
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()
        _MOUNT_REFUSAL.append(message.splitlines()[-1] if message else f'mount exit status {done.returncode}')
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(['umount', '-l', str(folder)], capture_output=True)


def _remount_read_only(folder: Path) -> None:
    subprocess.run(['mount', '-o', 'remount,ro', str(folder)], check=True, capture_output=True)


@contextmanager
def injected_read_only(folder: Path) -> Iterator[None]:
    """Where no tmpfs can be mounted: every call that would change ``folder``'s tree (open for writing, create,
    remove, rename) fails with EROFS, as on a read-only mount, where ``unlink`` fails even for missing files."""
    root = str(folder)

    def inside(path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(root)
        except TypeError:      # a file descriptor
            return False

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def guard(real, writes: Callable[..., bool]):
        def call(path, *args, **kwargs):
            if inside(path) and writes(*args, **kwargs):
                refuse(path)
            return real(path, *args, **kwargs)
        return call

    def guard_move(real):
        def call(src, dst, *args, **kwargs):
            if inside(src) or inside(dst):
                refuse(dst)
            return real(src, dst, *args, **kwargs)
        return call

    def text_mode_writes(mode='r', *args, **kwargs):
        return any(c in mode for c in 'wax+')

    def flags_write(flags, *args, **kwargs):
        return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))

    always = lambda *args, **kwargs: True    # noqa: E731
    patches = [mock.patch.object(builtins, 'open', guard(builtins.open, text_mode_writes)),
               mock.patch.object(io, 'open', guard(io.open, text_mode_writes)),
               mock.patch.object(os, 'open', guard(os.open, flags_write)),
               *(mock.patch.object(os, name, guard(getattr(os, name), always))
                 for name in ('mkdir', 'unlink', 'rmdir')),
               *(mock.patch.object(os, name, guard_move(getattr(os, name))) for name in ('replace', 'rename'))]
    for patch in patches:
        patch.start()
    try:
        yield
    finally:
        for patch in reversed(patches):
            patch.stop()


@contextmanager
def read_only_folder(ws: Workspace, name: str, content: Callable[[Path], None] | None = None
                     ) -> Iterator[tuple[Path, bool]]:
    """``(folder, True)``: a folder on a real read-only tmpfs (filled by ``content`` before the remount); else
    ``(folder, False)`` (noted in ``ws.notes``): a folder made read-only by :func:`injected_read_only`."""
    folder = ws.folder(name) / 'mnt'
    with tmpfs(folder, '64m') as mounted:
        if content is not None:
            content(folder)
        if mounted:
            _remount_read_only(folder)
            yield folder, True
            return
        ws.notes.append(f'{name}: mount not permitted here ({_MOUNT_REFUSAL[0]}): read-only simulated by '
                        'injected EROFS errors')
        with injected_read_only(folder):
            yield folder, False


def _refused_untouched(ws: Workspace, tool: str, out: Path, folder: Path, match: str) -> None:
    """``tool`` writing under ``out`` is refused with one line naming ``out`` and ``match``; nothing in
    ``folder`` changes."""
    before = _listing(folder)
    with refused(match, OutputError) as seen:
        _run_tool(ws, tool, out)
    assert str(out) in seen[0], f'{tool}: the message does not name {out}: {seen[0]}'
    assert _listing(folder) == before, f'{tool}: {folder} changed'


def _read_only_mount_case(tool: str, ws: Workspace) -> None:
    """``tool`` with its outputs on a read-only mount: one line naming the output folder and the reason,
    nothing written."""
    with read_only_folder(ws, f'ro_{tool}') as (folder, _):
        _refused_untouched(ws, tool, folder / 'out', folder, 'Read-only file system')


def case_read_only_mount_resume(ws: Workspace) -> None:
    """``--resume`` of a run whose folder is now read-only: one line, the checkpoint byte for byte intact."""
    path, _ = ws.checkpoint('ro_resume.pth.tar')

    def earlier_run(folder: Path) -> None:
        (folder / 'run').mkdir()
        shutil.copyfile(path, folder / 'run' / CHECKPOINT)

    with read_only_folder(ws, 'ro_resume', earlier_run) as (folder, _):
        before = _listing(folder)
        with refused('Read-only file system', OutputError):
            train(ws.cfg(folder, **{'TRAIN.RESUME': 'auto'}), require_resume=True, progress=False)
        assert _listing(folder) == before and (folder / 'run' / CHECKPOINT).read_bytes() == path.read_bytes()


def _output_below_a_file_case(tool: str, ws: Workspace) -> None:
    """``tool`` with its output folder below a file (``file/out``): one line, nothing written or removed."""
    folder = ws.folder(f'below_file_{tool}')
    blocker = folder / 'a_file'
    blocker.write_text('a file, not a folder')
    _refused_untouched(ws, tool, blocker / 'out', folder, 'is a file, not a folder')


def case_train_cli_on_read_only_mount(ws: Workspace) -> None:
    """``train.py`` itself on a read-only mount: exactly one ``error:`` line on stderr, exit status 2."""
    with read_only_folder(ws, 'ro_cli') as (folder, mounted):
        if not mounted:      # injected errors do not reach a child process
            ws.notes.append('train_cli_on_read_only_mount: skipped (no real mount for the child process)')
            return
        opts = {**TINY, 'DATA_ROOT': str(ws.root), 'OUTPUT_DIR': str(folder / 'runs'), 'EXP_NAME': 'run'}
        done = subprocess.run([sys.executable, str(REPO / 'train.py'), *(str(x) for kv in opts.items() for x in kv)],
                              capture_output=True, text=True, cwd=REPO)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    assert lines[0].startswith(f'error: cannot write {folder}/runs/run: Read-only file system; '), lines[0]


def case_disk_full_while_saving_on_a_tiny_mount(ws: Workspace) -> None:
    """A full disk, really: a checkpoint save on a 1 MiB tmpfs fails in one line, the previous checkpoint
    intact and no temporary file left."""
    folder = ws.folder('disk_full_save') / 'mnt'
    with tmpfs(folder, '1m') as mounted:
        if not mounted:
            ws.notes.append(f'mount not permitted here ({_MOUNT_REFUSAL[0]}): only the injected '
                            'disk_full_while_saving covers this')
            return
        previous = folder / 'previous.pth.tar'
        previous.write_bytes(b'an earlier checkpoint')
        with refused('no space left on the device', OutputError):
            save_checkpoint(previous, build_model(ws.cfg()))
        assert previous.read_bytes() == b'an earlier checkpoint' and not list(folder.glob('.*.partial*'))


def _full_disk_case(tool: str, ws: Workspace) -> None:
    """``tool`` with its outputs on a full tmpfs: one line with the reason and the free space, nothing
    written."""
    folder = ws.folder(f'full_{tool}') / 'mnt'
    with tmpfs(folder, '256k') as mounted:
        if not mounted:
            ws.notes.append(f'mount not permitted here ({_MOUNT_REFUSAL[0]}): not tested')
            return
        fd = os.open(folder / 'filler', os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b'\0' * 4096):
                pass
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
        finally:
            os.close(fd)
        _refused_untouched(ws, tool, folder / 'out', folder, 'no space left on the device (0 MiB free there); '
                           'free some space or ')


for _tool in TOOLS:
    globals()[f'case_read_only_mount_{_tool}'] = partial(_read_only_mount_case, _tool)
    globals()[f'case_output_below_a_file_{_tool}'] = partial(_output_below_a_file_case, _tool)
    globals()[f'case_full_disk_mount_{_tool}'] = partial(_full_disk_case, _tool)
del _tool


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
            start, notes = time.perf_counter(), len(ws.notes)
            try:
                CASES[name](ws)
                status = 'ok'
            except Exception as err:   # a failed case is reported, the others still run
                failed += 1
                status = f'FAILED: {type(err).__name__}: {err}'
            status += ''.join(f' ({note})' for note in ws.notes[notes:])
            print(f'{name:<45s} {time.perf_counter() - start:6.1f} s  {status}', flush=True)
    print(f'{len(names) - failed} passed, {failed} failed')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
