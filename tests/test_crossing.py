"""Tracking quality on the generated crossing video: ground-truth boxes without ids and the HOG detector,
scored with motmetrics (MOTA, IDF1, identity switches, coverage)."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from lib.core.config import load_config
from lib.demo.boxes import box_iou
from lib.demo.detection import HOGDetector, read_bbox_file
from lib.demo.pipeline import box_appearance, link_tracks
from lib.demo.track_metrics import score_tracks
from lib.vis.video import FrameReader
from scripts.make_synthetic_video import CROSSING_WALKERS, make_crossing_video

FRAMES, WIDTH, HEIGHT = 64, 320, 240
HAS_HOG = hasattr(cv2, 'HOGDescriptor')


@pytest.fixture(scope='module')
def crossing(synthetic_root, tmp_path_factory):
    """The four-person crossing video (64 frames, 320x240, people 72-101 px tall), its ground truth with ids
    and the frames."""
    folder = tmp_path_factory.mktemp('crossing')
    video = make_crossing_video(folder / 'crossing.mp4', synthetic_root, FRAMES, WIDTH, HEIGHT,
                                bbox_file=folder / 'truth.csv')
    truth = read_bbox_file(folder / 'truth.csv', FRAMES, WIDTH, HEIGHT)
    reader = FrameReader(video.path)
    cfg = load_config(None, ['DEMO.MIN_TRACK_LEN', '25'])
    return SimpleNamespace(video=video, truth=truth, reader=reader, cfg=cfg)


def _crossings(truth) -> list[tuple[int, int, int]]:
    """``(frame, id_a, id_b)`` where two people swap their left-right order while their boxes overlap."""
    events = []
    ids = truth.track_ids[0]
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            order = [np.sign(truth.detections[f][i, 0] - truth.detections[f][j, 0]) for f in range(FRAMES)]
            for f in range(1, FRAMES):
                if order[f] != order[f - 1]:
                    overlap = box_iou(truth.detections[f][i, :4], truth.detections[f][j, :4])[0, 0]
                    assert overlap > 0.3, 'people cross without occluding each other'
                    events.append((f, int(ids[i]), int(ids[j])))
    return sorted(events)


def test_the_video_has_occluding_crossings(crossing):
    events = _crossings(crossing.truth)
    assert len(events) == 4 and len({p for _, a, b in events for p in (a, b)}) == 4
    heights = np.array([b[:, 3] - b[:, 1] for b in crossing.video.boxes])
    assert 70 < heights.min() and heights.max() < 105 and len(CROSSING_WALKERS) == 4


def test_truth_boxes_without_ids_give_one_track_per_person(crossing):
    detections = crossing.truth.detections      # the box file's boxes, ids withheld
    appearance = box_appearance(crossing.reader, detections)
    tracks = link_tracks(detections, crossing.cfg.DEMO, None, appearance)
    scores = score_tracks(crossing.truth.detections, crossing.truth.track_ids, tracks)
    assert (scores.num_tracks, scores.id_switches, scores.idf1, scores.mota) == (4, 0, 1.0, 1.0)
    assert all(len(t) == FRAMES and not t.filled.any() for t in tracks)


@pytest.mark.skipif(not HAS_HOG, reason='this OpenCV build has no HOGDescriptor')
def test_hog_tracks_through_the_crossings(crossing):
    detections = HOGDetector(min_height=70)(list(crossing.reader))
    appearance = box_appearance(crossing.reader, detections)
    tracks = link_tracks(detections, crossing.cfg.DEMO, None, appearance)
    scores = score_tracks(crossing.truth.detections, crossing.truth.track_ids, tracks)
    assert scores.idf1 >= 0.9 and scores.id_switches <= len(_crossings(crossing.truth))
    assert scores.coverage >= 0.9 and scores.num_tracks == 4
    # Frames where a person was hidden or missed are filled and marked as such.
    assert sum(int(t.filled.sum()) for t in tracks) >= 1
