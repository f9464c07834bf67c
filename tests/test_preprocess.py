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
    """DATA_ROOT with linked base_data and a raw 3DPW test split: one sequence, 2 people x 8 frames."""
    from scripts.make_synthetic_data import Generator, make_raw_3dpw

    root = tmp_path_factory.mktemp('raw3dpw')
    (root / 'base_data').symlink_to(synthetic_root / 'base_data', target_is_directory=True)
    with torch.inference_mode():
        make_raw_3dpw(Generator(root, seed=3), root / '3dpw', n_frames=8, n_people=2, splits=('test',))
    return root


def test_raw_3dpw_layout(raw_root):
    with open(raw_root / '3dpw' / 'sequenceFiles' / 'test' / 'synth_test_seq.pkl', 'rb') as f:
        data = pickle.load(f, encoding='latin1')
    assert len(data['poses']) == 2 and data['poses'][0].shape == (8, 72) and data['trans'][1].shape == (8, 3)
    assert data['poses2d'][0].shape == (8, 3, 18) and data['cam_poses'].shape == (8, 4, 4)
    assert data['campose_valid'][0].tolist() == [1] * 6 + [0, 0] and data['genders'] == ['m', 'f']
    assert len(list((raw_root / '3dpw' / 'imageFiles' / 'synth_test_seq').glob('image_*.jpg'))) == 8


def test_preprocess_3dpw_end_to_end(raw_root):
    from scripts.preprocess_3dpw import main

    out = raw_root / 'dbs'
    main(['--splits', 'test', '--out', str(out), '--workers', '0', '--batch-size', '16',
          'DATA_ROOT', str(raw_root), 'DEVICE', 'cpu'])
    db = load_db(out / '3dpw_test_db.pt', 'ThreeDPW', 'TEST')
    assert sorted(set(db['vid_name'])) == ['synth_test_seq_0', 'synth_test_seq_1']
    assert len(db['vid_name']) == 16 and db['frame_id'][:8].tolist() == list(range(8))
    assert db['joints3D'].shape == (16, 14, 3) and db['features'].shape == (16, 2048)
    assert db['valid'][:8].tolist() == [1] * 6 + [0, 0]
    with open(raw_root / '3dpw' / 'sequenceFiles' / 'test' / 'synth_test_seq.pkl', 'rb') as f:
        raw = pickle.load(f, encoding='latin1')
    op18 = raw['poses2d'][0].transpose(0, 2, 1)
    # common 'rankle' = OpenPose-18 index 10, 'lwrist' = 7; neck/head top have no detection
    assert np.allclose(db['joints2D'][:8, 0, :2], op18[:, 10, :2]) and np.allclose(db['joints2D'][:8, 11, :2], op18[:, 7, :2])
    assert db['joints2D'][:, :12, 2].min() == 1 and db['joints2D'][:, 12:, 2].max() == 0
    # root orientation rotated into the camera frame
    world = Rotation.from_rotvec(raw['poses'][0][:, :3])
    cam = Rotation.from_matrix(raw['cam_poses'][:, :3, :3])
    assert np.allclose((cam * world).as_matrix(), Rotation.from_rotvec(db['pose'][:8, :3]).as_matrix(), atol=1e-5)
    # square boxes around the keypoints (1.1 x diagonal of the 18 detections' box, then smoothed)
    assert np.allclose(db['bbox'][:, 2], db['bbox'][:, 3])
    extent = np.linalg.norm(op18[:, :, :2].max(1) - op18[:, :, :2].min(1), axis=1)
    assert np.allclose(db['bbox'][:8, 2], 1.1 * extent, rtol=0.1)
    # features = SPIN features of the crop at box x 1.3
    from lib.models.spin import load_hmr

    hmr = load_hmr(raw_root / 'base_data' / 'spin_model_checkpoint.pth.tar')
    with torch.no_grad():
        ref = hmr.feature_extractor(crop_image(read_image(db['img_name'][3]), db['bbox'][3], 1.3)[None])
    assert np.allclose(db['features'][3], ref[0].numpy(), atol=1e-4)
