"""The image cameras people are drawn with: the crop camera converted to the whole image, and the pinhole.

Image coordinates are pixels, ``u`` from the left edge, ``v`` from the top edge, the image centre at
``(W/2, H/2)``. The model predicts a weak-perspective camera ``pred_cam = (s, tx, ty)`` of the 224-pixel crop
cut around a square person box ``(cx, cy, w, h)`` enlarged by a box scale (the official 1.2). In the whole
``W x H`` image that is ``orig_cam = (sx, sy, tx', ty')`` (the official ``convert_crop_cam_to_orig_img``,
:func:`lib.utils.geometry.convert_crop_cam_to_orig_img`): an SMPL-frame point ``(X, Y, Z)`` metres lands at
``u = (1 + sx (X + tx')) W/2``, ``v = (1 + sy (Y + ty')) H/2``. :func:`image_camera` is the one place that
scales the box and converts.

The pinhole of the camera-space outputs (``lib/demo/camera.py`` derives ``trans_cam``) has focal length
:func:`focal_length` pixels and principal point :func:`principal_point` (the image centre).
"""
from __future__ import annotations

import numpy as np
import torch

from lib.utils.geometry import convert_crop_cam_to_orig_img, perspective_projection

# The crop box scale of the official demo and evaluation renders (DEMO.BBOX_SCALE's default).
OFFICIAL_BOX_SCALE = 1.2


def image_camera(pred_cam, boxes, box_scale: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The image camera ``orig_cam (n, 4)`` float64 of crop cameras ``pred_cam (n, 3)`` whose crops were cut
    around the square boxes ``boxes (n, 4)`` cx, cy, w, h pixels enlarged by ``box_scale``, in a ``width x
    height`` image; also returns the enlarged boxes ``(n, 4)`` float64 (the crops' own boxes)."""
    scaled = np.asarray(boxes, dtype=np.float64).copy()
    scaled[:, 2:] *= box_scale
    cam = torch.as_tensor(np.asarray(pred_cam)).double()
    return convert_crop_cam_to_orig_img(cam, torch.from_numpy(scaled), width, height).numpy(), scaled


def focal_length(setting: float, width: int, height: int) -> float:
    """The pinhole focal length in pixels: ``setting`` (``DEMO.FOCAL_LENGTH``) if positive, else the image
    diagonal ``sqrt(W^2 + H^2)``."""
    return float(setting) if setting > 0 else float(np.hypot(width, height))


def principal_point(width: int, height: int) -> np.ndarray:
    """The principal point ``(2,)`` in pixels: the image centre ``(W/2, H/2)``."""
    return np.array([width / 2.0, height / 2.0])


def project_to_image(points: np.ndarray, trans_cam: np.ndarray, focal: float, center: np.ndarray) -> np.ndarray:
    """Pixels ``(n, J, 2)`` of SMPL-frame points ``(n, J, 3)`` metres moved by ``trans_cam (n, 3)`` into the
    camera frame and projected by the pinhole (``focal`` pixels, principal point ``center (2,)``)."""
    uv = perspective_projection(torch.as_tensor(points, dtype=torch.float64),
                                torch.as_tensor(trans_cam, dtype=torch.float64), focal)
    return uv.numpy() + np.asarray(center, dtype=np.float64)
