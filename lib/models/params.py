"""The 85-d SMPL parameter vector ``theta`` that GLoT regresses, and the one way to run SMPL on parameters.

Layout of ``theta (..., 85)``:

=========  ===========  ==============================================================================
``CAM``    ``[0:3]``    weak-perspective camera ``(s, tx, ty)`` of the 224 x 224 crop (crop units)
``POSE``   ``[3:75]``   24 joint rotations, axis-angle in radians, SMPL joint order (global orientation
                        first, then the 23 body joints)
``SHAPE``  ``[75:85]``  10 shape coefficients (betas)
=========  ===========  ==============================================================================

Rotation matrices ``rotmat (N, 24, 3, 3)`` go to SMPL as ``global_orient = rotmat[:, :1]`` and
``body_pose = rotmat[:, 1:]`` (:func:`smpl_from_rotmat`). Axis-angle parameters (ground truth in the
databases) go through :func:`smpl_from_axis_angle`, which converts them with smplx's Rodrigues formula: that
is what ``pose2rot=True`` does inside smplx, and so what the released code's ground-truth meshes (evaluation
MPVPE, validation PVE, preprocessing) are built with. The loss uses SPIN's quaternion-based Rodrigues
(:func:`lib.utils.geometry.spin_rodrigues`) as the released loss does; the two agree to float rounding.
"""
from __future__ import annotations

import torch
from smplx.lbs import batch_rodrigues as smplx_rodrigues

NUM_JOINTS = 24
THETA_DIM = 85
CAM = slice(0, 3)
POSE = slice(3, 75)
SHAPE = slice(75, 85)


def split_theta(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``theta (..., 85)`` -> ``cam (..., 3)``, ``pose (..., 72)`` axis-angle radians, ``betas (..., 10)``."""
    return theta[..., CAM], theta[..., POSE], theta[..., SHAPE]


def smpl_from_rotmat(smpl, betas: torch.Tensor, rotmat: torch.Tensor, transl: torch.Tensor | None = None):
    """SMPL output (``vertices (N, 6890, 3)``, ``joints (N, 49, 3)``, metres) of ``betas (N, 10)`` and joint
    rotations ``rotmat (N, 24, 3, 3)`` (global orientation first), optionally translated by ``transl (N, 3)``."""
    extra = {} if transl is None else {'transl': transl}
    return smpl(betas=betas, body_pose=rotmat[:, 1:], global_orient=rotmat[:, :1], **extra)


def smpl_from_axis_angle(smpl, pose: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor | None = None):
    """SMPL output of axis-angle ``pose (N, 72)`` radians and ``betas (N, 10)`` (smplx's Rodrigues, as the
    released code's ground truth; see the module docstring)."""
    rotmat = smplx_rodrigues(pose.reshape(-1, 3)).reshape(-1, NUM_JOINTS, 3, 3)
    return smpl_from_rotmat(smpl, betas, rotmat, transl)
