"""Build h36m_{train,test}_25fps[_tight]_db.pt from raw Human3.6M in the I2L-MeshNet/TCMR json layout.

    python scripts/preprocess_h36m.py --split train                       # DATA_ROOT/h36m -> preprocessed_data
    python scripts/preprocess_h36m.py --split test --dir /data/h36m DEVICE cuda
    python scripts/preprocess_h36m.py --split train --smpl-dir /data/h36m/annotations   # with NeuralAnnot SMPL

Input: ``<dir>/annotations/Human36M_subject{S}_camera.json`` (per camera ``R``, ``t`` (mm), ``f``, ``c``),
``Human36M_subject{S}_joint_3d.json`` (``[action][subaction][frame]`` -> 17 world joints, mm) and frames
``<dir>/images/s_{SS}_act_{AA}_subact_{BB}_ca_{CC}/*.jpg``. Train: subjects 1, 5, 6, 7, 8; test: 9, 11.

As the official ``h36m_utils.py``: left/right joints of the json swapped back, joints to the camera frame,
3D in metres minus the pelvis (SPIN joint 39), 2D by projection (confidence 1), boxes from the smoothed
keypoint track, every second frame (50 -> 25 fps), SPIN features of crops at box x crop scale. Variants:
``normal`` (default; box 1.1 x keypoint diagonal, crop 1.2: the ``h36m_*_25fps_db.pt`` files GLoT reads) and
``tight`` (0.9, crop 1.0: ``*_25fps_tight_db.pt``).

SMPL ``pose``/``shape``: the official script writes zeros (its NeuralAnnot loading is commented out), and
training with ``DATASET.H36M_USE_SMPL True`` on such a file pulls the model toward the zero pose. With
``--smpl-dir`` holding ``Human36M_subject{S}_SMPL_NeuralAnnot.json`` (``[action][subaction][frame]`` ->
``pose`` (72, world frame), ``shape`` (10)), the root orientation is rotated into each camera and stored.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.cli import config_argument_parser, config_from_args, run_main  # noqa: E402
from lib.core.config import resolve_device, resolve_path  # noqa: E402
from lib.dataset.preprocess import (FEATURE_BATCH, concat_pieces, extract_features,  # noqa: E402
                                    load_feature_extractor, write_db)
from lib.core.errors import UserError  # noqa: E402
from lib.utils.img_utils import bbox_params_to_boxes, smooth_keypoint_bboxes  # noqa: E402
from lib.utils.joints import SPIN_PELVIS, convert_kps  # noqa: E402

SUBJECTS = {'train': (1, 5, 6, 7, 8), 'test': (9, 11)}
VARIANTS = {'normal': (1.1, 1.2, ''), 'tight': (0.9, 1.0, '_tight')}   # box enlarge, crop scale, file suffix
LR_SWAP = ((1, 4), (2, 5), (3, 6))    # the json stores these H36M joint pairs left/right swapped
VIS_THRESH = 0.3
RAW_DIR = 'h36m'
SEQ_PATTERN = re.compile(r's_(\d+)_act_(\d+)_subact_(\d+)_ca_(\d+)$')


def _load_json(path: Path):
    if not path.is_file():
        raise UserError(f"Human3.6M annotation not found: {path}; put the annotations/ folder of the "
                        f"I2L-MeshNet Human3.6M release there")
    with open(path) as f:
        return json.load(f)


def world_to_camera_pixels(joints_mm: np.ndarray, cam: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 17, 3)`` world millimetres -> camera-frame millimetres and pixels ``(N, 17, 2)``."""
    rot, t = np.asarray(cam['R'], np.float32), np.asarray(cam['t'], np.float32)
    f, c = np.asarray(cam['f'], np.float32), np.asarray(cam['c'], np.float32)
    cam_mm = joints_mm @ rot.T + t
    pix = cam_mm[..., :2] / cam_mm[..., 2:3] * f + c
    return cam_mm, pix


def camera_smpl(params: dict, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NeuralAnnot ``pose`` (72, world root) and ``shape`` -> camera-frame pose (root rotated by ``rot``)."""
    from scipy.spatial.transform import Rotation

    pose = np.asarray(params['pose'], dtype=np.float32).reshape(72).copy()
    pose[:3] = (Rotation.from_matrix(rot) * Rotation.from_rotvec(pose[:3])).as_rotvec()
    return pose, np.asarray(params['shape'], dtype=np.float32).reshape(10)


def read_split(raw_dir: Path, subjects, variant: str, model, device, batch_size: int, workers: int,
               smpl_dir: Path | None) -> dict:
    enlarge, crop_scale, _ = VARIANTS[variant]
    pieces = {key: [] for key in ('vid_name', 'frame_id', 'joints3D', 'joints2D', 'shape', 'pose', 'bbox',
                                  'img_name', 'features')}
    for subject in subjects:
        annot = raw_dir / 'annotations'
        cameras = _load_json(annot / f'Human36M_subject{subject}_camera.json')
        joints = _load_json(annot / f'Human36M_subject{subject}_joint_3d.json')
        smpl = _load_json(smpl_dir / f'Human36M_subject{subject}_SMPL_NeuralAnnot.json') if smpl_dir else None
        seqs = sorted(p for p in (raw_dir / 'images').glob(f's_{subject:02d}_*') if SEQ_PATTERN.search(p.name))
        if not seqs:
            raise UserError(f"no Human3.6M frame folders {raw_dir / 'images'}/s_{subject:02d}_act_*; extract the "
                            f"images there")
        for seq in tqdm(seqs, desc=f'S{subject}'):
            _, act, subact, cam = (str(int(g)) for g in SEQ_PATTERN.search(seq.name).groups())
            img = np.array([str(p) for p in sorted(seq.glob('*.jpg'))])
            n = len(img)
            if n == 0:
                continue
            world = np.stack([np.asarray(joints[act][subact][str(i)], dtype=np.float32) for i in range(n)])
            for a, b in LR_SWAP:
                world[:, [a, b]] = world[:, [b, a]]
            cam_mm, pix = world_to_camera_pixels(world, cameras[cam])
            j3d = convert_kps(cam_mm / 1000, 'h36m', 'spin')
            j3d = (j3d - j3d[:, SPIN_PELVIS:SPIN_PELVIS + 1]).astype(np.float32)
            j2d = convert_kps(np.concatenate([pix, np.ones((n, 17, 1), np.float32)], axis=2), 'h36m', 'spin')
            j2d = j2d.astype(np.float32)
            pose, shape = np.zeros((n, 72), np.float32), np.zeros((n, 10), np.float32)
            if smpl is not None:
                rot = np.asarray(cameras[cam]['R'], np.float64)
                for i in range(n):
                    pose[i], shape[i] = camera_smpl(smpl[act][subact][str(i)], rot)
            params, start, stop = smooth_keypoint_bboxes(j2d, VIS_THRESH, sigma=8)
            keep = np.arange(start, stop)[::2]                           # 50 -> 25 fps
            bbox = bbox_params_to_boxes(params, enlarge)[::2]
            pieces['vid_name'].append(np.array([f'{seq}_{subject}'] * len(keep)))
            pieces['frame_id'].append(keep)
            pieces['joints3D'].append(j3d[keep])
            pieces['joints2D'].append(j2d[keep])
            pieces['shape'].append(shape[keep])
            pieces['pose'].append(pose[keep])
            pieces['img_name'].append(img[keep])
            pieces['bbox'].append(bbox)
            pieces['features'].append(extract_features(model, bbox, crop_scale, device, paths=img[keep],
                                                       batch_size=batch_size, num_workers=workers))
    return concat_pieces(pieces)


def main(argv=None) -> None:
    parser = config_argument_parser(__doc__.split('\n')[0], epilog=__doc__)
    parser.add_argument('--split', choices=tuple(SUBJECTS), default='train')
    parser.add_argument('--variant', choices=tuple(VARIANTS), default='normal')
    parser.add_argument('--subjects', default='', help='comma-separated subject numbers (default: those of --split)')
    parser.add_argument('--dir', default='', help=f'raw Human3.6M folder (default: DATA_ROOT/{RAW_DIR})')
    parser.add_argument('--smpl-dir', default='', help='folder of Human36M_subject*_SMPL_NeuralAnnot.json')
    parser.add_argument('--out', default='', help='output folder (default: DATASET.DB_DIR under DATA_ROOT)')
    parser.add_argument('--batch-size', type=int, default=FEATURE_BATCH, help='crops per SPIN forward pass')
    parser.add_argument('--workers', type=int, default=4, help='image decoding processes')
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    device = resolve_device(cfg.DEVICE)
    raw_dir = Path(args.dir) if args.dir else resolve_path(cfg, RAW_DIR)
    out_dir = Path(args.out) if args.out else resolve_path(cfg, cfg.DATASET.DB_DIR)
    smpl_dir = Path(args.smpl_dir) if args.smpl_dir else None
    model = load_feature_extractor(resolve_path(cfg, cfg.TRAIN.PRETRAINED_REGRESSOR), device)
    try:
        subjects = [int(v) for v in args.subjects.split(',') if v] or list(SUBJECTS[args.split])
    except ValueError:
        raise UserError(f"--subjects takes comma-separated integers, got '{args.subjects}'") from None
    db = read_split(raw_dir, subjects, args.variant, model, device, args.batch_size, args.workers, smpl_dir)
    path = write_db(db, out_dir / f'h36m_{args.split}_25fps{VARIANTS[args.variant][2]}_db.pt')
    print(f'{args.split}: {len(db["vid_name"])} frames, {len(np.unique(db["vid_name"]))} sequences -> {path}')
    if smpl_dir is None and args.split == 'train':
        print('note: pose/shape are zeros (no --smpl-dir); train on this file with DATASET.H36M_USE_SMPL False')


if __name__ == '__main__':
    run_main(main)
