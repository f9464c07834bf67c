"""2D video dataset: InstaVariety (VIBE's ``insta_train_db.h5``), the 2D half of every GLoT training batch.

Training sample (official ``Insta``), T = ``seqlen``:

- ``features`` ``(T, 2048)`` float32;
- ``kp_2d`` ``(T, 49, 3)``: the 25 "insta" joints converted to SPIN-49 (missing joints zero, confidence 0),
  already in 224-crop pixels in the file, so only normalised to [-1, 1] (``2x/224 - 1``); float16 round trip
  as in the official dataset (the released dataset's float16 targets).

The file is large (about 18 GB of features): only ``vid_name`` is read up front (for the windows); each clip
is one contiguous row-range read per key. :meth:`InstaDataset.get_batch` serves whole batches.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from lib.dataset.db import H5Database
from lib.dataset.dataset3d import f16_round_trip
from lib.dataset.windowing import training_windows
from lib.utils.img_utils import normalize_2d_kp
from lib.utils.joints import convert_kps

INSTA_CROP_SIZE = 224


class InstaDataset(Dataset):
    """Training clips of InstaVariety.

    Args:
        db: :class:`~lib.dataset.db.H5Database` of ``insta_train_db.h5`` (or a dict with the same keys).
        seqlen: T frames per clip.
        overlap: ``TRAIN.OVERLAP``.
    """

    def __init__(self, db: H5Database | dict, seqlen: int = 16, overlap: float = 0.0):
        self.db = db
        self.seqlen = seqlen
        vid_names = np.asarray(db['vid_name'][:])
        self.windows = training_windows(vid_names, seqlen, overlap)

    def __len__(self) -> int:
        return len(self.windows)

    def _read(self, key: str, start: int, end: int) -> np.ndarray:
        """Rows of one window (``start == end``: that frame repeated T times)."""
        rows = np.asarray(self.db[key][start:end + 1])
        return np.repeat(rows, self.seqlen, axis=0) if start == end else rows

    def get_batch(self, indices) -> dict[str, torch.Tensor]:
        """Clips ``indices`` -> ``features (B, T, 2048)`` and ``kp_2d (B, T, 49, 3)``."""
        windows = self.windows[np.asarray(indices, dtype=np.int64)]
        features = np.stack([self._read('features', s, e) for s, e in windows])
        joints = np.stack([self._read('joints2D', s, e) for s, e in windows])
        b, t = joints.shape[:2]
        kp = convert_kps(joints.reshape(b * t, 25, 3), 'insta', 'spin').reshape(b, t, 49, 3)
        kp[..., :2] = normalize_2d_kp(kp[..., :2], INSTA_CROP_SIZE)
        return {'features': torch.from_numpy(features).float(), 'kp_2d': f16_round_trip(kp)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.get_batch(np.array([index]))
        return {key: value[0] for key, value in batch.items()}
