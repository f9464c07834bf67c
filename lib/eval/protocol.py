"""The test protocol of the released evaluate.py, as an importable evaluator (no files, no config).

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

The released script's options (``evaluate.py --seq / --filter / --plot``):

- ``sequences``: only the sequences whose name contains that text (the official substring match);
- ``slerp_filter``: each row's predicted rotations, in that row's frame order, go through MEVA's slerp filter
  per joint over each sequence (:mod:`lib.eval.smoothing`), and SMPL of the smoothed rotations (predicted
  betas) gives the scored joints. ``official`` keeps the released script's quirk: its MPVPE is computed from
  the *unsmoothed* vertices (it assigns the smoothed ones to a misspelt variable); ``corrected`` also smooths
  the vertices. MPI-INF-3DHP, where the released script fails (no ``J_regressor`` there), takes the 17 test
  joints of the 49 SPIN joints of the smoothed body, as without the filter;
- :func:`official_accel_curve`: the per-time-step curve the released ``--plot`` draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from lib.core.errors import UserError
from lib.dataset.eval_sequences import EvalFrames, select_test_frames
from lib.eval.smoothing import filter_sequences
from lib.models.params import smpl_from_axis_angle, smpl_from_rotmat, split_theta
from lib.utils.joints import H36M_TO_J14
from lib.utils.metrics import M_TO_MM, accel_error, joint_errors, per_vertex_error, scored_joints

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

def ground_truth_joints(db: dict, spec: EvalSetSpec, rows: np.ndarray) -> torch.Tensor:
    """Centred GT joints ``(M, J, 3)`` float32 in metres of database ``rows`` (J = 14 LSP or 17 mpii3d_test).

    3DPW stores the 14 LSP joints; Human3.6M and MPI-INF-3DHP store 49 SPIN joints.
    """
    return scored_joints(torch.from_numpy(np.asarray(db['joints3D'])[rows]).float(), spec.lsp_joints)


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
        accel_curves: row (protocol) -> ``(M,)`` :func:`official_accel_curve` values in mm/frame^2 (NaN on the
            first and last frame of each sequence).
    """

    dataset: str
    summary: dict[str, dict[str, float | None]]
    sequences: list[dict]
    num_frames: int
    num_sequences: int
    frames: EvalFrames
    frame_errors: dict[str, dict[str, np.ndarray]]
    predictions: Predictions | None = None
    accel_curves: dict[str, np.ndarray] | None = None


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
        filter_smpl: the model's (neutral) SMPL layer: smooth the predicted rotations with the official slerp
            filter and re-pose this body with them (``evaluate.py --filter``); None: no filter.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, j_regressor: torch.Tensor | None = None,
                 smpl: torch.nn.Module | None = None, gendered_smpl: dict | None = None, batch_size: int = 256,
                 protocols=PROTOCOLS, seqlen: int = 16, progress: bool = True,
                 filter_smpl: torch.nn.Module | None = None):
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
        self.filter_smpl = None if filter_smpl is None else filter_smpl.to(self.device)

    def evaluate(self, dataset: str, db: dict, genders: np.ndarray | None = None,
                 keep_predictions: bool = False, sequences: str = '') -> EvalResult:
        """Evaluate test set ``dataset`` stored in ``db``.

        Args:
            dataset: a key of ``EVAL_SETS``.
            db: the test database dict (official keys).
            genders: ``(N,)`` 'm'/'f' per DB row, for the gendered-MPVPE rows (3DPW); None skips them.
            keep_predictions: return the predictions and frames too (rendering).
            sequences: only the sequences whose name contains this text (``--seq``); '' keeps all.
        """
        spec = EVAL_SETS[dataset]
        frames = select_test_frames(db, spec.scored_key, self.seqlen)
        if sequences:
            frames = only_sequences(frames, sequences)
        if frames.num_frames == 0:
            which = f"whose name contains '{sequences}' " if sequences else ''
            raise UserError(f"nothing to evaluate: no sequence of the {spec.label} test set {which}has {self.seqlen} "
                            "valid frames (check the database's 'valid' flags and sequence lengths, or --seq)")
        gt = ground_truth_joints(db, spec, frames.rows)
        filtering = self.filter_smpl is not None
        preds = self.predict(db, spec, frames, genders, keep_rotations=keep_predictions or filtering)
        bad = ~torch.isfinite(preds.joints.reshape(frames.num_frames, -1)).all(dim=1)
        if bad.any():
            pos = int(bad.nonzero()[0])
            seq = frames.seq_id[pos]
            raise UserError(f"the model predicted NaN or infinite joints for {int(bad.sum())} frame(s), first "
                            f"sequence {frames.names[seq]} frame {pos - frames.starts[seq]}; nothing was written "
                            "(check the checkpoint and the database features)")
        pred = scored_joints(preds.joints, spec.lsp_joints)
        rows, curves = {}, {}
        for protocol in self.protocols:
            order = frames.official_order if protocol == 'official' else np.arange(frames.num_frames)
            vertex_errors = {suffix: preds.vertex_errors[protocol + suffix] for suffix in ('', GENDERED_SUFFIX)
                             if protocol + suffix in preds.vertex_errors}
            if filtering:
                joints, smoothed_errors = self._filtered(db, spec, frames, genders, preds, order,
                                                         smooth_vertices=protocol == 'corrected')
                pred_row = scored_joints(joints, spec.lsp_joints)
                vertex_errors.update(smoothed_errors)
            else:
                pred_row = pred[torch.from_numpy(order)]
            rows[protocol] = _joint_errors(pred_row, gt, frames)
            curves[protocol] = official_accel_curve(pred_row, gt, frames)
            if '' in vertex_errors:
                rows[protocol]['mpvpe'] = vertex_errors['']
            if GENDERED_SUFFIX in vertex_errors:
                rows[protocol + GENDERED_SUFFIX] = {'mpvpe': vertex_errors[GENDERED_SUFFIX]}
        frame_errors = {row: {metric: np.where(frames.scored, values[metric] * M_TO_MM, np.nan)
                              for metric in METRICS if metric in values} for row, values in rows.items()}
        summary, sequences = _aggregate(frame_errors, frames)
        seq_scored = np.bincount(frames.seq_id[frames.scored], minlength=len(frames.names))
        return EvalResult(dataset=dataset, summary=summary, sequences=sequences,
                          num_frames=int(frames.scored.sum()), num_sequences=int((seq_scored > 0).sum()),
                          frames=frames, frame_errors=frame_errors,
                          predictions=preds if keep_predictions else None, accel_curves=curves)

    @torch.inference_mode()
    def _filtered(self, db: dict, spec: EvalSetSpec, frames: EvalFrames, genders: np.ndarray | None,
                  preds: Predictions, order: np.ndarray, smooth_vertices: bool):
        """``--filter`` for one row: the rotations in the row's ``order`` (position -> frame) smoothed per sequence
        (:func:`lib.eval.smoothing.filter_sequences`), SMPL re-posed with them and the predicted betas.

        Returns ``kp_3d (M, J, 3)`` by position (14 LSP joints from ``J_regressor_h36m``, or the 49 SPIN joints)
        and, when ``smooth_vertices``, row suffix -> ``(M,)`` MPVPE of the smoothed vertices in metres.
        """
        dev = self.device
        rotmat = filter_sequences(preds.rotmat.numpy()[order], frames.starts, frames.lengths)
        betas = preds.betas[torch.from_numpy(order)]
        gt_meshes = self._gt_meshes(db, spec, frames, genders) if smooth_vertices else {}
        errors = {suffix: torch.zeros(frames.num_frames, dtype=torch.float64) for suffix in gt_meshes}
        j14 = self.j_regressor[list(H36M_TO_J14)] if spec.lsp_joints else None
        joints = None
        for start in range(0, frames.num_frames, self.batch_size):
            stop = min(start + self.batch_size, frames.num_frames)
            out = smpl_from_rotmat(self.filter_smpl, betas[start:stop].to(dev),
                                   torch.from_numpy(rotmat[start:stop]).to(dev))
            kp_3d = out.joints if j14 is None else torch.matmul(j14, out.vertices)   # (14, V) @ (B, V, 3)
            if joints is None:
                joints = torch.empty(frames.num_frames, kp_3d.shape[1], 3)
            joints[start:stop] = kp_3d.float().cpu()
            positions = torch.arange(start, stop, device=dev)
            for suffix, gt_vertices in gt_meshes.items():
                errors[suffix][start:stop] = per_vertex_error(out.vertices, gt_vertices(positions)).double().cpu()
        return joints, {suffix: e.numpy() for suffix, e in errors.items()}

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
                    cam, _, betas = split_theta(out['theta'].reshape(stop - start, -1).cpu())
                    kept['rotmat'].append(out['rotmat'].reshape(stop - start, 24, 3, 3).cpu())
                    kept['betas'].append(betas)
                    kept['cam'].append(cam)
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
    (:func:`lib.models.params.smpl_from_axis_angle`, the released evaluation's ground truth)."""
    def vertices(idx: torch.Tensor) -> torch.Tensor:
        return smpl_from_axis_angle(smpl, pose[idx], shape[idx]).vertices
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


def only_sequences(frames: EvalFrames, text: str) -> EvalFrames:
    """The frames of the sequences whose name contains ``text`` (the released ``--seq`` rule), renumbered."""
    keep = [s for s, name in enumerate(frames.names) if text in name]
    lengths = frames.lengths[keep]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if keep else np.zeros(0, np.int64)
    old = [np.arange(frames.starts[s], frames.starts[s] + frames.lengths[s]) for s in keep]
    pos = np.concatenate(old) if old else np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - frames.starts[keep], lengths)       # old position + shift = new position
    return EvalFrames(names=[frames.names[s] for s in keep], starts=starts, lengths=lengths, rows=frames.rows[pos],
                      seq_id=np.repeat(np.arange(len(keep)), lengths),
                      windows=frames.windows[pos] + shift[:, None] if pos.size else frames.windows[:0],
                      official_order=frames.official_order[pos] + shift, scored=frames.scored[pos])


def official_accel_curve(pred: torch.Tensor, gt: torch.Tensor, frames: EvalFrames) -> np.ndarray:
    """The curve of the released ``--plot``: per interior position p of each sequence, ``|a(pred) - a(gt)|`` in
    mm/frame^2, where ``a`` is the mean over joints of the acceleration's length ``|x[p+1] - 2 x[p] + x[p-1]|``
    (computed as a difference of velocities, float32, as released). Note: a difference of magnitudes, not the
    ``accel_err`` metric (the magnitude of the difference). ``pred``, ``gt``: ``(M, J, 3)`` centred, metres, by
    position; NaN on the first and last frame of each sequence."""
    curve = np.full(frames.num_frames, np.nan)
    for start, n in zip(frames.starts.tolist(), frames.lengths.tolist()):
        magnitude = []
        for joints in (pred[start:start + n], gt[start:start + n]):
            x = joints.float().numpy()
            velocity = x[1:] - x[:-1]
            magnitude.append(np.linalg.norm(velocity[1:] - velocity[:-1], axis=2).mean(axis=1))
        curve[start + 1:start + n - 1] = np.abs(magnitude[0] - magnitude[1]) * M_TO_MM
    return curve


def _joint_errors(pred: torch.Tensor, gt: torch.Tensor, frames: EvalFrames) -> dict[str, np.ndarray]:
    """Per-position MPJPE, PA-MPJPE ``(M,)`` and accel error (NaN off the interior scored frames), metres."""
    accel = np.full(frames.num_frames, np.nan)
    acc_mask = frames.interior() & frames.scored
    if frames.num_frames >= 3:
        accel[acc_mask] = accel_error(pred, gt, torch.from_numpy(acc_mask)).double().numpy()
    errors = joint_errors(pred, gt)
    return {'mpjpe': errors['mpjpe'].double().numpy(), 'pa_mpjpe': errors['pa_mpjpe'].double().numpy(),
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
