"""Tracking: box geometry, Kalman motion model, Hungarian association, colour cue, track life cycle, gap
filling, track selection, square boxes, smoothing."""
import logging

import cv2
import numpy as np
import pytest

from lib.demo.appearance import box_histograms, similarity
from lib.demo.boxes import box_containment, cxcywh_to_xyxy, xyxy_to_cxcywh
from lib.demo.kalman import GATE_CHI2, BoxKalmanFilter
from lib.demo.tracking import (Track, Tracker, box_iou, drop_short_tracks, fill_gaps, is_static, match_boxes,
                                select_tracks, smooth_boxes, square_boxes, track_detections)


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
    # Only pairs above the threshold take part: at 0.7 the single such pair A-d1 is matched.
    assert match_boxes(tracks, dets, 0.7) == [(0, 0)]
    assert match_boxes(tracks, dets, 0.9) == []
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


def test_box_geometry():
    a = np.array([[0, 0, 4, 4]])
    b = np.array([[1, 1, 3, 3], [2, 0, 6, 4], [10, 10, 12, 12]])
    np.testing.assert_allclose(box_containment(a, b), [[1.0, 0.5, 0.0]])
    np.testing.assert_allclose(box_iou(a, b), [[0.25, 8 / 24, 0.0]])
    cxcywh = xyxy_to_cxcywh(np.array([[10, 20, 30, 60]]))
    np.testing.assert_allclose(cxcywh, [[20, 40, 20, 40]])
    np.testing.assert_allclose(cxcywh_to_xyxy(cxcywh), [[10, 20, 30, 60]])


def test_kalman_learns_velocity_and_coasts():
    kf = BoxKalmanFilter(np.array([0.0, 0.0, 40.0, 100.0]))
    for f in range(1, 40):
        kf.predict()
        kf.update(np.array([3.0 * f, 0.0, 3.0 * f + 40.0, 100.0]))
    np.testing.assert_allclose(kf.velocity, [3.0, 0.0, 0.0, 0.0], atol=0.1)
    np.testing.assert_allclose(kf.predict(), [120.0, 0.0, 160.0, 100.0], atol=0.5)
    # Gate: the true next box is plausible; a box 30% smaller in the same place is not.
    good, shrunk = kf.distances(np.array([[120.0, 0.0, 160.0, 100.0], [126.0, 15.0, 154.0, 85.0]]))
    assert good < 1.0 and shrunk > GATE_CHI2
    for _ in range(9):   # ten frames without a detection: constant velocity, growing uncertainty
        box = kf.predict()
    np.testing.assert_allclose(box, [147.0, 0.0, 187.0, 100.0], atol=1.5)
    assert kf.distances(np.array([[156.0, 15.0, 184.0, 85.0]]))[0] < GATE_CHI2


def _walk(x0, speed, frame, y=50.0, width=40.0, height=100.0):
    x = x0 + speed * frame
    return [x, y, x + width, y + height]


def test_crossing_with_occlusion_keeps_ids():
    # A walks right in front of B, who walks left; B is hidden (not detected) for 8 frames while they cross.
    # The old IoU-only tracker with max_age 1 split B in two; the Kalman tracker bridges the gap.
    detections = []
    for f in range(40):
        frame = [_walk(0, 4, f, y=60) + [0.9]]
        if not 16 <= f < 24:
            frame.append(_walk(160, -4, f, y=50, height=90) + [0.8])
        detections.append(np.array(frame))
    tracks = track_detections(detections, max_age=10)
    assert [len(t) for t in tracks] == [40, 32]
    np.testing.assert_allclose(tracks[1].boxes[:, 0], [160 - 4 * f for f in tracks[1].frames])
    filled = fill_gaps(tracks[1])
    assert filled.filled.tolist() == [16 <= f < 24 for f in range(40)]
    np.testing.assert_allclose(filled.boxes[20], _walk(160, -4, 20, y=50, height=90))
    assert len(track_detections(detections, max_age=1)) == 3   # without the motion model B is split


def test_online_update_reports_confirmed_tracks():
    tracker = Tracker(min_hits=3)
    outputs = [tracker.update(np.array([_walk(0, 2, f) + [1.0]])) for f in range(5)]
    assert [len(o) for o in outputs] == [0, 0, 1, 1, 1]
    track_id, box = outputs[-1][0]
    assert track_id == 1 and np.allclose(box, _walk(0, 2, 4))
    # A one-frame false detection starts a track that ends at its first miss and is never reported.
    tracker.update(np.array([_walk(0, 2, 5) + [1.0], [300, 0, 340, 100, 0.5]]))
    tracker.update(np.array([_walk(0, 2, 6) + [1.0]]))
    assert [t.track_id for t in tracker.tracks()] == [1] and len(tracker._live) == 1


def _people_image(boxes_and_colours, size=(200, 400)):
    image = np.full(size + (3,), 128, np.uint8)
    for box, colour in boxes_and_colours:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
    return image


def test_colour_descriptions():
    red, blue = (40, 40, 220), (220, 60, 40)
    image = _people_image([((50, 50, 90, 150), red), ((200, 50, 240, 150), blue)])
    hist = box_histograms(image, np.array([[50, 50, 90, 150, 1.0], [200, 50, 240, 150, 1.0], [-50, 0, -10, 9, 1]]))
    assert hist.shape == (3, 128) and np.allclose(hist.sum(1), 1.0)
    sim = similarity(hist, hist)
    assert sim[0, 0] == pytest.approx(1.0) and sim[0, 1] < 0.05
    assert np.allclose(hist[2], 1 / 128)   # a box outside the frame: uniform
    assert box_histograms(image, np.zeros((0, 5))).shape == (0, 128)


def test_colour_keeps_identities_when_people_turn_back():
    # Red and blue walk towards each other; blue stops behind red (hidden, not detected) for 8 frames, then
    # both walk back where they came from. Motion alone predicts that blue walked on and gives blue's id to
    # red; the colour cue keeps both identities.
    red, blue = (40, 40, 220), (220, 60, 40)
    frames, detections = [], []
    for f in range(50):
        t = min(f, 20) - max(0, f - 28)        # out for 20 frames, 8 frames together, back
        a, b = _walk(40, 6, t), _walk(200, -3, t, y=45, height=95)
        frames.append(_people_image([(b, blue), (a, red)]))   # red in front
        boxes = [a] if 20 <= f < 28 else [a, b]
        detections.append(np.array([box + [1.0] for box in boxes]))
    appearance = [box_histograms(im, d) for im, d in zip(frames, detections)]

    def ids(colour):
        """Track ids of red and blue in the last frame."""
        tracker = Tracker(max_age=15)
        for dets, app in zip(detections, appearance):
            out = dict(tracker.update(dets, app if colour else None))
        return sorted(out, key=lambda tid: -out[tid][1])       # red first: it is lower (y 50 vs 45)

    assert ids(colour=True) == [1, 2]
    assert ids(colour=False) != [1, 2]


def test_static_tracks_and_selection(caplog):
    frames = np.arange(100)
    walking = Track(1, frames, np.array([_walk(0, 3, f) for f in frames]), np.ones(100))
    rng = np.random.default_rng(0)
    door = Track(2, frames, np.array([[300, 20, 340, 120]]) + rng.normal(0, 2, (100, 4)), np.ones(100))
    standing = Track(3, frames, np.array([[500, 20, 540, 120]] * 60 + [_walk(500, 5, f) for f in range(40)]),
                     np.ones(100))
    short = Track(4, np.arange(10), np.zeros((10, 4)), np.ones(10))
    assert not is_static(walking, 0.1, 0.9) and is_static(door, 0.1, 0.9)
    assert not is_static(standing, 0.1, 0.9) and is_static(standing, 0.1, 0.5)
    assert not is_static(door, 0.0, 0.9)                 # motion 0: the check is off
    with caplog.at_level(logging.INFO, logger='lib.demo.tracking'):
        kept = select_tracks([walking, door, standing, short], 25, 0.1, 0.9, drop_static=False)
    assert [t.track_id for t in kept] == [1, 2, 3]
    assert '1 track(s) shorter than DEMO.MIN_TRACK_LEN 25 frames dropped (10 person-frames)' in caplog.text
    assert 'track 2 (frames 0-99) is static' in caplog.text and 'kept' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='lib.demo.tracking'):
        kept = select_tracks([walking, door], 25, 0.1, 0.9, drop_static=True)
    assert [t.track_id for t in kept] == [1] and 'dropped (DEMO.DROP_STATIC_TRACKS True)' in caplog.text


def test_fill_gaps_marks_filled_frames():
    track = Track(5, np.array([3, 4, 7]), np.array([[0, 0, 10, 10], [1, 0, 11, 10], [4, 0, 14, 10]], float),
                  np.array([0.9, 0.8, 0.7]))
    filled = fill_gaps(track)
    assert filled.frames.tolist() == [3, 4, 5, 6, 7]
    assert filled.filled.tolist() == [False, False, True, True, False]
    np.testing.assert_allclose(filled.boxes[:, 0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(filled.scores, [0.9, 0.8, 0, 0, 0.7])
    assert fill_gaps(filled) is filled


def test_detect_every_third_frame_boxes_carried_by_the_filter():
    # A walks right at 4 px/frame and B left at -4; detections on every 3rd frame only (None: the detector did
    # not run), as DEMO.DETECT_EVERY 3. B is last detected at frame 30.
    detections = []
    for f in range(40):
        frame = [_walk(0, 4, f, y=60) + [0.9]] + ([_walk(200, -4, f, y=50) + [0.8]] if f <= 30 else [])
        detections.append(np.array(frame) if f % 3 == 0 else None)
    a, b = track_detections(detections, max_age=10, min_hits=3)
    # Confirmed at its third detection (frame 6): carried boxes from then on, none before (filled later).
    assert a.frames.tolist() == [0, 3] + list(range(6, 40))
    assert a.filled.tolist() == [f % 3 != 0 for f in a.frames]
    assert (a.scores[a.filled] == 0).all() and (a.scores[~a.filled] == 0.9).all()
    np.testing.assert_array_equal(a.boxes[~a.filled], [_walk(0, 4, f, y=60) for f in a.frames[~a.filled]])
    # Constant velocity: the carried boxes lag while the filter learns the speed (4.5 px two frames after the
    # first carried frame), then shrink to within a pixel of where A is.
    error = np.abs(a.boxes - [_walk(0, 4, f, y=60) for f in a.frames]).max(axis=1)
    second = error[a.frames % 3 == 2]
    assert 4.0 < second[0] < 5.0 and (np.diff(second) < 0).all() and (error[a.frames > 25] < 1.0).all()
    # B's carried boxes after its last detection (31, 32) were not confirmed: dropped when it ended.
    assert b.frames.tolist() == [0, 3] + list(range(6, 31))
    # The same without skipped frames: every frame detected, nothing filled.
    every = [np.array([_walk(0, 4, f, y=60) + [0.9]]) for f in range(12)]
    (one,) = track_detections(every, min_hits=3)
    assert one.frames.tolist() == list(range(12)) and not one.filled.any()


def test_coast_returns_the_predicted_boxes_and_counts_no_miss():
    tracker = Tracker(max_age=0, min_hits=1)
    first = tracker.update(np.array([[10.0, 20, 50, 120, 0.9]]))
    carried = tracker.coast()
    # A new track has no velocity yet: its predicted box is its detection; max_age 0 and no miss counted.
    assert [tid for tid, _ in first] == [tid for tid, _ in carried] == [1]
    np.testing.assert_allclose(carried[0][1], [10, 20, 50, 120])
    assert [tid for tid, _ in tracker.update(np.array([[14.0, 20, 54, 120, 0.9]]))] == [1]
    (track,) = tracker.tracks()
    assert track.frames.tolist() == [0, 1, 2] and track.filled.tolist() == [False, True, False]
