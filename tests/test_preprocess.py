"""Preprocessing from raw data: the generated raw 3DPW sequence -> a database the 3DPW reader accepts."""
import pickle

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.dataset.db import load_db
from lib.utils.img_utils import crop_image, read_image


@pytest.fixture(scope='module')
def raw_root(synthetic_root, tmp_path_factory):
    """DATA_ROOT with linked base_data and a raw 3DPW test split: one sequence, 2 people x 5 frames."""
    from scripts.make_synthetic_data import Generator, make_raw_3dpw

    root = tmp_path_factory.mktemp('raw3dpw')
    (root / 'base_data').symlink_to(synthetic_root / 'base_data', target_is_directory=True)
    with torch.inference_mode():
        make_raw_3dpw(Generator(root, seed=3), root / '3dpw', n_frames=5, n_people=2, splits=('test',))
    return root


def test_raw_3dpw_layout(raw_root):
    with open(raw_root / '3dpw' / 'sequenceFiles' / 'test' / 'synth_test_seq.pkl', 'rb') as f:
        data = pickle.load(f, encoding='latin1')
    assert len(data['poses']) == 2 and data['poses'][0].shape == (5, 72) and data['trans'][1].shape == (5, 3)
    assert data['poses2d'][0].shape == (5, 3, 18) and data['cam_poses'].shape == (5, 4, 4)
    assert data['campose_valid'][0].tolist() == [1, 1, 1, 0, 0] and data['genders'] == ['m', 'f']
    assert len(list((raw_root / '3dpw' / 'imageFiles' / 'synth_test_seq').glob('image_*.jpg'))) == 5


def test_preprocess_3dpw_end_to_end(raw_root):
    from scripts.preprocess_3dpw import main

    out = raw_root / 'dbs'
    main(['--splits', 'test', '--out', str(out), '--workers', '0', '--batch-size', '16',
          'DATA_ROOT', str(raw_root), 'DEVICE', 'cpu'])
    db = load_db(out / '3dpw_test_db.pt', 'ThreeDPW', 'TEST')
    assert sorted(set(db['vid_name'])) == ['synth_test_seq_0', 'synth_test_seq_1']
    assert len(db['vid_name']) == 10 and db['frame_id'][:5].tolist() == list(range(5))
    assert db['joints3D'].shape == (10, 14, 3) and db['features'].shape == (10, 2048)
    assert db['valid'][:5].tolist() == [1, 1, 1, 0, 0]
    with open(raw_root / '3dpw' / 'sequenceFiles' / 'test' / 'synth_test_seq.pkl', 'rb') as f:
        raw = pickle.load(f, encoding='latin1')
    op18 = raw['poses2d'][0].transpose(0, 2, 1)
    # common 'rankle' = OpenPose-18 index 10, 'lwrist' = 7; neck/head top have no detection
    assert np.allclose(db['joints2D'][:5, 0, :2], op18[:, 10, :2]) and np.allclose(db['joints2D'][:5, 11, :2], op18[:, 7, :2])
    assert db['joints2D'][:, :12, 2].min() == 1 and db['joints2D'][:, 12:, 2].max() == 0
    # root orientation rotated into the camera frame
    world = Rotation.from_rotvec(raw['poses'][0][:, :3])
    cam = Rotation.from_matrix(raw['cam_poses'][:, :3, :3])
    assert np.allclose((cam * world).as_matrix(), Rotation.from_rotvec(db['pose'][:5, :3]).as_matrix(), atol=1e-5)
    # square boxes around the keypoints (1.1 x diagonal of the 18 detections' box, then smoothed)
    assert np.allclose(db['bbox'][:, 2], db['bbox'][:, 3])
    extent = np.linalg.norm(op18[:, :, :2].max(1) - op18[:, :, :2].min(1), axis=1)
    assert np.allclose(db['bbox'][:5, 2], 1.1 * extent, rtol=0.1)
    # features = SPIN features of the crop at box x 1.3
    from lib.models.spin import load_hmr

    hmr = load_hmr(raw_root / 'base_data' / 'spin_model_checkpoint.pth.tar')
    with torch.no_grad():
        ref = hmr.feature_extractor(crop_image(read_image(db['img_name'][3]), db['bbox'][3], 1.3)[None])
    assert np.allclose(db['features'][3], ref[0].numpy(), atol=1e-4)


class StubExtractor:
    """Stands in for SPIN in the script-logic tests: features = the first 2048 crop values."""

    def feature_extractor(self, images):
        return images.flatten(1)[:, :2048]


def _jpeg(path, size=(32, 32), value=90):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), value, np.uint8))


def _person_2d(rng, n, centre, spread=150.0, joints=28):
    return centre + rng.uniform(-spread, spread, (n, joints, 2))


def test_preprocess_mpii3d_train_and_test(tmp_path, monkeypatch):
    import cv2
    import h5py
    import scipy.io

    import scripts.preprocess_mpii3d as pp

    monkeypatch.setattr(pp, 'load_feature_extractor', lambda *a, **k: StubExtractor())
    rng = np.random.default_rng(0)
    raw = tmp_path / 'mpi_inf_3dhp'
    for seq in (1, 2):
        seq_dir = raw / 'S1' / f'Seq{seq}'
        seq_dir.mkdir(parents=True)
        a2 = np.empty((14, 1), dtype=object)
        a3 = np.empty((14, 1), dtype=object)
        for cam in range(14):
            j2 = _person_2d(rng, 6, 16.0, spread=10.0)
            j2[3, 5, 0] = 2100.0                                    # frame 3 leaves the image -> new segment
            a2[cam, 0] = j2.reshape(6, 56)
            a3[cam, 0] = rng.uniform(-800, 800, (6, 84)) + 3000
        scipy.io.savemat(seq_dir / 'annot.mat', {'annot2': a2, 'annot3': a3})
        if seq == 1:
            for i in range(6):
                _jpeg(seq_dir / 'video_0' / f'frame_{i + 1:06d}.jpg')
        else:
            (seq_dir / 'imageSequence').mkdir()
            writer = cv2.VideoWriter(str(seq_dir / 'imageSequence' / 'video_0.avi'),
                                     cv2.VideoWriter_fourcc(*'MJPG'), 25, (32, 32))
            for i in range(6):
                writer.write(np.full((32, 32, 3), 20 * i, np.uint8))
            writer.release()
    ts = raw / 'mpi_inf_3dhp_test_set' / 'TS1'
    ts.mkdir(parents=True)
    with h5py.File(ts / 'annot_data.mat', 'w') as f:
        f['annot2'] = _person_2d(rng, 5, 600.0, joints=17)[:, None]
        f['univ_annot3'] = rng.uniform(-800, 800, (5, 1, 17, 3))
        f['valid_frame'] = np.array([[1.0], [1.0], [0.0], [1.0], [1.0]])
    for i in range(5):
        _jpeg(ts / 'imageSequence' / f'img_{i + 1:06d}.jpg', size=(1280, 1280))
    out = tmp_path / 'dbs'
    pp.main(['--dir', str(raw), '--out', str(out), '--train-subjects', '1', '--cameras', '0', '--test-seqs', '1',
             '--workers', '0', 'DATA_ROOT', str(tmp_path), 'DEVICE', 'cpu'])
    train = load_db(out / 'mpii3d_train_scale12_db.pt', 'MPII3D', 'TRAIN')
    assert train['vid_name'].tolist() == ['subj1_seq1_vid0_seg0'] * 3 + ['subj1_seq1_vid0_seg1'] * 2 + \
        ['subj1_seq2_vid0_seg0'] * 3 + ['subj1_seq2_vid0_seg1'] * 2
    assert train['frame_id'][:5].tolist() == ['frame_000001', 'frame_000002', 'frame_000003', 'frame_000005',
                                              'frame_000006']
    assert np.allclose(train['joints3D'][:, 39], 0) and train['joints2D'].shape == (10, 49, 3)
    # the video-decoded frames get the extracted-frame names, and their crops differ frame to frame
    assert train['img_name'][5].endswith('S1/Seq2/video_0/frame_000001.jpg')
    assert not np.allclose(train['features'][5], train['features'][6])
    test = load_db(out / 'mpii3d_val_scale12_db.pt', 'MPII3D', 'TEST')
    assert test['valid_i'][:, 0].tolist() == [1, 1, 0, 1, 1] and test['frame_id'][0] == 'img_000001'
    assert test['vid_name'].tolist() == ['subj1_seg0'] * 5


def test_preprocess_h36m(tmp_path, monkeypatch):
    import json

    import scripts.preprocess_h36m as pp

    monkeypatch.setattr(pp, 'load_feature_extractor', lambda *a, **k: StubExtractor())
    rng = np.random.default_rng(1)
    raw = tmp_path / 'h36m'
    (raw / 'annotations').mkdir(parents=True)
    cams = {'1': {'R': np.eye(3).tolist(), 't': [0.0, 0.0, 0.0], 'f': [1000.0, 1000.0], 'c': [500.0, 500.0]}}
    world = rng.uniform(-400, 400, (8, 17, 3)) + [0, 0, 4000]
    joints = {'2': {'1': {str(i): world[i].tolist() for i in range(8)}}}
    (raw / 'annotations' / 'Human36M_subject9_camera.json').write_text(json.dumps(cams))
    (raw / 'annotations' / 'Human36M_subject9_joint_3d.json').write_text(json.dumps(joints))
    seq = raw / 'images' / 's_09_act_02_subact_01_ca_01'
    for i in range(8):
        _jpeg(seq / f's_09_act_02_subact_01_ca_01_{i + 1:06d}.jpg', size=(1000, 1000))
    out = tmp_path / 'dbs'
    pp.main(['--split', 'test', '--subjects', '9', '--dir', str(raw), '--out', str(out), '--workers', '0',
             'DATA_ROOT', str(tmp_path), 'DEVICE', 'cpu'])
    db = load_db(out / 'h36m_test_25fps_db.pt', 'Human36M', 'TEST')
    assert db['frame_id'].tolist() == [0, 2, 4, 6] and db['vid_name'][0] == f'{seq}_9'
    # json joint 1 (stored swapped) is H36M joint 4 'rhip' -> SPIN 'rhip' (27), pelvis-centred, metres
    expected = (world[2, 1] - world[2, 0]) / 1000
    assert np.allclose(db['joints3D'][1, 27], expected, atol=1e-5)
    # 2D: the pinhole projection of the same joint, confidence 1
    assert np.allclose(db['joints2D'][1, 27, :2], world[2, 1, :2] / world[2, 1, 2] * 1000 + 500, atol=1e-3)
    assert db['joints2D'][1, 27, 2] == 1 and db['pose'].shape == (4, 72) and not db['pose'].any()
