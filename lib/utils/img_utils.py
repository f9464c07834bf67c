"""Person crops, ImageNet normalisation, 2D keypoint transforms and keypoint bounding boxes.

Crops follow the official VIBE/TCMR/GLoT geometry: a square box ``(cx, cy, w, h)`` in image pixels is
enlarged by ``scale`` and mapped onto a ``size x size`` patch with ``cv2.warpAffine`` (bilinear, black
border). The same affine map takes 2D keypoints into the patch (:func:`transform_keypoints`), and
``2x/size - 1`` normalises patch pixels to [-1, 1] (:func:`normalize_2d_kp`).

Crop API (the demo and the preprocessing scripts use it)::

    crop = crop_image(image_rgb, bbox, scale=1.2, size=224)        # (3, 224, 224) float32, normalised
    patch = crop_patch(image_rgb, bbox, scale=1.2)                # (224, 224, 3) uint8, not normalised

Bounding boxes from keypoints:

- :func:`bbox_from_keypoints`: square box around the keypoints, side = 1.1 x the longer extent (MPI-INF-3DHP).
- :func:`smooth_keypoint_bboxes`: per-frame box from the visible keypoints (side = keypoint-box diagonal),
  linearly interpolated over frames without keypoints, median filtered (11) then Gaussian smoothed
  (sigma 8 frames) (3DPW and Human3.6M).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage
import scipy.signal
import torch

from lib.core.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_SIZE = 224
# Side of the box of a 150-pixel-tall person in the keypoint-box scale convention (scale = 150 / diagonal).
BBOX_REF_HEIGHT = 150.0


def read_image(path: str | Path) -> np.ndarray:
    """An image file as an RGB uint8 array ``(H, W, 3)``.

    Raises:
        UserError: the file is missing or OpenCV cannot decode it.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path} (missing or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_transforms(bboxes: np.ndarray, scale: float = 1.2, size: int = CROP_SIZE) -> np.ndarray:
    """The 2x3 affine maps from image pixels to patch pixels, one per box.

    The box centre goes to the patch centre and ``w * scale`` (``h * scale``) image pixels span the patch
    width (height). Each map comes from ``cv2.getAffineTransform`` on three float32 point pairs (centre,
    centre + half height down, centre + half width right), like the official ``gen_trans_from_patch_cv``:
    its solver leaves errors of up to ~1e-6 relative, which the float16 targets can see, so the same solver is
    used rather than a closed form.

    Args:
        bboxes: ``(N, 4)`` boxes ``(cx, cy, w, h)`` in image pixels.
    Returns:
        ``(N, 2, 3)`` float64 matrices.
    """
    box = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    half = (box[:, 2:4] * scale * 0.5).astype(np.float32)
    src = np.empty((len(box), 3, 2), dtype=np.float32)
    src[:, 0] = box[:, :2]
    src[:, 1, 0], src[:, 1, 1] = box[:, 0], box[:, 1] + half[:, 1]
    src[:, 2, 0], src[:, 2, 1] = box[:, 0] + half[:, 0], box[:, 1]
    mid = size * 0.5
    dst = np.array([[mid, mid], [mid, size], [size, mid]], dtype=np.float32)
    out = np.empty((len(box), 2, 3))
    for i in range(len(box)):
        out[i] = cv2.getAffineTransform(src[i], dst)
    return out


def crop_transform(bbox, scale: float = 1.2, size: int = CROP_SIZE) -> np.ndarray:
    """The ``(2, 3)`` map of one box ``(cx, cy, w, h)`` (see :func:`crop_transforms`)."""
    return crop_transforms(np.asarray(bbox)[None], scale, size)[0]


def crop_patch(image_rgb: np.ndarray, bbox, scale: float = 1.2, size: int = CROP_SIZE) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 patch of ``bbox * scale`` (black outside the image)."""
    return cv2.warpAffine(image_rgb, crop_transform(bbox, scale, size), (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def normalize_images(patches: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)`` in channels-last memory order:
    ``(x / 255 - mean) / std`` with ImageNet statistics (the same float32 operations as torchvision
    ``ToTensor`` + ``Normalize``), a few whole-batch operations instead of a few per image."""
    tensor = torch.from_numpy(np.ascontiguousarray(patches)).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=tensor.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=tensor.dtype)[:, None, None]
    return tensor.sub(mean).div(std)


def normalize_image(patch: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)`` (:func:`normalize_images` of one patch)."""
    return normalize_images(np.asarray(patch)[None])[0].contiguous()



def crop_image(image_rgb: np.ndarray, bbox, scale: float = 1.2, size: int = CROP_SIZE) -> torch.Tensor:
    """Normalised crop ``(3, size, size)`` float32 of an RGB uint8 image ``(H, W, 3)`` at box ``(cx, cy, w, h)``
    enlarged by ``scale`` (official ``get_single_image_crop``)."""
    return normalize_image(crop_patch(image_rgb, bbox, scale, size))


def transform_keypoints(kp_2d: np.ndarray, bbox: np.ndarray, scale: float = 1.2,
                        size: int = CROP_SIZE) -> np.ndarray:
    """Image-pixel keypoints -> patch pixels of the crop at ``bbox * scale`` (the crop's own affine map).

    Args:
        kp_2d: ``(..., J, 2)`` pixels.
        bbox: ``(..., 4)`` boxes ``(cx, cy, w, h)``, one per leading index of ``kp_2d``.
    Returns:
        ``(..., J, 2)`` float64 patch coordinates ``x' = m00 x + m01 y + m02``, ``y' = m10 x + m11 y + m12``.
    """
    kp = np.asarray(kp_2d, dtype=np.float64)
    box = np.asarray(bbox, dtype=np.float64)
    m = crop_transforms(box.reshape(-1, 4), scale, size).reshape(box.shape[:-1] + (1, 2, 3))
    x, y = kp[..., 0], kp[..., 1]
    return np.stack([x * m[..., 0, 0] + y * m[..., 0, 1] + m[..., 0, 2],
                     x * m[..., 1, 0] + y * m[..., 1, 1] + m[..., 1, 2]], axis=-1)


def normalize_2d_kp(kp_2d: np.ndarray, size: int = CROP_SIZE, inverse: bool = False) -> np.ndarray:
    """Patch pixels -> [-1, 1] (``2x/size - 1``), or back with ``inverse=True``."""
    if inverse:
        return (kp_2d + 1.0) * (size / 2.0)
    return 2.0 * kp_2d * (1.0 / size) - 1.0


def bbox_from_keypoints(kp_2d: np.ndarray, enlarge: float = 1.1) -> np.ndarray:
    """Square box around keypoints: centre of their extent, side = ``enlarge`` x the longer extent.

    Args:
        kp_2d: ``(J, 2+)`` or ``(N, J, 2+)`` pixels; every joint given is used (drop missing ones first).
    Returns:
        ``(4,)`` or ``(N, 4)`` boxes ``(cx, cy, w, h)``.
    """
    kp = np.asarray(kp_2d, dtype=np.float64)[..., :2]
    lo, hi = kp.min(axis=-2), kp.max(axis=-2)
    extent = hi - lo
    side = np.maximum(extent[..., 0], extent[..., 1]) * enlarge
    centre = lo + extent / 2
    return np.concatenate([centre, side[..., None], side[..., None]], axis=-1)


def keypoint_bbox_params(kp_2d: np.ndarray, vis_thresh: float) -> np.ndarray:
    """Per-frame ``(cx, cy, scale)`` from keypoints with confidence > ``vis_thresh``; ``scale = 150 / diagonal``
    of their box. Frames with no visible keypoint, or a diagonal under 0.5 px, get NaN.

    Args:
        kp_2d: ``(N, J, 3)`` pixels + confidence.
    Returns:
        ``(N, 3)`` float64.
    """
    kp = np.asarray(kp_2d, dtype=np.float64)
    vis = kp[..., 2] > vis_thresh
    xy = kp[..., :2]
    lo = np.where(vis[..., None], xy, np.inf).min(axis=1)
    hi = np.where(vis[..., None], xy, -np.inf).max(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        diag = np.linalg.norm(hi - lo, axis=1)
        ok = vis.any(axis=1) & (diag >= 0.5)
        params = np.concatenate([(lo + hi) / 2, (BBOX_REF_HEIGHT / diag)[:, None]], axis=1)
    params[~ok] = np.nan
    return params


def smooth_keypoint_bboxes(kp_2d: np.ndarray, vis_thresh: float, kernel_size: int = 11,
                           sigma: float = 8.0) -> tuple[np.ndarray, int, int]:
    """Smoothed ``(cx, cy, scale)`` track from 2D keypoints (the human_dynamics recipe used by VIBE/TCMR).

    Frames before the first and after the last frame with keypoints are cut; gaps in between are filled by
    linear interpolation; then each parameter is median filtered (``kernel_size``, zero-padded ends) and
    Gaussian smoothed (``sigma`` frames, reflected ends). Tracks of at most ``kernel_size // 2`` frames, for
    which the official filter returns zeros, use the longest odd kernel that fits instead.

    Args:
        kp_2d: ``(N, J, 3)`` pixels + confidence.
    Returns:
        ``(params, start, stop)``: ``params`` ``(stop - start, 3)`` for frames ``start .. stop - 1``.
        Unlike the official helper, which prepends ``start`` rows of zeros, rows align with the frames they
        describe.

    Raises:
        ValueError: no frame has a visible keypoint.
    """
    raw = keypoint_bbox_params(kp_2d, vis_thresh)
    have = np.flatnonzero(~np.isnan(raw[:, 0]))
    if have.size == 0:
        raise ValueError("smooth_keypoint_bboxes: no frame has keypoints above the visibility threshold")
    start, stop = int(have[0]), int(have[-1]) + 1
    frames = np.arange(start, stop)
    filled = np.stack([np.interp(frames, have, raw[have, k]) for k in range(3)], axis=1)
    if len(frames) <= kernel_size // 2:
        # zero padding would outvote the track (scale 0, infinite boxes): use the longest odd kernel that fits
        kernel_size = len(frames) - (1 - len(frames) % 2)
    with warnings.catch_warnings():   # tracks shorter than the kernel: zero padding is the intended behaviour
        warnings.simplefilter('ignore', UserWarning)
        smoothed = np.stack([scipy.signal.medfilt(filled[:, k], kernel_size) for k in range(3)], axis=1)
    smoothed = np.stack([scipy.ndimage.gaussian_filter1d(smoothed[:, k], sigma) for k in range(3)], axis=1)
    return smoothed, start, stop


def bbox_params_to_boxes(params: np.ndarray, enlarge: float) -> np.ndarray:
    """``(N, 3)`` ``(cx, cy, scale)`` -> ``(N, 4)`` square boxes ``(cx, cy, s, s)`` with
    ``s = 150 / scale * enlarge`` (= ``enlarge`` x keypoint-box diagonal)."""
    side = BBOX_REF_HEIGHT / params[:, 2] * enlarge
    return np.stack([params[:, 0], params[:, 1], side, side], axis=1)
