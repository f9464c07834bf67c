"""Database readers, crops and keypoint transforms, training/validation samples, loaders, test sequences."""
import logging
import os

import h5py
import joblib
import numpy as np
import pytest
import torch

from lib.core.config import load_config
from lib.dataset.dataset2d import InstaDataset
from lib.dataset.dataset3d import Dataset3D, ValidationDataset3D
from lib.dataset.db import H5Database, load_db, read_db
from lib.dataset.eval_sequences import select_test_frames
from lib.dataset import loaders
from lib.dataset.loaders import ConcatClips, ClipStream, batch_split, build_train_loaders, build_val_loader
from lib.core.errors import UserError
from lib.utils.img_utils import (bbox_from_keypoints, crop_image, crop_patch, crop_transform, normalize_2d_kp,
                                 smooth_keypoint_bboxes, transform_keypoints)


def tiny_db(lengths, j2d=14, j3d=49, seed=0, valid=None):
    """A hand-made 3D database with the released keys (N = sum(lengths))."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    vid = np.concatenate([[f'courtyard_{i:02d}_0'] * k for i, k in enumerate(lengths)])
    db = {
        'vid_name': vid, 'frame_id': np.concatenate([np.arange(k) for k in lengths]),
        'img_name': np.array([f'img_{i:05d}.jpg' for i in range(n)]),
        'joints2D': np.concatenate([rng.uniform(100, 900, (n, j2d, 2)), np.ones((n, j2d, 1))], axis=2),
        'joints3D': rng.normal(0, 0.3, (n, j3d, 3)).astype(np.float32),
        'pose': rng.normal(0, 0.2, (n, 72)).astype(np.float32),
        'shape': rng.normal(0, 1, (n, 10)).astype(np.float32),
        'bbox': np.tile([500.0, 500.0, 800.0, 800.0], (n, 1)),
        'features': rng.normal(0, 1, (n, 2048)).astype(np.float32),
        'valid': np.ones(n, dtype=bool) if valid is None else valid,
    }
    db['features'][:, 0] = np.arange(n)          # frame and database tags to check gathers
    db['features'][:, 1] = seed
    return db


# ----------------------------------------------------------------------------------------------- readers
def test_missing_file_names_release_and_place(tmp_path):
    with pytest.raises(UserError) as err:
        load_db(tmp_path / 'preprocessed_data' / '3dpw_train_occ_db.pt', 'ThreeDPW', 'TRAIN')
    msg = str(err.value)
    assert '3dpw_train_occ_db.pt' in msg and '1h0FxBGLqsxNvUL0J43WkTxp7WgYIBLy-' in msg
    assert 'preprocessed_data' in msg and '\n' not in msg
    with pytest.raises(UserError, match='VIBE'):
        H5Database(tmp_path / 'insta_train_db.h5')


def test_missing_key_and_inconsistent_lengths(tmp_path):
    db = tiny_db([20])
    del db['bbox']
    joblib.dump(db, tmp_path / 'a_db.pt')
    with pytest.raises(UserError, match=r"a_db.pt: required key 'bbox'"):
        load_db(tmp_path / 'a_db.pt', 'ThreeDPW', 'TRAIN')
    db = tiny_db([20])
    db['pose'] = db['pose'][:19]
    joblib.dump(db, tmp_path / 'b_db.pt')
    with pytest.raises(UserError, match=r"b_db.pt: key 'pose' has 19 rows but 'vid_name' has 20"):
        load_db(tmp_path / 'b_db.pt', 'ThreeDPW', 'TRAIN')
    db = tiny_db([20], j3d=14)
    joblib.dump(db, tmp_path / 'c_db.pt')
    with pytest.raises(UserError, match=r"c_db.pt: key 'joints3D' has shape \(20, 14, 3\), expected \(N, 49, 3\)"):
        load_db(tmp_path / 'c_db.pt', 'ThreeDPW', 'TRAIN')
    assert load_db(tmp_path / 'c_db.pt', 'ThreeDPW', 'TEST')['joints3D'].shape == (20, 14, 3)


def test_read_db_uses_config_paths(tmp_path):
    (tmp_path / 'preprocessed_data').mkdir()
    joblib.dump(tiny_db([20], j3d=14), tmp_path / 'preprocessed_data' / '3dpw_val_db.pt')
    cfg = load_config(None, ['DATA_ROOT', str(tmp_path)])
    assert len(read_db(cfg, 'ThreeDPW', 'VAL')['vid_name']) == 20


# ------------------------------------------------------------------------------------ crops and keypoints
def test_crop_transform_maps_box_onto_patch():
    trans = crop_transform((100.0, 50.0, 40.0, 40.0), scale=1.2, size=224)
    # the box centre goes to the patch centre; 1.2 * 40 = 48 px span 224 px
    assert np.allclose(trans @ [100, 50, 1], [112, 112])
    assert np.allclose(trans @ [124, 74, 1], [224, 224])
    kp = np.array([[[100.0, 50.0], [124.0, 74.0], [76.0, 50.0]]])
    assert np.allclose(transform_keypoints(kp, np.array([[100.0, 50.0, 40.0, 40.0]])),
                       [[[112, 112], [224, 224], [0, 112]]])
    assert np.allclose(normalize_2d_kp(np.array([0.0, 112.0, 224.0])), [-1, 0, 1])


def test_transform_keypoints_matches_affine_matrix():
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 1920, (50, 49, 2))
    box = np.concatenate([rng.uniform(200, 1500, (50, 2)), np.repeat(rng.uniform(50, 900, (50, 1)), 2, 1)], 1)
    fast = transform_keypoints(kp, box)
    for i in range(50):
        trans = crop_transform(box[i])
        ref = kp[i] @ trans[:, :2].T + trans[:, 2]
        assert np.allclose(fast[i], ref, rtol=0, atol=1e-9)


def test_crop_image_normalised_and_placed():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[40:60, 90:110] = (255, 0, 0)                      # red square centred at (100, 50)
    crop = crop_image(image, (100, 50, 20, 20), scale=1.0, size=224)
    assert crop.shape == (3, 224, 224) and crop.dtype == torch.float32
    # the square fills the whole patch: red = (1 - 0.485) / 0.229, green = -0.456 / 0.224
    assert crop[0, 112, 112].item() == pytest.approx((1 - 0.485) / 0.229, abs=1e-5)
    assert crop[1, 112, 112].item() == pytest.approx(-0.456 / 0.224, abs=1e-5)
    patch = crop_patch(image, (100, 50, 20, 20), scale=2.0, size=224)
    assert patch[112, 112, 0] == 255 and patch[5, 5, 0] == 0       # outer half is black background


def test_bbox_helpers():
    kp = np.array([[10.0, 20.0, 1], [30.0, 100.0, 1]])
    assert np.allclose(bbox_from_keypoints(kp), [20, 60, 88, 88])
    track = np.zeros((30, 2, 3))
    track[:, 0, :2] = [100, 100]
    track[:, 1, :2] = [130, 140]                            # diagonal 50 px
    track[:, :, 2] = 1
    track[:3, :, 2] = 0                                     # invisible at the start
    track[10, :, 2] = 0                                     # and in a gap
    params, start, stop = smooth_keypoint_bboxes(track, 0.3)
    assert (start, stop) == (3, 30) and params.shape == (27, 3)
    assert np.allclose(params[5:-5], [115, 120, 3.0])      # median filter zero-pads, so check the interior
    short, _, _ = smooth_keypoint_bboxes(track[3:7], 0.3)   # 4 frames: kernel 3 instead of 11
    assert np.isfinite(short).all() and np.allclose(short[1:3], [115, 120, 3.0], atol=0.5)


# ------------------------------------------------------------------------------------------- samples
def test_dataset3d_sample_official_targets():
    db = tiny_db([20, 40])
    ds = Dataset3D(db, 'ThreeDPW', seqlen=16)
    assert len(ds) == 3                                     # [0,15], [20,35], [36,51]
    s = ds[1]
    assert s['features'].shape == (16, 2048) and s['features'][:, 0].tolist() == list(range(20, 36))
    assert s['kp_2d'].shape == (16, 49, 3) and s['kp_3d'].shape == (16, 49, 3) and s['theta'].shape == (16, 85)
    # common 'rankle' (index 0) lands in SPIN index 25; box (500, 500, 800) x 1.2 -> x_norm = (x - 500) / 480
    x = db['joints2D'][20, 0, 0]
    assert s['kp_2d'][0, 25, 0].item() == pytest.approx(np.float16((x - 500) / 480), abs=0)
    assert s['kp_2d'][0, 25, 2].item() == 1.0
    assert s['kp_2d'][0, 0, 2].item() == 0.0 and s['kp_2d'][0, 0, 0].item() == pytest.approx(-500 / 480, abs=1e-3)
    assert s['theta'][3, :3].tolist() == [1, 0, 0]
    assert torch.equal(s['theta'][3, 3:75], torch.from_numpy(db['pose'][23].astype(np.float16)).float())
    assert torch.equal(s['kp_3d'], torch.from_numpy(db['joints3D'][20:36].astype(np.float16)).float())
    assert s['w_smpl'].tolist() == [1.0] * 16 and s['w_3d'].tolist() == [1.0] * 16
    assert s['kp_2d'].abs().max() < 2


def test_dataset3d_flags_per_dataset():
    mpi = tiny_db([16], j2d=49)
    mpi.pop('pose'), mpi.pop('shape')
    s = Dataset3D(mpi, 'MPII3D')[0]
    assert s['w_smpl'].sum() == 0 and s['w_3d'].sum() == 16
    assert s['theta'][:, 0].tolist() == [1.0] * 16 and s['theta'][:, 1:].abs().sum() == 0
    h36m = tiny_db([16], j2d=49)
    assert Dataset3D(h36m, 'Human36M', use_smpl=False)[0]['w_smpl'].sum() == 0
    assert Dataset3D(h36m, 'Human36M', use_smpl=True)[0]['w_smpl'].sum() == 16


def test_validation_dataset_mid_frame_targets():
    db = tiny_db([20], j3d=14)
    ds = ValidationDataset3D(db, 'ThreeDPW', seqlen=16)
    assert len(ds) == 16
    batch = ds.get_batch(np.arange(16))
    assert batch['features'].shape == (16, 16, 2048) and batch['kp_3d'].shape == (16, 14, 3)
    assert batch['features'][:, 8, 0].tolist() == list(range(16))
    assert (batch['features'][0, :, 0] == 0).all()           # padding window = frame 0 repeated
    assert torch.equal(batch['kp_3d'][5], torch.from_numpy(db['joints3D'][5].astype(np.float16)).float())
    assert batch['theta'].shape == (16, 85) and batch['valid'].tolist() == [1.0] * 16


def write_insta(path, lengths, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    with h5py.File(path, 'w') as f:
        f['vid_name'] = np.concatenate([[f'insta_{i}'.encode()] * k for i, k in enumerate(lengths)])
        f['frame_id'] = np.concatenate([np.arange(k) for k in lengths])
        f['joints2D'] = np.concatenate([rng.uniform(0, 224, (n, 25, 2)), np.ones((n, 25, 1))], 2)
        feats = rng.normal(0, 1, (n, 2048)).astype(np.float32)
        feats[:, 0] = np.arange(n)
        f['features'] = feats


def test_insta_dataset(tmp_path):
    write_insta(tmp_path / 'insta.h5', [40, 8, 16])
    db = H5Database(tmp_path / 'insta.h5')
    ds = InstaDataset(db, seqlen=16)
    assert len(ds) == 3
    s = ds[2]
    assert s['features'][:, 0].tolist() == list(range(48, 64))
    with h5py.File(tmp_path / 'insta.h5') as f:
        x = f['joints2D'][48, 0, 0]                         # insta 'OP RHeel' -> SPIN index 24
    assert s['kp_2d'][0, 24, 0].item() == np.float16(2 * x / 224 - 1)
    assert s['kp_2d'].shape == (16, 49, 3)


# ------------------------------------------------------------------------------------------- loaders
def data_root(tmp_path):
    root = tmp_path / 'root'
    (root / 'preprocessed_data').mkdir(parents=True)
    joblib.dump(tiny_db([40, 33], seed=1), root / 'preprocessed_data' / '3dpw_train_db.pt')
    mpi = tiny_db([50], j2d=49, seed=2)
    joblib.dump(mpi, root / 'preprocessed_data' / 'mpii3d_train_scale12_db.pt')
    joblib.dump(tiny_db([20, 30], j3d=14, seed=3), root / 'preprocessed_data' / '3dpw_val_db.pt')
    write_insta(root / 'preprocessed_data' / 'insta_train_db.h5', [64, 20, 33])
    return root


def test_batch_split_official():
    assert batch_split(64, 0.6) == (38, 26)


def test_mixed_loader_composition_and_exact_resume(tmp_path):
    root = data_root(tmp_path)
    cfg = load_config(None, ['DATA_ROOT', str(root), 'TRAIN.DATASETS_3D', "['ThreeDPW', 'MPII3D']",
                             'TRAIN.BATCH_SIZE', '5', 'TRAIN.DATA_2D_RATIO', '0.6', 'DATASET.SEQLEN', '16',
                             'TRAIN.OVERLAP', '0.0', 'NUM_WORKERS', '0', 'DEVICE', 'cpu'])
    it = build_train_loaders(cfg, seed=7)
    # 2D: 4 + 1 + 2 = 7 windows, 3 per batch; 3D: 3DPW 2 + 2 windows, MPII3D 3 -> 7 windows, 2 per batch
    t2, t3 = next(it)
    assert t2['features'].shape == (3, 16, 2048) and t2['kp_2d'].shape == (3, 16, 49, 3)
    assert t3['features'].shape == (2, 16, 2048) and set(t3) == {'features', 'kp_2d', 'kp_3d', 'theta', 'w_smpl', 'w_3d'}
    def tags(batch):
        return [tuple(x) for x in batch['features'][:, 0, :2].tolist()]
    seen = [tags(t3)]
    for _ in range(3):
        seen.append(tags(next(it)[1]))
    # one pass over the 7 3D windows = batches of 2, 2, 2, 1 (last one smaller), each window once
    assert [len(b) for b in seen] == [2, 2, 2, 1]
    assert len({x for b in seen for x in b}) == 7
    state = it.state_dict()
    expected = [next(it) for _ in range(5)]
    fresh = build_train_loaders(cfg, seed=123)
    fresh.load_state_dict(state)
    for (a2, a3), (b2, b3) in zip(expected, [next(fresh) for _ in range(5)]):
        assert torch.equal(a2['features'], b2['features']) and torch.equal(a3['kp_2d'], b3['kp_2d'])


def test_loader_workers_capped_at_the_cpus_once(monkeypatch, caplog):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1}, raising=False)
    loaders._capped_workers.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger='lib'):
            assert [loaders.num_workers(load_config(None, ['NUM_WORKERS', '16'])) for _ in range(3)] == [2, 2, 2]
            assert loaders.num_workers(load_config(None, ['NUM_WORKERS', '1'])) == 1
    finally:
        loaders._capped_workers.cache_clear()
    assert caplog.messages == ['NUM_WORKERS 16: using 2 loader worker processes, the number of CPUs available']


def test_concat_clips_keeps_index_order():
    a = Dataset3D(tiny_db([32]), 'ThreeDPW')
    b = Dataset3D(tiny_db([16], j2d=49), 'MPII3D')
    clips = ConcatClips([a, b])
    batch = clips.get_batch([2, 0, 1])
    assert batch['w_smpl'][:, 0].tolist() == [0.0, 1.0, 1.0]
    assert batch['features'][:, 0, 0].tolist() == [0.0, 0.0, 16.0]
    stream = ClipStream(clips, 2, seed=0, stream_id=1)
    assert sorted(stream.order(0).tolist()) == [0, 1, 2]


def test_val_loader(tmp_path):
    cfg = load_config(None, ['DATA_ROOT', str(data_root(tmp_path)), 'NUM_WORKERS', '0', 'DEVICE', 'cpu',
                             'DATASET.SEQLEN', '16', 'TRAIN.VAL_BATCH_SIZE', '10'])
    batches = list(build_val_loader(cfg))
    assert [len(b['features']) for b in batches] == [10, 10, 10, 2]   # 16 + 16 windows
    assert batches[0]['kp_3d'].shape == (10, 14, 3)


# ------------------------------------------------------------------------------------ test sequences
def test_test_frames_drop_invalid_and_short():
    valid = np.ones(20 + 30 + 17, dtype=bool)
    valid[20:25] = False                                    # seq 1 keeps 25 frames
    valid[50:52] = False                                    # seq 2 drops to 15 frames -> skipped
    db = tiny_db([20, 30, 17], j3d=14, valid=valid)
    frames = select_test_frames(db, seqlen=16)
    assert frames.names == ['courtyard_00_0', 'courtyard_01_0']
    assert frames.lengths.tolist() == [20, 25] and frames.starts.tolist() == [0, 20] and frames.rows[20] == 25
    features = np.asarray(db['features'])[frames.rows]
    w = frames.windows[20:]
    assert w.shape == (25, 16) and (features[w][:, 8, 0] == np.arange(25, 50)).all()
    assert (frames.official_order[20:] - 20)[-7:].tolist() == [24, 23, 22, 21, 20, 19, 18]
    assert frames.scored.all() and frames.seq_id.tolist() == [0] * 20 + [1] * 25


# ------------------------------------------------------------------------------------ generated data
SMALL = {'3dpw_train': (2, 32), '3dpw_val': (1, 20), '3dpw_test': (2, 24), 'mpii3d_train': (1, 32),
         'mpii3d_val': (1, 20), 'h36m_train': (1, 32), 'h36m_test': (1, 20), 'insta_train': (2, 32)}


@pytest.fixture(scope='module')
def generated_root(synthetic_root, tmp_path_factory):
    """A DATA_ROOT with the generated base_data (linked) and small generated databases."""
    from scripts.make_synthetic_data import make_synthetic_data

    root = tmp_path_factory.mktemp('generated')
    (root / 'base_data').symlink_to(synthetic_root / 'base_data', target_is_directory=True)
    make_synthetic_data(root, seed=0, sizes=SMALL, raw_3dpw=False)
    return root


DB_LAYOUTS = [('ThreeDPW', 'TRAIN', {'joints3D': (49, 3), 'joints2D': (14, 3)}),
              ('ThreeDPW', 'VAL', {'joints3D': (14, 3)}), ('ThreeDPW', 'TEST', {'joints3D': (14, 3), 'valid': ()}),
              ('MPII3D', 'TRAIN', {'joints2D': (49, 3), 'joints3D': (49, 3)}),
              ('MPII3D', 'TEST', {'valid_i': (1,)}), ('Human36M', 'TRAIN', {'pose': (72,), 'shape': (10,)}),
              ('Human36M', 'TEST', {'joints3D': (49, 3)}), ('Insta', 'TRAIN', {'joints2D': (25, 3)})]


@pytest.mark.parametrize('dataset,split,shapes', DB_LAYOUTS)
def test_generated_dbs_load_with_release_layout(generated_root, dataset, split, shapes):
    cfg = load_config(None, ['DATA_ROOT', str(generated_root)])
    db = read_db(cfg, dataset, split)
    for key, trailing in shapes.items():
        assert tuple(db[key].shape[1:]) == trailing
    assert db['features'].dtype == np.float32 and db['features'].shape[1] == 2048


def test_generated_samples_have_official_shapes_and_ranges(generated_root):
    cfg = load_config(None, ['DATA_ROOT', str(generated_root), 'TRAIN.DATASETS_3D',
                             "['ThreeDPW', 'MPII3D', 'Human36M']", 'TRAIN.BATCH_SIZE', '8', 'NUM_WORKERS', '0',
                             'DEVICE', 'cpu', 'DATASET.SEQLEN', '16', 'TRAIN.OVERLAP', '0.0',
                             'TRAIN.DATA_2D_RATIO', '0.5'])
    t2, t3 = next(build_train_loaders(cfg, seed=0))
    assert t2['kp_2d'].shape == (4, 16, 49, 3) and t3['theta'].shape == (4, 16, 85)
    for kp in (t2['kp_2d'], t3['kp_2d']):
        seen = kp[..., 2] > 0
        assert seen.any() and kp[..., :2][seen].abs().max() < 1.0        # the person is inside the crop
    assert t3['kp_3d'].abs().max() < 10 and torch.isfinite(t3['features']).all()
    assert (t3['theta'][..., 0] == 1).all()
    frames = select_test_frames(read_db(cfg, 'ThreeDPW', 'TEST'))
    assert frames.lengths.tolist() == [19, 24]          # sequence 0 has 5 frames with valid == 0 (dropped)
