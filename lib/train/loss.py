"""The GLoT training loss: one per-branch loss applied to the global and the local branch.

The same set of terms is computed twice and summed with no branch weights:

- **global** branch: the masked-transformer output on all T frames, supervised on the *masked* frames only
  (``mask`` multiplies each elementwise error; the mean still divides by every element, masked or not);
- **local** branch (HSCR): the 3 middle frames ``T//2-1 .. T//2+1``, unmasked.

Terms of one branch (``w`` = the config weight):

=============  ==========================================================================================
``kp_2d``      ``w * mean(conf * (p - g)^2)`` over the 49 SPIN joints of every clip; 2D in [-1, 1] crop
               units, ``conf`` the ground-truth confidence.
``kp_3d``      ``w * mean((p - g)^2)`` over the 14 LSP joints (SPIN 25:39), each set centred on the mid-point
               of its own hips (LSP 2 and 3); only frames with ``w_3d``; metres.
``vel_2d``     (``use_accel`` False) forward difference ``x[t+1] - x[t]``, zero at the last frame, weighted by
               the confidence of frame t, as ``kp_2d``. ``accel_2d`` (``use_accel`` True): central second
               difference ``x[t-1] - 2 x[t] + x[t+1]``, zero at both end frames.
``vel_3d``     the same motion of the 49 3D joints (not centred), restricted to LSP joints 25:39, plain MSE;
               only ``w_3d`` frames. Global branch: see ``global_vel3d_unmasked``.
``pose``       ``w * mean((R(p) - R(g))^2)`` over the 24 rotation matrices that SPIN's Rodrigues builds from
               the axis-angle ``theta[3:75]`` of prediction and ground truth; only ``w_smpl`` frames.
``shape``      ``w * mean((p - g)^2)`` over the 10 betas ``theta[75:85]``; only ``w_smpl`` frames.
=============  ==========================================================================================

The terms are named ``<term>_global`` / ``<term>_local``; ``vel`` reads ``accel`` when ``use_accel`` is on. A
term whose frames are all unlabelled (no ``w_3d`` or ``w_smpl`` frame in the batch) is an exact zero.
"""
from __future__ import annotations

import torch
from torch import nn

from lib.models.params import POSE, SHAPE
from lib.utils.geometry import spin_rodrigues
from lib.utils.joints import SPIN_COMMON_SLICE
from lib.utils.metrics import centre_on_hips



class GLoTLoss(nn.Module):
    """GLoT loss on both branches.

    Args:
        kp_2d_weight, kp_3d_weight, pose_weight, shape_weight: ``LOSS.KP_2D_W``, ``KP_3D_W``, ``POSE_W``,
            ``SHAPE_W``.
        motion_2d_weight, motion_3d_weight: ``LOSS.vel_or_accel_2d_weight`` / ``vel_or_accel_3d_weight``.
        use_accel: acceleration instead of velocity terms (``LOSS.use_accel``).
        global_vel3d_unmasked: official quirk (``LOSS.GLOBAL_VEL3D_UNMASKED``, default True): the global
            branch's 3D motion term is the plain mean over all ``w_3d`` frames times the masked fraction of
            those frames (a legacy ``MSELoss`` argument in the release made its "mask" a scalar). False masks
            it elementwise like the other global terms.
    """

    def __init__(self, kp_2d_weight: float = 60.0, kp_3d_weight: float = 30.0, pose_weight: float = 1.0,
                 shape_weight: float = 0.001, motion_2d_weight: float = 50.0, motion_3d_weight: float = 100.0,
                 use_accel: bool = True, global_vel3d_unmasked: bool = True):
        super().__init__()
        self.kp_2d_weight = kp_2d_weight
        self.kp_3d_weight = kp_3d_weight
        self.pose_weight = pose_weight
        self.shape_weight = shape_weight
        self.motion_2d_weight = motion_2d_weight
        self.motion_3d_weight = motion_3d_weight
        self.use_accel = use_accel
        self.global_vel3d_unmasked = global_vel3d_unmasked
        self.motion_name = 'accel' if use_accel else 'vel'

    def term_names(self) -> list[str]:
        """Names of the returned terms, in summation order (the official order)."""
        m = self.motion_name
        return ['kp_2d_global', 'kp_3d_global', 'kp_2d_local', 'kp_3d_local',
                f'{m}_2d_global', f'{m}_3d_global', f'{m}_2d_local', f'{m}_3d_local',
                'pose_global', 'pose_local', 'shape_global', 'shape_local']

    def forward(self, pred_local: dict, pred_global: dict, target: dict,
                mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its named terms.

        Args:
            pred_local: HSCR output of the 3 middle frames: ``theta (B, 3, 85)``, ``kp_2d (B, 3, 49, 2)``,
                ``kp_3d (B, 3, 49, 3)`` (metres).
            pred_global: global-branch output, the same keys with T frames.
            target: ``kp_2d (B, T, 49, 3)`` (x, y in [-1, 1], confidence), ``kp_3d (B, T, 49, 3)``,
                ``theta (B, T, 85)``, ``w_3d (B, T)``, ``w_smpl (B, T)``. 2D-only clips have ``w_3d`` and
                ``w_smpl`` 0 and may hold anything in ``kp_3d`` / ``theta``.
            mask: ``(B, T)`` or ``(B, T, 1)`` bool, True where the global branch masked the frame.
        Returns:
            ``(total, terms)``: the scalar sum and a dict of scalar terms named as :meth:`term_names`.
        """
        seqlen = target['kp_2d'].shape[1]
        mid = slice(seqlen // 2 - 1, seqlen // 2 + 2)
        target_local = {k: target[k][:, mid] for k in ('kp_2d', 'kp_3d', 'theta', 'w_3d', 'w_smpl')}
        mask = mask.reshape(mask.shape[0], seqlen)
        g = self._branch(pred_global, target, mask)
        loc = self._branch(pred_local, target_local, None)
        m = self.motion_name
        terms = {
            'kp_2d_global': g['kp_2d'], 'kp_3d_global': g['kp_3d'],
            'kp_2d_local': loc['kp_2d'], 'kp_3d_local': loc['kp_3d'],
            f'{m}_2d_global': g['motion_2d'], f'{m}_3d_global': g['motion_3d'],
            f'{m}_2d_local': loc['motion_2d'], f'{m}_3d_local': loc['motion_3d'],
            'pose_global': g['pose'], 'pose_local': loc['pose'],
            'shape_global': g['shape'], 'shape_local': loc['shape'],
        }
        total = torch.stack(list(terms.values())).sum()
        return total, terms

    def _branch(self, pred: dict, target: dict, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The weighted terms of one branch; ``mask`` (B, T) bool, or None for no masking."""
        gt_2d = target['kp_2d'].float()
        gt_3d = target['kp_3d'].float()
        gt_theta = target['theta'].float()
        pred_2d = pred['kp_2d'].float()
        pred_3d = pred['kp_3d'].float()
        pred_theta = pred['theta'].float()
        w_3d = target['w_3d'].bool()
        w_smpl = target['w_smpl'].bool()
        maskf = None if mask is None else mask.to(gt_2d.dtype)

        accel = self.use_accel
        motion_2d = _weighted_mse_2d(_motion(pred_2d, accel), _motion_target_2d(gt_2d, accel), maskf)
        out = {
            'kp_2d': _weighted_mse_2d(pred_2d, gt_2d, maskf) * self.kp_2d_weight,
            'motion_2d': motion_2d * self.motion_2d_weight,
        }

        mask_3d = None if maskf is None else maskf[w_3d]
        out['kp_3d'] = _kp_3d_mse(pred_3d[w_3d], gt_3d[w_3d], mask_3d) * self.kp_3d_weight
        lsp = SPIN_COMMON_SLICE
        motion_err = (_motion(pred_3d, accel)[w_3d][:, lsp] - _motion(gt_3d, accel)[w_3d][:, lsp]) ** 2
        if motion_err.numel() == 0:
            out['motion_3d'] = gt_3d.new_zeros(())
        elif mask_3d is None:
            out['motion_3d'] = motion_err.mean() * self.motion_3d_weight
        elif self.global_vel3d_unmasked:
            out['motion_3d'] = motion_err.mean() * mask_3d.mean() * self.motion_3d_weight
        else:
            out['motion_3d'] = (motion_err * mask_3d[:, None, None]).mean() * self.motion_3d_weight

        mask_smpl = None if maskf is None else maskf[w_smpl]
        pose, shape = _smpl_mse(pred_theta[w_smpl], gt_theta[w_smpl], mask_smpl)
        out['pose'] = pose * self.pose_weight
        out['shape'] = shape * self.shape_weight
        return out


def _motion(x: torch.Tensor, accel: bool) -> torch.Tensor:
    """Per-frame motion of ``(B, T, ...)``, same shape.

    Velocity: ``x[:, t+1] - x[:, t]``, zero at t = T-1. Acceleration: ``x[:, t-1] - 2 x[:, t] + x[:, t+1]``,
    zero at t = 0 and t = T-1.
    """
    pad = torch.zeros_like(x[:, :1])
    if accel:
        return torch.cat([pad, x[:, :-2] - 2 * x[:, 1:-1] + x[:, 2:], pad], dim=1)
    return torch.cat([x[:, 1:] - x[:, :-1], pad], dim=1)


def _motion_target_2d(gt_2d: torch.Tensor, accel: bool) -> torch.Tensor:
    """Motion target ``(B, T, J, 3)`` of 2D keypoints ``(B, T, J, 3)``: the motion of x, y, and as confidence
    that of frame t itself (zero at the padded frames), not a difference of confidences."""
    out = _motion(gt_2d, accel)
    conf = gt_2d[..., 2]
    pad = torch.zeros_like(conf[:, :1])
    out[..., 2] = torch.cat([pad, conf[:, 1:-1], pad], 1) if accel else torch.cat([conf[:, :-1], pad], 1)
    return out


def _weighted_mse_2d(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``mean(conf * (pred - gt[..., :2])^2 [* mask])`` over all ``B*T*J*2`` elements.

    Args:
        pred: ``(B, T, J, 2)``; gt: ``(B, T, J, 3)`` with confidence last; mask: ``(B, T)`` float or None.
    """
    err = gt[..., 2:] * (pred - gt[..., :2]) ** 2
    if mask is not None:
        err = err * mask[:, :, None, None]
    return err.mean()


def _kp_3d_mse(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """MSE of the 14 LSP joints, each set centred on its own mid-hip; ``(N, 49, 3)`` inputs, ``mask (N,)``."""
    if gt.shape[0] == 0:
        return gt.new_zeros(())
    pred = centre_on_hips(pred[:, SPIN_COMMON_SLICE])
    gt = centre_on_hips(gt[:, SPIN_COMMON_SLICE])
    err = (pred - gt) ** 2
    if mask is not None:
        err = err * mask[:, None, None]
    return err.mean()


def _smpl_mse(pred_theta: torch.Tensor, gt_theta: torch.Tensor,
              mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose (rotation-matrix) and shape (betas) MSE of ``(N, 85)`` thetas; ``mask (N,)`` or None."""
    if gt_theta.shape[0] == 0:
        zero = gt_theta.new_zeros(())
        return zero, zero
    # (N, 72) axis-angle -> (N * 24, 3) -> (N, 24, 3, 3)
    pred_rot = spin_rodrigues(pred_theta[:, POSE].reshape(-1, 3)).reshape(-1, 24, 3, 3)
    gt_rot = spin_rodrigues(gt_theta[:, POSE].reshape(-1, 3)).reshape(-1, 24, 3, 3)
    pose_err = (pred_rot - gt_rot) ** 2
    shape_err = (pred_theta[:, SHAPE] - gt_theta[:, SHAPE]) ** 2
    if mask is not None:
        pose_err = pose_err * mask[:, None, None, None]
        shape_err = shape_err * mask[:, None]
    return pose_err.mean(), shape_err.mean()


def build_loss(cfg) -> GLoTLoss:
    """:class:`GLoTLoss` with the weights of ``cfg.LOSS``."""
    return GLoTLoss(
        kp_2d_weight=cfg.LOSS.KP_2D_W, kp_3d_weight=cfg.LOSS.KP_3D_W,
        pose_weight=cfg.LOSS.POSE_W, shape_weight=cfg.LOSS.SHAPE_W,
        motion_2d_weight=cfg.LOSS.vel_or_accel_2d_weight, motion_3d_weight=cfg.LOSS.vel_or_accel_3d_weight,
        use_accel=cfg.LOSS.use_accel, global_vel3d_unmasked=cfg.LOSS.GLOBAL_VEL3D_UNMASKED,
    )
