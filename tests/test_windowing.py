"""Windowing on hand-sized sequences: training strides, validation chunking, test-protocol windows."""
import numpy as np
import pytest

from lib.dataset.windowing import (chunk_windows, clamped_windows, official_frame_order,
                                   sequence_spans, stride_from_overlap, target_index, training_windows,
                                   validation_windows, window_frame_indices)


def names(*lengths):
    return np.concatenate([[f'seq{i}'] * n for i, n in enumerate(lengths)])


def test_stride_from_overlap():
    assert stride_from_overlap(16, 0.0) == 16
    assert stride_from_overlap(16, 0.25) == 12
    assert stride_from_overlap(16, 0.5) == 8
    assert stride_from_overlap(16, 15 / 16) == 1


def test_sequence_spans_first_appearance_order():
    vid = np.array(['b', 'b', 'a', 'a', 'a', 'c'])
    assert sequence_spans(vid).tolist() == [[0, 2], [2, 5], [5, 6]]


def test_training_windows_by_stride_skip_short():
    # 20 frames, a 10-frame sequence (skipped: shorter than T), then 40 frames.
    vid = names(20, 10, 40)
    assert training_windows(vid, 16, 0.0).tolist() == [[0, 15], [30, 45], [46, 61]]
    idx = window_frame_indices(training_windows(vid, 16, 0.0), 16)
    assert idx.shape == (3, 16)
    assert idx[1].tolist() == list(range(30, 46))


def test_training_windows_with_overlap_pad_with_edge_windows():
    # Official: stride != T trims at the last complete 16-frame chunk and repeats the first window 8 times and
    # the last one 7 times (training style).
    w = chunk_windows(names(40), 16, 8, is_train=True)
    core = [[0, 15], [8, 23], [16, 31]]          # [24, 39] ends past frame 31 (last full 16-chunk) -> trimmed
    assert w.tolist() == [[0, 15]] * 8 + core + [[16, 31]] * 7


def test_validation_windows_cover_first_16k_frames():
    vid = names(20, 40)
    w = validation_windows(vid, 16)
    idx = window_frame_indices(w, 16)
    mid = idx[:, target_index(16)]
    # sequence 0 (20 frames): frames 0..15; sequence 1 (rows 20..59): its first 32 frames
    assert mid.tolist() == list(range(0, 16)) + list(range(20, 52))
    # padding windows are a single frame repeated
    assert w[0].tolist() == [0, 0] and (idx[0] == 0).all()
    assert w[8].tolist() == [0, 15]
    assert (idx[-1] == 51).all()


def test_window_frame_indices_rejects_bad_length():
    with pytest.raises(ValueError):
        window_frame_indices(np.array([[0, 5]]), 16)


def test_clamped_windows_20_frames():
    w = clamped_windows(20, 16)
    assert w.shape == (20, 16)
    assert (w[:, 8] == np.arange(20)).all()
    assert w[0].tolist() == [0] * 9 + list(range(1, 8))
    assert w[3].tolist() == [0] * 6 + list(range(1, 11))
    assert w[10].tolist() == list(range(2, 18))
    assert w[19].tolist() == list(range(11, 20)) + [19] * 7
    assert w[15].tolist() == list(range(7, 20)) + [19] * 3


def test_official_order_reverses_last_seven():
    assert official_frame_order(40).tolist() == list(range(33)) + list(range(39, 32, -1))
    assert official_frame_order(16).tolist() == list(range(9)) + list(range(15, 8, -1))
    natural = clamped_windows(40, 16)
    official = natural[official_frame_order(40, 16)]
    assert (official[:33] == natural[:33]).all()
    assert official[33].tolist() == list(range(31, 40)) + [39] * 7   # predicts frame 39, scored against GT 33
    assert (official[:, 8] == official_frame_order(40)).all()
