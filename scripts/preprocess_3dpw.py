"""Build 3dpw_{train,val,test}_db.pt from the raw 3DPW release (same format as TCMR's files).

    python scripts/preprocess_3dpw.py                                   # DATA_ROOT/3dpw -> DATA_ROOT/preprocessed_data
    python scripts/preprocess_3dpw.py --dir /data/3DPW --splits test,validation DEVICE cuda
    python scripts/preprocess_3dpw.py --cfg configs/repr_table1_3dpw.yaml --out /tmp/dbs

Input: ``<dir>/sequenceFiles/{train,validation,test}/*.pkl`` and ``<dir>/imageFiles/<sequence>/image_%05d.jpg``
(https://virtualhumans.mpi-inf.mpg.de/3DPW/). Needs base_data (neutral SMPL, J_regressor_extra,
J_regressor_h36m, SPIN checkpoint ``TRAIN.PRETRAINED_REGRESSOR``).

Per sequence and person, as the official ``threedpw_utils.py``:

- the root orientation is rotated into the camera frame (``cam_poses``); SMPL (neutral, GT betas[:10], world
  ``trans``) gives ``joints3D``: 49 SPIN joints for train, the 14 ``J_regressor_h36m`` joints for val/test;
- boxes from the OpenPose-18 ``poses2d`` (confidence > 0.3): keypoint-box diagonal x 1.1, median + Gaussian
  (sigma 8) smoothed; frames before the first / after the last detection are cut;
- ``joints2D``: the 14 "common" joints, confidence binarised at 0.3, neck and head top 0;
- ``features``: SPIN features of 224 crops at box x ``--crop-scale`` (official 1.3), batched on ``DEVICE``;
- frames with 6 or fewer visible 2D joints are dropped; ``valid`` is ``campose_valid``.

Difference: the official smoothing helper prepends zero rows for frames cut at the start, which misaligns
``bbox`` with the other keys when a person is not detected in the first frame; here the rows stay aligned.
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.cli import config_argument_parser, config_from_args, run_main  # noqa: E402
from lib.core.config import resolve_device, resolve_path  # noqa: E402
from lib.dataset.preprocess import (FEATURE_BATCH, concat_pieces, extract_features,  # noqa: E402
                                    load_feature_extractor, run_smpl, write_db)
from lib.core.errors import UserError  # noqa: E402
from lib.utils.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle  # noqa: E402
from lib.utils.img_utils import bbox_params_to_boxes, smooth_keypoint_bboxes  # noqa: E402
from lib.utils.joints import H36M_TO_J14, perm_indices  # noqa: E402

SPLITS = {'train': '3dpw_train_db.pt', 'validation': '3dpw_val_db.pt', 'test': '3dpw_test_db.pt'}
VIS_THRESH = 0.3
MIN_KP = 6
BBOX_ENLARGE = 1.1
DB_KEYS = ('vid_name', 'frame_id', 'img_name', 'joints3D', 'joints2D', 'shape', 'pose', 'bbox', 'valid',
           'features')


def camera_frame_pose(pose: np.ndarray, cam_rot: np.ndarray) -> np.ndarray:
    """``(N, 72)`` world-frame pose -> the same with the root orientation pre-multiplied by ``cam_rot (N, 3, 3)``
    (float32, as the official script computes it)."""
    pose = torch.from_numpy(np.asarray(pose, dtype=np.float32)).clone()
    root = torch.bmm(torch.from_numpy(np.asarray(cam_rot, dtype=np.float32)), axis_angle_to_rotmat(pose[:, :3]))
    pose[:, :3] = rotmat_to_axis_angle(root)
    return pose.numpy()


def common_joints2d(poses2d: np.ndarray) -> np.ndarray:
    """OpenPose-18 ``(N, 18, 3)`` -> 14 "common" joints with confidence binarised at 0.3 (neck, head top: 0)."""
    idx = perm_indices('3dpw', 'common') + [0, 0]
    j2d = poses2d.copy()
    j2d[:, :, 2] = j2d[:, :, 2] > VIS_THRESH
    j2d = j2d[:, idx]
    j2d[:, 12:, 2] = 0.0
    return j2d


def read_split(raw_dir: Path, split: str, smpl, j_regressor: torch.Tensor, model, device: torch.device,
               crop_scale: float, batch_size: int, workers: int) -> dict[str, np.ndarray]:
    """The database of one split (see the module docstring)."""
    seq_dir = raw_dir / 'sequenceFiles' / split
    files = sorted(seq_dir.glob('*.pkl'))
    if not files:
        raise UserError(f"no 3DPW sequence files in {seq_dir}; download 3DPW (https://virtualhumans.mpi-inf.mpg.de/"
                        f"3DPW/) and unpack sequenceFiles/ and imageFiles/ into {raw_dir}")
    pieces = {key: [] for key in DB_KEYS}
    for path in tqdm(files, desc=f'3DPW {split}'):
        with open(path, 'rb') as f:
            data = pickle.load(f, encoding='latin1')
        seq = path.stem
        num_frames = len(data['img_frame_ids'])
        img_paths = np.array([str(raw_dir / 'imageFiles' / seq / f'image_{i:05d}.jpg') for i in range(num_frames)])
        for p_id in range(len(data['poses'])):
            pose = camera_frame_pose(data['poses'][p_id], data['cam_poses'][:, :3, :3])
            betas = np.repeat(np.asarray(data['betas'][p_id][:10], dtype=np.float32)[None], len(pose), axis=0)
            trans = np.asarray(data['trans'][p_id], dtype=np.float32)
            joints, verts = run_smpl(smpl, pose, betas, trans, device=device)
            if split != 'train':
                joints = torch.matmul(j_regressor, torch.from_numpy(verts)).numpy()[:, list(H36M_TO_J14)]
            poses2d = np.asarray(data['poses2d'][p_id]).transpose(0, 2, 1)
            try:
                params, start, stop = smooth_keypoint_bboxes(poses2d, VIS_THRESH, sigma=8)
            except ValueError:
                continue                                            # this person is never detected
            keep = slice(start, stop)
            bbox = bbox_params_to_boxes(params, BBOX_ENLARGE)
            missing = [p for p in img_paths[keep] if not Path(p).is_file()]
            if missing:
                raise UserError(f"3DPW image not found: {missing[0]} ({len(missing)} missing for {seq}); unpack "
                                f"imageFiles/ into {raw_dir}")
            pieces['vid_name'].append(np.array([f'{seq}_{p_id}'] * num_frames)[keep])
            pieces['frame_id'].append(np.arange(num_frames)[keep])
            pieces['img_name'].append(img_paths[keep])
            pieces['joints3D'].append(joints[keep])
            pieces['joints2D'].append(common_joints2d(poses2d)[keep])
            pieces['shape'].append(betas[keep])
            pieces['pose'].append(pose[keep])
            pieces['bbox'].append(bbox)
            pieces['valid'].append(np.asarray(data['campose_valid'][p_id])[keep])
            pieces['features'].append(extract_features(model, bbox, crop_scale, device, paths=img_paths[keep],
                                                       batch_size=batch_size, num_workers=workers,
                                                       desc=f'{seq}_{p_id}'))
    db = concat_pieces(pieces)
    visible = (db['joints2D'][:, :, 2] > VIS_THRESH).sum(-1) > MIN_KP
    return {key: value[visible] for key, value in db.items()}


def main(argv=None) -> None:
    parser = config_argument_parser(__doc__.split('\n')[0], epilog=__doc__)
    parser.add_argument('--dir', default='', help='raw 3DPW folder (default: DATASET.THREEDPW_DIR under DATA_ROOT)')
    parser.add_argument('--out', default='', help='output folder (default: DATASET.DB_DIR under DATA_ROOT)')
    parser.add_argument('--splits', default=','.join(SPLITS), help=f"comma-separated, from {','.join(SPLITS)}")
    parser.add_argument('--crop-scale', type=float, default=1.3, help='feature crop scale (official 1.3)')
    parser.add_argument('--batch-size', type=int, default=FEATURE_BATCH, help='crops per SPIN forward pass')
    parser.add_argument('--workers', type=int, default=4, help='image decoding processes')
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    splits = [s for s in args.splits.split(',') if s]
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise UserError(f"--splits takes a comma-separated subset of {','.join(SPLITS)}, got '{args.splits}'")
    from lib.models.smpl import build_smpl, load_h36m_regressor

    device = resolve_device(cfg.DEVICE)
    raw_dir = Path(args.dir) if args.dir else resolve_path(cfg, cfg.DATASET.THREEDPW_DIR)
    out_dir = Path(args.out) if args.out else resolve_path(cfg, cfg.DATASET.DB_DIR)
    smpl = build_smpl(cfg, 'neutral').to(device)
    j_regressor = load_h36m_regressor(cfg)
    model = load_feature_extractor(resolve_path(cfg, cfg.TRAIN.PRETRAINED_REGRESSOR), device)
    for split in splits:
        db = read_split(raw_dir, split, smpl, j_regressor, model, device, args.crop_scale, args.batch_size,
                        args.workers)
        path = write_db(db, out_dir / SPLITS[split])
        print(f'{split}: {len(db["vid_name"])} frames, {len(np.unique(db["vid_name"]))} sequences -> {path}')


if __name__ == '__main__':
    run_main(main)
