"""The evaluation protocol: windows, frame selection, both frame orders, aggregation, CLI end to end."""
from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from smplx.lbs import batch_rodrigues

from lib.core.config import load_config
from lib.dataset.eval_sequences import select_test_frames
from lib.eval.protocol import EVAL_SETS, Evaluator
from lib.eval.report import format_table, write_results

ROW_COLUMN = 200      # feature column holding the DB row, so the fake model can report its windows
VERTS_COLUMN = 150    # features[150:159] = the 3 "vertices" the fake model predicts
NUM_VERTS = 3


class FakeGLoT(torch.nn.Module):
    """Predicts, for each window, the pose stored in the features of its middle frame (index 8)."""

    def __init__(self):
        super().__init__()
        self.rows_seen = []

    def forward(self, features, is_train=False, J_regressor=None, decode_global=True):
        assert features.shape[1:] == (16, 2048) and not is_train and not decode_global
        self.rows_seen.append(features[:, :, ROW_COLUMN].round().long())
        mid = features[:, 8]
        b = mid.shape[0]
        joints = 14 if J_regressor is not None else 49
        out = {'kp_3d': mid[:, :joints * 3].reshape(b, joints, 3),
               'verts': mid[:, VERTS_COLUMN:VERTS_COLUMN + 3 * NUM_VERTS].reshape(b, NUM_VERTS, 3),
               'theta': torch.zeros(b, 85), 'rotmat': torch.eye(3).expand(b, 24, 3, 3)}
        return [out], None, None


class FakeSMPL(torch.nn.Module):
    """'Vertices' = rows of the root rotation + the first 3 betas + ``offset`` (3 vertices)."""

    def __init__(self, offset: float = 0.0):
        super().__init__()
        self.offset = offset

    def forward(self, betas, body_pose, global_orient):
        assert body_pose.shape[1:] == (23, 3, 3) and global_orient.shape[1:] == (1, 3, 3)
        return SimpleNamespace(vertices=global_orient[:, 0] + betas[:, None, :3] + self.offset)


def gt_vertices(pose, shape, offset=0.0):
    rot = batch_rodrigues(torch.as_tensor(pose[:, :3], dtype=torch.float32)).numpy()
    return rot + shape[:, None, :3] + offset


def make_db(seed=0, joints=14, valid_i=False, pred_common=False):
    """Sequences (DB order): 'c' 40 frames, 'a' 10 frames (too short), 'b' 22 frames with 4 invalid (3DPW
    style 'valid'); rows of 'c' and 'b' interleave in places, as np.unique grouping allows."""
    rng = np.random.default_rng(seed)
    names = ['c'] * 20 + ['b'] * 5 + ['c'] * 20 + ['a'] * 10 + ['b'] * 17
    n = len(names)
    db = {'vid_name': np.array(names), 'features': np.zeros((n, 2048), np.float32)}
    gt = rng.normal(size=(n, joints, 3)).astype(np.float32) * 0.3
    pred = gt + rng.normal(size=gt.shape).astype(np.float32) * 0.05
    if pred_common:   # Human3.6M: 49 SPIN GT joints, the model predicts the 14 LSP ones
        pred = pred[:, 25:39]
    db['joints3D'] = gt
    db['features'][:, :pred.shape[1] * 3] = pred.reshape(n, -1)
    db['features'][:, ROW_COLUMN] = np.arange(n)
    db['pose'] = rng.normal(size=(n, 72)).astype(np.float32)
    db['shape'] = rng.normal(size=(n, 10)).astype(np.float32)
    db['features'][:, VERTS_COLUMN:VERTS_COLUMN + 9] = (
        gt_vertices(db['pose'], db['shape']) + rng.normal(size=(n, 3, 3)) * 0.02).reshape(n, 9)
    if valid_i:
        db['valid_i'] = (rng.random((n, 1)) > 0.2).astype(np.float32)
    else:
        valid = np.ones(n, dtype=np.int64)
        valid[[21, 22, 60, 70]] = 0   # two 'b' frames near its start, two later on
        db['valid'] = valid
    return db


# ---------------------------------------------------------------------------------------------------------
# An independent, loop-by-loop re-statement of the released evaluate.py protocol
# ---------------------------------------------------------------------------------------------------------
def _official_window(start, end, seqlen=16):
    length = end - start + 1
    if length == seqlen:
        return list(range(start, end + 1))
    if start == 0:
        return [start] * (seqlen - length) + list(range(start, end + 1))
    return list(range(start, end + 1)) + [end] * (seqlen - length)


def _official_windows(n):
    """evaluate.py's window list: 8 front-padded, the full ones, then 7 back-padded (appended in this order)."""
    front = [[0, 8 + j - 1] for j in range(8)]
    full = [[s, s + 15] for s in range(n - 15)]
    back = [[n - 1 - (8 + j), n - 1] for j in range(7)]
    return [_official_window(a, b) for a, b in front + full + back]


def _procrustes_np(x, y):
    mx, my = x.mean(0), y.mean(0)
    x0, y0 = x - mx, y - my
    u, _, vt = np.linalg.svd(x0.T @ y0)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    scale = np.trace(rot @ x0.T @ y0) / (x0 ** 2).sum()
    return scale * x0 @ rot.T + my


def reference(db, dataset, smpl_offset=None):
    """Frame-weighted official figures in mm (mpvpe for 3dpw), with plain loops and numpy."""
    lsp = EVAL_SETS[dataset].lsp_joints
    res = {'mpjpe': [], 'pa_mpjpe': [], 'accel_err': [], 'mpvpe': []}
    names = db['vid_name']
    feats = db['features']
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        if 'valid' in db:
            rows = rows[db['valid'][rows].astype(bool)]
        n = len(rows)
        if n < 16:
            continue
        windows = _official_windows(n)
        pred_frames = [w[8] for w in windows]         # the model predicts the window's middle frame
        j = 14 if lsp else 49
        pred = np.stack([feats[rows[f], :j * 3].reshape(j, 3) for f in pred_frames]).astype(np.float64)
        gt = db['joints3D'][rows].astype(np.float64)
        if lsp and gt.shape[1] == 49:
            gt = gt[:, 25:39]
        if lsp:
            pelvis = lambda p: (p[:, 2:3] + p[:, 3:4]) / 2
        else:
            from lib.utils.joints import convert_kps
            pred, gt = convert_kps(pred, 'spin', 'mpii3d_test'), convert_kps(gt, 'spin', 'mpii3d_test')
            pelvis = lambda p: p[:, 14:15]
        pred, gt = pred - pelvis(pred), gt - pelvis(gt)
        valid_map = np.arange(n) if 'valid_i' not in db else np.flatnonzero(db['valid_i'][rows, 0])
        if valid_map.size == 0:
            continue
        err = np.linalg.norm(pred - gt, axis=-1).mean(-1)
        pa = np.array([np.linalg.norm(_procrustes_np(p, g) - g, axis=-1).mean() for p, g in zip(pred, gt)])
        acc = np.zeros(n)
        acc[1:-1] = np.linalg.norm((pred[:-2] - 2 * pred[1:-1] + pred[2:]) - (gt[:-2] - 2 * gt[1:-1] + gt[2:]),
                                   axis=-1).mean(-1)
        acc_map = valid_map[(valid_map != 0) & (valid_map != n - 1)]
        res['mpjpe'].append(err[valid_map])
        res['pa_mpjpe'].append(pa[valid_map])
        res['accel_err'].append(acc[acc_map])
        if smpl_offset is not None:
            pv = np.stack([feats[rows[f], VERTS_COLUMN:VERTS_COLUMN + 9].reshape(3, 3) for f in pred_frames])
            gv = gt_vertices(db['pose'][rows], db['shape'][rows], smpl_offset)
            res['mpvpe'].append(np.linalg.norm(pv - gv, axis=-1).mean(-1))
    return {k: float(np.concatenate(v).mean() * 1000) for k, v in res.items() if v}


def evaluate(db, dataset, protocols=('official', 'corrected'), batch_size=7, genders=None):
    model = FakeGLoT()
    gendered = {'male': FakeSMPL(1.0), 'female': FakeSMPL(-1.0)} if genders is not None else None
    ev = Evaluator(model, 'cpu', j_regressor=torch.zeros(17, 6890), smpl=FakeSMPL(), gendered_smpl=gendered,
                   batch_size=batch_size, protocols=protocols, progress=False)
    return ev.evaluate(dataset, db, genders=genders), model


# ---------------------------------------------------------------------------------------------------------
# Protocol
# ---------------------------------------------------------------------------------------------------------
def test_frame_selection_and_windows():
    db = make_db()
    frames = select_test_frames(db, EVAL_SETS['3dpw'].scored_key)
    assert frames.names == ['b', 'c']                      # sorted; 'a' (10 frames) is skipped
    b_rows = [r for r in range(20, 25)] + [r for r in range(55, 72)]
    b_rows = [r for r in b_rows if db['valid'][r]]
    c_rows = list(range(20)) + list(range(25, 45))
    np.testing.assert_array_equal(frames.rows, b_rows + c_rows)
    np.testing.assert_array_equal(frames.lengths, [18, 40])
    # window of frame t = frames t-8 .. t+7 clamped to the sequence, as DB rows
    result, model = evaluate(db, '3dpw', batch_size=5)
    seen = torch.cat(model.rows_seen).numpy()
    for rows in (b_rows, c_rows):
        n = len(rows)
        expected = np.asarray(rows)[np.clip(np.arange(n)[:, None] + np.arange(-8, 8)[None], 0, n - 1)]
        start = frames.rows.tolist().index(rows[0])
        np.testing.assert_array_equal(seen[start:start + n], expected)
    assert seen.shape[0] == 58                             # one window per frame, one forward pass
    # official order: natural except the last 7 frames of each sequence, reversed
    np.testing.assert_array_equal(frames.official_order[:18], list(range(11)) + list(range(17, 10, -1)))
    np.testing.assert_array_equal(frames.official_order[18:], 18 + np.r_[0:33, 39:32:-1])


@pytest.mark.parametrize('dataset', ['3dpw', 'h36m', 'mpii3d'])
def test_official_protocol_matches_loop_reference(dataset):
    joints = 14 if dataset == '3dpw' else 49
    db = make_db(seed=1, joints=joints, valid_i=dataset == 'mpii3d', pred_common=dataset == 'h36m')
    if dataset == 'h36m':
        db.pop('valid')
    result, _ = evaluate(db, dataset)
    ref = reference(db, dataset, smpl_offset=0.0 if dataset == '3dpw' else None)
    official = result.summary['official']
    for metric, value in ref.items():
        assert official[metric] == pytest.approx(value, abs=1e-4), metric
    assert (official['mpvpe'] is None) == (dataset != '3dpw')
    assert result.num_frames == (58 if dataset == '3dpw' else
                                 62 if dataset == 'h36m' else int(result.frames.scored.sum()))


def test_protocols_differ_only_in_last_seven_frames():
    result, _ = evaluate(make_db(seed=2), '3dpw')
    frames = result.frames
    tail = np.zeros(frames.num_frames, dtype=bool)
    for start, n in zip(frames.starts, frames.lengths):
        tail[start + n - 7:start + n] = True
    off, cor = result.frame_errors['official'], result.frame_errors['corrected']
    for metric in ('mpjpe', 'pa_mpjpe', 'mpvpe'):
        differs = ~np.isclose(off[metric], cor[metric], rtol=0, atol=1e-9)
        assert not differs[~tail].any(), metric
        # all tail frames but the middle one (n-4, which maps to itself) are mis-paired
        assert differs.sum() == 6 * len(frames.names), metric
    acc_differs = ~np.isclose(off['accel_err'], cor['accel_err'], rtol=0, atol=1e-9, equal_nan=True)
    near_tail = tail | np.roll(tail, -1)
    assert acc_differs.any() and not acc_differs[~near_tail].any()
    assert result.summary['official']['mpjpe'] > result.summary['corrected']['mpjpe']


def test_one_protocol_and_batch_size_do_not_change_numbers():
    db = make_db(seed=3)
    both, _ = evaluate(db, '3dpw', batch_size=64)
    only, _ = evaluate(db, '3dpw', protocols=('corrected',), batch_size=1)
    assert list(only.summary) == ['corrected']
    for metric, value in both.summary['corrected'].items():
        assert only.summary['corrected'][metric] == pytest.approx(value, abs=1e-6)


def test_gendered_mpvpe_rows():
    db = make_db(seed=4)
    genders = np.where(db['vid_name'] == 'b', 'm', 'f')
    result, _ = evaluate(db, '3dpw', genders=genders)
    assert list(result.summary) == ['official', 'official_gendered', 'corrected', 'corrected_gendered']
    row = result.summary['corrected_gendered']
    assert row['mpjpe'] is None and row['pa_mpjpe'] is None and row['accel_err'] is None
    # 'b' frames: male model (+1 m per coordinate); 'c' frames: female model (-1 m)
    frames = result.frames
    pred_v = db['features'][frames.rows, VERTS_COLUMN:VERTS_COLUMN + 9].reshape(-1, 3, 3)
    offset = np.where(db['vid_name'][frames.rows] == 'b', 1.0, -1.0)[:, None, None]
    gv = gt_vertices(db['pose'][frames.rows], db['shape'][frames.rows]) + offset
    expected = np.linalg.norm(pred_v - gv, axis=-1).mean(-1).mean() * 1000
    assert row['mpvpe'] == pytest.approx(expected, rel=1e-5)
    assert result.summary['corrected']['mpvpe'] < 100 < row['mpvpe']


def test_per_sequence_rows_average_to_summary(tmp_path):
    result, _ = evaluate(make_db(seed=5), '3dpw')
    for row, values in result.summary.items():
        seqs = [s for s in result.sequences if s['protocol'] == row]
        assert [s['sequence'] for s in seqs] == ['b', 'c'] and [s['frames'] for s in seqs] == [18, 40]
        weighted = sum(s['mpjpe'] * s['frames'] for s in seqs) / 58
        assert weighted == pytest.approx(values['mpjpe'], rel=1e-9)
    write_results(result, tmp_path, {'dataset': '3dpw'})
    data = json.loads((tmp_path / 'results.json').read_text())
    units = {'pa_mpjpe': 'mm', 'mpjpe': 'mm', 'mpvpe': 'mm', 'accel_err': 'mm/frame^2'}
    assert data == result.summary
    assert json.loads((tmp_path / 'eval_info.json').read_text())['units'] == units
    with open(tmp_path / 'per_sequence.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[0]['dataset'] == '3dpw' and float(rows[0]['mpjpe']) > 0
    assert list(rows[0]) == ['dataset', 'protocol', 'sequence', 'frames', *units]   # the JSON's names
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    table = format_table(result).splitlines()
    assert table[0].split() == ['dataset', 'protocol', 'frames', *units]
    assert [line.split()[1] for line in table[2:4]] == ['official', 'corrected']
    assert table[-1].startswith('(pa_mpjpe mm, mpjpe mm, mpvpe mm, accel_err mm/frame^2; ')


# ---------------------------------------------------------------------------------------------------------
# End to end: generated 3DPW test DB + generated checkpoint through the CLI
# ---------------------------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]
CFG = 'configs/repr_table1_3dpw.yaml'
RENDER_FRAMES = 3


@pytest.fixture(scope='module')
def eval_root(synthetic_root, tmp_path_factory):
    """A DATA_ROOT with the generated base_data, a generated 3DPW test DB, a checkpoint of a randomly
    initialised GLoT, a few 3DPW frames for --render, and the raw-3DPW gender files."""
    import cv2
    import joblib
    from lib.core.config import load_config
    from lib.models import build_model, save_checkpoint
    from scripts.make_synthetic_data import make_synthetic_data

    root = tmp_path_factory.mktemp('eval_root')
    (root / 'base_data').symlink_to(synthetic_root / 'base_data', target_is_directory=True)
    make_synthetic_data(root, seed=0, only=('3dpw_test',), raw_3dpw=False)
    cfg = load_config(str(REPO / CFG), ['DATA_ROOT', str(root), 'DEVICE', 'cpu'])
    torch.manual_seed(0)
    save_checkpoint(root / 'glot.pth.tar', build_model(cfg))
    db = joblib.load(root / 'preprocessed_data' / '3dpw_test_db.pt')
    for k, seq in enumerate(sorted({str(n)[:-2] for n in db['vid_name']})):
        for i in range(RENDER_FRAMES):
            path = root / '3dpw' / 'imageFiles' / seq / f'image_{i:05d}.jpg'
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((480, 270, 3), 90, np.uint8))
        pkl = root / '3dpw' / 'sequenceFiles' / 'test' / f'{seq}.pkl'
        pkl.parent.mkdir(parents=True, exist_ok=True)
        with open(pkl, 'wb') as f:
            pickle.dump({'sequence': seq, 'genders': ['m' if k % 2 == 0 else 'f']}, f, protocol=2)
    return root


def run_cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / 'evaluate.py'), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_end_to_end(eval_root, tmp_path):
    out = tmp_path / 'eval'
    proc = run_cli('--cfg', CFG, '--dataset', '3dpw', '--checkpoint', eval_root / 'glot.pth.tar',
                   '--data-root', eval_root, '--output_dir', out, '--render', 'DEVICE', 'cpu',
                   'EVAL.BATCH_SIZE', 50, 'EVAL.GENDERED_MPVPE', True, 'EVAL.RENDER_FRAMES', RENDER_FRAMES)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / 'results.json').read_text())
    assert json.loads((out / 'eval_info.json').read_text())['units']['accel_err'] == 'mm/frame^2'
    assert list(results) == ['official', 'official_gendered', 'corrected', 'corrected_gendered']
    for row, values in results.items():
        assert list(values) == ['pa_mpjpe', 'mpjpe', 'mpvpe', 'accel_err']
        assert isinstance(values['mpvpe'], float) and values['mpvpe'] > 0
        if row.endswith('_gendered'):
            assert values['mpjpe'] is None and values['pa_mpjpe'] is None and values['accel_err'] is None
        else:
            assert all(isinstance(v, float) and 0 < v < 1e4 for v in values.values())
    # the printed table has every row, in mm with two decimals
    for row in results:
        line = next(l for l in proc.stdout.splitlines() if f' {row} ' in f' {l} ')
        if not row.endswith('_gendered'):
            assert f"{results[row]['mpjpe']:.2f}" in line
    with open(out / 'per_sequence.csv') as f:
        rows = list(csv.DictReader(f))
    assert {r['protocol'] for r in rows} == set(results) and len(rows) == 4 * 3
    frames = sum(int(r['frames']) for r in rows if r['protocol'] == 'official')
    info = json.loads((out / 'eval_info.json').read_text())
    assert info['frames'] == frames == 3 * 40 - 5              # 5 invalid frames in the generated DB
    assert len(list((out / 'render').glob('*.mp4'))) == 3
    # the run record: the command first in log.txt, the printed table in it too, the merged config beside
    log = (out / 'log.txt').read_text()
    assert f"] command: {REPO / 'evaluate.py'} --cfg {CFG} --dataset 3dpw --checkpoint " in log.split('\n')[0]
    assert line in log
    assert load_config(str(out / 'config.yaml')).EVAL.RENDER_FRAMES == RENDER_FRAMES

    # per_frame.npz: both orders differ only through the last 7 frames of each sequence
    per_frame = np.load(out / 'per_frame.npz')
    tail = np.zeros(frames, dtype=bool)
    for s in range(3):
        positions = np.flatnonzero(per_frame['seq_id'] == s)
        tail[positions[per_frame['frame'][positions] >= len(positions) - 7]] = True
    for metric in ('mpjpe', 'pa_mpjpe', 'mpvpe'):
        off, cor = per_frame[f'official__{metric}'], per_frame[f'corrected__{metric}']
        assert off.mean() == pytest.approx(results['official'][metric], rel=1e-9)
        np.testing.assert_array_equal(off[~tail], cor[~tail])
        assert (off[tail] != cor[tail]).sum() == 6 * 3        # all but the middle one of the 7
    off, cor = per_frame['official__accel_err'], per_frame['corrected__accel_err']
    near_tail = tail | np.roll(tail, -1)                      # accel at t also uses frame t + 1
    np.testing.assert_array_equal(off[~near_tail], cor[~near_tail])
    assert np.nanmean(off) == pytest.approx(results['official']['accel_err'], rel=1e-9)
    assert np.nanmean(cor) == pytest.approx(results['corrected']['accel_err'], rel=1e-9)


def test_cli_unknown_dataset_is_one_line(tmp_path):
    proc = run_cli('--cfg', CFG, '--dataset', 'coco', '--output_dir', tmp_path / 'out')
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: unknown dataset 'coco'; use one of 3dpw, h36m, mpii3d"]
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('case', ['checkpoint', 'database', 'smpl', 'architecture'])
def test_bad_input_raises_one_line_user_error(eval_root, synthetic_root, tmp_path, case):
    from lib.core.config import load_config
    from lib.eval.run import run_evaluation
    from lib.core.errors import UserError

    opts = ['DATA_ROOT', str(eval_root), 'DEVICE', 'cpu', 'TRAIN.PRETRAINED', str(eval_root / 'glot.pth.tar')]
    expected = {'checkpoint': r'^1 file needed to evaluate is missing .*\n  GLoT weights .*missing\.pth\.tar',
                'database': r'^1 file .*\n  ThreeDPW test database .*missing_db\.pt  <- from TCMR',
                'smpl': r'^1 file .*\n  SMPL neutral model \(SMPL\.MODEL_DIR\): .*SMPL_NEUTRAL\.pkl  <- from SMPLify',
                'architecture': 'is not a GLoT checkpoint'}[case]
    if case == 'checkpoint':
        opts += ['TRAIN.PRETRAINED', str(tmp_path / 'missing.pth.tar')]
    elif case == 'database':
        opts += ['DATASET.FILES.ThreeDPW.TEST', 'missing_db.pt']
    elif case == 'smpl':
        opts += ['SMPL.MODEL_DIR', str(tmp_path)]
    else:   # SPIN's checkpoint: a real checkpoint of another model
        opts += ['TRAIN.PRETRAINED', str(synthetic_root / 'base_data' / 'spin_model_checkpoint.pth.tar')]
    cfg = load_config(str(REPO / CFG), opts)
    out = tmp_path / 'out'
    with pytest.raises(UserError, match=expected) as err:
        run_evaluation(cfg, '3dpw', output_dir=out, progress=False)
    assert len(str(err.value).splitlines()) == (1 if case == 'architecture' else 2)
    assert not out.exists()
