"""Build mpii3d_train_scale12_db.pt and mpii3d_val_scale12_db.pt (the test set) from raw MPI-INF-3DHP.

    python scripts/preprocess_mpii3d.py                                  # DATA_ROOT/mpi_inf_3dhp -> preprocessed_data
    python scripts/preprocess_mpii3d.py --dir /data/mpi_inf_3dhp --splits test DEVICE cuda

Input (https://vcai.mpi-inf.mpg.de/3dhp-dataset/):

- training: ``S{1..8}/Seq{1,2}/annot.mat`` (``annot2``, ``annot3`` per camera) and, per camera
  ``v`` in {0, 1, 2, 4, 5, 6, 7, 8}, either the extracted frames ``S*/Seq*/video_{v}/*.jpg`` (what the official
  script reads) or the released video ``S*/Seq*/imageSequence/video_{v}.avi`` (decoded with OpenCV);
- test: ``mpi_inf_3dhp_test_set/TS{1..6}/annot_data.mat`` (HDF5: ``annot2``, ``univ_annot3``,
  ``valid_frame``) and ``TS*/imageSequence/img_%06d.jpg``.

As the official ``mpii3d_utils.py``: 2D/3D joints converted to SPIN-49 (3D in metres, minus the pelvis,
joint 39), square boxes 1.1 x the longer keypoint extent, frames with any joint outside the image dropped and
the sequence split into ``_seg{k}`` pieces there, and SPIN features of crops at box x the crop scale.
Crop scales: test 1.2; training 1.2 by default, the scale TCMR's ``*_scale12`` file name states (the official
script passes 1.0; ``--train-crop-scale 1.0`` reproduces that).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.cli import config_argument_parser, config_from_args, run_main  # noqa: E402
from lib.core.config import resolve_device, resolve_path  # noqa: E402
from lib.dataset.preprocess import (FEATURE_BATCH, concat_pieces, extract_features,  # noqa: E402
                                    load_feature_extractor, write_db)
from lib.core.errors import UserError  # noqa: E402
from lib.utils.img_utils import bbox_from_keypoints  # noqa: E402
from lib.utils.joints import SPIN_PELVIS, convert_kps  # noqa: E402

SPLITS = {'train': 'mpii3d_train_scale12_db.pt', 'test': 'mpii3d_val_scale12_db.pt'}
TRAIN_SUBJECTS, TRAIN_SEQS, TRAIN_CAMERAS = range(1, 9), (1, 2), (0, 1, 2, 4, 5, 6, 7, 8)
TEST_SEQS = range(1, 7)
TRAIN_IMAGE_SIZE = (2048, 2048)   # width, height of every training camera
BBOX_ENLARGE = 1.1
RAW_DIR = 'mpi_inf_3dhp'


def to_spin(joints2d: np.ndarray, joints3d_mm: np.ndarray, src: str) -> tuple[np.ndarray, np.ndarray]:
    """``(N, J, 2)`` pixels and ``(N, J, 3)`` millimetres in format ``src`` -> SPIN-49 2D with confidence 1
    where present, and 3D metres minus the pelvis (absent joints become minus the pelvis, as the official)."""
    j2d = convert_kps(np.concatenate([joints2d, np.ones(joints2d.shape[:-1] + (1,))], axis=-1), src, 'spin')
    j3d = convert_kps(joints3d_mm / 1000.0, src, 'spin')
    return j2d, j3d - j3d[:, SPIN_PELVIS:SPIN_PELVIS + 1]


def keypoint_boxes(j2d: np.ndarray) -> np.ndarray:
    """Per-frame square box around the joints that are present (not all-zero rows)."""
    present = ~np.all(j2d == 0, axis=2)
    return np.stack([bbox_from_keypoints(kp[mask]) for kp, mask in zip(j2d, present)])


def in_image(j2d: np.ndarray, width: int, height: int) -> np.ndarray:
    """``(N,)`` frames whose 49 joints (absent ones at 0, 0) all lie inside the image."""
    x, y = j2d[..., 0], j2d[..., 1]
    return ((x >= 0) & (x < width) & (y >= 0) & (y < height)).all(axis=1)


def segment_names(keep: np.ndarray, prefix: str) -> np.ndarray:
    """Names ``{prefix}_seg{k}`` of the kept frames: ``k`` grows by one after each run of dropped frames that
    follows a kept frame."""
    breaks = np.cumsum(np.diff(keep.astype(np.int64), prepend=keep[:1].astype(np.int64)) == 1)
    seg = breaks - (0 if keep[0] else 1)
    return np.array([f'{prefix}_seg{k}' for k in seg[keep]])


def _train_frames(seq_dir: Path, cam: int, n_annot: int):
    """(image paths or None, frame iterator factory, names) of one training camera."""
    folder = seq_dir / f'video_{cam}'
    if folder.is_dir():
        paths = sorted(folder.glob('*.jpg'))[:n_annot]
        return paths, None, [p.stem for p in paths]
    video = seq_dir / 'imageSequence' / f'video_{cam}.avi'
    if not video.is_file():
        raise UserError(f"MPI-INF-3DHP frames not found: neither {folder}/ nor {video}; download the training "
                        f"set with the official get_dataset.sh into {seq_dir.parents[1]}")
    from lib.vis.video import FrameReader

    reader = FrameReader(video)
    count = min(len(reader), n_annot)
    return None, reader, [f'frame_{i + 1:06d}' for i in range(count)]


def _select_rgb(reader, keep: np.ndarray):
    """RGB frames of ``reader`` at the kept indices (one sequential decode)."""
    for i, frame in enumerate(reader):
        if i >= len(keep):
            return
        if keep[i]:
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def read_train(raw_dir: Path, model, device, crop_scale: float, batch_size: int, workers: int,
               subjects=TRAIN_SUBJECTS, cameras=TRAIN_CAMERAS) -> dict:
    import scipy.io

    pieces = {key: [] for key in ('vid_name', 'frame_id', 'joints3D', 'joints2D', 'bbox', 'img_name', 'features')}
    for subject in subjects:
        for seq in TRAIN_SEQS:
            seq_dir = raw_dir / f'S{subject}' / f'Seq{seq}'
            annot_file = seq_dir / 'annot.mat'
            if not annot_file.is_file():
                raise UserError(f"MPI-INF-3DHP annotation not found: {annot_file}; download the training set "
                                f"into {raw_dir}")
            annot = scipy.io.loadmat(annot_file)
            for cam in tqdm(cameras, desc=f'S{subject} Seq{seq}'):
                a2 = np.asarray(annot['annot2'][cam][0], dtype=np.float64)
                a3 = np.asarray(annot['annot3'][cam][0], dtype=np.float64)
                paths, reader, names = _train_frames(seq_dir, cam, len(a2))
                n = len(names)
                j2d, j3d = to_spin(a2[:n].reshape(n, 28, 2), a3[:n].reshape(n, 28, 3), 'mpii3d')
                keep = in_image(j2d, *TRAIN_IMAGE_SIZE)
                if not keep.any():
                    continue
                bbox = keypoint_boxes(j2d[keep])
                if paths is not None:
                    img = np.array([str(p) for p in paths])[keep]
                    feats = extract_features(model, bbox, crop_scale, device, paths=img, batch_size=batch_size,
                                             num_workers=workers)
                else:
                    img = np.array([str(seq_dir / f'video_{cam}' / f'{name}.jpg') for name in names])[keep]
                    feats = extract_features(model, bbox, crop_scale, device, frames=_select_rgb(reader, keep),
                                             batch_size=batch_size)
                pieces['vid_name'].append(segment_names(keep, f'subj{subject}_seq{seq}_vid{cam}'))
                pieces['frame_id'].append(np.array(names)[keep])
                pieces['img_name'].append(img)
                pieces['joints2D'].append(j2d[keep])
                pieces['joints3D'].append(j3d[keep])
                pieces['bbox'].append(bbox)
                pieces['features'].append(feats)
    return concat_pieces(pieces)


def read_test(raw_dir: Path, model, device, crop_scale: float, batch_size: int, workers: int,
              sequences=TEST_SEQS) -> dict:
    import h5py

    from lib.utils.img_utils import read_image

    pieces = {key: [] for key in ('vid_name', 'frame_id', 'joints3D', 'joints2D', 'bbox', 'img_name', 'features',
                                  'valid_i')}
    for ts in tqdm(sequences, desc='MPI-INF-3DHP test'):
        seq_dir = raw_dir / 'mpi_inf_3dhp_test_set' / f'TS{ts}'
        annot_file = seq_dir / 'annot_data.mat'
        if not annot_file.is_file():
            raise UserError(f"MPI-INF-3DHP test annotation not found: {annot_file}; download the test set "
                            f"(mpi_inf_3dhp_test_set) into {raw_dir}")
        with h5py.File(annot_file, 'r') as mat:
            a2 = np.asarray(mat['annot2'], dtype=np.float64)[:, 0]
            a3 = np.asarray(mat['univ_annot3'], dtype=np.float64)[:, 0]
            valid = np.asarray(mat['valid_frame']).reshape(len(a2), -1)
        img = np.array([str(seq_dir / 'imageSequence' / f'img_{i + 1:06d}.jpg') for i in range(len(a2))])
        height, width = read_image(img[0]).shape[:2]
        j2d, j3d = to_spin(a2, a3, 'mpii3d_test')
        keep = in_image(j2d, width, height)
        missing = [p for p in img[keep] if not Path(p).is_file()]
        if missing:
            raise UserError(f"MPI-INF-3DHP test image not found: {missing[0]} ({len(missing)} missing)")
        bbox = keypoint_boxes(j2d[keep])
        pieces['vid_name'].append(segment_names(keep, f'subj{ts}'))
        pieces['frame_id'].append(np.array([Path(p).stem for p in img[keep]]))
        pieces['img_name'].append(img[keep])
        pieces['joints2D'].append(j2d[keep])
        pieces['joints3D'].append(j3d[keep])
        pieces['bbox'].append(bbox)
        pieces['valid_i'].append(valid[keep])
        pieces['features'].append(extract_features(model, bbox, crop_scale, device, paths=img[keep],
                                                   batch_size=batch_size, num_workers=workers))
    return concat_pieces(pieces)


def _csv(values) -> str:
    return ','.join(str(v) for v in values)


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(',') if v]
    except ValueError:
        raise UserError(f"{option} takes comma-separated integers, got '{text}'") from None


def main(argv=None) -> None:
    parser = config_argument_parser(__doc__.split('\n')[0], epilog=__doc__)
    parser.add_argument('--dir', default='', help=f'raw MPI-INF-3DHP folder (default: DATA_ROOT/{RAW_DIR})')
    parser.add_argument('--out', default='', help='output folder (default: DATASET.DB_DIR under DATA_ROOT)')
    parser.add_argument('--splits', default='train,test', help='comma-separated, from train,test')
    parser.add_argument('--train-crop-scale', type=float, default=1.2)
    parser.add_argument('--test-crop-scale', type=float, default=1.2)
    parser.add_argument('--train-subjects', default=_csv(TRAIN_SUBJECTS), help='training subjects S<n>')
    parser.add_argument('--cameras', default=_csv(TRAIN_CAMERAS), help='training cameras video_<n>')
    parser.add_argument('--test-seqs', default=_csv(TEST_SEQS), help='test sequences TS<n>')
    parser.add_argument('--batch-size', type=int, default=FEATURE_BATCH, help='crops per SPIN forward pass')
    parser.add_argument('--workers', type=int, default=4, help='image decoding processes')
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    splits = [s for s in args.splits.split(',') if s]
    if not splits or set(splits) - set(SPLITS):
        raise UserError(f"--splits takes a comma-separated subset of train,test, got '{args.splits}'")
    device = resolve_device(cfg.DEVICE)
    raw_dir = Path(args.dir) if args.dir else resolve_path(cfg, RAW_DIR)
    out_dir = Path(args.out) if args.out else resolve_path(cfg, cfg.DATASET.DB_DIR)
    model = load_feature_extractor(resolve_path(cfg, cfg.TRAIN.PRETRAINED_REGRESSOR), device)
    for split in splits:
        if split == 'train':
            db = read_train(raw_dir, model, device, args.train_crop_scale, args.batch_size, args.workers,
                            _ints(args.train_subjects, '--train-subjects'), _ints(args.cameras, '--cameras'))
        else:
            db = read_test(raw_dir, model, device, args.test_crop_scale, args.batch_size, args.workers,
                           _ints(args.test_seqs, '--test-seqs'))
        path = write_db(db, out_dir / SPLITS[split])
        print(f'{split}: {len(db["vid_name"])} frames, {len(np.unique(db["vid_name"]))} segments -> {path}')


if __name__ == '__main__':
    run_main(main)
