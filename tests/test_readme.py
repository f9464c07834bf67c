"""The commands of the README and of the pages in ``docs/``, as written, on generated data.

Every command in their ``bash`` blocks (:func:`documented_commands`) has an entry in :data:`COMMANDS` saying how it is checked:

- ``run``: run verbatim from a scratch folder laid out like the repository (the entry scripts, ``configs/``
  and ``scripts/`` linked in; ``./data`` is the data root, ``$GLOT_DATA_ROOT`` points at it), on generated
  stand-ins for the licensed files (``data/synthetic`` made by the README's own command, random GLoT weights
  under the official names in ``data/pretrained_models``, a generated ``my_video.mp4``, its frames in
  ``frames_folder/`` and its boxes in ``boxes.csv``); it must exit with status 0;
- ``shortened``: the same, with the KEY VALUE overrides given appended (the full run takes minutes to days);
- ``parsed``: needs GPUs: its options and overrides are parsed and the config is loaded, nothing runs;
- ``not run``: the reason says why and what covers it instead.

A documented command without an entry, or an entry no longer documented, fails the test. The whole check takes
about three minutes on 2 CPU cores.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import torch

from lib.core.config import load_config
from lib.vis.video import FrameReader
from lib.models import build_model, save_checkpoint
from scripts.make_synthetic_video import make_synthetic_video

REPO = Path(__file__).resolve().parents[1]
# one epoch of two steps of 8 clips, without warm-up (it must be shorter than the run)
SHORT_TRAINING = ['TRAIN.NUM_ITERS_PER_EPOCH', '2', 'TRAIN.END_EPOCH', '1', 'TRAIN.LR_PATIENCE', '0',
                  'TRAIN.BATCH_SIZE', '8']
DATA_COMMAND = 'python scripts/make_synthetic_data.py --assets'
OFFICIAL_WEIGHTS = ('table1_3dpw_weights.pth.tar', 'table1_h36m_mpii3d_weights.pth.tar', 'table2_3dpw_weights.pth.tar')
QUICKSTART_MODEL = 'results/quickstart/runs/synthetic/model_best.pth.tar'

COMMANDS = {
    'pip install -r requirements-dev.txt && python scripts/quickstart.py':
        ('not run', 'installs packages and takes minutes; its steps are the usage commands run below, and '
                    'requirements-dev.txt is checked to bring requirements.txt and pytest'),
    'python -m pytest -q tests': ('not run', 'this test suite'),
    'python train.py --cfg configs/repr_table1_3dpw.yaml TRAIN.BATCH_SIZE 32 DEVICE cuda:1': ('parsed', 'GPUs'),
    DATA_COMMAND: ('run', []),
    'python scripts/preprocess_3dpw.py DEVICE cuda':
        ('not run', 'needs the raw 3DPW release; tests/test_preprocess.py runs it on a generated one'),
    'python scripts/preprocess_mpii3d.py DEVICE cuda':
        ('not run', 'needs the raw MPI-INF-3DHP release; tests/test_preprocess.py runs it on a generated one'),
    'python scripts/preprocess_h36m.py --split train':
        ('not run', 'needs the raw Human3.6M release; tests/test_preprocess.py runs it on a generated one'),
    'python train.py --cfg configs/repr_table1_3dpw.yaml': ('shortened', SHORT_TRAINING),
    'python train.py --cfg configs/repr_table1_3dpw.yaml --resume': ('shortened', SHORT_TRAINING),
    'torchrun --nproc_per_node 4 train.py --cfg configs/repr_table1_3dpw.yaml': ('parsed', '4 GPUs'),
    'python train.py --cfg configs/synthetic.yaml DATA_ROOT results/quickstart/data': ('shortened', SHORT_TRAINING),
    'python evaluate.py --cfg configs/repr_table1_3dpw.yaml --dataset 3dpw': ('run', []),
    'python evaluate.py --cfg configs/repr_table1_h36m_mpii3d.yaml --dataset h36m': ('run', []),
    'python evaluate.py --cfg configs/repr_table1_h36m_mpii3d.yaml --dataset mpii3d': ('run', []),
    'python evaluate.py --cfg configs/repr_table2_3dpw.yaml --dataset 3dpw': ('run', []),
    'python evaluate.py --cfg configs/synthetic.yaml --dataset 3dpw --render DATA_ROOT results/quickstart/data '
    f'--checkpoint {QUICKSTART_MODEL}': ('shortened', ['EVAL.RENDER_FRAMES', '2']),
    'python demo.py --vid_file my_video.mp4 --cfg configs/repr_table1_3dpw.yaml --checkpoint '
    'data/pretrained_models/table1_3dpw_weights.pth.tar --sideview --save_obj': ('run', []),
    'python demo.py --vid_file frames_folder/ --cfg configs/repr_table1_3dpw.yaml --bbox_file boxes.csv DEVICE cpu':
        ('run', []),
    'python demo.py --vid_file my_video.mp4 --cfg configs/repr_table1_3dpw.yaml --checkpoint '
    'data/pretrained_models/table1_3dpw_weights.pth.tar --export glb,bvh': ('run', []),
    'python demo.py --vid_file videos/ --cfg configs/repr_table1_3dpw.yaml':
        ('not run', 'a folder of videos; tests/test_batch.py runs the batch mode on three generated videos'),
    'python demo.py --vid_file clips.txt --cfg configs/repr_table1_3dpw.yaml':
        ('not run', 'a list of videos; tests/test_batch.py runs a list naming a missing file'),
    'torchrun --nproc_per_node 4 demo.py --vid_file videos/ --cfg configs/repr_table1_3dpw.yaml':
        ('not run', '4 GPUs; tests/test_batch.py runs it with 2 CPU processes'),
    'python demo.py --stream 0 --cfg configs/repr_table1_3dpw.yaml':
        ('not run', 'a camera; tests/test_stream.py streams a generated video file'),
    'python demo.py --stream clip.mp4 --realtime --cfg configs/repr_table1_3dpw.yaml':
        ('not run', 'a live pace; tests/test_stream.py reads a generated 10 fps video with --realtime'),
    'python demo.py --vid_file walk.mp4 --bbox_file boxes.csv --cfg configs/repr_table1_3dpw.yaml '
    'DEMO.BBOX_SMOOTH_SIGMA 0.0': ('not run', 'tests/test_stream.py runs this pair on a generated walk.mp4'),
    'python demo.py --stream walk.mp4 --bbox_file boxes.csv --cfg configs/repr_table1_3dpw.yaml '
    'DEMO.BBOX_SMOOTH_SIGMA 0.0': ('not run', 'tests/test_stream.py runs this pair on a generated walk.mp4'),
    'python demo.py --vid_file street.mp4 --cfg configs/repr_table1_3dpw.yaml --detector hog DEMO.HOG_MIN_HEIGHT 40':
        ('not run', 'a street video; tests/test_crossing.py tracks HOG detections on a generated crossing video'),
    'python demo.py --vid_file clip.mp4 --cfg configs/repr_table1_3dpw.yaml DEMO.DOWNLOAD_WEIGHTS True':
        ('not run', 'downloads; tests/test_demo.py covers the download and the offline fallback to HOG'),
    'python scripts/benchmark.py --part tracking [--scene street] [KEY VALUE ...]':
        ('not run', 'a benchmark (minutes); tests/test_crossing.py computes the same scores on a shorter scene'),
}


def readme_commands(text: str) -> list[str]:
    """The commands of the ``bash`` blocks in order: continuation lines joined, comments and spacing removed."""
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            command = ' '.join(line.split('#')[0].split())
            if command:
                commands.append(command)
    return commands


def documented_commands() -> list[str]:
    """The commands of README.md and then of ``docs/*.md`` (by name), each once, in order of first appearance,
    except that the data command comes first (every other command runs on its data)."""
    pages = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
    commands = list(dict.fromkeys(c for page in pages for c in readme_commands(page.read_text())))
    return sorted(commands, key=lambda c: c != DATA_COMMAND)


def scratch_folder(folder: Path) -> dict:
    """Lay ``folder`` out like the repository root; returns the environment the commands run in."""
    for name in ('train.py', 'evaluate.py', 'demo.py', 'configs', 'scripts'):
        (folder / name).symlink_to(REPO / name)
    data = folder / 'data'
    for name in ('base_data', 'preprocessed_data', '3dpw'):      # filled by the README's data command
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).symlink_to(data / 'synthetic' / name, target_is_directory=True)
    (folder / 'results' / 'quickstart').mkdir(parents=True)
    (folder / 'results' / 'quickstart' / 'data').symlink_to(data / 'synthetic', target_is_directory=True)
    (folder / 'torch_home').mkdir()
    # TORCH_HOME without detector weights: demo.py's detector 'auto' is OpenCV's HOG, as on an offline machine
    return {**os.environ, 'GLOT_DATA_ROOT': str(data), 'TORCH_HOME': str(folder / 'torch_home')}


def stand_ins(folder: Path) -> None:
    """Random GLoT weights under the official names (and as the quick start's model), a generated video, its
    frames and its boxes."""
    data = folder / 'data'
    cfg = load_config(REPO / 'configs' / 'repr_table1_3dpw.yaml', ['DATA_ROOT', str(data), 'DEVICE', 'cpu'])
    torch.manual_seed(0)
    weights = save_checkpoint(data / 'pretrained_models' / OFFICIAL_WEIGHTS[0], build_model(cfg))
    for path in [data / 'pretrained_models' / name for name in OFFICIAL_WEIGHTS[1:]] + [folder / QUICKSTART_MODEL]:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(weights, path)
    video = make_synthetic_video(folder / 'my_video.mp4', data, num_frames=40, bbox_file=folder / 'boxes.csv')
    (folder / 'frames_folder').mkdir()
    for i, frame in enumerate(FrameReader(video.path)):
        cv2.imwrite(str(folder / 'frames_folder' / f'{i:06d}.png'), frame)


def test_readme_commands_work_as_written(tmp_path, dry_entry_points, monkeypatch):
    commands = documented_commands()
    assert sorted(commands) == sorted(COMMANDS), 'documented commands and COMMANDS differ'
    dev = (REPO / 'requirements-dev.txt').read_text().split()
    assert '-r' in dev and 'requirements.txt' in dev and any(r.startswith('pytest') for r in dev)

    env = scratch_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('GLOT_DATA_ROOT', env['GLOT_DATA_ROOT'])
    modules, calls = dry_entry_points
    for command in commands:
        how, extra = COMMANDS[command]
        argv = shlex.split(command)
        if how == 'parsed':
            script = argv.index('train.py')
            modules['train'].main(argv[script + 1:])
            assert calls.pop('train')[0].DATASET.SEQLEN == 16
        elif how in ('run', 'shortened'):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, *argv[1:], *extra], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=900)
            assert proc.returncode == 0, f'{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}'
            print(f'{time.perf_counter() - start:6.1f} s  {command} {" ".join(extra)}')   # shown with -s
            if command == DATA_COMMAND:
                stand_ins(tmp_path)

    results = tmp_path / 'results'
    official_run = (results / 'table1_3dpw_exp' / 'log.txt').read_text()
    assert 'training done without validation (TRAIN.val_epoch 25 > END_EPOCH 1)' in official_run
    assert 'NUM_WORKERS 16: using' in official_run or os.cpu_count() >= 16
    assert (results / 'synthetic' / 'model_best.pth.tar').is_file()
    for exp, dataset in (('table1_3dpw_exp', '3dpw'), ('table1_h36m_mpii3d_exp', 'h36m'),
                         ('table1_h36m_mpii3d_exp', 'mpii3d'), ('table2_3dpw_exp', '3dpw')):
        assert (results / exp / f'eval_{dataset}' / 'results.json').is_file(), (exp, dataset)
    assert len(list((results / 'synthetic' / 'eval_3dpw' / 'render').glob('synth_test_*.mp4'))) == 3
    demo = tmp_path / 'demo_output'
    assert (demo / 'my_video' / 'my_video_glot_output.mp4').is_file()
    # the --export rerun into the same folder rewrote the results and the video and removed the earlier
    # run's --save_obj meshes, which it did not rewrite
    assert not (demo / 'my_video' / 'meshes').exists()
    assert (demo / 'frames_folder' / 'glot_output.pkl').is_file()
    assert (demo / 'my_video' / 'my_video_glot.glb').is_file() and list((demo / 'my_video' / 'bvh').glob('*.bvh'))
