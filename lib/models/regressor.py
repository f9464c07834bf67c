"""SPIN-style iterative SMPL regressor and the SMPL decoding shared by both GLoT heads.

``IterativeRegressor`` refines (pose, shape, camera) from the SPIN mean parameters in ``n_iter`` residual
steps: ``[feature, pose, shape, cam] -> fc1 -> dropout (-> fc2 -> dropout) -> decpose / decshape / deccam``,
with no nonlinearity. The GLoT global branch uses it *without* ``fc2`` (the official release skips it; its
weights stay in the state_dict, see ``MODEL.KEEP_UNUSED_WEIGHTS``); SPIN's HMR uses it with ``fc2``.

``smpl_output`` turns parameters into the official output dict (theta, verts, kp_2d, kp_3d, rotmat).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.models.params import smpl_from_rotmat
from lib.utils.geometry import projection, rot6d_to_rotmat, rotmat_to_axis_angle
from lib.utils.joints import H36M_TO_J14

NUM_JOINTS = 24
NPOSE = NUM_JOINTS * 6    # 6D rotation per SMPL joint
NSHAPE = 10
NCAM = 3                  # weak-perspective camera (s, tx, ty)
FEATURE_DIM = 2048


class IterativeRegressor(nn.Module):
    """Iterative error feedback regressor (SPIN ``Regressor``).

    Args:
        mean_params: dict with ``pose (144,)``, ``shape (10,)``, ``cam (3,)`` (``load_mean_params``) for the
            ``init_*`` buffers; ``None`` leaves zeros, to be filled from a checkpoint.
        use_fc2: run ``fc1 -> fc2`` (SPIN) instead of ``fc1`` only (GLoT's global branch).
        keep_unused: create ``fc2`` even when it is not used, for official-checkpoint compatibility.
        smpl: optional body model stored as ``self.smpl`` (the official state_dict has one here).
        drop: dropout after ``fc1`` (and ``fc2``).
    """

    def __init__(self, mean_params: dict[str, torch.Tensor] | None = None, use_fc2: bool = False,
                 keep_unused: bool = True, smpl: nn.Module | None = None, drop: float = 0.5,
                 feature_dim: int = FEATURE_DIM, hidden_dim: int = 1024):
        super().__init__()
        self.use_fc2 = use_fc2
        self.fc1 = nn.Linear(feature_dim + NPOSE + NSHAPE + NCAM, hidden_dim)
        self.drop1 = nn.Dropout(drop)
        if use_fc2 or keep_unused:
            self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        if use_fc2:
            self.drop2 = nn.Dropout(drop)
        self.decpose = nn.Linear(hidden_dim, NPOSE)
        self.decshape = nn.Linear(hidden_dim, NSHAPE)
        self.deccam = nn.Linear(hidden_dim, NCAM)
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        if smpl is not None:
            self.smpl = smpl
        if mean_params is None:
            mean_params = {'pose': torch.zeros(NPOSE), 'shape': torch.zeros(NSHAPE), 'cam': torch.zeros(NCAM)}
        self.register_buffer('init_pose', mean_params['pose'].reshape(1, NPOSE).clone())
        self.register_buffer('init_shape', mean_params['shape'].reshape(1, NSHAPE).clone())
        self.register_buffer('init_cam', mean_params['cam'].reshape(1, NCAM).clone())

    def forward(self, x: torch.Tensor, n_iter: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features ``x (N, 2048)`` -> pose ``(N, 144)`` (6D), shape ``(N, 10)``, camera ``(N, 3)``.

        ``fc1([x, pose, shape, cam])`` is split as ``W_x x + (W_p [pose, shape, cam] + b)``: the feature part
        is the same in every step, so it is computed once (same result up to float rounding)."""
        n, feature_dim = x.shape
        pose = self.init_pose.expand(n, -1)
        shape = self.init_shape.expand(n, -1)
        cam = self.init_cam.expand(n, -1)
        weight = self.fc1.weight
        x_part = F.linear(x, weight[:, :feature_dim])
        for _ in range(n_iter):
            h = self.drop1(x_part + F.linear(torch.cat([pose, shape, cam], dim=1), weight[:, feature_dim:],
                                             self.fc1.bias))
            if self.use_fc2:
                h = self.drop2(self.fc2(h))
            pose = self.decpose(h) + pose
            shape = self.decshape(h) + shape
            cam = self.deccam(h) + cam
        return pose, shape, cam


def smpl_output(smpl: nn.Module, pose: torch.Tensor, shape: torch.Tensor, cam: torch.Tensor,
                J_regressor: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Decode SMPL parameters into the official output dict.

    Args:
        smpl: ``lib.models.smpl.SMPL``.
        pose: ``(N, 144)`` 6D rotations (SPIN interleaved layout), joint 0 is the root.
        shape: ``(N, 10)`` betas. cam: ``(N, 3)`` weak-perspective camera (s, tx, ty).
        J_regressor: optional ``(17, 6890)`` Human3.6M regressor; then ``kp_3d`` holds the 14 LSP joints
            ``J_regressor @ verts`` in ``H36M_TO_J14`` order, else the 49 SPIN joints.
    Returns:
        ``theta (N, 85)`` = [cam, axis-angle pose (72, radians), betas], ``verts (N, 6890, 3)`` in metres,
        ``kp_2d (N, J, 2)`` in the [-1, 1] crop frame, ``kp_3d (N, J, 3)`` in metres, ``rotmat (N, 24, 3, 3)``.
    """
    n = pose.shape[0]
    rotmat = rot6d_to_rotmat(pose).view(n, NUM_JOINTS, 3, 3)
    out = smpl_from_rotmat(smpl, shape, rotmat)
    verts = out.vertices
    if J_regressor is None:
        kp_3d = out.joints
    else:
        j14 = J_regressor.to(verts)[list(H36M_TO_J14)]
        kp_3d = torch.matmul(j14, verts)       # (14, V) @ (N, V, 3) -> (N, 14, 3)
    aa = rotmat_to_axis_angle(rotmat).reshape(n, NUM_JOINTS * 3)
    return {
        'theta': torch.cat([cam, aa, shape], dim=1),
        'verts': verts,
        'kp_2d': projection(kp_3d, cam),
        'kp_3d': kp_3d,
        'rotmat': rotmat,
    }
