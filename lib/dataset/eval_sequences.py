"""The test protocol's frames: which frames of a test database are predicted and scored, and the window of
each (the released evaluate.py's data preparation, vectorised).

1. Sequences are the distinct ``vid_name`` values (sorted, as ``np.unique``); each holds its rows in database
   order. Frames with ``valid == 0`` are dropped first (3DPW), then sequences shorter than ``seqlen`` (16).
2. Every frame t is predicted once, as the middle frame (index 8) of the window of frames t-8 .. t+7 clamped
   to the sequence (:func:`lib.dataset.windowing.clamped_windows`).
3. The released script scores the last 7 frames of each sequence in reverse order
   (:func:`lib.dataset.windowing.official_frame_order`), kept here as ``official_order``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.dataset.windowing import clamped_windows, official_frame_order


@dataclass
class EvalFrames:
    """The frames of one test set that the protocol predicts: kept sequences, concatenated (M frames, S seqs).

    Attributes:
        names: ``S`` sequence names, sorted.
        starts: ``(S,)`` position of each sequence's first frame in the concatenation.
        lengths: ``(S,)`` frames per sequence (after dropping invalid frames; all >= seqlen).
        rows: ``(M,)`` database row of every frame.
        seq_id: ``(M,)`` sequence of every frame.
        windows: ``(M, T)`` input frames (positions in the concatenation) of the window predicting each frame.
        official_order: ``(M,)`` frame whose prediction the official evaluate.py scores at each position
            (an involution: only the last 7 frames of each sequence are reversed).
        scored: ``(M,)`` bool, frames that count in the metrics.
    """

    names: list[str]
    starts: np.ndarray
    lengths: np.ndarray
    rows: np.ndarray
    seq_id: np.ndarray
    windows: np.ndarray
    official_order: np.ndarray
    scored: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.rows.size)

    def interior(self) -> np.ndarray:
        """``(M,)`` bool, frames that are neither the first nor the last of their sequence."""
        first = np.zeros(self.num_frames, dtype=bool)
        first[self.starts] = True
        last = np.zeros(self.num_frames, dtype=bool)
        last[self.starts + self.lengths - 1] = True
        return ~(first | last)


def select_test_frames(db: dict, scored_key: str | None = None, seqlen: int = 16) -> EvalFrames:
    """The protocol's frames of database ``db`` (official evaluate.py data preparation, vectorised).

    Args:
        db: the test database (``vid_name`` and, where present, ``valid`` and ``scored_key``).
        scored_key: DB key whose non-zero frames are scored (``valid_i`` for MPI-INF-3DHP); None scores all.
        seqlen: window length T.
    """
    names = np.asarray(db['vid_name'])
    unique, seq_of_row = np.unique(names, return_inverse=True)
    seq_of_row = seq_of_row.reshape(-1)
    rows = np.argsort(seq_of_row, kind='stable')
    if 'valid' in db:
        rows = rows[np.asarray(db['valid']).reshape(-1)[rows].astype(bool)]
    lengths = np.bincount(seq_of_row[rows], minlength=unique.size)
    kept = lengths >= seqlen
    rows = rows[kept[seq_of_row[rows]]]
    lengths = lengths[kept]
    kept_names = [as_str(name) for name in unique[kept]]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    seq_id = np.repeat(np.arange(lengths.size), lengths)
    windows = [start + clamped_windows(int(n), seqlen) for start, n in zip(starts, lengths)]
    order = [start + official_frame_order(int(n), seqlen) for start, n in zip(starts, lengths)]
    empty = np.zeros((0, seqlen), dtype=np.int64)
    if scored_key is None:
        scored = np.ones(rows.size, dtype=bool)
    else:
        scored = np.asarray(db[scored_key]).reshape(len(names), -1)[rows, 0] != 0
    return EvalFrames(names=kept_names, starts=starts, lengths=lengths.astype(np.int64), rows=rows,
                      seq_id=seq_id, windows=np.concatenate(windows) if windows else empty,
                      official_order=np.concatenate(order) if order else np.zeros(0, dtype=np.int64),
                      scored=scored)


def as_str(name) -> str:
    """A sequence / image name stored as ``bytes`` (h5, older joblib files) or ``str``, as ``str``."""
    return name.decode() if isinstance(name, bytes) else str(name)
