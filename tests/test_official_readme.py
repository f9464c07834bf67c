"""The official repository's README commands (github.com/sxl142/GLoT), verbatim, on generated data.

A temporary copy of this repository (entry scripts, ``lib/``, ``scripts/``) gets ``./configs`` holding the
official YAMLs as a user keeps them (only the "your path" lines edited: the SPIN checkpoint; ``DEVICE 'cuda'``
and the weights' ``./data/pretrained_models/...`` unchanged) and ``./data`` laid out as the official README
describes (``base_data``, ``preprocessed_data``, ``pretrained_models``, ``3dpw/imageFiles``), filled with
generated stand-ins; ``$GLOT_DATA_ROOT`` is unset. Every command of the official README then runs verbatim
(the training ones with ``KEY VALUE`` overrides appended that shorten the run) on a CPU-only machine and must
exit with status 0. Evaluation with ``--gpu 0`` gives the same numbers as without it, and the path that
``train_cosine_trans.py`` prints at its end works as the config's ``TRAIN.PRETRAINED`` (the official README's
next step).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from lib.core.config import load_config
from lib.models import build_model, save_checkpoint
from scripts.make_synthetic_assets import make_synthetic_assets
from scripts.make_synthetic_data import make_synthetic_data
from scripts.make_synthetic_video import make_synthetic_video
from test_official_compat import official_yaml_text

REPO = Path(__file__).resolve().parents[1]
# The official README's commands, in its order (Evaluation, Reproduction (Training), Quick demo).
OFFICIAL_EVALUATION = [
    'python evaluate.py --dataset 3dpw --cfg ./configs/repr_table1_3dpw.yaml --gpu 0',
    'python evaluate.py --dataset h36m --cfg ./configs/repr_table1_h36m_mpii3d.yaml --gpu 0',
    'python evaluate.py --dataset mpii3d --cfg ./configs/repr_table1_h36m_mpii3d.yaml --gpu 0',
    'python evaluate.py --dataset 3dpw --cfg ./configs/repr_table2_3dpw.yaml --gpu 0',
    'python evaluate.py --dataset 3dpw --cfg ./configs/repr_table1_3dpw.yaml --gpu 0 --render',
]
OFFICIAL_TRAINING = [
    'python train_cosine_trans.py --cfg ./configs/repr_table1_3dpw.yaml --gpu 0',
    'python train_cosine_trans.py --cfg ./configs/repr_table1_h36m_mpii3d.yaml --gpu 0',
    'python train_cosine_trans.py --cfg ./configs/repr_table2_3dpw.yaml --gpu 0',
]
OFFICIAL_DEMO = 'python demo.py --vid_file demo.mp4 --gpu 0 --cfg ./configs/repr_table1_3dpw.yaml'
# one epoch of two steps of 8 clips with a validation, so the run ends with model_best.pth.tar
SHORT_TRAINING = ['TRAIN.NUM_ITERS_PER_EPOCH', '2', 'TRAIN.END_EPOCH', '1', 'TRAIN.LR_PATIENCE', '0',
                  'TRAIN.BATCH_SIZE', '8', 'TRAIN.val_epoch', '1', 'NUM_WORKERS', '0']
WEIGHTS = ('table1_3dpw_weights.pth.tar', 'table1_h36m_mpii3d_weights.pth.tar', 'table2_3dpw_weights.pth.tar')


def repository_copy(root: Path) -> dict:
    """A copy of the repository in ``root`` (code and scripts; the official YAMLs in configs/), its ``./data``
    filled as the official README describes, a generated ``demo.mp4``; returns the environment to run in."""
    for name in ('train.py', 'train_cosine_trans.py', 'evaluate.py', 'demo.py'):
        shutil.copy(REPO / name, root / name)
    for name in ('lib', 'scripts'):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns('__pycache__'))
    data = root / 'data'
    (root / 'configs').mkdir()
    for name in ('repr_table1_3dpw', 'repr_table1_h36m_mpii3d', 'repr_table2_3dpw'):
        spin = data / 'base_data' / 'spin_model_checkpoint.pth.tar'            # the "your path" line
        (root / 'configs' / f'{name}.yaml').write_text(official_yaml_text(name, str(spin)))
    make_synthetic_assets(data, seed=0)
    make_synthetic_data(data, seed=0, sizes={'3dpw_test': (2, 24)})
    cfg = load_config(REPO / 'configs' / 'repr_table1_3dpw.yaml', ['DATA_ROOT', str(data), 'DEVICE', 'cpu'])
    torch.manual_seed(0)
    first = save_checkpoint(data / 'pretrained_models' / WEIGHTS[0], build_model(cfg))
    for name in WEIGHTS[1:]:
        os.link(first, data / 'pretrained_models' / name)
    make_synthetic_video(root / 'demo.mp4', data, num_frames=40)
    (root / 'torch_home').mkdir()
    env = {k: v for k, v in os.environ.items() if k != 'GLOT_DATA_ROOT'}
    return {**env, 'TORCH_HOME': str(root / 'torch_home'), 'CUDA_VISIBLE_DEVICES': ''}


def run(command: str, root: Path, env: dict, extra=()) -> subprocess.CompletedProcess:
    argv = command.split()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv[1:], *extra], cwd=root, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f'{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}'
    print(f'{time.perf_counter() - start:6.1f} s  {command} {" ".join(extra)}')   # shown with -s
    return proc


def test_official_readme_commands_run_verbatim(tmp_path):
    env = repository_copy(tmp_path)
    results = tmp_path / 'results'
    for command in OFFICIAL_EVALUATION:
        proc = run(command, tmp_path, env)
        assert '--gpu 0: torch sees no GPU; running on cpu' in proc.stderr
    assert len(list((results / 'table1_3dpw_exp' / 'eval_3dpw' / 'render').glob('*.mp4'))) == 2
    for exp, dataset in (('table1_3dpw_exp', '3dpw'), ('table1_h36m_mpii3d_exp', 'h36m'),
                         ('table1_h36m_mpii3d_exp', 'mpii3d'), ('table2_3dpw_exp', '3dpw')):
        assert (results / exp / f'eval_{dataset}' / 'results.json').is_file(), (exp, dataset)
    # the same numbers without --gpu
    with_gpu = json.loads((results / 'table2_3dpw_exp' / 'eval_3dpw' / 'results.json').read_text())
    run(OFFICIAL_EVALUATION[3].replace(' --gpu 0', ''), tmp_path, env, ['--output_dir', 'no_gpu'])
    assert json.loads((tmp_path / 'no_gpu' / 'results.json').read_text()) == with_gpu

    for command in OFFICIAL_TRAINING:
        proc = run(command, tmp_path, env, SHORT_TRAINING)
    # the official README's next step: the printed checkpoint path as the config's TRAIN.PRETRAINED
    printed = re.findall(r'for evaluate.py and demo.py: TRAIN\.PRETRAINED (\S+)', proc.stderr)[-1]
    assert printed == str(results / 'table2_3dpw_exp' / 'model_best.pth.tar')
    config = tmp_path / 'configs' / 'repr_table2_3dpw.yaml'
    config.write_text(re.sub(r"  PRETRAINED: '[^']*'", f"  PRETRAINED: '{printed}'", config.read_text()))
    run(OFFICIAL_EVALUATION[3], tmp_path, env)
    trained = json.loads((results / 'table2_3dpw_exp' / 'eval_3dpw' / 'results.json').read_text())
    assert trained != with_gpu
    assert json.loads((results / 'table2_3dpw_exp' / 'eval_3dpw' / 'eval_info.json').read_text())['checkpoint'] \
        == printed

    run(OFFICIAL_DEMO, tmp_path, env)
    assert (tmp_path / 'demo_output' / 'demo' / 'demo_glot_output.mp4').is_file()
