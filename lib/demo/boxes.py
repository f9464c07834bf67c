"""Person-box geometry shared by detection, tracking and scoring: overlaps and per-frame box arrays.

Boxes are ``(x1, y1, x2, y2)`` in pixels; one frame's detections are ``(n, 5)`` x1, y1, x2, y2, score (or
``(n, 4)``, score 1).
"""
from __future__ import annotations

import numpy as np


def _intersection_and_areas(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter, area_a, area_b


def _ratio(inter: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.where(denominator > 0, inter / np.where(denominator > 0, denominator, 1.0), 0.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` (x1y1x2y2) -> ``(N, M)``."""
    inter, area_a, area_b = _intersection_and_areas(a, b)
    return _ratio(inter, area_a[:, None] + area_b[None, :] - inter)


def box_containment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area ``(N, M)``: 1 when one box lies inside the other."""
    inter, area_a, area_b = _intersection_and_areas(a, b)
    return _ratio(inter, np.minimum(area_a[:, None], area_b[None, :]))


def boxes_and_scores(dets) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` boxes and ``(n,)`` scores from one frame's ``(n, 4)`` or ``(n, 5+)`` detections."""
    dets = np.asarray(dets, dtype=np.float64)
    if dets.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    dets = dets.reshape(len(dets), -1)
    scores = dets[:, 4] if dets.shape[1] > 4 else np.ones(len(dets))
    return dets[:, :4], scores


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` x1y1x2y2 -> ``(..., 4)`` centre x, centre y, width, height (pixels)."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2, b[..., 2] - b[..., 0],
                     b[..., 3] - b[..., 1]], axis=-1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` centre x, centre y, width, height -> ``(..., 4)`` x1y1x2y2 (pixels)."""
    b = np.asarray(boxes, dtype=np.float64)
    half_w, half_h = b[..., 2] / 2, b[..., 3] / 2
    return np.stack([b[..., 0] - half_w, b[..., 1] - half_h, b[..., 0] + half_w, b[..., 1] + half_h], axis=-1)
