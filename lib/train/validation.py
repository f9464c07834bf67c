"""Validation during training: the released trainer's protocol on the validation windows (middle frame).

Unlike ``evaluate.py`` (one prediction per test frame), the released trainer validates one prediction per
validation *window* (stride ``SEQLEN``), pools the windows into one sequence and reports mpjpe, pa_mpjpe, mpvpe
(the release's PVE), accel and accel_err (:data:`lib.utils.metrics.METRIC_UNITS`). Joints are centred and scored by the same functions as the evaluation
(:func:`lib.utils.metrics.scored_joints`, :func:`lib.utils.metrics.joint_errors`); ground-truth meshes come
from :func:`lib.models.params.smpl_from_axis_angle`.
"""
from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from lib.core.dist import DistContext, all_gather
from lib.models.params import split_theta, smpl_from_axis_angle
from lib.utils import metrics
from lib.utils.metrics import M_TO_MM


@torch.no_grad()
def validate(model: torch.nn.Module, dataset, *, batch_size: int, device: torch.device,
             j_regressor: torch.Tensor | None, ctx: DistContext = DistContext(),
             autocast: Callable[[], AbstractContextManager] = nullcontext,
             progress: bool | None = None) -> dict[str, float]:
    """Metrics (mm) of ``model`` on the validation windows (eval mode, middle frame).

    Args:
        model: the bare GLoT (``model.smpl`` builds the ground-truth meshes).
        dataset: ``__len__`` and ``get_batch(indices)`` giving ``features (B, T, 2048)``, middle-frame
            ``kp_3d (B, J, 3)`` (J = 14 LSP, or 17 MPI-INF-3DHP test joints), ``theta (B, 85)``, ``w_smpl (B,)``
            (:class:`lib.dataset.dataset3d.ValidationDataset3D`).
        batch_size: windows per forward pass. j_regressor: ``(17, 6890)`` Human3.6M regressor.
        autocast: makes the mixed-precision context of the forward pass (default: none).
        ctx: batches are split across ranks and gathered in order.
    Returns:
        ``mpjpe``, ``pa_mpjpe``, ``mpvpe`` (NaN without SMPL labels) and, with 3 windows or more, ``accel`` and
        ``accel_err``, in mm (accelerations in mm/frame^2).
    """
    was_training = model.training
    model.eval()
    n = len(dataset)
    starts = list(range(0, n, batch_size))[ctx.rank::ctx.world_size]
    parts = []
    for start in tqdm(starts, desc='validation', leave=False, dynamic_ncols=True,
                      disable=None if progress is None else not progress):
        batch = dataset.get_batch(np.arange(start, min(start + batch_size, n)))
        parts.append((start, *_validation_batch(model, batch, device, j_regressor, autocast)))
    model.train(was_training)
    gathered = sorted((p for rank_parts in all_gather(ctx, parts) for p in rank_parts), key=lambda p: p[0])
    pred = torch.cat([p[1] for p in gathered])
    gt = torch.cat([p[2] for p in gathered])
    pve = torch.cat([p[3] for p in gathered])
    return validation_metrics(pred, gt, pve)


def _validation_batch(model: torch.nn.Module, batch: dict, device: torch.device, j_regressor: torch.Tensor | None,
                      autocast: Callable[[], AbstractContextManager]) -> tuple[torch.Tensor, ...]:
    """Centred predicted / target joints ``(B, J, 3)`` and per-window vertex error ``(B,)``, metres, CPU."""
    features = batch['features'].to(device)
    gt = batch['kp_3d'].to(device).float()
    lsp = gt.shape[1] == 14
    with autocast():
        local, _, _ = model(features, is_train=False, J_regressor=j_regressor if lsp else None,
                            decode_global=False)
    out = local[-1]
    pred = metrics.scored_joints(out['kp_3d'].float(), lsp)
    gt = metrics.scored_joints(gt, lsp)
    if bool(batch['w_smpl'].bool().all()):
        _, pose, betas = split_theta(batch['theta'].to(device).float())
        gt_verts = smpl_from_axis_angle(model.smpl, pose, betas).vertices
        pve = metrics.per_vertex_error(out['verts'].float(), gt_verts)
    else:
        pve = torch.full((len(gt),), math.nan, device=device)
    return pred.cpu(), gt.cpu(), pve.cpu()


def validation_metrics(pred: torch.Tensor, gt: torch.Tensor, pve: torch.Tensor) -> dict[str, float]:
    """mpjpe, pa_mpjpe, mpvpe, accel, accel_err in mm (mm/frame^2) from centred ``(N, J, 3)`` joints and
    ``(N,)`` vertex errors (metres), N windows in order (the released trainer pools them into one sequence)."""
    errors = metrics.joint_errors(pred, gt)
    out = {'mpjpe': errors['mpjpe'].mean().item() * M_TO_MM,
           'pa_mpjpe': errors['pa_mpjpe'].mean().item() * M_TO_MM,
           'mpvpe': pve.mean().item() * M_TO_MM}
    if len(pred) >= 3:
        accel = torch.linalg.vector_norm(pred[:-2] - 2 * pred[1:-1] + pred[2:], dim=-1).mean()
        out['accel'] = accel.item() * M_TO_MM
        out['accel_err'] = metrics.accel_error(pred, gt).mean().item() * M_TO_MM
    return out
