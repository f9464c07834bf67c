"""Which frames form each input window, for training, validation and the test protocol.

A *window* is ``seqlen`` consecutive frames of one sequence (vid_name). Every function returns integer index
arrays, so features are gathered as ``features[idx]`` with no per-frame Python loop.

Training and validation (official ``split_into_chunks``)::

    windows = chunk_windows(vid_names, seqlen=16, stride=16)            # (W, 2) inclusive [start, end]
    idx = window_frame_indices(windows, 16)                              # (W, 16) row indices into the DB

  Sequences are the vid_name groups in order of first appearance; shorter than ``seqlen`` -> skipped.
  When ``stride != seqlen`` the official code also trims windows past the last complete 16-frame chunk
  (``match_vibe``) and pads each sequence with ``seqlen // 2`` windows in front and
  ``(seqlen + 1) // 2 - 1`` at the back: copies of the first/last window for training, single-frame windows
  (``start == end``, the frame repeated ``seqlen`` times) for validation, whose middle frames are then
  exactly the first ``16 * (n // 16)`` frames of each sequence (:func:`validation_windows`).
  ``stride_from_overlap`` turns ``TRAIN.OVERLAP`` into a stride; the official validation overlap
  ``(T - 1) / T`` gives stride 1.

Test protocol (official ``evaluate.py``; one window per frame of one sequence of ``n >= seqlen`` frames)::

    idx = clamped_windows(n, seqlen=16)            # (n, 16); row t = frames t-8 .. t+7 clamped to [0, n-1]
    target_index(16) == 8                          # the window position whose prediction is frame t
    order = official_frame_order(n)                # evaluate.py's frame order: 0..n-8, n-1, n-2, ..., n-7
    idx_official = idx[order]                      # the windows in evaluate.py's order

  evaluate.py appends the last ``seqlen // 2 - 1`` (7) windows in reverse order and scores prediction ``i``
  against ground-truth frame ``i``, so frame ``order[i]``'s prediction meets frame ``i``'s ground truth.
  Since each window is the clamped window of its target frame, an evaluator can predict once in natural
  order (``pred[t]`` for frame t) and score the official protocol with ``pred[order]`` against ``gt``.
"""
from __future__ import annotations

import numpy as np

VIBE_CHUNK = 16  # the official match_vibe trimming always uses 16-frame chunks, whatever seqlen is


def stride_from_overlap(seqlen: int, overlap: float) -> int:
    """Window stride for an overlap fraction: ``int(seqlen * (1 - overlap) + 0.5)`` (at least 1)."""
    return max(1, int(seqlen * (1 - overlap) + 0.5))


def target_index(seqlen: int) -> int:
    """Position inside a test/validation window of the frame it predicts (8 for 16 frames)."""
    return seqlen // 2


def sequence_spans(vid_names: np.ndarray) -> np.ndarray:
    """``(S, 2)`` half-open row ranges ``[start, stop)`` of the sequences, in order of first appearance.

    As in the official code, boundaries are the first rows of each distinct name: databases store each
    sequence contiguously, and a name that reappears later is not split out again.
    """
    names = np.asarray(vid_names)
    if names.ndim != 1:
        raise ValueError(f"vid_names must be 1-D, got shape {names.shape}")
    if names.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    _, first = np.unique(names, return_index=True)
    starts = np.sort(first).astype(np.int64)
    stops = np.append(starts[1:], names.size)
    return np.stack([starts, stops], axis=1)


def _sequence_chunks(start: int, n: int, seqlen: int, stride: int, is_train: bool,
                     match_vibe: bool) -> np.ndarray:
    """Windows (inclusive ``[start, end]`` pairs) of one sequence of ``n >= seqlen`` rows starting at row
    ``start``."""
    first = np.arange(0, n - seqlen + 1, stride, dtype=np.int64)
    chunks = np.stack([first, first + seqlen - 1], axis=1)
    if stride == seqlen:
        return chunks + start
    if match_vibe and n >= VIBE_CHUNK:
        last_vibe_end = VIBE_CHUNK * (n // VIBE_CHUNK) - 1
        hit = np.flatnonzero(chunks[:, 1] == last_vibe_end)
        if hit.size:
            chunks = chunks[:hit[-1] + 1]
    n_front, n_back = seqlen // 2, (seqlen + 1) // 2 - 1
    if is_train:
        front = np.repeat(chunks[:1], n_front, axis=0)
        back = np.repeat(chunks[-1:], n_back, axis=0)
    else:
        front_frames = chunks[0, 0] + np.arange(n_front)
        back_frames = chunks[-1, 0] + seqlen // 2 + 1 + np.arange(n_back)
        front = np.stack([front_frames, front_frames], axis=1)
        back = np.stack([back_frames, back_frames], axis=1)
    return np.concatenate([front, chunks, back]) + start


def chunk_windows(vid_names: np.ndarray, seqlen: int, stride: int, is_train: bool = True,
                  match_vibe: bool = True) -> np.ndarray:
    """Training/validation windows of a database (official ``split_into_chunks``).

    Args:
        vid_names: ``(N,)`` sequence name of every row.
        seqlen: window length T in frames.
        stride: step between window starts.
        is_train: padding style when ``stride != seqlen`` (copies of edge windows vs single-frame windows).
        match_vibe: trim windows ending after the last complete 16-frame chunk when ``stride != seqlen``.
    Returns:
        ``(W, 2)`` int64 inclusive ``[start, end]`` rows; ``start == end`` means that frame repeated T times.
    """
    out = [_sequence_chunks(int(a), int(b - a), seqlen, stride, is_train, match_vibe)
           for a, b in sequence_spans(vid_names) if b - a >= seqlen]
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def training_windows(vid_names: np.ndarray, seqlen: int, overlap: float) -> np.ndarray:
    """``(W, 2)`` training windows for ``TRAIN.OVERLAP`` (official: 0 -> non-overlapping, no padding)."""
    return chunk_windows(vid_names, seqlen, stride_from_overlap(seqlen, overlap), is_train=True)


def validation_windows(vid_names: np.ndarray, seqlen: int) -> np.ndarray:
    """``(W, 2)`` windows of the trainer's validation: overlap ``(T-1)/T`` (stride 1), ``match_vibe``,
    single-frame padding; the middle frames cover the first ``16 * (n // 16)`` frames of each sequence."""
    overlap = (seqlen - 1) / float(seqlen)
    return chunk_windows(vid_names, seqlen, stride_from_overlap(seqlen, overlap), is_train=False)


def window_frame_indices(windows: np.ndarray, seqlen: int) -> np.ndarray:
    """``(W, 2)`` inclusive windows -> ``(W, seqlen)`` row indices (a ``start == end`` window repeats its frame).

    Raises:
        ValueError: a window that is neither ``seqlen`` long nor a single frame.
    """
    windows = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
    single = windows[:, 0] == windows[:, 1]
    length = windows[:, 1] - windows[:, 0] + 1
    if np.any(~single & (length != seqlen)):
        raise ValueError(f"windows must span {seqlen} rows or be single frames")
    steps = np.arange(seqlen, dtype=np.int64)
    return windows[:, :1] + np.where(single[:, None], 0, steps[None, :])


def clamped_windows(n: int, seqlen: int = 16) -> np.ndarray:
    """``(n, seqlen)`` frame indices: row ``t`` is frames ``t - seqlen//2 .. t + seqlen - 1 - seqlen//2``
    clamped to ``[0, n - 1]``, so its entry :func:`target_index` is ``t``."""
    offsets = np.arange(seqlen, dtype=np.int64) - target_index(seqlen)
    return np.clip(np.arange(n, dtype=np.int64)[:, None] + offsets[None, :], 0, n - 1)


def official_frame_order(n: int, seqlen: int = 16) -> np.ndarray:
    """``(n,)`` target frame of each window in evaluate.py's order: frames ``0 .. n - seqlen//2`` ascending,
    then the last ``seqlen//2 - 1`` frames descending (n = 40: 0..32, 39, 38, ..., 33)."""
    n_back = min(max(seqlen // 2 - 1, 0), n)
    order = np.arange(n, dtype=np.int64)
    if n_back:
        order[n - n_back:] = order[n - n_back:][::-1]
    return order
