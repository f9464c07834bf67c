"""The command lines of train.py, evaluate.py and demo.py: the two path rules, options anywhere among the
KEY VALUE overrides, and every missing input file listed at once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from lib.core.cli import cli_path
from lib.core.config import data_root, load_config, resolve_path
from lib.core.files import MissingFilesError, glot_weights_file

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = {'repr_table1_3dpw': 'table1_3dpw_weights.pth.tar',
            'repr_table1_h36m_mpii3d': 'table1_h36m_mpii3d_weights.pth.tar',
            'repr_table2_3dpw': 'table2_3dpw_weights.pth.tar'}
CFG = str(REPO / 'configs' / 'repr_table1_3dpw.yaml')


@pytest.mark.parametrize('name', OFFICIAL)
def test_config_paths_are_under_data_root(name, tmp_path, monkeypatch):
    """The official weights follow a moved data root (DATA_ROOT or $GLOT_DATA_ROOT), whatever the folder."""
    moved = tmp_path / 'elsewhere'
    (moved / 'pretrained_models').mkdir(parents=True)
    (moved / 'pretrained_models' / OFFICIAL[name]).write_bytes(b'')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(REPO / 'configs' / f'{name}.yaml', ['DATA_ROOT', str(moved)])
    assert glot_weights_file(cfg).path == moved / 'pretrained_models' / OFFICIAL[name]
    assert glot_weights_file(cfg).present()
    monkeypatch.setenv('GLOT_DATA_ROOT', str(moved))
    assert glot_weights_file(load_config(REPO / 'configs' / f'{name}.yaml')).present()
    # one rule for config paths: under DATA_ROOT, except './' and '../' (the current folder, as the official
    # YAMLs' './data/...'); absolute paths stay
    assert resolve_path(cfg, 'base_data/x.npy') == moved / 'base_data' / 'x.npy'
    assert resolve_path(cfg, './base_data/x.npy') == tmp_path / 'base_data' / 'x.npy'
    assert resolve_path(cfg, '../x.npy') == tmp_path / '..' / 'x.npy'
    assert resolve_path(cfg, '/abs/x.npy') == Path('/abs/x.npy')


def test_option_paths_are_under_the_current_folder(dry_entry_points, tmp_path, monkeypatch):
    modules, calls = dry_entry_points
    monkeypatch.chdir(tmp_path)
    assert cli_path('data/w.pth.tar') == str(tmp_path / 'data' / 'w.pth.tar')
    modules['evaluate'].main(['--cfg', CFG, '--dataset', '3dpw', '--checkpoint', 'data/w.pth.tar',
                              '--data-root', 'moved'])
    cfg = calls['evaluate'][0]
    assert glot_weights_file(cfg).path == tmp_path / 'data' / 'w.pth.tar'
    assert data_root(cfg) == tmp_path / 'moved'
    modules['demo'].main(['--vid_file', 'v.mp4', '--cfg', CFG, '--checkpoint', 'data/w.pth.tar',
                          'DATA_ROOT', str(tmp_path / 'moved')])
    cfg, kw = calls['demo'][0], calls['demo'][-1]
    assert glot_weights_file(cfg, kw['checkpoint']).path == tmp_path / 'data' / 'w.pth.tar'


def test_options_may_follow_the_overrides(dry_entry_points):
    modules, calls = dry_entry_points
    modules['train'].main(['--cfg', CFG, 'TRAIN.BATCH_SIZE', '4', '--resume', 'SEED_VALUE', '-1'])
    cfg = calls['train'][0]
    assert (cfg.TRAIN.RESUME, cfg.TRAIN.BATCH_SIZE, cfg.SEED_VALUE) == ('auto', 4, -1)
    modules['evaluate'].main(['--cfg', CFG, 'DATA_ROOT', 'x', '--render', '--dataset', 'h36m', 'DEVICE', 'cpu'])
    cfg, dataset, kw = calls['evaluate']
    assert (dataset, kw['render'], cfg.DATA_ROOT, cfg.DEVICE) == ('h36m', True, 'x', 'cpu')
    # after '--' everything is an override, also a value that starts with '-' and is not a plain number
    modules['demo'].main(['--cfg', CFG, 'DATA_ROOT', 'x', '--sideview', '--vid_file', 'v.mp4', '--',
                          'EXP_NAME', '-run-1'])
    cfg, options = calls['demo'][0], calls['demo'][3]
    assert cfg.DEMO.SIDEVIEW and options.render and cfg.DATA_ROOT == 'x' and cfg.EXP_NAME == '-run-1'


def _missing_lines(err: pytest.ExceptionInfo, root: Path) -> list[str]:
    """The indented lines of a missing-files report, after checking its first line names ``root``."""
    first, *lines = str(err.value).splitlines()
    assert first.endswith(f'missing (nothing was run; paths in a config are under DATA_ROOT, here {root}):')
    assert first.startswith(f'{len(lines)} files needed to ')
    for line in lines:
        what, _, rest = line.partition(': ')
        path, _, source = rest.partition('  <- from ')
        assert what.startswith('  ') and Path(path).is_relative_to(root) and source, line
    return [line.split(': ')[0].strip() for line in lines]


def test_every_missing_file_is_listed_at_once(entry_points, tmp_path):
    """On an empty data root each entry point lists all the files it needs, and nothing else happens."""
    empty = tmp_path / 'empty'
    empty.mkdir()
    modules = entry_points
    with pytest.raises(MissingFilesError) as err:
        modules['train'].main(['--cfg', CFG, 'DATA_ROOT', str(empty), 'OUTPUT_DIR', str(tmp_path / 'out')])
    smpl = ['SMPL neutral model (SMPL.MODEL_DIR)', 'SMPL mean parameters (SMPL.MEAN_PARAMS)',
            'J_regressor_extra (SMPL.J_REGRESSOR_EXTRA)']
    h36m = 'J_regressor_h36m (SMPL.J_REGRESSOR_H36M)'
    assert _missing_lines(err, empty) == smpl + [h36m, 'SPIN checkpoint (TRAIN.PRETRAINED_REGRESSOR)'] + [
        f'{name} train database (DATASET.FILES.{name}.TRAIN)' for name in ('Insta', 'ThreeDPW', 'MPII3D', 'Human36M')
    ] + ['ThreeDPW val database (DATASET.FILES.ThreeDPW.VAL)']
    assert not (tmp_path / 'out').exists()

    with pytest.raises(MissingFilesError) as err:
        modules['evaluate'].main(['--cfg', CFG, '--dataset', '3dpw', '--data-root', str(empty),
                                  '--output_dir', str(tmp_path / 'out'), 'EVAL.GENDERED_MPVPE', 'True'])
    assert _missing_lines(err, empty) == [
        'GLoT weights (--checkpoint PATH, or TRAIN.PRETRAINED)', 'ThreeDPW test database (DATASET.FILES.ThreeDPW.TEST)',
        'SMPL neutral model (SMPL.MODEL_DIR)', 'SMPL male model (SMPL.MODEL_DIR)', 'SMPL female model (SMPL.MODEL_DIR)',
        *smpl[1:], h36m]
    assert not (tmp_path / 'out').exists()

    frames = tmp_path / 'frames'
    frames.mkdir()
    cv2.imwrite(str(frames / '000000.png'), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MissingFilesError) as err:
        modules['demo'].main(['--vid_file', str(frames), '--cfg', CFG, '--gender', 'female',
                              '--output_folder', str(tmp_path / 'out'), 'DATA_ROOT', str(empty)])
    assert _missing_lines(err, empty) == ['GLoT weights (--checkpoint PATH, or TRAIN.PRETRAINED)',
                                          'SPIN checkpoint (TRAIN.PRETRAINED_REGRESSOR)', smpl[0],
                                          'SMPL female model (SMPL.MODEL_DIR)', *smpl[1:]]
    assert not (tmp_path / 'out').exists()


def test_missing_files_report_on_the_command_line(tmp_path):
    """One ``error:`` line, one indented line per file, exit status 2."""
    proc = subprocess.run([sys.executable, str(REPO / 'evaluate.py'), '--cfg', CFG, '--dataset', 'mpii3d',
                           '--data-root', str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == (f'error: 5 files needed to evaluate are missing (nothing was run; paths in a config are '
                        f'under DATA_ROOT, here {tmp_path}):')
    assert lines[1] == (f'  GLoT weights (--checkpoint PATH, or TRAIN.PRETRAINED): {tmp_path}/pretrained_models/'
                        f'table1_3dpw_weights.pth.tar  <- from pretrained_models/ in the GLoT release\'s Google Drive '
                        f'folder 1PXWeHeo1e5gyXqLpEhIpatlNLd-8lpmc, or a checkpoint of your own training')
    assert len(lines) == 6 and all(line.startswith('  ') for line in lines[1:])
