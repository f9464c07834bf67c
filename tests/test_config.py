import subprocess
import sys
from pathlib import Path

import pytest

from lib.core.config import ConfigError, db_path, load_config, resolve_path

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_YAMLS = ['repr_table1_3dpw', 'repr_table1_h36m_mpii3d', 'repr_table2_3dpw']


@pytest.mark.parametrize('name', OFFICIAL_YAMLS)
def test_official_yamls_load_with_official_values(name):
    cfg = load_config(REPO / 'configs' / f'{name}.yaml')
    assert cfg.DATASET.SEQLEN == 16 and cfg.TRAIN.BATCH_SIZE == 64 and cfg.TRAIN.DATA_2D_RATIO == 0.6
    assert cfg.MODEL.d_model == 512 and cfg.MODEL.short_d_model == 256 and cfg.MODEL.mask_ratio == 0.5
    assert cfg.LOSS.use_accel is False and cfg.LOSS.POSE_W == 60.0
    assert cfg.MODEL.HSCR_OFFICIAL_POSE_SLICE and cfg.LOSS.GLOBAL_VEL3D_UNMASKED
    assert cfg.is_frozen()


def test_yaml_values_differ_per_table_and_select_the_official_files():
    t1 = load_config(REPO / 'configs/repr_table1_3dpw.yaml')
    t1h = load_config(REPO / 'configs/repr_table1_h36m_mpii3d.yaml')
    t2 = load_config(REPO / 'configs/repr_table2_3dpw.yaml')
    assert (t1.LOSS.KP_2D_W, t1.LOSS.KP_3D_W, t1.TRAIN.END_EPOCH, t1.TRAIN.LR_PATIENCE) == (300, 300, 50, 5)
    assert (t1h.TRAIN.val_epoch, t1h.TRAIN.END_EPOCH, t1h.TRAIN.GEN_WD) == (30, 75, 1e-5)
    assert t2.TRAIN.NUM_ITERS_PER_EPOCH == 500 and list(t2.TRAIN.DATASETS_3D) == ['MPII3D', 'Human36M']
    assert t1.DATASET.FILES.Human36M.TRAIN == 'h36m_train_25fps_occ_db.pt' and not t1.DATASET.H36M_USE_SMPL
    assert t1h.DATASET.FILES.MPII3D.TRAIN == 'mpii3d_train_scale12_db.pt' and t1h.DATASET.H36M_USE_SMPL
    assert t2.DATASET.FILES.ThreeDPW.VAL == '3dpw_val_db.pt' and t2.DATASET.H36M_USE_SMPL


def test_overrides_and_path_resolution(tmp_path):
    cfg = load_config(REPO / 'configs/repr_table1_3dpw.yaml',
                      ['TRAIN.BATCH_SIZE', '8', 'DATA_ROOT', str(tmp_path), 'EVAL.PROTOCOLS', "['corrected']"])
    assert cfg.TRAIN.BATCH_SIZE == 8 and list(cfg.EVAL.PROTOCOLS) == ['corrected']
    assert resolve_path(cfg, cfg.SMPL.MEAN_PARAMS) == tmp_path / 'base_data/smpl_mean_params.npz'
    assert db_path(cfg, 'ThreeDPW', 'TEST') == tmp_path / 'preprocessed_data/3dpw_test_db.pt'
    assert resolve_path(cfg, '/abs/file.pt') == Path('/abs/file.pt')
    assert resolve_path(cfg, cfg.TRAIN.PRETRAINED) == tmp_path / 'pretrained_models/table1_3dpw_weights.pth.tar'


def test_data_root_defaults_to_env_then_repo(monkeypatch, tmp_path):
    cfg = load_config()
    monkeypatch.delenv('GLOT_DATA_ROOT', raising=False)
    assert resolve_path(cfg, 'base_data') == REPO / 'data/base_data'
    monkeypatch.setenv('GLOT_DATA_ROOT', str(tmp_path))
    assert resolve_path(cfg, 'base_data') == tmp_path / 'base_data'


@pytest.mark.parametrize('opts, fragment', [
    (['TRAIN.NOT_A_KEY', '1'], 'unknown config key: TRAIN.NOT_A_KEY'),
    (['TRAIN.BATCH_SIZE'], 'KEY VALUE pairs'),
    (['TRAIN.BATCH_SIZE', "'abc'"], 'TRAIN.BATCH_SIZE'),
])
def test_bad_overrides_raise_one_line(opts, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, opts)
    assert fragment in str(err.value) and '\n' not in str(err.value)


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('TRAIN:\n  BATCH_SIZE: [1\n')
    with pytest.raises(ConfigError, match='malformed YAML'):
        load_config(bad)
    unknown = tmp_path / 'unknown.yaml'
    unknown.write_text('MODEL:\n  not_a_key: 3\n')
    with pytest.raises(ConfigError, match='unknown config key: MODEL.not_a_key'):
        load_config(unknown)
    with pytest.raises(ConfigError, match='config file not found'):
        load_config(tmp_path / 'missing.yaml')


def test_cli_unknown_key_exits_2_with_one_line():
    code = ('from lib.core.cli import config_argument_parser, config_from_args, run_main\n'
            'p = config_argument_parser("t")\n'
            'run_main(lambda: config_from_args(p.parse_args(["--cfg", "configs/repr_table1_3dpw.yaml", "FOO.BAR", "1"])))\n')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ['error: override: unknown config key: FOO.BAR (see lib/core/config.py)']


def test_defaults_file_and_constructors_agree():
    """One set of defaults: the config's MODEL and LOSS blocks equal GLoT's and GLoTLoss's keyword defaults,
    and the MODEL defaults are the official YAMLs' (the paper's) architecture."""
    import inspect

    from lib.models import GLoT
    from lib.train.loss import GLoTLoss

    cfg = load_config(None)
    glot = {k: p.default for k, p in inspect.signature(GLoT.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}
    model_keys = {k: v for k, v in cfg.MODEL.items() if k.islower()}
    assert {k: glot[k] for k in model_keys} == model_keys
    assert glot['hscr_official_pose_slice'] == cfg.MODEL.HSCR_OFFICIAL_POSE_SLICE
    assert glot['keep_unused_weights'] == cfg.MODEL.KEEP_UNUSED_WEIGHTS and glot['seqlen'] == cfg.DATASET.SEQLEN
    for yaml_file in ('repr_table1_3dpw.yaml', 'repr_table1_h36m_mpii3d.yaml', 'repr_table2_3dpw.yaml'):
        assert load_config(REPO / "configs" / yaml_file).MODEL == cfg.MODEL
    loss = {k: p.default for k, p in inspect.signature(GLoTLoss.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}
    assert loss == {'kp_2d_weight': cfg.LOSS.KP_2D_W, 'kp_3d_weight': cfg.LOSS.KP_3D_W,
                    'pose_weight': cfg.LOSS.POSE_W, 'shape_weight': cfg.LOSS.SHAPE_W,
                    'motion_2d_weight': cfg.LOSS.vel_or_accel_2d_weight,
                    'motion_3d_weight': cfg.LOSS.vel_or_accel_3d_weight, 'use_accel': cfg.LOSS.use_accel,
                    'global_vel3d_unmasked': cfg.LOSS.GLOBAL_VEL3D_UNMASKED}


def test_whole_numbers_for_float_keys_and_demo_settings(tmp_path):
    """A whole number typed for a float key is that float (command line and YAML); the demo's behaviour
    flags are DEMO keys checked by the config rules, merged over a config without changing it."""
    from lib.core.config import merge_settings

    cfg = load_config(None, ['DEMO.FOCAL_LENGTH', '960', 'TRAIN.GEN_LR', '1'])
    assert cfg.DEMO.FOCAL_LENGTH == 960.0 and isinstance(cfg.DEMO.FOCAL_LENGTH, float) and cfg.TRAIN.GEN_LR == 1.0
    (tmp_path / 'c.yaml').write_text('DEMO:\n  FOCAL_LENGTH: 500\n  MIN_TRACK_LEN: 10\n')
    cfg = load_config(str(tmp_path / 'c.yaml'))
    assert isinstance(cfg.DEMO.FOCAL_LENGTH, float) and cfg.DEMO.FOCAL_LENGTH == 500.0
    assert isinstance(cfg.DEMO.MIN_TRACK_LEN, int)
    with pytest.raises(ConfigError, match='Type mismatch'):
        load_config(None, ['DEMO.MIN_TRACK_LEN', '2.5'])           # not the other way round

    demo = merge_settings(cfg, {'DEMO.GENDER': 'female', 'DEMO.EXPORT': ('glb',), 'DEMO.SIDEVIEW': True})
    assert (demo.DEMO.GENDER, demo.DEMO.EXPORT, demo.DEMO.SIDEVIEW) == ('female', ['glb'], True)
    assert cfg.DEMO.GENDER == 'neutral' and demo.is_frozen()
    for opts, message in ((['DEMO.GENDER', 'robot'], "DEMO.GENDER 'robot' is not one of neutral, male, female"),
                          (['DEMO.EXPORT', "['fbx']"], "DEMO.EXPORT ['fbx'] must list only of glb, bvh"),
                          (['DEMO.TRACKER_BATCH_SIZE', '0'], 'DEMO.TRACKER_BATCH_SIZE 0 is out of range')):
        with pytest.raises(ConfigError, match=message.replace('[', r'\[').replace(']', r'\]')):
            merge_settings(cfg, opts)
