"""3D pose and mesh error metrics: pure tensor functions, batched over frames.

Units follow the inputs: give metres and get metres (the evaluator multiplies by 1000 for millimetres).
Every function takes joints as ``(N, J, 3)`` (N frames, J joints) and works on any device and float dtype.

The definitions are those of the released GLoT/TCMR/VIBE evaluation code:

- :func:`similarity_procrustes`: per-frame similarity transform (scale, rotation, translation) of the
  prediction onto the ground truth, with the determinant-sign fix that rules out reflections.
- :func:`mpjpe` / :func:`pa_mpjpe`: mean Euclidean joint error per frame, without / with that alignment.
- :func:`per_vertex_error`: mean Euclidean vertex error per frame, with no alignment at all.
- :func:`accel_error`: mean over joints of the norm of the difference of second differences, per frame
  t = 1 .. N-2 of one sequence, in units per frame² (no frame-rate scaling).
- :func:`centre_on_hips` / :func:`centre_on_joint`: the two root conventions (LSP-14 mid-hip, a root joint).
"""
from __future__ import annotations

import torch

from lib.utils.joints import COMMON_LHIP, COMMON_RHIP, MPII3D_TEST_PELVIS, perm_indices

M_TO_MM = 1000.0
# The one spelling of each reported metric (results.json, per_sequence.csv, the printed table, the training log
# and TensorBoard) and its unit once converted: accel is the predicted joints' acceleration (training
# validation only), accel_err its error against the ground truth.
METRIC_UNITS = {'pa_mpjpe': 'mm', 'mpjpe': 'mm', 'mpvpe': 'mm', 'accel': 'mm/frame^2', 'accel_err': 'mm/frame^2'}
_SPIN_TO_COMMON = perm_indices('spin', 'common')
_SPIN_TO_MPII3D_TEST = perm_indices('spin', 'mpii3d_test')


def centre_on_hips(joints: torch.Tensor) -> torch.Tensor:
    """Subtract the mid-hip point from ``(N, 14, 3)`` joints in ``COMMON_14`` (LSP) order.

    The root is the mean of the right hip (index 2) and the left hip (index 3), as for 3DPW and Human3.6M.
    """
    pelvis = (joints[:, COMMON_RHIP] + joints[:, COMMON_LHIP]) / 2.0
    return joints - pelvis[:, None]


def centre_on_joint(joints: torch.Tensor, index: int) -> torch.Tensor:
    """Subtract joint ``index`` from all joints of ``(N, J, 3)`` (MPI-INF-3DHP: pelvis = index 14 of 17)."""
    return joints - joints[:, index:index + 1]


def scored_joints(joints: torch.Tensor, lsp: bool) -> torch.Tensor:
    """Joints as validation and evaluation score them, centred.

    ``lsp``: the 14 LSP joints (``COMMON_14`` order; 49 SPIN joints are reduced to them) centred on the
    mid-hip (3DPW, Human3.6M). Otherwise the 17 ``mpii3d_test`` joints (49 SPIN joints are reduced to them)
    centred on the pelvis (MPI-INF-3DHP). ``joints (N, 14 | 17 | 49, 3)`` -> ``(N, 14 | 17, 3)``.
    """
    if lsp:
        return centre_on_hips(joints[:, _SPIN_TO_COMMON] if joints.shape[1] == 49 else joints)
    return centre_on_joint(joints[:, _SPIN_TO_MPII3D_TEST] if joints.shape[1] == 49 else joints, MPII3D_TEST_PELVIS)


def joint_errors(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame ``mpjpe`` and ``pa_mpjpe`` ``(N,)`` of centred joints ``(N, J, 3)`` (units of the input)."""
    return {'mpjpe': mpjpe(pred, gt), 'pa_mpjpe': pa_mpjpe(pred, gt)}


def similarity_procrustes(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Align each frame of ``pred`` onto ``gt`` with the best similarity transform.

    For each frame, find scale s, rotation R (det R = +1) and translation t minimising
    ``sum_j |s R pred_j + t - gt_j|²`` (orthogonal Procrustes via an SVD of the 3x3 cross-covariance).

    Args:
        pred: ``(N, J, 3)`` predicted joints.
        gt: ``(N, J, 3)`` ground-truth joints.
    Returns:
        ``(N, J, 3)`` aligned prediction ``s R pred + t``.
    """
    mu_pred = pred.mean(dim=1, keepdim=True)
    mu_gt = gt.mean(dim=1, keepdim=True)
    x = pred - mu_pred
    y = gt - mu_gt
    var_pred = (x ** 2).sum(dim=(1, 2))
    # cross-covariance K[n, a, b] = sum_j x[n, j, a] * y[n, j, b]
    cov = torch.einsum('nja,njb->nab', x, y)
    u, _, vh = torch.linalg.svd(cov)
    v = vh.transpose(1, 2)
    # R = V diag(1, 1, d) U^T with d = sign(det(V U^T)) so that R is a proper rotation
    d = torch.where(torch.linalg.det(u @ vh) < 0, -1.0, 1.0).to(pred.dtype)
    v = torch.cat([v[:, :, :2], v[:, :, 2:] * d[:, None, None]], dim=2)
    rot = v @ u.transpose(1, 2)
    # scale = trace(R K) / |x|²; trace(R K) = sum_ab R[n, a, b] K[n, b, a]
    scale = torch.einsum('nab,nba->n', rot, cov) / var_pred
    # aligned[n, j, a] = scale[n] * sum_b R[n, a, b] x[n, j, b] + mu_gt[n, a]
    return scale[:, None, None] * torch.einsum('nab,njb->nja', rot, x) + mu_gt


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error of each frame.

    Args:
        pred, gt: ``(N, J, 3)`` joints, already centred by the caller.
    Returns:
        ``(N,)`` mean over joints of the Euclidean distance, in the input unit.
    """
    return torch.linalg.vector_norm(pred - gt, dim=-1).mean(dim=-1)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Procrustes-aligned MPJPE: :func:`mpjpe` after :func:`similarity_procrustes`.

    Args:
        pred, gt: ``(N, J, 3)`` joints.
    Returns:
        ``(N,)`` per-frame error, in the input unit.
    """
    return mpjpe(similarity_procrustes(pred, gt), gt)


def per_vertex_error(pred_verts: torch.Tensor, gt_verts: torch.Tensor) -> torch.Tensor:
    """Mean per-vertex position error (MPVPE / PVE) of each frame, with no alignment or centring.

    Args:
        pred_verts, gt_verts: ``(N, V, 3)`` mesh vertices (V = 6890 for SMPL).
    Returns:
        ``(N,)`` mean over vertices of the Euclidean distance, in the input unit.
    """
    return torch.linalg.vector_norm(pred_verts - gt_verts, dim=-1).mean(dim=-1)


def accel_error(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Acceleration error of one sequence (consecutive frames), per interior frame.

    At frame t the acceleration is the second difference ``a_t = p_{t-1} - 2 p_t + p_{t+1}``; the error is
    the mean over joints of ``|a_t(pred) - a_t(gt)|``. The first and last frames have no value. With
    ``valid``, only interior frames t with ``valid[t]`` are returned; the differences still use the
    neighbouring frames whatever their validity (the official MPI-INF-3DHP rule).

    Args:
        pred, gt: ``(N, J, 3)`` joints of one sequence, centred by the caller, N >= 3.
        valid: optional ``(N,)`` bool mask of frames that count.
    Returns:
        ``(N - 2,)`` errors for t = 1 .. N-2 (fewer with ``valid``), in input unit per frame².
    """
    acc_pred = pred[:-2] - 2 * pred[1:-1] + pred[2:]
    acc_gt = gt[:-2] - 2 * gt[1:-1] + gt[2:]
    err = torch.linalg.vector_norm(acc_pred - acc_gt, dim=-1).mean(dim=-1)
    if valid is not None:
        err = err[valid[1:-1]]
    return err
