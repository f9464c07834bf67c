"""Multi-person tracking by box overlap: Hungarian IoU association, short-track removal, box smoothing.

Boxes are ``(x1, y1, x2, y2)`` in pixels unless a name says ``cxcywh``. The tracker plays the role SORT
(max_age 1, min_hits 3) plays in the official demo: a track survives ``max_age`` frames without a matching
detection, matches use a constant-velocity guess of the next box, and the association per frame is the
assignment of maximum total IoU (``scipy.optimize.linear_sum_assignment``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import linear_sum_assignment


@dataclass
class Track:
    """One person over time: ``frames (n,)`` int64 increasing frame indices, ``boxes (n, 4)`` x1y1x2y2 pixels,
    ``scores (n,)`` detection confidences (0 where a gap was filled)."""

    track_id: int
    frames: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a (N, 4)`` and ``b (M, 4)`` (x1y1x2y2) -> ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(tracks: np.ndarray, detections: np.ndarray, iou_threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(track_index, detection_index)`` of the maximum-total-IoU assignment, keeping pairs whose IoU
    is at least ``iou_threshold``. ``tracks (N, 4)``, ``detections (M, 4)`` x1y1x2y2."""
    if len(tracks) == 0 or len(detections) == 0:
        return []
    iou = box_iou(tracks, detections)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= iou_threshold]


class _ActiveTrack:
    def __init__(self, track_id: int, frame: int, box: np.ndarray, score: float):
        self.track_id = track_id
        self.frames = [frame]
        self.boxes = [box]
        self.scores = [score]

    def predicted_box(self, frame: int) -> np.ndarray:
        """Constant-velocity guess of the box at ``frame`` from the last two matched boxes."""
        if len(self.frames) < 2:
            return self.boxes[-1]
        step = (self.boxes[-1] - self.boxes[-2]) / (self.frames[-1] - self.frames[-2])
        return self.boxes[-1] + step * (frame - self.frames[-1])

    def to_track(self) -> Track:
        return Track(self.track_id, np.asarray(self.frames, dtype=np.int64),
                     np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4),
                     np.asarray(self.scores, dtype=np.float64))


class IoUTracker:
    """The tracker of :func:`track_detections` one frame at a time (causal): :meth:`update` takes frame
    ``f``'s detections ``(n, 5)`` (or ``(n, 4)``, score 1) and returns ``[(track_id, box (4,) x1y1x2y2)]`` of
    the tracks matched or born in that frame; :meth:`tracks` returns everything seen so far."""

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 1):
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.live: list[_ActiveTrack] = []
        self.finished: list[_ActiveTrack] = []
        self.next_id = 1
        self.frame = 0

    def update(self, dets) -> list[tuple[int, np.ndarray]]:
        frame = self.frame
        boxes, scores = _boxes_and_scores(dets)
        predicted = np.array([t.predicted_box(frame) for t in self.live]).reshape(-1, 4)
        pairs = match_boxes(predicted, boxes, self.iou_threshold)
        matched_tracks = {t for t, _ in pairs}
        matched_dets = {d for _, d in pairs}
        for t, d in pairs:
            self.live[t].frames.append(frame)
            self.live[t].boxes.append(boxes[d])
            self.live[t].scores.append(float(scores[d]))
        still_live = []
        for index, track in enumerate(self.live):
            if index in matched_tracks or frame - track.frames[-1] <= self.max_age:
                still_live.append(track)
            else:
                self.finished.append(track)
        self.live = still_live
        for d in range(len(boxes)):
            if d not in matched_dets:
                self.live.append(_ActiveTrack(self.next_id, frame, boxes[d], float(scores[d])))
                self.next_id += 1
        self.frame += 1
        return [(t.track_id, t.boxes[-1]) for t in self.live if t.frames[-1] == frame]

    def tracks(self, min_hits: int = 3) -> list[Track]:
        """The tracks so far with at least ``min_hits`` detections, sorted by id."""
        tracks = [t.to_track() for t in self.finished + self.live if len(t.frames) >= min_hits]
        return sorted(tracks, key=lambda t: t.track_id)


def track_detections(detections: list[np.ndarray], iou_threshold: float = 0.3, max_age: int = 1,
                     min_hits: int = 3) -> list[Track]:
    """Link per-frame detections into tracks.

    ``detections[f]`` is ``(n_f, 5)`` = x1, y1, x2, y2, score for frame ``f`` (``(n_f, 4)`` means score 1).
    A detection that matches no live track starts a new one (ids 1, 2, ... in order of birth). A track not
    matched for more than ``max_age`` consecutive frames ends; tracks with fewer than ``min_hits``
    detections are discarded. Returned tracks are sorted by id and may have gaps of at most ``max_age``
    frames (see :func:`fill_gaps`).
    """
    tracker = IoUTracker(iou_threshold, max_age)
    for dets in detections:
        tracker.update(dets)
    return tracker.tracks(min_hits)


def _boxes_and_scores(dets) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` boxes and ``(n,)`` scores from one frame's ``(n, 4)`` or ``(n, 5)`` detections."""
    dets = np.asarray(dets, dtype=np.float64)
    if dets.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    dets = dets.reshape(len(dets), -1)
    scores = dets[:, 4] if dets.shape[1] > 4 else np.ones(len(dets))
    return dets[:, :4], scores


def fill_gaps(track: Track) -> Track:
    """The same track with missing frames inside its span filled by linear interpolation of the boxes
    (score 0 there), so ``frames`` becomes contiguous."""
    full = np.arange(track.frames[0], track.frames[-1] + 1, dtype=np.int64)
    if len(full) == len(track.frames):
        return track
    boxes = np.stack([np.interp(full, track.frames, track.boxes[:, k]) for k in range(4)], axis=1)
    scores = np.zeros(len(full))
    scores[np.searchsorted(full, track.frames)] = track.scores
    return Track(track.track_id, full, boxes, scores)


def drop_short_tracks(tracks: list[Track], min_length: int) -> list[Track]:
    """Tracks with at least ``min_length`` frames (official demo: 25)."""
    return [t for t in tracks if len(t) >= min_length]


def square_boxes(boxes_xyxy: np.ndarray) -> np.ndarray:
    """``(n, 4)`` x1y1x2y2 -> ``(n, 4)`` cx, cy, w, h with ``w = h = max(width, height)`` (the official
    tracker's output format)."""
    boxes_xyxy = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    cx = (boxes_xyxy[:, 0] + boxes_xyxy[:, 2]) / 2
    cy = (boxes_xyxy[:, 1] + boxes_xyxy[:, 3]) / 2
    side = np.maximum(boxes_xyxy[:, 2] - boxes_xyxy[:, 0], boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
    return np.stack([cx, cy, side, side], axis=1)


def smooth_boxes(boxes_cxcywh: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over time of ``(n, 4)`` cx, cy, w, h boxes; ``sigma`` in frames, 0 = unchanged.

    Ends repeat the first and last boxes (``scipy.ndimage`` mode 'nearest'), so a box that does not move
    stays exactly where it is.
    """
    boxes_cxcywh = np.asarray(boxes_cxcywh, dtype=np.float64)
    if sigma <= 0 or len(boxes_cxcywh) < 2:
        return boxes_cxcywh.copy()
    return gaussian_filter1d(boxes_cxcywh, sigma=sigma, axis=0, mode='nearest')
