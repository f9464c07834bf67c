"""Tracking: IoU, Hungarian association, track life cycle, gap filling, square boxes, smoothing."""
import numpy as np
import pytest

from lib.demo.tracking import (Track, box_iou, drop_short_tracks, fill_gaps, match_boxes, smooth_boxes,
                                square_boxes, track_detections)


def test_box_iou_hand_values():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]])
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1 / 7, 1.0, 0.0], [0.0, 0.25, 0.0]])


def test_hungarian_beats_greedy():
    # Greedy (best pair first) would take A-d1 (9/11) and then B-d2 (5/15); the assignment maximising the
    # total IoU is A-d2 (8/12) + B-d1 (8/12).
    tracks = np.array([[0, 0, 10, 10], [3, 0, 13, 10]])
    dets = np.array([[1, 0, 11, 10], [-2, 0, 8, 10]])
    iou = box_iou(tracks, dets)
    np.testing.assert_allclose(iou, [[9 / 11, 8 / 12], [8 / 12, 5 / 15]])
    assert sorted(match_boxes(tracks, dets, 0.3)) == [(0, 1), (1, 0)]
    assert match_boxes(tracks, dets, 0.7) == []
    assert match_boxes(np.zeros((0, 4)), dets, 0.3) == []


def _walker(x0, frame, speed=3.0):
    x = x0 + speed * frame
    return [x, 50.0, x + 40.0, 150.0]


def test_two_people_with_a_gap_and_a_false_positive():
    detections = []
    for f in range(30):
        frame = [_walker(10, f) + [0.9]]
        if f != 12:  # person 2 missed in frame 12
            frame.append(_walker(200, f, speed=-2.0) + [0.8])
        if f == 5:   # a one-frame false positive far away
            frame.append([300, 0, 310, 10, 0.5])
        detections.append(np.array(frame))
    tracks = track_detections(detections, iou_threshold=0.3, max_age=1, min_hits=3)
    assert [t.track_id for t in tracks] == [1, 2]
    assert len(tracks[0]) == 30 and np.array_equal(tracks[0].frames, np.arange(30))
    assert np.array_equal(tracks[1].frames, np.delete(np.arange(30), 12))
    np.testing.assert_allclose(tracks[0].boxes[7], _walker(10, 7))
    filled = fill_gaps(tracks[1])
    assert np.array_equal(filled.frames, np.arange(30))
    np.testing.assert_allclose(filled.boxes[12], _walker(200, 12, speed=-2.0))
    assert filled.scores[12] == 0.0 and filled.scores[11] == pytest.approx(0.8)


def test_track_ends_after_max_age():
    box = [0.0, 0.0, 10.0, 10.0, 1.0]
    detections = [np.array([box])] * 5 + [np.zeros((0, 5))] * 3 + [np.array([box])] * 5
    tracks = track_detections(detections, max_age=1, min_hits=1)
    assert [(t.track_id, t.frames.tolist()) for t in tracks] == [(1, [0, 1, 2, 3, 4]), (2, [8, 9, 10, 11, 12])]
    one = track_detections(detections, max_age=3, min_hits=1)
    assert len(one) == 1 and len(one[0]) == 10


def test_drop_short_and_square_boxes():
    tracks = [Track(1, np.arange(25), np.zeros((25, 4)), np.ones(25)),
              Track(2, np.arange(24), np.zeros((24, 4)), np.ones(24))]
    assert [t.track_id for t in drop_short_tracks(tracks, 25)] == [1]
    np.testing.assert_allclose(square_boxes(np.array([[10, 20, 30, 60], [0, 0, 50, 10]])),
                               [[20, 40, 40, 40], [25, 5, 50, 50]])


def test_smoothing():
    constant = np.tile([100.0, 50.0, 80.0, 80.0], (10, 1))
    np.testing.assert_allclose(smooth_boxes(constant, 2.0), constant)
    step = np.zeros((10, 4))
    step[5:] = 1.0
    np.testing.assert_array_equal(smooth_boxes(step, 0.0), step)
    smoothed = smooth_boxes(step, 1.0)
    # Symmetric kernel around a symmetric step: the two middle frames sum to 1, ends stay put.
    np.testing.assert_allclose(smoothed[4] + smoothed[5], 1.0)
    assert 0.0 < smoothed[4, 0] < 0.5 and smoothed[0, 0] == pytest.approx(0.0, abs=1e-6)
