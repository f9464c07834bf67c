"""The test protocol of the official evaluate.py (spec B.6), as an importable evaluator.

Per test set (``3dpw``, ``h36m``, ``mpii3d``):

1. Sequences are the distinct ``vid_name`` values (sorted, as ``np.unique``); each holds its rows in database
   order. Frames with ``valid == 0`` are dropped first (3DPW), then sequences shorter than ``seqlen`` (16).
2. Every frame t is predicted once, as the middle frame (index 8) of the window of frames t-8 .. t+7 clamped
   to the sequence (``lib.dataset.windowing.clamped_windows``). Windows run through the model in large
   batches; their features are gathered with one index array per batch.
3. Joints: 3DPW and Human3.6M score the 14 LSP joints (predicted with ``J_regressor_h36m``), centred at the
   mid-hip; MPI-INF-3DHP scores the 17 ``mpii3d_test`` joints of the 49 SPIN joints, centred at the pelvis,
   on the frames with ``valid_i != 0``. 3DPW also scores MPVPE against neutral-SMPL ground-truth vertices
   (GT pose and betas, no translation, no alignment), built in batches next to the predictions.
4. Per frame: MPJPE, PA-MPJPE (similarity Procrustes), MPVPE; per interior frame of each sequence: the
   acceleration error (end frames excluded). Averages are over all scored frames of all sequences, in mm.

Two protocols come out of the one forward pass (``EVAL.PROTOCOLS``):

- ``official``: the released evaluate.py appends the last 7 windows of each sequence in reverse order and
  scores prediction i against ground-truth frame i, so the predictions of frames n-1 .. n-7 meet the ground
  truth of frames n-7 .. n-1. This reproduces the paper's tables.
- ``corrected``: every prediction is scored against its own frame.

With ``EVAL.GENDERED_MPVPE`` (3DPW), rows ``<protocol>_gendered`` add MPVPE against ground-truth vertices of
the subject's gendered SMPL (genders from the raw 3DPW sequence files); their other metrics are empty.
"""
from __future__ import annotations

import csv
import importlib
import io
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from smplx.lbs import batch_rodrigues
from tqdm import tqdm

from lib.core.config import resolve_path
from lib.dataset.windowing import clamped_windows, official_frame_order
from lib.core.errors import UserError
from lib.core.io import atomic_write
from lib.utils.joints import MPII3D_TEST_PELVIS, perm_indices
from lib.utils.metrics import (accel_error, centre_on_hips, centre_on_joint, mpjpe, pa_mpjpe,
                               per_vertex_error)

logger = logging.getLogger(__name__)

M_TO_MM = 1000.0
METRICS = ('pa_mpjpe', 'mpjpe', 'mpvpe', 'accel_err')
PROTOCOLS = ('official', 'corrected')
GENDERED_SUFFIX = '_gendered'


@dataclass(frozen=True)
class EvalSetSpec:
    """How one test set is scored.

    Attributes:
        files_key: its ``DATASET.FILES`` entry (the TEST file is evaluated).
        label: printed name.
        lsp_joints: True: 14 LSP joints from ``J_regressor_h36m``, centred at the mid-hip (3DPW, Human3.6M);
            False: 17 ``mpii3d_test`` joints of the 49 SPIN joints, centred at the pelvis (MPI-INF-3DHP).
        mpvpe: score vertices against neutral-SMPL ground truth (needs ``pose``/``shape`` in the DB).
        scored_key: DB key whose non-zero frames are scored (``valid_i`` for MPI-INF-3DHP); the others are
            still predicted and serve as neighbours for the acceleration.
    """

    files_key: str
    label: str
    lsp_joints: bool
    mpvpe: bool
    scored_key: str | None


EVAL_SETS = {
    '3dpw': EvalSetSpec('ThreeDPW', '3DPW', lsp_joints=True, mpvpe=True, scored_key=None),
    'h36m': EvalSetSpec('Human36M', 'Human3.6M', lsp_joints=True, mpvpe=False, scored_key=None),
    'mpii3d': EvalSetSpec('MPII3D', 'MPI-INF-3DHP', lsp_joints=False, mpvpe=False, scored_key='valid_i'),
}

_SPIN_TO_COMMON = perm_indices('spin', 'common')
_SPIN_TO_MPII3D_TEST = perm_indices('spin', 'mpii3d_test')


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


def select_test_frames(db: dict, spec: EvalSetSpec, seqlen: int = 16) -> EvalFrames:
    """The protocol's frames of database ``db`` (official evaluate.py data preparation, vectorised).

    Args:
        db: the test database (``vid_name`` and, where present, ``valid`` and ``spec.scored_key``).
        spec: the test set's rules. seqlen: window length T.
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
    kept_names = [_as_str(name) for name in unique[kept]]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    seq_id = np.repeat(np.arange(lengths.size), lengths)
    windows = [start + clamped_windows(int(n), seqlen) for start, n in zip(starts, lengths)]
    order = [start + official_frame_order(int(n), seqlen) for start, n in zip(starts, lengths)]
    empty = np.zeros((0, seqlen), dtype=np.int64)
    if spec.scored_key is None:
        scored = np.ones(rows.size, dtype=bool)
    else:
        scored = np.asarray(db[spec.scored_key]).reshape(len(names), -1)[rows, 0] != 0
    return EvalFrames(names=kept_names, starts=starts, lengths=lengths.astype(np.int64), rows=rows,
                      seq_id=seq_id, windows=np.concatenate(windows) if windows else empty,
                      official_order=np.concatenate(order) if order else np.zeros(0, dtype=np.int64),
                      scored=scored)


def ground_truth_joints(db: dict, spec: EvalSetSpec, rows: np.ndarray) -> torch.Tensor:
    """Centred GT joints ``(M, J, 3)`` float32 in metres of database ``rows`` (J = 14 LSP or 17 mpii3d_test).

    3DPW stores the 14 LSP joints; Human3.6M and MPI-INF-3DHP store 49 SPIN joints.
    """
    joints = torch.from_numpy(np.asarray(db['joints3D'])[rows]).float()
    if spec.lsp_joints:
        if joints.shape[1] == 49:
            joints = joints[:, _SPIN_TO_COMMON]
        return centre_on_hips(joints)
    return centre_on_joint(joints[:, _SPIN_TO_MPII3D_TEST], MPII3D_TEST_PELVIS)


def centred_prediction(joints: torch.Tensor, spec: EvalSetSpec) -> torch.Tensor:
    """Model ``kp_3d`` (``(M, 14, 3)`` with the H36M regressor, else ``(M, 49, 3)``) -> centred scored joints."""
    if spec.lsp_joints:
        return centre_on_hips(joints)
    return centre_on_joint(joints[:, _SPIN_TO_MPII3D_TEST], MPII3D_TEST_PELVIS)


@dataclass
class Predictions:
    """Outputs of one forward pass over all windows, in natural frame order.

    Attributes:
        joints: ``(M, J, 3)`` float32 predicted ``kp_3d`` in metres (CPU).
        vertex_errors: protocol row -> ``(M,)`` float64 MPVPE in metres, indexed by scored position; empty
            when the test set has no MPVPE.
        rotmat: ``(M, 24, 3, 3)`` and ``betas`` ``(M, 10)`` and ``cam`` ``(M, 3)`` of each frame (CPU), kept
            only for rendering.
    """

    joints: torch.Tensor
    vertex_errors: dict[str, np.ndarray]
    rotmat: torch.Tensor | None = None
    betas: torch.Tensor | None = None
    cam: torch.Tensor | None = None


@dataclass
class EvalResult:
    """Figures of one test set.

    Attributes:
        dataset: '3dpw', 'h36m' or 'mpii3d'.
        summary: row (protocol) -> ``{pa_mpjpe, mpjpe, mpvpe, accel_err}`` in mm (None where not scored).
        sequences: one dict per (row, sequence): ``protocol``, ``sequence``, ``frames`` and the metrics.
        num_frames: scored frames. num_sequences: sequences with at least one scored frame.
        frames: the protocol's frames.
        frame_errors: row -> metric -> ``(M,)`` per-position values in mm (NaN: not scored; accel: NaN on
            the first and last frame of each sequence).
        predictions: the forward pass's outputs (only with ``keep_predictions``).
    """

    dataset: str
    summary: dict[str, dict[str, float | None]]
    sequences: list[dict]
    num_frames: int
    num_sequences: int
    frames: EvalFrames
    frame_errors: dict[str, dict[str, np.ndarray]]
    predictions: Predictions | None = None


class Evaluator:
    """Runs the test protocol with one model.

    Args:
        model: GLoT in eval mode semantics: ``model(features (B, T, 2048), is_train=False, J_regressor=...)``
            returns ``([{'kp_3d', 'verts', 'theta', 'rotmat', ...}], ...)`` for the middle frame.
        device: where the windows run.
        j_regressor: ``(17, 6890)`` Human3.6M regressor (3DPW and Human3.6M joints).
        smpl: neutral SMPL layer for the MPVPE ground truth (3DPW); None skips MPVPE.
        gendered_smpl: ``{'male': SMPL, 'female': SMPL}`` for the gendered-MPVPE rows, or None.
        batch_size: windows per forward pass (``EVAL.BATCH_SIZE``).
        protocols: subset of ``('official', 'corrected')``.
        seqlen: window length T.
        progress: show a tqdm bar.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, j_regressor: torch.Tensor | None = None,
                 smpl: torch.nn.Module | None = None, gendered_smpl: dict | None = None, batch_size: int = 256,
                 protocols=PROTOCOLS, seqlen: int = 16, progress: bool = True):
        unknown = set(protocols) - set(PROTOCOLS)
        if unknown or not protocols:
            raise ValueError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {list(protocols)}")
        self.model = model
        self.device = torch.device(device)
        self.j_regressor = None if j_regressor is None else j_regressor.to(self.device, torch.float32)
        self.smpl = None if smpl is None else smpl.to(self.device)
        self.gendered_smpl = None if gendered_smpl is None else {
            g: m.to(self.device) for g, m in gendered_smpl.items()}
        self.batch_size = int(batch_size)
        self.protocols = tuple(p for p in PROTOCOLS if p in protocols)
        self.seqlen = seqlen
        self.progress = progress

    def evaluate(self, dataset: str, db: dict, genders: np.ndarray | None = None,
                 keep_predictions: bool = False) -> EvalResult:
        """Evaluate test set ``dataset`` stored in ``db``.

        Args:
            dataset: a key of ``EVAL_SETS``.
            db: the test database dict (official keys).
            genders: ``(N,)`` 'm'/'f' per DB row, for the gendered-MPVPE rows (3DPW); None skips them.
            keep_predictions: return the predictions and frames too (rendering).
        """
        spec = EVAL_SETS[dataset]
        frames = select_test_frames(db, spec, self.seqlen)
        if frames.num_frames == 0:
            logger.warning('%s: no sequence has %d valid frames; nothing to evaluate', dataset, self.seqlen)
        gt = ground_truth_joints(db, spec, frames.rows)
        preds = self.predict(db, spec, frames, genders, keep_rotations=keep_predictions)
        pred = centred_prediction(preds.joints, spec)
        rows = {}
        for protocol in self.protocols:
            order = frames.official_order if protocol == 'official' else np.arange(frames.num_frames)
            rows[protocol] = _joint_errors(pred[torch.from_numpy(order)], gt, frames)
            if protocol in preds.vertex_errors:
                rows[protocol]['mpvpe'] = preds.vertex_errors[protocol]
            gendered = protocol + GENDERED_SUFFIX
            if gendered in preds.vertex_errors:
                rows[gendered] = {'mpvpe': preds.vertex_errors[gendered]}
        frame_errors = {row: {metric: np.where(frames.scored, values[metric] * M_TO_MM, np.nan)
                              for metric in METRICS if metric in values} for row, values in rows.items()}
        summary, sequences = _aggregate(frame_errors, frames)
        seq_scored = np.bincount(frames.seq_id[frames.scored], minlength=len(frames.names))
        return EvalResult(dataset=dataset, summary=summary, sequences=sequences,
                          num_frames=int(frames.scored.sum()), num_sequences=int((seq_scored > 0).sum()),
                          frames=frames, frame_errors=frame_errors,
                          predictions=preds if keep_predictions else None)

    @torch.inference_mode()
    def predict(self, db: dict, spec: EvalSetSpec, frames: EvalFrames, genders: np.ndarray | None = None,
                keep_rotations: bool = False) -> Predictions:
        """One forward pass over all windows of ``frames`` (natural order); MPVPE computed batch by batch."""
        dev = self.device
        m = frames.num_frames
        features = torch.from_numpy(np.asarray(db['features'])[frames.rows]).to(dev, torch.float32)
        windows = torch.from_numpy(frames.windows).to(dev)
        order = torch.from_numpy(frames.official_order).to(dev)
        j_regressor = self.j_regressor if spec.lsp_joints else None
        gt_meshes = self._gt_meshes(db, spec, frames, genders)
        vertex_errors = {protocol + suffix: torch.zeros(m, dtype=torch.float64, device=dev)
                         for suffix in gt_meshes for protocol in self.protocols}
        joints = torch.zeros(0, 14 if spec.lsp_joints else 49, 3)
        kept = {'rotmat': [], 'betas': [], 'cam': []}
        with tqdm(total=m, desc=f'evaluating {spec.label}', unit='frame', disable=not self.progress,
                  dynamic_ncols=True) as bar:
            for start in range(0, m, self.batch_size):
                stop = min(start + self.batch_size, m)
                out = self.model(features[windows[start:stop]], is_train=False, J_regressor=j_regressor,
                                 decode_global=False)[0][-1]
                kp_3d = out['kp_3d'].reshape(stop - start, -1, 3).float().cpu()
                if start == 0:
                    joints = torch.empty(m, kp_3d.shape[1], 3)
                joints[start:stop] = kp_3d
                if gt_meshes:
                    verts = out['verts'].reshape(stop - start, -1, 3).float()
                    for suffix, gt_vertices in gt_meshes.items():
                        self._vertex_errors(verts, start, stop, order, gt_vertices, suffix, vertex_errors)
                if keep_rotations:
                    theta = out['theta'].reshape(stop - start, -1).cpu()
                    kept['rotmat'].append(out['rotmat'].reshape(stop - start, 24, 3, 3).cpu())
                    kept['betas'].append(theta[:, 75:])
                    kept['cam'].append(theta[:, :3])
                bar.update(stop - start)
        rotations = {k: torch.cat(v) for k, v in kept.items()} if keep_rotations and m else {}
        return Predictions(joints=joints, vertex_errors={k: v.cpu().numpy() for k, v in vertex_errors.items()},
                           **rotations)

    def _gt_meshes(self, db: dict, spec: EvalSetSpec, frames: EvalFrames,
                   genders: np.ndarray | None) -> dict[str, Callable]:
        """Row suffix ('' neutral, ``_gendered``) -> function ``(positions (K,) long) -> GT vertices (K, V, 3)``."""
        if not spec.mpvpe or self.smpl is None:
            return {}
        dev = self.device
        pose = torch.from_numpy(np.asarray(db['pose'])[frames.rows]).to(dev, torch.float32)
        shape = torch.from_numpy(np.asarray(db['shape'])[frames.rows]).to(dev, torch.float32)
        meshes = {'': _smpl_vertices_fn(self.smpl, pose, shape)}
        if genders is not None and self.gendered_smpl is not None:
            male = torch.from_numpy(np.asarray(genders)[frames.rows] == 'm').to(dev)
            meshes[GENDERED_SUFFIX] = _gendered_vertices_fn(self.gendered_smpl, pose, shape, male)
        return meshes

    def _vertex_errors(self, verts: torch.Tensor, start: int, stop: int, order: torch.Tensor,
                       gt_vertices: Callable, suffix: str, out: dict[str, torch.Tensor]) -> None:
        """MPVPE of the predictions of frames ``start .. stop-1`` into ``out[<protocol><suffix>]`` (by position).

        Corrected: frame f against GT f. Official: position ``order[f]`` holds frame f's prediction (``order``
        is an involution), so frame f meets GT ``order[f]``; only the reversed tail needs more GT meshes.
        """
        frames = torch.arange(start, stop, device=verts.device)
        err = per_vertex_error(verts, gt_vertices(frames)).double()
        if 'corrected' in self.protocols:
            out['corrected' + suffix][start:stop] = err
        if 'official' in self.protocols:
            scored_at = order[start:stop]
            moved = scored_at != frames
            if moved.any():
                err = err.clone()
                err[moved] = per_vertex_error(verts[moved], gt_vertices(scored_at[moved])).double()
            out['official' + suffix][scored_at] = err


def _smpl_vertices_fn(smpl, pose: torch.Tensor, shape: torch.Tensor) -> Callable:
    """GT vertices of positions ``idx`` from axis-angle ``pose (M, 72)`` and ``shape (M, 10)``, no translation
    (axis-angle to matrices with smplx's Rodrigues, as smplx's ``pose2rot=True`` does for the official GT)."""
    def vertices(idx: torch.Tensor) -> torch.Tensor:
        rot = batch_rodrigues(pose[idx].reshape(-1, 3)).reshape(-1, 24, 3, 3)
        return smpl(betas=shape[idx], body_pose=rot[:, 1:], global_orient=rot[:, :1]).vertices
    return vertices


def _gendered_vertices_fn(models: dict, pose: torch.Tensor, shape: torch.Tensor, male: torch.Tensor) -> Callable:
    """Like :func:`_smpl_vertices_fn` with the male or female model per position (``male (M,)`` bool)."""
    male_fn = _smpl_vertices_fn(models['male'], pose, shape)
    female_fn = _smpl_vertices_fn(models['female'], pose, shape)

    def vertices(idx: torch.Tensor) -> torch.Tensor:
        is_male = male[idx]
        out = None
        for mask, fn in ((is_male, male_fn), (~is_male, female_fn)):
            if mask.any():
                verts = fn(idx[mask])
                if out is None:
                    out = verts.new_empty((idx.numel(), *verts.shape[1:]))
                out[mask] = verts
        return out
    return vertices


def _joint_errors(pred: torch.Tensor, gt: torch.Tensor, frames: EvalFrames) -> dict[str, np.ndarray]:
    """Per-position MPJPE, PA-MPJPE ``(M,)`` and accel error (NaN off the interior scored frames), metres."""
    accel = np.full(frames.num_frames, np.nan)
    acc_mask = frames.interior() & frames.scored
    if frames.num_frames >= 3:
        accel[acc_mask] = accel_error(pred, gt, torch.from_numpy(acc_mask)).double().numpy()
    return {'mpjpe': mpjpe(pred, gt).double().numpy(), 'pa_mpjpe': pa_mpjpe(pred, gt).double().numpy(),
            'accel_err': accel}


def _aggregate(frame_errors: dict[str, dict[str, np.ndarray]], frames: EvalFrames):
    """Frame-weighted means of the non-NaN per-frame values (mm), overall and per sequence."""
    summary, sequences = {}, []
    n_seq = len(frames.names)
    for row, values in frame_errors.items():
        summary[row] = {}
        per_seq = {}
        for metric in METRICS:
            if metric not in values:
                summary[row][metric] = None
                continue
            mask = ~np.isnan(values[metric])
            v = values[metric][mask]
            summary[row][metric] = float(v.mean()) if v.size else None
            sums = np.bincount(frames.seq_id[mask], weights=v, minlength=n_seq)
            counts = np.bincount(frames.seq_id[mask], minlength=n_seq)
            per_seq[metric] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        counts = np.bincount(frames.seq_id[frames.scored], minlength=n_seq)
        for s, name in enumerate(frames.names):
            if counts[s] == 0:
                continue
            entry = {'protocol': row, 'sequence': name, 'frames': int(counts[s])}
            for metric in METRICS:
                value = per_seq[metric][s] if metric in per_seq else np.nan
                entry[metric] = None if np.isnan(value) else float(value)
            sequences.append(entry)
    return summary, sequences


def _as_str(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


# ---------------------------------------------------------------------------------------------------------
# Running from a config: inputs checked first, outputs written only when everything succeeded
# ---------------------------------------------------------------------------------------------------------
RESULTS_FILE = 'results.json'
SEQUENCES_FILE = 'per_sequence.csv'
INFO_FILE = 'eval_info.json'
FRAMES_FILE = 'per_frame.npz'
_TABLE_COLUMNS = (('pa_mpjpe', 'PA-MPJPE'), ('mpjpe', 'MPJPE'), ('mpvpe', 'MPVPE'), ('accel_err', 'Accel'))


def eval_set_spec(dataset: str) -> EvalSetSpec:
    """The rules of test set ``dataset``; UserError for an unknown name."""
    if dataset not in EVAL_SETS:
        raise UserError(f"unknown dataset '{dataset}'; use one of {', '.join(EVAL_SETS)}")
    return EVAL_SETS[dataset]


def checkpoint_path(cfg) -> Path:
    """``TRAIN.PRETRAINED`` resolved; UserError if unset or missing."""
    if not cfg.TRAIN.PRETRAINED:
        raise UserError("no checkpoint to evaluate: pass --checkpoint PATH (or set TRAIN.PRETRAINED)")
    path = resolve_path(cfg, cfg.TRAIN.PRETRAINED)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path} (pass --checkpoint PATH; the official GLoT weights "
                        f"come from the release's Google Drive folder, see README 'Real data')")
    return path


def default_output_dir(cfg, dataset: str) -> Path:
    """``OUTPUT_DIR/EXP_NAME/eval_<dataset>``."""
    return Path(cfg.OUTPUT_DIR) / cfg.EXP_NAME / f'eval_{dataset}'


def run_evaluation(cfg, dataset: str, output_dir: str | os.PathLike | None = None, render: bool = False,
                   cfg_file: str | None = None, progress: bool = True) -> EvalResult:
    """Evaluate ``cfg``'s checkpoint (``TRAIN.PRETRAINED``) on test set ``dataset``; print the table and write
    the result files (:func:`write_results`) into ``output_dir``.

    Every input (dataset name, checkpoint, database, SMPL and regressor files, renderer) is checked before the
    forward pass; a bad one raises UserError and no result file is written.
    """
    from lib.core.config import db_path, resolve_device
    from lib.dataset.db import load_db, missing_file_error
    from lib.models import build_model, load_checkpoint
    from lib.models.smpl import build_smpl, load_h36m_regressor

    spec = eval_set_spec(dataset)
    protocols = list(cfg.EVAL.PROTOCOLS)
    if not protocols or set(protocols) - set(PROTOCOLS):
        raise UserError(f"EVAL.PROTOCOLS must list some of {', '.join(PROTOCOLS)}, got {protocols}")
    ckpt = checkpoint_path(cfg)
    db_file = db_path(cfg, spec.files_key, 'TEST')
    if not db_file.is_file():
        raise missing_file_error(db_file, spec.files_key)
    device = resolve_device(cfg.DEVICE)
    renderer = _renderer_module() if render else None
    model = build_model(cfg)
    load_checkpoint(model, ckpt)
    model.to(device).eval()
    # the model's body model is the neutral SMPL from the user's files, like the official GT model
    smpl = model.smpl if spec.mpvpe else None
    gendered = bool(cfg.EVAL.GENDERED_MPVPE) and spec.mpvpe
    gendered_smpl = {g: build_smpl(cfg, g) for g in ('male', 'female')} if gendered else None
    j_regressor = load_h36m_regressor(cfg) if spec.lsp_joints else None
    db = load_db(db_file, spec.files_key, 'TEST')
    genders = threedpw_genders(cfg, db['vid_name']) if gendered else None
    if render:
        image_paths = dataset_image_paths(cfg, dataset, db)

    start = time.perf_counter()
    evaluator = Evaluator(model, device, j_regressor=j_regressor, smpl=smpl, gendered_smpl=gendered_smpl,
                          batch_size=cfg.EVAL.BATCH_SIZE, protocols=protocols, seqlen=cfg.DATASET.SEQLEN,
                          progress=progress)
    result = evaluator.evaluate(dataset, db, genders=genders, keep_predictions=render)
    seconds = time.perf_counter() - start

    out_dir = Path(output_dir) if output_dir else default_output_dir(cfg, dataset)
    info = {'dataset': dataset, 'checkpoint': str(ckpt), 'config': cfg_file, 'database': str(db_file),
            'device': str(device), 'frames': result.num_frames, 'sequences': result.num_sequences,
            'protocols': protocols, 'seconds': round(seconds, 3), 'units': 'mm (accel_err: mm/frame^2)'}
    write_results(result, out_dir, info)
    print(format_table(result))
    logger.info('results written to %s', out_dir)
    if render:
        videos = render_predictions(renderer, cfg, result, image_paths, db, model.smpl, out_dir / 'render',
                                    progress=progress)
        logger.info('%d rendered videos in %s', len(videos), out_dir / 'render')
    return result


def format_table(result: EvalResult) -> str:
    """The summary as an aligned text table (dataset, protocol, frames, metrics in mm)."""
    label = EVAL_SETS[result.dataset].label
    header = ['dataset', 'protocol', 'frames'] + [title for _, title in _TABLE_COLUMNS]
    lines = [header]
    for row, values in result.summary.items():
        lines.append([label, row, str(result.num_frames)]
                     + ['-' if values[key] is None else f'{values[key]:.2f}' for key, _ in _TABLE_COLUMNS])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ['  '.join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, '-' * len(text[0]))
    return '\n'.join(text + ['(mm; Accel in mm/frame^2; official = released evaluate.py frame order, '
                             'corrected = natural order)'])


def write_results(result: EvalResult, out_dir: str | os.PathLike, info: dict) -> None:
    """Write the result files into ``out_dir``, each atomically (:func:`lib.core.io.atomic_write`), with
    ``results.json`` last:

    - ``per_frame.npz``: ``sequence_names (S,)`` and, for every predicted frame (M positions, sequences
      concatenated), ``seq_id``, ``frame`` (index in its sequence after dropping invalid frames), ``db_row``
      and ``<row>__<metric>`` in mm (NaN where not scored; the official row is indexed by scored position);
    - ``per_sequence.csv``: dataset, protocol, sequence, frames and the metrics in mm;
    - ``eval_info.json``: ``info`` (checkpoint, database, frames, timing, ...);
    - ``results.json``: ``{protocol: {pa_mpjpe, mpjpe, mpvpe, accel_err}}`` in mm (null where not scored).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = result.frames
    arrays = {'sequence_names': np.asarray(frames.names), 'seq_id': frames.seq_id,
              'frame': np.arange(frames.num_frames) - frames.starts[frames.seq_id], 'db_row': frames.rows}
    for row, values in result.frame_errors.items():
        arrays.update({f'{row}__{metric}': value for metric, value in values.items()})
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(out_dir / FRAMES_FILE, buf.getvalue())
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(['dataset', 'protocol', 'sequence', 'frames', *(f'{m}_mm' for m in METRICS)])
    for seq in result.sequences:
        writer.writerow([result.dataset, seq['protocol'], seq['sequence'], seq['frames'],
                         *('' if seq[m] is None else f'{seq[m]:.4f}' for m in METRICS)])
    atomic_write(out_dir / SEQUENCES_FILE, text.getvalue())
    atomic_write(out_dir / INFO_FILE, json.dumps(info, indent=2) + '\n')
    atomic_write(out_dir / RESULTS_FILE, json.dumps(result.summary, indent=2) + '\n')


def threedpw_genders(cfg, vid_names: np.ndarray) -> np.ndarray:
    """``(N,)`` 'm'/'f' of every DB row, from the raw 3DPW ``sequenceFiles/*/<sequence>.pkl`` ``genders``.

    ``vid_name`` is ``<sequence>_<person id>``. Raises UserError if a sequence file is missing.
    """
    root = resolve_path(cfg, cfg.DATASET.THREEDPW_DIR) / 'sequenceFiles'
    names = np.asarray(vid_names)
    unique, inverse = np.unique(names, return_inverse=True)
    cache, per_name = {}, []
    for name in (_as_str(n) for n in unique):
        seq, _, person = name.rpartition('_')
        if seq not in cache:
            candidates = [root / split / f'{seq}.pkl' for split in ('test', 'validation', 'train')]
            found = next((p for p in candidates if p.is_file()), None)
            if found is None:
                raise UserError(f"EVAL.GENDERED_MPVPE needs the raw 3DPW sequence files: {candidates[0]} not "
                                f"found (download 3DPW and set DATASET.THREEDPW_DIR)")
            with open(found, 'rb') as f:
                cache[seq] = [str(g)[:1].lower() for g in pickle.load(f, encoding='latin1')['genders']]
        per_name.append(cache[seq][int(person)])
    return np.asarray(per_name)[inverse.reshape(-1)]


def _renderer_module():
    """``lib.demo.renderer`` (an optional part); UserError if it is not there."""
    try:
        return importlib.import_module('lib.demo.renderer')
    except ImportError as err:
        raise UserError(f"--render: renderer not available ({err}); run without --render") from None


def dataset_image_paths(cfg, dataset: str, db: dict) -> np.ndarray:
    """``(N,)`` image file of every DB row, for ``--render``.

    ``img_name`` is used as stored when that file exists; otherwise 3DPW frames are looked up as
    ``DATASET.THREEDPW_DIR/imageFiles/<sequence>/<file>`` and other datasets under ``DATA_ROOT`` with the
    stored relative path. Raises UserError if the DB has no image names or the first image is missing.
    """
    if 'img_name' not in db or 'bbox' not in db:
        raise UserError(f"--render needs 'img_name' and 'bbox' in the {dataset} test database")
    names = [_as_str(n) for n in np.asarray(db['img_name'])]
    if not names:
        return np.asarray(names)
    if Path(names[0]).is_file():
        return np.asarray(names)
    if dataset == '3dpw':
        root = resolve_path(cfg, cfg.DATASET.THREEDPW_DIR) / 'imageFiles'
        paths = [str(root / Path(n).parent.name / Path(n).name) for n in names]
    else:
        paths = [str(resolve_path(cfg, n.lstrip('/'))) for n in names]
    if not Path(paths[0]).is_file():
        where = 'DATASET.THREEDPW_DIR/imageFiles' if dataset == '3dpw' else 'DATA_ROOT'
        raise UserError(f"--render needs the {dataset} images: neither {names[0]} nor {paths[0]} exists "
                        f"(put the dataset's images under {where}, or run without --render)")
    return np.asarray(paths)


def render_predictions(renderer, cfg, result: EvalResult, image_paths: np.ndarray, db: dict, smpl,
                       out_dir: Path, progress: bool = True) -> list[Path]:
    """Draw the predicted meshes on the dataset frames: one ``<sequence>.mp4`` per sequence in ``out_dir``,
    the first ``EVAL.RENDER_FRAMES`` frames of each (0 = all), at half resolution as the official script.

    The image camera comes from the predicted crop camera and the DB box scaled by 1.2 (the official rule).
    Frames whose image is missing are skipped.
    """
    import cv2

    from lib.utils.geometry import convert_crop_cam_to_orig_img
    from lib.demo.video import VideoWriter

    frames, preds = result.frames, result.predictions
    limit = int(cfg.EVAL.RENDER_FRAMES)
    faces = np.asarray(smpl.faces, dtype=np.int64)
    device = next(smpl.buffers()).device
    bboxes = np.asarray(db['bbox'], dtype=np.float64)
    written = []
    for s, name in enumerate(tqdm(frames.names, desc='rendering', unit='seq', disable=not progress)):
        start, n = int(frames.starts[s]), int(frames.lengths[s])
        count = n if limit <= 0 else min(n, limit)
        pos = np.arange(start, start + count)
        with torch.inference_mode():
            rot = preds.rotmat[pos].to(device)
            verts = smpl(betas=preds.betas[pos].to(device), body_pose=rot[:, 1:],
                         global_orient=rot[:, :1]).vertices.cpu().numpy()
        first = cv2.imread(str(image_paths[frames.rows[start]]))
        if first is None:
            continue
        height, width = first.shape[:2]
        size = (width // 2 - (width // 2) % 2, height // 2 - (height // 2) % 2)
        mesh_renderer = renderer.MeshRenderer(faces, width, height, mode=cfg.EVAL.RENDER_MODE)
        bbox = torch.from_numpy(bboxes[frames.rows[pos]].copy())
        bbox[:, 2:] *= 1.2
        cams = convert_crop_cam_to_orig_img(preds.cam[pos].double(), bbox, width, height).numpy()
        path = out_dir / f"{name.replace('/', '_')}.mp4"
        with VideoWriter(path, fps=30.0, size=size) as video:
            for k, p in enumerate(pos):
                image = cv2.imread(str(image_paths[frames.rows[p]]))
                if image is None or image.shape[:2] != (height, width):
                    continue
                image = mesh_renderer.render(image, [renderer.Mesh(verts[k], cams[k])])
                video.write(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        if path.is_file():
            written.append(path)
    return written
