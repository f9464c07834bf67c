"""Drop-in compatibility with the official repository: its TITLE file choices, its config paths, --gpu and
DEVICE 'cuda', checkpoints resumed both ways with the official trainer's optimizer layout, and the official
evaluate.py options (--seq, --filter, --plot, --render_plain, --frame) on a generated 3DPW test set."""
from __future__ import annotations

import csv
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import joblib
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.core import cli, config
from lib.core.config import load_config, resolve_device, resolve_path
from lib.core.files import MissingFilesError, check_files, glot_weights_file
from lib.dataset.eval_sequences import EvalFrames
from lib.eval.protocol import official_accel_curve
from lib.eval.run import EvalOptions, run_evaluation
from lib.eval.smoothing import quaternion_to_rotmat, rotmat_to_quaternion, slerp_filter
from lib.models import build_model, load_checkpoint, save_checkpoint
from lib.models.checkpoint import (SMPL_DUMMY_PARAMS, UNUSED_WEIGHTS, load_optimizer_state,
                                   official_parameter_names, official_state_dict)
from lib.train.launch import train
from scripts.make_synthetic_data import make_synthetic_data

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / 'tests' / 'fixtures' / 'official_state_dict_keys.txt'
CONFIGS = ('repr_table1_3dpw', 'repr_table1_h36m_mpii3d', 'repr_table2_3dpw')
NAMES = {'ThreeDPW': '3dpw', 'MPII3D': 'mpii3d', 'Human36M': 'h36m'}


# ------------------------------------------------------------------------------------------ TITLE file choice
def official_db_file(title: str, name: str, split: str) -> str | None:
    """The file the official code opens for dataset ``name`` ('3dpw', 'mpii3d', 'h36m'), written from its
    rules: training files by TITLE (lib/dataset/_dataset_3d.py load_db), 'val' of mpii3d with scale12, test
    files of evaluate.py (3DPW plain, MPI-INF-3DHP its 'val' file, Human3.6M only for the h36m TITLE);
    None where the official code opens nothing (its evaluate.py stops for Human3.6M under other TITLEs)."""
    if split == 'test':
        if name == 'h36m':
            return 'h36m_test_25fps_db.pt' if title == 'repr_table4_h36m_mpii3d_model' else None
        return {'3dpw': '3dpw_test_db.pt', 'mpii3d': 'mpii3d_val_scale12_db.pt'}[name]
    infix = {'3dpw': '', 'mpii3d': '_scale12', 'h36m': '_25fps'}[name]
    if split == 'train':
        occ = {'repr_table4_3dpw_model': {'3dpw', 'mpii3d', 'h36m'}, 'repr_table6_3dpw_model': {'mpii3d', 'h36m'},
               'repr_table4_h36m_mpii3d_model': set()}[title]
        if title == 'repr_table6_3dpw_model' and name == '3dpw':
            infix = ''                      # no branch for 3DPW under the Table-6 TITLE: the plain default
        return f"{name}_train{infix}{'_occ' if name in occ else ''}_db.pt"
    return f"{name}_val{'_scale12' if name == 'mpii3d' else ''}_db.pt"


@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_file_is_the_one_the_official_code_opens(name):
    cfg = load_config(REPO / 'configs' / f'{name}.yaml')
    checked = 0
    for key, files in cfg.DATASET.FILES.items():
        for split, value in files.items():
            if key == 'Insta':
                assert value == 'insta_train_db.h5'
                continue
            expected = official_db_file(cfg.TITLE, NAMES[key], split.lower())
            if expected is not None:
                assert value == expected, (name, key, split)
                checked += 1
    assert checked >= 7
    # get_single_item: Human3.6M SMPL parameters are supervised except under the Table-1 3DPW TITLE
    assert cfg.DATASET.H36M_USE_SMPL == (cfg.TITLE != 'repr_table4_3dpw_model')
    # and an official YAML as users keep it (no FILES / H36M_USE_SMPL keys) gets the same choice from TITLE
    official = official_yaml_text(name, '/abs/spin.pth.tar')
    path = Path(REPO / 'configs' / f'{name}.yaml')
    kept = load_config_text_file(official, path.name)
    assert kept.DATASET.FILES == cfg.DATASET.FILES and kept.DATASET.H36M_USE_SMPL == cfg.DATASET.H36M_USE_SMPL


def official_yaml_text(name: str, spin: str) -> str:
    """The official YAML of ``name`` as a user keeps it: this repository's file with the official lines (no
    DATASET.FILES / H36M_USE_SMPL, DEVICE 'cuda', weights './data/pretrained_models/...') and the "your path"
    line of the SPIN checkpoint edited to ``spin``."""
    out, skip = [], False
    for line in (REPO / 'configs' / f'{name}.yaml').read_text().splitlines():
        if line.startswith('  H36M_USE_SMPL') or line.startswith('  FILES:'):
            skip = line.startswith('  FILES:')
            continue
        if skip and line.startswith('    '):
            continue
        skip = False
        line = line.split('  #')[0] if 'PRETRAINED' in line or 'DEVICE' in line else line
        line = line.replace("DEVICE: 'auto'", "DEVICE: 'cuda'")
        line = line.replace("PRETRAINED: 'pretrained_models/", "PRETRAINED: './data/pretrained_models/")
        line = line.replace("PRETRAINED_REGRESSOR: 'base_data/spin_model_checkpoint.pth.tar'",
                            f"PRETRAINED_REGRESSOR: '{spin}'")
        out.append(line)
    return '\n'.join(out) + '\n'


def load_config_text_file(text: str, name: str, opts=()):
    """``load_config`` of a YAML ``text`` written to a file called ``name``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text)
        return load_config(path, list(opts))


# ------------------------------------------------------------------------------------------ paths and devices
def test_official_paths_resolve_from_the_current_folder(tmp_path, monkeypatch):
    data = tmp_path / 'data'
    (data / 'pretrained_models').mkdir(parents=True)
    (data / 'pretrained_models' / 'table1_3dpw_weights.pth.tar').write_bytes(b'x')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('GLOT_DATA_ROOT', raising=False)
    text = official_yaml_text('repr_table1_3dpw', str(tmp_path / 'spin.pth.tar'))
    cfg = load_config_text_file(text, 'official.yaml', ['DATA_ROOT', str(tmp_path / 'elsewhere')])
    assert cfg.DEVICE == 'cuda' and cfg.TRAIN.PRETRAINED == './data/pretrained_models/table1_3dpw_weights.pth.tar'
    assert glot_weights_file(cfg).path == data / 'pretrained_models' / 'table1_3dpw_weights.pth.tar'
    assert resolve_path(cfg, cfg.TRAIN.PRETRAINED_REGRESSOR) == tmp_path / 'spin.pth.tar'
    # a path written without './' is under DATA_ROOT; the file exists in the current folder: one line, both places
    cfg = load_config(None, ['DATA_ROOT', str(tmp_path / 'elsewhere'),
                             'TRAIN.PRETRAINED', 'data/pretrained_models/table1_3dpw_weights.pth.tar'])
    with pytest.raises(MissingFilesError) as err:
        check_files(cfg, [glot_weights_file(cfg)], 'evaluate')
    line = str(err.value).splitlines()[1]
    assert str(tmp_path / 'elsewhere' / 'data' / 'pretrained_models') in line
    assert f"a file exists at {data / 'pretrained_models' / 'table1_3dpw_weights.pth.tar'}" in line


def test_device_cuda_without_cuda_runs_on_the_cpu(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    config._log_cuda_fallback.cache_clear()
    with caplog.at_level(logging.INFO, logger='lib.core.config'):
        assert resolve_device('cuda') == torch.device('cpu')
        assert resolve_device('cuda') == torch.device('cpu')
    assert [r.getMessage() for r in caplog.records] == [
        "DEVICE 'cuda': torch sees no GPU, running on the CPU (as DEVICE auto does)"]
    with pytest.raises(Exception, match="asked for CUDA"):
        resolve_device('cuda:1')


@pytest.mark.parametrize('device, gpus, gpu, expected, logged', [
    ('auto', 0, '0', 'auto', True), ('cuda', 0, '0', 'auto', True), ('cuda', 2, '1', 'cuda:1', False),
    ('auto', 1, '1', 'auto', True), ('cpu', 2, '0', 'cpu', True), ('cuda:1', 2, '1', 'cuda:1', False),
    ('auto', 4, '2,3', 'cuda:2', False)])
def test_gpu_flag(monkeypatch, caplog, device, gpus, gpu, expected, logged):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: gpus)
    with caplog.at_level(logging.INFO, logger='lib.core.cli'):
        assert cli.gpu_device(device, gpu) == expected
    assert bool(caplog.records) == logged and len(caplog.records) <= 1


def test_gpu_on_all_scripts_gives_the_same_config(dry_entry_points, make_cfg, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    modules, calls = dry_entry_points
    cfg_file = './configs/repr_table1_3dpw.yaml'
    monkeypatch.chdir(REPO)
    modules['evaluate'].main(['--dataset', '3dpw', '--cfg', cfg_file, '--gpu', '0'])
    modules['train'].main(['--cfg', cfg_file, '--gpu', '0'])
    modules['demo'].main(['--vid_file', 'demo.mp4', '--gpu', '0', '--cfg', cfg_file])
    for name in ('evaluate', 'train', 'demo'):
        assert calls[name][0].DEVICE == 'auto'
        assert calls[name][0] == load_config(REPO / 'configs' / 'repr_table1_3dpw.yaml')


def test_train_cosine_trans_is_train():
    helps = [subprocess.run([sys.executable, script, '--help'], cwd=REPO, capture_output=True, text=True,
                            timeout=120).stdout for script in ('train.py', 'train_cosine_trans.py')]
    usage = [' '.join(text.split()).replace('train_cosine_trans.py', 'train.py') for text in helps]
    assert usage[0] == usage[1] and '--gpu' in usage[0] and '--resume' in usage[0]


# ------------------------------------------------------------------------------------------ checkpoints both ways
def official_params(names: list[str], state: dict) -> list[torch.nn.Parameter]:
    """The official trainer's ``generator.parameters()``: the 177 tensors in the official order."""
    return [torch.nn.Parameter(state[n].clone().float()) for n in names]


def set_grads(named: dict[str, torch.nn.Parameter], seed: int) -> None:
    """The same gradients by name on both sides; the dead weights and the SMPL dummies get none, as in training."""
    gen = torch.Generator().manual_seed(seed)
    for name in sorted(named):
        dead = name in UNUSED_WEIGHTS or name.rsplit('.', 1)[-1] in SMPL_DUMMY_PARAMS
        named[name].grad = None if dead else torch.randn(named[name].shape, generator=gen)


def test_checkpoints_resume_both_ways_with_the_official_optimizer_layout(make_cfg, tmp_path):
    cfg = make_cfg('configs/repr_table1_3dpw.yaml')
    torch.manual_seed(0)
    model = build_model(cfg)
    names = official_parameter_names(model)
    fixture = [line.split()[0] for line in FIXTURE.read_text().splitlines()]
    own = dict(model.named_parameters())
    assert len(own) == 171 and len(names) == 177
    assert names == [k for k in fixture if k in own or k.rsplit('.', 1)[-1] in ('betas', 'global_orient', 'body_pose')]

    # ours -> official: two Adam steps here, resume with the official trainer's Adam over its 177 parameters
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    for seed in (1, 2):
        set_grads(own, seed)
        opt.step()
    # our earlier files (one entry per model parameter) still load
    native = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    load_optimizer_state(native, model, opt.state_dict())
    assert torch.equal(native.state_dict()['state'][5]['exp_avg'], opt.state_dict()['state'][5]['exp_avg'])
    path = save_checkpoint(tmp_path / 'checkpoint.pth.tar', model, epoch=3, performance=52.5, gen_optimizer=opt)
    ckpt = torch.load(path, weights_only=False)
    assert type(ckpt['performance']) is np.float64 and ckpt['performance'] == 52.5
    assert ckpt['gen_optimizer']['param_groups'][0]['params'] == list(range(177))
    theirs = official_params(names, ckpt['gen_state_dict'])
    official_opt = torch.optim.Adam(theirs, lr=1e-4, weight_decay=1e-4)
    official_opt.load_state_dict(ckpt['gen_optimizer'])          # what resume_pretrained does
    assert_same_step(opt, own, official_opt, dict(zip(names, theirs)), seed=3)

    # official -> ours: the official trainer's checkpoint (its layout, torch.save), resumed by ours
    for seed in (4, 5):
        set_grads(dict(zip(names, theirs)), seed)
        official_opt.step()
    state = official_state_dict(model)
    state.update({n: p.detach().clone() for n, p in zip(names, theirs)})
    torch.save({'epoch': 5, 'gen_state_dict': state, 'performance': np.float64(50.0),
                'gen_optimizer': official_opt.state_dict()}, tmp_path / 'official.pth.tar')
    torch.manual_seed(1)
    resumed = build_model(cfg)
    ckpt = load_checkpoint(resumed, tmp_path / 'official.pth.tar')
    resumed_opt = torch.optim.Adam(resumed.parameters(), lr=1e-4, weight_decay=1e-4)
    load_optimizer_state(resumed_opt, resumed, ckpt['gen_optimizer'])
    mine = dict(resumed.named_parameters())
    assert_same_step(resumed_opt, mine, official_opt, dict(zip(names, theirs)), seed=6)


def assert_same_step(opt, params: dict, official_opt, official_params: dict, seed: int) -> None:
    """One step of our optimizer and of the official one on the same gradients gives bitwise the same
    parameters (those the official model has beside ours included only where both have them)."""
    set_grads(params, seed)
    set_grads(official_params, seed)
    opt.step()
    official_opt.step()
    for name, param in official_params.items():
        if name in params:
            assert torch.equal(param, params[name]), name


# ------------------------------------------------------------------------------------------ the slerp filter
def test_slerp_filter_hand_checked():
    # one joint turning about z: 0 rad, then 1 rad held -> the filter's angle is 0, 0.3, 0.51, 0.657 (x 0.7 each)
    angles = np.array([0.0, 1.0, 1.0, 1.0])
    rot = Rotation.from_rotvec(np.outer(angles, [0, 0, 1])).as_matrix()[:, None].astype(np.float32)
    out = slerp_filter(rot)
    got = Rotation.from_matrix(out[:, 0].astype(np.float64)).as_rotvec()
    np.testing.assert_allclose(got[:, 2], [0.0, 0.3, 0.51, 0.657], atol=1e-6)
    np.testing.assert_allclose(got[:, :2], 0.0, atol=1e-7)
    # the shorter way round: 170 deg then -170 deg (20 deg apart through 180) moves 6 deg, not 102
    rot = Rotation.from_rotvec(np.outer(np.radians([170.0, -170.0]), [1, 0, 0])).as_matrix()[:, None]
    step = Rotation.from_matrix(slerp_filter(rot.astype(np.float32))[:, 0].astype(np.float64))
    assert np.degrees((step[0].inv() * step[1]).magnitude()) == pytest.approx(6.0, abs=1e-4)
    # constant rotations stay, quaternions round-trip with w >= 0
    r = Rotation.random(50, random_state=0).as_matrix()
    np.testing.assert_allclose(slerp_filter(np.repeat(r[:1, None], 5, 0).astype(np.float32)),
                               np.repeat(r[:1, None], 5, 0), atol=1e-6)
    q = rotmat_to_quaternion(r)
    assert (q[:, 0] >= 0).all()
    np.testing.assert_allclose(quaternion_to_rotmat(q), r, atol=1e-12)


def test_official_accel_curve_hand_checked():
    # pred moves with constant acceleration 2 mm/frame^2 on every joint, gt is still: the curve is 2 inside
    t = np.arange(6, dtype=np.float32)
    pred = torch.zeros(6, 14, 3)
    pred[:, :, 0] = torch.from_numpy(1e-3 * t ** 2)[:, None]
    frames = EvalFrames(names=['s'], starts=np.array([0]), lengths=np.array([6]), rows=np.arange(6),
                        seq_id=np.zeros(6, int), windows=np.zeros((6, 16), int), official_order=np.arange(6),
                        scored=np.ones(6, bool))
    curve = official_accel_curve(pred, torch.zeros(6, 14, 3), frames)
    assert np.isnan(curve[[0, 5]]).all()
    np.testing.assert_allclose(curve[1:5], 2.0, rtol=1e-4)


# ------------------------------------------------------------------------------------------ evaluate.py options
@pytest.fixture(scope='module')
def eval_root(synthetic_root, tmp_path_factory):
    """A DATA_ROOT with a generated 3DPW test set (3 sequences of 40 frames), a random GLoT checkpoint and 4
    gray frames per sequence for rendering."""
    root = tmp_path_factory.mktemp('official_eval')
    (root / 'base_data').symlink_to(synthetic_root / 'base_data', target_is_directory=True)
    make_synthetic_data(root, seed=0, only=('3dpw_test',), raw_3dpw=False)
    cfg = load_config(REPO / 'configs' / 'repr_table1_3dpw.yaml', ['DATA_ROOT', str(root), 'DEVICE', 'cpu'])
    torch.manual_seed(3)
    save_checkpoint(root / 'pretrained_models' / 'table1_3dpw_weights.pth.tar', build_model(cfg))
    db = joblib.load(root / 'preprocessed_data' / '3dpw_test_db.pt')
    for seq in sorted({str(n)[:-2] for n in db['vid_name']}):
        for i in range(4):
            path = root / '3dpw' / 'imageFiles' / seq / f'image_{i:05d}.jpg'
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((240, 180, 3), 90, np.uint8))
    return root


def evaluate(root, out, **options):
    cfg = load_config(REPO / 'configs' / 'repr_table1_3dpw.yaml',
                      ['DATA_ROOT', str(root), 'DEVICE', 'cpu', 'EVAL.RENDER_FRAMES', '3'])
    return run_evaluation(cfg, '3dpw', output_dir=out, progress=False, options=EvalOptions(**options))


def test_seq_and_filter(eval_root, tmp_path):
    full = evaluate(eval_root, tmp_path / 'full')
    one = evaluate(eval_root, tmp_path / 'one', seq='test_01')
    assert one.frames.names == ['synth_test_01_0'] and one.num_frames == 40
    for row in ('official', 'corrected'):
        entry = next(s for s in full.sequences if s['protocol'] == row and s['sequence'] == 'synth_test_01_0')
        for metric, value in one.summary[row].items():
            # equal up to float32 rounding of other batch compositions in the forward pass
            assert value == pytest.approx(entry[metric], abs=1e-3), (row, metric)
    with pytest.raises(Exception, match="contains 'nope'"):
        evaluate(eval_root, tmp_path / 'none', seq='nope')

    smooth = evaluate(eval_root, tmp_path / 'smooth', slerp_filter=True)
    # the released script's quirk: the official row's MPVPE is that of the unsmoothed vertices
    assert smooth.summary['official']['mpvpe'] == full.summary['official']['mpvpe']
    assert smooth.summary['corrected']['mpvpe'] != pytest.approx(full.summary['corrected']['mpvpe'], abs=1e-3)
    # a low-pass on the rotations: the (random-weight) predictions' acceleration error drops a lot
    for row in ('official', 'corrected'):
        assert smooth.summary[row]['accel_err'] < 0.5 * full.summary[row]['accel_err']
        assert smooth.summary[row]['mpjpe'] != full.summary[row]['mpjpe']
    # the filter runs per sequence: --seq with --filter gives that sequence's figures of the full run
    one_smooth = evaluate(eval_root, tmp_path / 'one_smooth', seq='test_01', slerp_filter=True)
    entry = next(s for s in smooth.sequences if s['protocol'] == 'corrected' and s['sequence'] == 'synth_test_01_0')
    assert one_smooth.summary['corrected']['accel_err'] == pytest.approx(entry['accel_err'], abs=1e-3)


def test_plot_render_plain_and_frame(eval_root, tmp_path):
    db = joblib.load(eval_root / 'preprocessed_data' / '3dpw_test_db.pt')
    out = tmp_path / 'eval'
    result = evaluate(eval_root, out, plot=True, render_plain=True, frame=1, seq='test_0')
    assert len(result.frames.names) == 3
    for s, name in enumerate(result.frames.names):
        png = out / 'plot' / f'GLoT_accel_pred_error_{name}.png'
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        with open(out / 'plot' / f'GLoT_accel_pred_error_{name}.csv') as f:
            rows = list(csv.DictReader(f))
        n = int(result.frames.lengths[s])
        assert len(rows) == n - 2 and rows[0]['frame'] == '1'
        start = int(result.frames.starts[s])
        for row in ('official', 'corrected'):
            np.testing.assert_allclose([float(r[f'{row}_mm_per_frame2']) for r in rows],
                                       result.accel_curves[row][start + 1:start + n - 1], atol=1e-5)
        # --render_plain --frame 1: the valid frames numbered 1..3 (images exist for 0..3; EVAL.RENDER_FRAMES 3),
        # on a black background
        numbers = [int(Path(str(p)).stem[-5:]) for p in db['img_name'][result.frames.rows[start:start + n]]]
        expected = [k for k in numbers if k >= 1][:3]
        video = cv2.VideoCapture(str(out / 'render' / f'{name}_plain.mp4'))
        frames = []
        while True:
            ok, image = video.read()
            if not ok:
                break
            frames.append(image)
        assert len(frames) == len([k for k in expected if k <= 3]) > 0
        assert frames[0][:3, :3].max() < 20          # the image was gray 90: plain background
    assert not list((out / 'render').glob('*_0.mp4'))


def test_train_resumes_an_official_trainer_checkpoint(synthetic_root, tmp_path, caplog):
    """train.py continues the official trainer's checkpoint.pth.tar (its four entries only), optimizer included."""
    root = tmp_path / 'data'
    root.mkdir()
    (root / 'base_data').symlink_to(synthetic_root / 'base_data', target_is_directory=True)
    make_synthetic_data(root, seed=0, sizes={'3dpw_train': (2, 32), '3dpw_val': (1, 32), 'insta_train': (2, 32)},
                        raw_3dpw=False, occ_names=False, only=('3dpw_train', '3dpw_val', 'insta_train'))
    small = ['DEVICE', 'cpu', 'NUM_WORKERS', '0', 'SEED_VALUE', '3', 'TRAIN.BATCH_SIZE', '4',
             'TRAIN.NUM_ITERS_PER_EPOCH', '2', 'TRAIN.LR_PATIENCE', '0', 'TRAIN.val_epoch', '1',
             'TRAIN.DATASETS_3D', "['ThreeDPW']", 'MODEL.d_model', '64', 'MODEL.n_layers', '1',
             'MODEL.short_d_model', '64', 'MODEL.short_n_layers', '1', 'DATA_ROOT', str(root),
             'OUTPUT_DIR', str(tmp_path / 'runs')]
    train(load_config(None, small + ['EXP_NAME', 'first', 'TRAIN.END_EPOCH', '1']), progress=False)
    ours = torch.load(tmp_path / 'runs' / 'first' / 'checkpoint.pth.tar', weights_only=False)
    official = {k: ours[k] for k in ('epoch', 'gen_state_dict', 'performance', 'gen_optimizer')}
    model = build_model(load_config(None, small))
    assert len(official['gen_optimizer']['param_groups'][0]['params']) == len(list(model.parameters())) + 6
    torch.save(official, tmp_path / 'official_checkpoint.pth.tar')
    with caplog.at_level(logging.INFO, logger='lib.train'):
        result = train(load_config(None, small + ['EXP_NAME', 'second', 'TRAIN.END_EPOCH', '2', 'TRAIN.RESUME',
                                                  str(tmp_path / 'official_checkpoint.pth.tar')]), progress=False)
    messages = '\n'.join(r.getMessage() for r in caplog.records)
    assert 'resuming at epoch 2' in messages and 'Adam starts afresh' not in messages
    assert result['epoch'] == 2 and [h['epoch'] for h in result['history']] == [2]
