"""Colour appearance of person boxes, the tracker's identity cue: HSV histograms and their similarity.

A box is described by the hue-saturation-value histogram of its central part (the middle
:data:`INNER_WIDTH` of its width and :data:`INNER_HEIGHT` of its height, where the body is rather than the
background), with :data:`BINS` bins per channel, normalised to sum 1. Two descriptions are compared by the
Bhattacharyya coefficient: 1 for identical colour distributions, 0 for disjoint ones.
"""
from __future__ import annotations

import cv2
import numpy as np

from lib.demo.boxes import boxes_and_scores

# Histogram bins of hue, saturation and value.
BINS = (8, 4, 4)
# Central fraction of the box width and height that is described.
INNER_WIDTH = 0.6
INNER_HEIGHT = 0.9
# Appearance length: the number of histogram bins.
DIMENSION = int(np.prod(BINS))


def box_histograms(frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """Colour descriptions ``(n, DIMENSION)`` float64 (rows sum to 1) of boxes ``(n, 4+)`` x1y1x2y2 (pixels;
    extra columns ignored) in one ``(H, W, 3)`` uint8 BGR frame. A box with no pixel inside the frame gets a
    uniform histogram."""
    boxes, _ = boxes_and_scores(boxes_xyxy)
    out = np.full((len(boxes), DIMENSION), 1.0 / DIMENSION)
    if not len(boxes):
        return out
    height, width = frame_bgr.shape[:2]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half_w = (boxes[:, 2] - boxes[:, 0]) * INNER_WIDTH / 2
    half_h = (boxes[:, 3] - boxes[:, 1]) * INNER_HEIGHT / 2
    x1 = np.clip(np.floor(cx - half_w), 0, width).astype(int)
    x2 = np.clip(np.ceil(cx + half_w), 0, width).astype(int)
    y1 = np.clip(np.floor(cy - half_h), 0, height).astype(int)
    y2 = np.clip(np.ceil(cy + half_h), 0, height).astype(int)
    for i in range(len(boxes)):
        if x2[i] <= x1[i] or y2[i] <= y1[i]:
            continue
        hsv = cv2.cvtColor(np.ascontiguousarray(frame_bgr[y1[i]:y2[i], x1[i]:x2[i]]), cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256]).reshape(-1)
        out[i] = hist / max(float(hist.sum()), 1.0)
    return out


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficients ``(n, m)`` in [0, 1] between descriptions ``a (n, D)`` and ``b (m, D)``."""
    return np.sqrt(np.clip(a, 0, None)) @ np.sqrt(np.clip(b, 0, None)).T
