"""Tracking quality against ground truth: MOTA, IDF1, identity switches and coverage, with ``motmetrics``.

Ground truth and tracks are compared frame by frame: a track box and a true box can match when their IoU is
at least ``iou_threshold`` (0.5, the MOTChallenge rule), and ``motmetrics`` does the CLEAR-MOT matching
(MOTA, switches) and the global identity matching (IDF1).
"""
from __future__ import annotations

from dataclasses import dataclass

import motmetrics
import numpy as np

from lib.demo.boxes import box_iou, boxes_and_scores
from lib.demo.tracking import Track


@dataclass(frozen=True)
class TrackingScores:
    """Scores of a set of tracks. ``coverage`` is the fraction of true person-frames that a track covers (the
    recall: matched person-frames / all person-frames); ``precision`` the fraction of track boxes that cover
    a person; ``id_switches`` counts the times a person's matched track id changed."""

    mota: float
    idf1: float
    id_switches: int
    coverage: float
    precision: float
    num_tracks: int
    num_people: int
    person_frames: int

    def line(self) -> str:
        """One readable line of the scores."""
        return (f'MOTA {self.mota:.3f}  IDF1 {self.idf1:.3f}  ID switches {self.id_switches}  '
                f'coverage {self.coverage:.3f}  precision {self.precision:.3f}  '
                f'tracks {self.num_tracks} for {self.num_people} people')


def score_tracks(truth_boxes: list[np.ndarray], truth_ids: list[np.ndarray], tracks: list[Track],
                 iou_threshold: float = 0.5) -> TrackingScores:
    """Score ``tracks`` against the ground truth of a video of ``len(truth_boxes)`` frames.

    Args:
        truth_boxes: per frame, ``(n_f, 4+)`` true person boxes x1y1x2y2 (pixels; extra columns ignored).
        truth_ids: per frame, ``(n_f,)`` their person ids.
        tracks: the tracks (boxes x1y1x2y2); frames beyond the video are ignored.
    """
    num_frames = len(truth_boxes)
    per_frame: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(num_frames)]
    for track in tracks:
        for frame, box in zip(track.frames, track.boxes):
            if 0 <= frame < num_frames:
                per_frame[int(frame)].append((track.track_id, box))
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for frame in range(num_frames):
        true_boxes, _ = boxes_and_scores(truth_boxes[frame])
        hyp_ids = [tid for tid, _ in per_frame[frame]]
        hyp_boxes = np.array([box for _, box in per_frame[frame]]).reshape(-1, 4)
        iou = box_iou(true_boxes, hyp_boxes)
        distance = np.where(iou >= iou_threshold, 1.0 - iou, np.nan)
        accumulator.update([int(i) for i in truth_ids[frame]], hyp_ids, distance)
    names = ['mota', 'idf1', 'num_switches', 'recall', 'precision', 'num_unique_objects', 'num_objects']
    summary = motmetrics.metrics.create().compute(accumulator, metrics=names, name='tracks').iloc[0]
    return TrackingScores(mota=float(summary['mota']), idf1=float(summary['idf1']),
                          id_switches=int(summary['num_switches']), coverage=float(summary['recall']),
                          precision=float(summary['precision']), num_tracks=len(tracks),
                          num_people=int(summary['num_unique_objects']),
                          person_frames=int(summary['num_objects']))
