"""Multi-person tracking: SORT-style online tracker, gap filling, track selection, box smoothing.

Boxes are ``(x1, y1, x2, y2)`` in pixels unless a name says ``cxcywh``; times are frame indices. The tracker
plays the role SORT plays in the official demo (through multi-person-tracker): each person's box follows a
constant-velocity Kalman filter (``lib/demo/kalman.py``), detections are associated to the predicted boxes
by the assignment of maximum total IoU (``scipy.optimize.linear_sum_assignment``), optionally helped by the
boxes' colours (``lib/demo/appearance.py``), and a track survives ``max_age`` frames without a detection, so
people who are missed or hidden for a moment keep their id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import linear_sum_assignment

from lib.demo.appearance import similarity
from lib.demo.boxes import box_iou, boxes_and_scores
from lib.demo.kalman import GATE_CHI2, BoxKalmanFilter

logger = logging.getLogger(__name__)

# Weight of a track's colour description in its running mean at each new (unoccluded) detection.
APPEARANCE_MOMENTUM = 0.9


@dataclass
class Track:
    """One person over time: ``frames (n,)`` int64 increasing frame indices, ``boxes (n, 4)`` x1y1x2y2 pixels,
    ``scores (n,)`` detection confidences (0 where a gap was filled), ``filled (n,)`` bool, True where the box
    was interpolated rather than detected (all False when not given)."""

    track_id: int
    frames: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    filled: np.ndarray | None = None

    def __post_init__(self):
        if self.filled is None:
            self.filled = np.zeros(len(self.frames), dtype=bool)

    def __len__(self) -> int:
        return len(self.frames)


def assign(score: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """Pairs ``(row, column)`` of the assignment of maximum total ``score (N, M)`` among the ``valid (N, M)``
    pairs (Hungarian, ``scipy.optimize.linear_sum_assignment``)."""
    if score.size == 0 or not valid.any():
        return []
    rows, cols = linear_sum_assignment(np.where(valid, score, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if valid[r, c]]


def match_boxes(tracks: np.ndarray, detections: np.ndarray, iou_threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(track_index, detection_index)`` of the maximum-total-IoU assignment, keeping pairs whose IoU
    is at least ``iou_threshold``. ``tracks (N, 4)``, ``detections (M, 4)`` x1y1x2y2."""
    iou = box_iou(tracks, detections)
    return assign(iou, iou >= iou_threshold)


class _LiveTrack:
    """A track being followed: its Kalman filter, colour description, its frames and boxes so far (detected,
    or carried by the filter over frames the detector did not run on), the number of detections ``hits`` and
    the number of frames since its last detection."""

    def __init__(self, track_id: int, frame: int, box: np.ndarray, score: float, appearance: np.ndarray | None):
        self.track_id = track_id
        self.kalman = BoxKalmanFilter(box)
        self.appearance = appearance
        self.frames = [frame]
        self.boxes = [np.asarray(box, dtype=np.float64)]
        self.scores = [score]
        self.carried = [False]
        self.hits = 1
        self.missed = 0

    def add(self, frame: int, box: np.ndarray, score: float) -> None:
        self.kalman.update(box)
        self._append(frame, box, score, False)
        self.hits += 1
        self.missed = 0

    def carry(self, frame: int) -> np.ndarray:
        """The predicted box (x1y1x2y2) kept as this frame's box, score 0 (no detection ran on the frame)."""
        self._append(frame, self.kalman.box, 0.0, True)
        return self.boxes[-1].copy()

    def _append(self, frame: int, box: np.ndarray, score: float, carried: bool) -> None:
        self.frames.append(frame)
        self.boxes.append(np.asarray(box, dtype=np.float64))
        self.scores.append(score)
        self.carried.append(carried)

    def end(self) -> '_LiveTrack':
        """Drop the carried boxes after the last detection (the next detection did not confirm them)."""
        last = len(self.carried) - self.carried[::-1].index(False)
        del self.frames[last:], self.boxes[last:], self.scores[last:], self.carried[last:]
        return self

    def to_track(self) -> Track:
        return Track(self.track_id, np.asarray(self.frames, dtype=np.int64),
                     np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4),
                     np.asarray(self.scores, dtype=np.float64), np.asarray(self.carried, dtype=bool))


class Tracker:
    """Online multi-person tracker (SORT, with an optional colour cue): a constant-velocity Kalman filter per
    person (:class:`lib.demo.kalman.BoxKalmanFilter`), detections associated to the predicted boxes by the
    Hungarian algorithm.

    Call :meth:`update` once per frame, in order; it is causal (uses nothing after the frame). Association:

    1. confirmed tracks first: a track and a detection are candidates when the detection is plausible under
       the filter's uncertainty (Mahalanobis gate :data:`lib.demo.kalman.GATE_CHI2`) and either the IoU of
       the predicted box and the detection is at least ``iou_threshold`` or, when colour descriptions are
       given (``lib/demo/appearance.py``), their colour similarity is at least ``appearance_min`` (so that a
       person hidden or missed for a few frames, whose predicted box has drifted, is found again within the
       gate that grew meanwhile); the assignment maximises the total IoU + ``appearance_weight`` x colour
       similarity;
    2. then the unconfirmed tracks and the detections left over, on IoU (and the gate) only, so that a fresh
       duplicate track cannot take a returning person's detection.

    A detection that matches no track starts a new one (ids 1, 2, ... in order of birth); a track that is
    not matched for more than ``max_age`` frames in a row ends. A track is *confirmed* once it has
    ``min_hits`` detections; an unconfirmed track that misses a frame ends at once (a one-off false
    detection does not coast). A track's colour description is the running mean (:data:`APPEARANCE_MOMENTUM`)
    of its detections' descriptions, taken only from detections that overlap no other detection and no other
    track's predicted box (so that an occluder's colours do not leak in).

    Args:
        iou_threshold: minimum IoU between a predicted box and a detection for a motion match.
        max_age: frames a track survives without a detection (a gap of up to this many frames is bridged).
        min_hits: detections before a track is reported.
        appearance_weight: weight of the colour similarity (in [0, 1], like the IoU) in the assignment.
        appearance_min: minimum colour similarity for a match on colour without enough IoU.
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 15, min_hits: int = 3,
                 appearance_weight: float = 1.0, appearance_min: float = 0.7):
        self.iou_threshold = float(iou_threshold)
        self.max_age = int(max_age)
        self.min_hits = int(min_hits)
        self.appearance_weight = float(appearance_weight)
        self.appearance_min = float(appearance_min)
        self.frame = -1
        self._live: list[_LiveTrack] = []
        self._ended: list[_LiveTrack] = []
        self._next_id = 1

    def update(self, detections, appearance: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
        """Advance to the next frame with its detections ``(n, 5)`` x1, y1, x2, y2, score (or ``(n, 4)``,
        score 1; pixels) and optionally their colour descriptions ``(n, D)``
        (:func:`lib.demo.appearance.box_histograms` of this frame; give them on every frame or on none).
        Returns ``(track_id, box (4,) x1y1x2y2)`` of the confirmed tracks detected in this frame, the box being
        the matched detection."""
        self.frame += 1
        boxes, scores = boxes_and_scores(detections)
        if appearance is not None and len(appearance) != len(boxes):
            raise ValueError(f'{len(boxes)} detections but {len(appearance)} appearance descriptions')
        live = self._live
        predicted = np.array([t.kalman.predict() for t in live]).reshape(-1, 4)
        gate = np.array([t.kalman.distances(boxes) <= GATE_CHI2 for t in live], dtype=bool)
        gate = gate.reshape(len(live), len(boxes))
        iou = box_iou(predicted, boxes)
        candidate = gate & (iou >= self.iou_threshold)
        score = iou
        if appearance is not None:
            colour = similarity(np.array([t.appearance for t in live]).reshape(len(live), appearance.shape[1]),
                                appearance)
            score = iou + self.appearance_weight * colour
        confirmed = np.array([t.hits >= self.min_hits for t in live], dtype=bool)
        first = candidate if appearance is None else candidate | (gate & (colour >= self.appearance_min))
        pairs = assign(score, first & confirmed[:, None])
        pairs += assign(score, candidate & self._free(pairs, ~confirmed, boxes))
        overlaps = np.concatenate([box_iou(boxes, boxes) - np.eye(len(boxes)), box_iou(boxes, predicted)], axis=1)
        for t, d in pairs:
            live[t].add(self.frame, boxes[d], float(scores[d]))
            others = np.delete(overlaps[d], len(boxes) + t)   # every box but the detection and its own track
            if appearance is not None and (others <= 0).all():
                live[t].appearance = (APPEARANCE_MOMENTUM * live[t].appearance
                                      + (1 - APPEARANCE_MOMENTUM) * appearance[d])
        matched_tracks, matched_dets = {t for t, _ in pairs}, {d for _, d in pairs}
        kept = []
        for index, track in enumerate(live):
            if index not in matched_tracks:
                track.missed += 1
            max_missed = self.max_age if track.hits >= self.min_hits else 0
            if track.missed <= max_missed:
                kept.append(track)
            else:
                self._ended.append(track.end())
        for d in range(len(boxes)):
            if d not in matched_dets:
                kept.append(_LiveTrack(self._next_id, self.frame, boxes[d], float(scores[d]),
                                       None if appearance is None else appearance[d]))
                self._next_id += 1
        self._live = kept
        return [(t.track_id, t.boxes[-1].copy()) for t in kept
                if t.missed == 0 and t.hits >= self.min_hits]

    def coast(self) -> list[tuple[int, np.ndarray]]:
        """Advance to the next frame when the detector did not run on it (``DEMO.DETECT_EVERY``): every
        filter predicts one frame ahead and nobody counts a miss; the confirmed tracks detected (or carried)
        in the previous frame keep their predicted box as this frame's box (``filled`` in :meth:`tracks`).
        Returns ``(track_id, box (4,) x1y1x2y2)`` of those tracks."""
        self.frame += 1
        for track in self._live:
            track.kalman.predict()
        return [(t.track_id, t.carry(self.frame)) for t in self._live
                if t.missed == 0 and t.hits >= self.min_hits]

    @staticmethod
    def _free(pairs: list[tuple[int, int]], tracks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(N, M)`` bool: pairs of the selected ``tracks (N,)`` bool and of detections that are both still
        unmatched in ``pairs``."""
        free_tracks, free_dets = tracks.copy(), np.ones(len(boxes), dtype=bool)
        for t, d in pairs:
            free_tracks[t], free_dets[d] = False, False
        return free_tracks[:, None] & free_dets[None, :]

    def tracks(self) -> list[Track]:
        """Every confirmed track so far (ended and live), sorted by id; frames where a track was not detected
        are missing from it (see :func:`fill_gaps`), and so are the boxes carried after its last detection when
        a later detection missed it."""
        tracks = [(t.end() if t.missed else t).to_track() for t in self._ended + self._live if t.hits >= self.min_hits]
        return sorted(tracks, key=lambda t: t.track_id)


def track_detections(detections: list[np.ndarray], iou_threshold: float = 0.3, max_age: int = 15,
                     min_hits: int = 3, appearance: list[np.ndarray] | None = None,
                     appearance_weight: float = 1.0, appearance_min: float = 0.7) -> list[Track]:
    """Link per-frame detections into tracks with a :class:`Tracker` run over the whole video.

    ``detections[f]`` is ``(n_f, 5)`` = x1, y1, x2, y2, score for frame ``f`` (``(n_f, 4)`` means score 1), or
    None where the detector did not run (:meth:`Tracker.coast`: boxes carried, marked ``filled``);
    ``appearance[f]`` (optional) their ``(n_f, D)`` colour descriptions (None where ``detections[f]`` is).
    Returned tracks are sorted by id and may have gaps of at most ``max_age`` frames (see :func:`fill_gaps`).
    """
    tracker = Tracker(iou_threshold, max_age, min_hits, appearance_weight, appearance_min)
    for frame, dets in enumerate(detections):
        if dets is None:
            tracker.coast()
        else:
            tracker.update(dets, None if appearance is None else appearance[frame])
    return tracker.tracks()


def fill_gaps(track: Track) -> Track:
    """The same track with missing frames inside its span filled by linear interpolation of the boxes
    (score 0 and ``filled`` True there), so ``frames`` becomes contiguous."""
    full = np.arange(track.frames[0], track.frames[-1] + 1, dtype=np.int64)
    if len(full) == len(track.frames):
        return track
    boxes = np.stack([np.interp(full, track.frames, track.boxes[:, k]) for k in range(4)], axis=1)
    scores = np.zeros(len(full))
    filled = np.ones(len(full), dtype=bool)
    rows = np.searchsorted(full, track.frames)
    scores[rows], filled[rows] = track.scores, track.filled
    return Track(track.track_id, full, boxes, scores, filled)


def drop_short_tracks(tracks: list[Track], min_length: int) -> list[Track]:
    """Tracks with at least ``min_length`` frames (official demo: 25)."""
    return [t for t in tracks if len(t) >= min_length]


def is_static(track: Track, motion: float, fraction: float) -> bool:
    """Whether a track hardly moves: on at least ``fraction`` of its detected (not filled) frames its box
    centre lies within ``motion`` x the median box height of the median centre. A walking person leaves that
    circle within a second or two; a door, a poster or a parked car never does. ``motion`` 0 = never."""
    detected = track.boxes[~track.filled]
    if motion <= 0 or len(detected) == 0:
        return False
    centres = (detected[:, :2] + detected[:, 2:]) / 2
    height = np.median(detected[:, 3] - detected[:, 1])
    distance = np.linalg.norm(centres - np.median(centres, axis=0), axis=1)
    return bool(np.mean(distance <= motion * height) >= fraction)


def select_tracks(tracks: list[Track], min_length: int, static_motion: float = 0.1,
                  static_fraction: float = 0.9, drop_static: bool = False) -> list[Track]:
    """The tracks to reconstruct: at least ``min_length`` frames long, and not static (:func:`is_static`) if
    ``drop_static``. Logs how many tracks and person-frames were dropped as too short, and each static track
    (kept or dropped), so nothing disappears silently."""
    kept = drop_short_tracks(tracks, min_length)
    short = [t for t in tracks if len(t) < min_length]
    logger.info(f"tracking: {len(short)} track(s) shorter than DEMO.MIN_TRACK_LEN {min_length} frames dropped "
                f"({sum(len(t) for t in short)} person-frames); {len(kept)} kept "
                f"({sum(len(t) for t in kept)} person-frames)")
    result = []
    for track in kept:
        if is_static(track, static_motion, static_fraction):
            action = 'dropped (DEMO.DROP_STATIC_TRACKS True)' if drop_static else \
                'kept; set DEMO.DROP_STATIC_TRACKS True to drop such tracks'
            logger.warning(f"tracking: track {track.track_id} (frames {track.frames[0]}-{track.frames[-1]}) is "
                           f"static: its box centre stays within {static_motion:g} box heights of one place on "
                           f"{static_fraction:.0%} or more of its frames; a still object rather than a person? "
                           f"({action})")
            if drop_static:
                continue
        result.append(track)
    return result


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
