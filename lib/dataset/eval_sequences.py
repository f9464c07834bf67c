"""Test sequences of a database, prepared as the official evaluate.py does, with their windows.

::

    for seq in iter_eval_sequences(db, seqlen=16):          # db: dict from lib.dataset.db.load_db(..., 'TEST')
        feats = torch.from_numpy(seq.features).to(device)    # (n, 2048), moved once per sequence
        idx = torch.from_numpy(seq.windows())                # (n, 16): row t = clamped window of frame t
        for batch in idx.split(256):
            pred = model(feats[batch])                       # (b, 16, 2048) -> prediction of the middle frame
        # pred[t] belongs to frame t; the official protocol scores pred[seq.frame_order(True)] against seq.joints3D

Per distinct ``vid_name`` (sorted, as ``np.unique`` orders them in evaluate.py):

1. frames whose ``valid`` flag is 0 are dropped, where the database has ``valid`` (3DPW camera-pose validity);
   the remaining frames are concatenated in database order;
2. sequences with fewer than ``seqlen`` remaining frames are skipped;
3. every remaining frame gets one window (see :mod:`lib.dataset.windowing`): ``windows()`` in natural order,
   ``windows(official_order=True)`` in evaluate.py's order, whose last 7 rows are reversed.

``valid_i`` (MPI-INF-3DHP) does not drop frames; it only says which frames are scored, and is returned as
``seq.score_mask``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from lib.dataset.windowing import official_frame_order, protocol_windows


@dataclass
class EvalSequence:
    """One test sequence after dropping invalid frames (n frames).

    Attributes:
        name: its ``vid_name``.
        rows: ``(n,)`` database rows of its frames.
        features: ``(n, 2048)`` float32.
        joints3D: ``(n, J, 3)`` GT joints in metres as stored (3DPW: 14, Human3.6M / MPI-INF-3DHP: 49 SPIN).
        pose, shape: ``(n, 72)``, ``(n, 10)`` GT SMPL parameters, or None when the database has none.
        score_mask: ``(n,)`` bool frames that count (MPI-INF-3DHP ``valid_i``), or None (all frames count).
        bbox, img_name, frame_id: for rendering; None when absent.
        seqlen: window length T.
    """

    name: str
    rows: np.ndarray
    features: np.ndarray
    joints3D: np.ndarray
    pose: np.ndarray | None
    shape: np.ndarray | None
    score_mask: np.ndarray | None
    bbox: np.ndarray | None
    img_name: np.ndarray | None
    frame_id: np.ndarray | None
    seqlen: int = 16

    def __len__(self) -> int:
        return len(self.rows)

    def windows(self, official_order: bool = False) -> np.ndarray:
        """``(n, T)`` indices into this sequence's frames; row ``i`` predicts frame ``frame_order(official_order)[i]``."""
        return protocol_windows(len(self), self.seqlen, official_order)

    def frame_order(self, official_order: bool = False) -> np.ndarray:
        """``(n,)`` frame predicted by each row of ``windows(official_order)``."""
        if official_order:
            return official_frame_order(len(self), self.seqlen)
        return np.arange(len(self), dtype=np.int64)


def _take(db: dict, key: str, rows: np.ndarray):
    return db[key][rows] if key in db else None


def group_rows(vid_names: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sorted distinct names and, for each, its rows in database order (one stable argsort, no Python scan)."""
    names, inverse = np.unique(np.asarray(vid_names), return_inverse=True)
    order = np.argsort(inverse, kind='stable')
    bounds = np.cumsum(np.bincount(inverse.reshape(-1), minlength=len(names)))[:-1]
    return names, np.split(order, bounds)


def iter_eval_sequences(db: dict, seqlen: int = 16, select: str = '') -> Iterator[EvalSequence]:
    """The test sequences of ``db`` (see the module docstring).

    Args:
        db: database dict (split TEST).
        seqlen: window length (16 for the official protocol).
        select: keep only sequences whose name contains this text (evaluate.py ``--seq``); '' keeps all.
    """
    names, groups = group_rows(db['vid_name'])
    keep = np.asarray(db['valid']).reshape(-1).astype(bool) if 'valid' in db else None
    for name, rows in zip(names, groups):
        if select and select not in str(name):
            continue
        if keep is not None:
            rows = rows[keep[rows]]
        if len(rows) < seqlen:
            continue
        score = _take(db, 'valid_i', rows)
        yield EvalSequence(
            name=str(name), rows=rows, features=np.asarray(db['features'][rows], dtype=np.float32),
            joints3D=db['joints3D'][rows], pose=_take(db, 'pose', rows), shape=_take(db, 'shape', rows),
            score_mask=None if score is None else np.asarray(score).reshape(len(rows)) != 0,
            bbox=_take(db, 'bbox', rows), img_name=_take(db, 'img_name', rows),
            frame_id=_take(db, 'frame_id', rows), seqlen=seqlen)


def eval_sequences(db: dict, seqlen: int = 16, select: str = '') -> list[EvalSequence]:
    """All of :func:`iter_eval_sequences` as a list."""
    return list(iter_eval_sequences(db, seqlen, select))
