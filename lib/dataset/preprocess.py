"""Steps shared by the scripts that build databases from raw datasets (``scripts/preprocess_*.py``).

- :func:`load_feature_extractor`: SPIN's HMR from ``base_data/spin_model_checkpoint.pth.tar`` on a device.
- :func:`extract_features`: 2048-d SPIN features of person crops, batched on the device. Frames come either
  from image paths (decoded and cropped by DataLoader workers) or from an iterator of RGB frames (a video
  read with OpenCV), and are cropped at ``bbox * scale`` to 224 x 224 with ImageNet normalisation
  (:func:`lib.utils.img_utils.crop_image`, the official ``get_single_image_crop``).
- :func:`run_smpl`: SMPL joints and vertices for axis-angle poses, in chunks.
- :func:`write_db`: concatenate per-sequence pieces and save a joblib ``*_db.pt``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import joblib
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lib.core.io import atomic_path
from lib.models.spin import load_hmr
from lib.models.params import smpl_from_rotmat
from lib.utils.geometry import axis_angle_to_rotmat
from lib.utils.img_utils import crop_image, read_image

FEATURE_BATCH = 200   # official extract_features batch size


def load_feature_extractor(checkpoint: str | os.PathLike, device: torch.device):
    """SPIN HMR (eval mode) whose ``feature_extractor`` maps crops ``(N, 3, 224, 224)`` to ``(N, 2048)``."""
    return load_hmr(checkpoint, device)


class _PathCrops(Dataset):
    def __init__(self, paths, bboxes, scale: float):
        self.paths, self.bboxes, self.scale = list(paths), np.asarray(bboxes, dtype=np.float64), scale

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return crop_image(read_image(self.paths[i]), self.bboxes[i], self.scale)


def _batched_crops(frames: Iterable[np.ndarray], bboxes: np.ndarray, scale: float,
                   batch_size: int) -> Iterator[torch.Tensor]:
    batch = []
    for image, box in zip(frames, bboxes):
        batch.append(crop_image(image, box, scale))
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


@torch.no_grad()
def extract_features(model, bboxes: np.ndarray, scale: float, device: torch.device, paths=None,
                     frames: Iterable[np.ndarray] | None = None, batch_size: int = FEATURE_BATCH,
                     num_workers: int = 0, desc: str = '') -> np.ndarray:
    """SPIN features ``(N, 2048)`` float32 of the crops ``bboxes * scale`` of N frames.

    Args:
        model: HMR with ``feature_extractor`` (see :func:`load_feature_extractor`).
        bboxes: ``(N, 4)`` boxes ``(cx, cy, w, h)`` in image pixels.
        scale: crop scale (official: 1.3 for 3DPW, 1.2 or 1.0 for Human3.6M / MPI-INF-3DHP).
        device: where the network runs.
        paths: N image files (decoded by ``num_workers`` DataLoader workers), or
        frames: an iterable of N RGB uint8 frames (e.g. decoded from a video).
    """
    bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    if len(bboxes) == 0:
        return np.zeros((0, 2048), dtype=np.float32)
    if paths is not None:
        loader = DataLoader(_PathCrops(paths, bboxes, scale), batch_size=batch_size, num_workers=num_workers,
                            pin_memory=device.type == 'cuda')
        batches = iter(loader)
    else:
        batches = _batched_crops(frames, bboxes, scale, batch_size)
    out = []
    total = (len(bboxes) + batch_size - 1) // batch_size
    for crops in tqdm(batches, total=total, desc=desc or 'features', leave=False, disable=total < 2):
        out.append(model.feature_extractor(crops.to(device, non_blocking=True)).float().cpu())
    features = torch.cat(out).numpy()
    if len(features) != len(bboxes):
        raise ValueError(f"extract_features: got {len(features)} frames for {len(bboxes)} boxes")
    return features


@torch.no_grad()
def run_smpl(smpl, pose: np.ndarray, betas: np.ndarray, transl: np.ndarray | None = None,
             chunk: int = 1024, device: torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SMPL joints and vertices of N frames.

    Args:
        smpl: :class:`lib.models.smpl.SMPL`.
        pose: ``(N, 72)`` axis-angle (radians), global orientation first.
        betas: ``(N, 10)``.
        transl: optional ``(N, 3)`` metres.
    Returns:
        ``joints (N, 49, 3)`` (SPIN order) and ``vertices (N, 6890, 3)``, float32 metres.
    """
    device = device or next(iter(smpl.buffers())).device
    pose, betas = torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(betas, dtype=torch.float32)
    transl = None if transl is None else torch.as_tensor(transl, dtype=torch.float32)
    joints, verts = [], []
    for s in range(0, len(pose), chunk):
        rows = slice(s, s + chunk)
        rotmat = axis_angle_to_rotmat(pose[rows].to(device).reshape(-1, 24, 3))
        out = smpl_from_rotmat(smpl, betas[rows].to(device), rotmat,
                               None if transl is None else transl[rows].to(device))
        joints.append(out.joints.cpu())
        verts.append(out.vertices.cpu())
    return torch.cat(joints).numpy(), torch.cat(verts).numpy()


def concat_pieces(pieces: dict[str, list]) -> dict[str, np.ndarray]:
    """``{key: [array per sequence]}`` -> ``{key: concatenated array}``."""
    return {key: np.concatenate(values) if values else np.zeros((0,)) for key, values in pieces.items()}


def write_db(db: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Save ``db`` with joblib (the released ``*_db.pt`` format) via a temporary file; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        joblib.dump(db, tmp)
    return path
