"""3D video datasets (3DPW, MPI-INF-3DHP, Human3.6M): training clips and the trainer's validation windows.

Training sample (official ``Dataset3D``, set='train'), T = ``seqlen``:

- ``features`` ``(T, 2048)`` float32 SPIN features;
- ``kp_2d`` ``(T, 49, 3)``: GT 2D joints in SPIN order (3DPW "common" joints converted), mapped into the
  224 x 224 crop of the stored box at scale 1.2, normalised to [-1, 1] (``2x/224 - 1``); channel 2 is the
  confidence (0 for joints the dataset lacks);
- ``kp_3d`` ``(T, 49, 3)`` metres;
- ``theta`` ``(T, 85)`` = ``[1, 0, 0, pose (72), betas (10)]`` (zeros for MPI-INF-3DHP);
- ``w_smpl``, ``w_3d`` ``(T,)``: 3DPW 1/1, MPI-INF-3DHP 0/1, Human3.6M ``use_smpl``/1
  (``DATASET.H36M_USE_SMPL``; the official code switches it off only for the Table 1 3DPW model).

Official quirk kept on purpose: ``kp_2d``, ``kp_3d`` and ``theta`` pass through float16
before being returned as float32, exactly like the official dataset, so training sees the same quantised
targets. MPI-INF-3DHP and Human3.6M 2D joints are also rounded to the database dtype before float16, as the
official code writes them back into the database array.

Validation sample (official ``Dataset3D`` with set='val', as the trainer's validation reads it): windows from
:func:`~lib.dataset.windowing.validation_windows` and only the middle frame's targets: ``features``
``(T, 2048)``, ``kp_3d`` ``(J, 3)`` (3DPW 14 joints as stored; Human3.6M SPIN -> 14 "common"; MPI-INF-3DHP
SPIN -> 17 test joints), ``theta`` ``(85,)``, ``valid`` ``()`` (MPI-INF-3DHP ``valid_i``, else 1),
``w_smpl``, ``w_3d`` ``()``.

Both classes serve whole batches with :meth:`get_batch` (one vectorised gather per key); ``dataset[i]`` is
the same for one window without the batch axis.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.dataset.windowing import (target_index, training_windows, validation_windows,
                                   window_frame_indices)
from lib.utils.img_utils import normalize_2d_kp, transform_keypoints
from lib.utils.joints import convert_kps

DATASETS_3D = ('ThreeDPW', 'MPII3D', 'Human36M')
# Joint set of the stored 2D joints, per dataset (converted to SPIN-49 for training).
_JOINTS2D_FORMAT = {'ThreeDPW': 'common', 'MPII3D': 'spin', 'Human36M': 'spin'}
# Joint set the validation targets are scored in, from the stored 3D joints (None: already in it).
_EVAL_JOINTS = {'ThreeDPW': None, 'MPII3D': 'mpii3d_test', 'Human36M': 'common'}
# Crop of the 2D targets: stored box x 1.2 into 224 pixels (also for databases whose features used 1.0/1.3).
KP2D_CROP_SCALE = 1.2
KP2D_CROP_SIZE = 224


def f16_round_trip(x: np.ndarray) -> torch.Tensor:
    """``x`` -> float16 -> float32 tensor (the official targets' storage precision; numpy casts, which are
    several times faster than torch's half -> float on the CPU)."""
    return torch.from_numpy(np.asarray(x).astype(np.float16).astype(np.float32))


def crop_normalized_kp2d(joints2d: np.ndarray, bbox: np.ndarray, src_format: str,
                         write_dtype=None) -> np.ndarray:
    """GT 2D joints -> SPIN-49 crop-normalised keypoints with confidence (before the float16 cast).

    Args:
        joints2d: ``(..., J, 3)`` pixels + confidence in ``src_format`` joint order.
        bbox: ``(..., 4)`` boxes ``(cx, cy, w, h)``.
        src_format: ``lib.utils.joints`` set name of ``joints2d``.
        write_dtype: dtype the official code rounds the result to first (the database dtype when it
            writes back into the database array); None keeps float64.
    Returns:
        ``(..., 49, 3)`` array.
    """
    lead = joints2d.shape[:-2]
    flat = joints2d.reshape(-1, *joints2d.shape[-2:])
    kp = convert_kps(flat, src_format, 'spin') if src_format != 'spin' else flat.astype(np.float64)
    kp = kp.reshape(*lead, 49, 3)
    xy = transform_keypoints(kp[..., :2], bbox, KP2D_CROP_SCALE, KP2D_CROP_SIZE)
    if write_dtype is not None:
        xy, kp = xy.astype(write_dtype), kp.astype(write_dtype)
    return np.concatenate([normalize_2d_kp(xy, KP2D_CROP_SIZE), kp[..., 2:3]], axis=-1)


def theta_targets(pose: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """``(..., 72)`` pose and ``(..., 10)`` betas -> ``(..., 85)`` ``[1, 0, 0, pose, betas]`` float64."""
    cam = np.broadcast_to(np.array([1.0, 0.0, 0.0]), pose.shape[:-1] + (3,))
    return np.concatenate([cam, pose, shape], axis=-1)


class _WindowDataset(Dataset):
    """Windows of one database; subclasses build a batch from ``(B, T)`` row indices."""

    def __init__(self, db: dict, dataset: str, seqlen: int, windows: np.ndarray):
        if dataset not in DATASETS_3D:
            raise ValueError(f"unknown 3D dataset '{dataset}'; known: {', '.join(DATASETS_3D)}")
        self.db = db
        self.dataset = dataset
        self.seqlen = seqlen
        self.windows = windows
        self.rows = window_frame_indices(windows, seqlen)

    def __len__(self) -> int:
        return len(self.rows)

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.get_batch(np.array([index]))
        return {key: value[0] for key, value in batch.items()}


class Dataset3D(_WindowDataset):
    """Training clips of one 3D dataset.

    Args:
        db: database dict (:func:`lib.dataset.db.load_db`, split TRAIN).
        dataset: 'ThreeDPW', 'MPII3D' or 'Human36M'.
        seqlen: T frames per clip.
        overlap: ``TRAIN.OVERLAP`` (0 -> stride T, non-overlapping windows).
        use_smpl: Human3.6M SMPL supervision (``DATASET.H36M_USE_SMPL``); ignored for the others.
    """

    def __init__(self, db: dict, dataset: str, seqlen: int = 16, overlap: float = 0.0, use_smpl: bool = True):
        super().__init__(db, dataset, seqlen, training_windows(db['vid_name'], seqlen, overlap))
        self.w_smpl = {'ThreeDPW': 1.0, 'MPII3D': 0.0, 'Human36M': float(use_smpl)}[dataset]
        self.has_smpl = dataset != 'MPII3D'
        joints2d = db['joints2D']
        # The official code writes SPIN-format joints back into the database array (its dtype), but converts
        # 3DPW joints into a fresh float64 array first.
        self._kp2d_write_dtype = None if dataset == 'ThreeDPW' else joints2d.dtype

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        """Clips ``indices`` -> dict of ``(B, T, ...)`` tensors (keys in the module docstring)."""
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        db = self.db
        kp_2d = crop_normalized_kp2d(db['joints2D'][rows], db['bbox'][rows], _JOINTS2D_FORMAT[self.dataset],
                                     self._kp2d_write_dtype)
        if self.has_smpl:
            theta = theta_targets(db['pose'][rows], db['shape'][rows])
        else:
            theta = np.zeros(rows.shape + (85,))
            theta[..., 0] = 1.0
        ones = torch.ones(rows.shape, dtype=torch.float32)
        return {
            'features': torch.from_numpy(db['features'][rows]).float(),
            'kp_2d': f16_round_trip(kp_2d),
            'kp_3d': f16_round_trip(db['joints3D'][rows]),
            'theta': f16_round_trip(theta),
            'w_smpl': ones * self.w_smpl,
            'w_3d': ones,
        }


class ValidationDataset3D(_WindowDataset):
    """The trainer's validation windows (TCMR-style chunking, stride 1) with middle-frame targets.

    Args:
        db: database dict (split VAL, e.g. ``3dpw_val_db.pt``; or MPI-INF-3DHP's test file).
        dataset: 'ThreeDPW', 'MPII3D' or 'Human36M'.
        seqlen: T frames per window.
    """

    def __init__(self, db: dict, dataset: str, seqlen: int = 16):
        super().__init__(db, dataset, seqlen, validation_windows(db['vid_name'], seqlen))
        self.mid = target_index(seqlen)

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        """Windows ``indices`` -> ``features (B, T, 2048)``, ``kp_3d (B, J, 3)``, ``theta (B, 85)``,
        ``valid``, ``w_smpl``, ``w_3d`` ``(B,)``."""
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        mid = rows[:, self.mid]
        db = self.db
        kp_3d = db['joints3D'][mid]
        if _EVAL_JOINTS[self.dataset] is not None:
            kp_3d = convert_kps(kp_3d, 'spin', _EVAL_JOINTS[self.dataset])
        if self.dataset == 'ThreeDPW':
            theta = theta_targets(db['pose'][mid], db['shape'][mid])
        else:
            theta = np.zeros((len(mid), 85))
            theta[:, 0] = 1.0
        valid = (np.asarray(db['valid_i'][mid], dtype=np.float32).reshape(len(mid))
                 if self.dataset == 'MPII3D' else np.ones(len(mid), dtype=np.float32))
        ones = torch.ones(len(mid), dtype=torch.float32)
        return {
            'features': torch.from_numpy(db['features'][rows]).float(),
            'kp_3d': f16_round_trip(kp_3d),
            'theta': f16_round_trip(theta),
            'valid': torch.from_numpy(valid),
            'w_smpl': ones * (1.0 if self.dataset == 'ThreeDPW' else 0.0),
            'w_3d': ones,
        }
