"""Rotation conversions and the weak-perspective camera, as pure tensor functions.

Conventions:
- Rotation matrices act on column vectors: ``x' = R @ x``. Shapes end in ``(3, 3)``.
- Axis-angle vectors are ``(..., 3)`` in radians; quaternions are ``(..., 4)`` as ``(w, x, y, z)``.
- 6D rotations use SPIN's *interleaved* layout: the 6-vector is viewed as a 3x2 matrix, so the first
  column is elements (0, 2, 4) and the second (1, 3, 5).
- The weak-perspective camera ``(s, tx, ty)`` of a 224x224 crop (SPIN/VIBE/GLoT): a perspective camera with
  focal length 5000 px, identity rotation and translation ``(tx, ty, 2 * 5000 / (224 * s))``; projected
  points are divided by 112, so the crop maps to [-1, 1].

The numerics (epsilons, the quaternion branch choice) follow the official release so that ``theta`` and the
losses built on these functions match it to float precision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_LENGTH = 5000.0
CROP_SIZE = 224.0


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D rotations (SPIN interleaved layout) to rotation matrices by Gram-Schmidt.

    Args:
        x: ``(..., 6)`` or any tensor whose size is a multiple of 6.
    Returns:
        ``(N, 3, 3)`` with ``N = x.numel() // 6``; columns are b1, b2, b3 = b1 x b2.
    """
    x = x.reshape(-1, 3, 2)
    a1, a2 = x[:, :, 0], x[:, :, 1]
    b1 = F.normalize(a1, dim=1, eps=1e-6)
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=1, keepdim=True) * b1, dim=-1, eps=1e-6)
    b3 = torch.cross(b1, b2, dim=1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_rot6d(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to 6D ``(..., 6)`` in the interleaved layout (first two columns)."""
    return rotmat[..., :, :2].reshape(*rotmat.shape[:-2], 6)


def quat_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(N, 4)`` as (w, x, y, z), normalised first, to rotation matrices ``(N, 3, 3)``."""
    q = quat / quat.norm(p=2, dim=1, keepdim=True)
    w, x, y, z = q.unbind(dim=1)
    w2, x2, y2, z2 = w * w, x * x, y * y, z * z
    wx, wy, wz, xy, xz, yz = w * x, w * y, w * z, x * y, x * z, y * z
    rows = [w2 + x2 - y2 - z2, 2 * xy - 2 * wz, 2 * wy + 2 * xz,
            2 * wz + 2 * xy, w2 - x2 + y2 - z2, 2 * yz - 2 * wx,
            2 * xz - 2 * wy, 2 * wx + 2 * yz, w2 - x2 - y2 + z2]
    return torch.stack(rows, dim=1).view(-1, 3, 3)


def spin_rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(N, 3)`` to rotation matrices ``(N, 3, 3)`` through a unit quaternion (SPIN's
    ``batch_rodrigues``, used by the released loss; smplx's differently computed formula is
    :func:`lib.models.params.smpl_from_axis_angle`'s).

    ``1e-8`` is added to every component before taking the norm (as SPIN does), so a zero vector gives the
    identity.
    """
    angle = torch.norm(axis_angle + 1e-8, p=2, dim=1).unsqueeze(-1)
    axis = axis_angle / angle
    half = angle * 0.5
    quat = torch.cat([torch.cos(half), torch.sin(half) * axis], dim=1)
    return quat_to_rotmat(quat)


def rotmat_to_quat(rotmat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rotation matrices ``(N, 3, 3)`` to quaternions ``(N, 4)`` (w, x, y, z).

    Uses the four-case formula of the official code (after kornia): the case is chosen from the diagonal of
    the transposed matrix, which keeps the divisor away from zero.
    """
    m = rotmat.transpose(1, 2)
    m00, m01, m02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    m10, m11, m12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    m20, m21, m22 = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]

    t0 = 1 + m00 - m11 - m22
    t1 = 1 - m00 + m11 - m22
    t2 = 1 - m00 - m11 + m22
    t3 = 1 + m00 + m11 + m22
    q0 = torch.stack([m12 - m21, t0, m01 + m10, m20 + m02], -1)
    q1 = torch.stack([m20 - m02, m01 + m10, t1, m12 + m21], -1)
    q2 = torch.stack([m01 - m10, m20 + m02, m12 + m21, t2], -1)
    q3 = torch.stack([t3, m12 - m21, m20 - m02, m01 - m10], -1)

    d2 = m22 < eps
    d0_d1 = m00 > m11
    d0_nd1 = m00 < -m11
    c0 = (d2 & d0_d1).unsqueeze(-1).to(rotmat.dtype)
    c1 = (d2 & ~d0_d1).unsqueeze(-1).to(rotmat.dtype)
    c2 = (~d2 & d0_nd1).unsqueeze(-1).to(rotmat.dtype)
    c3 = (~d2 & ~d0_nd1).unsqueeze(-1).to(rotmat.dtype)

    q = q0 * c0 + q1 * c1 + q2 * c2 + q3 * c3
    t = t0.unsqueeze(-1) * c0 + t1.unsqueeze(-1) * c1 + t2.unsqueeze(-1) * c2 + t3.unsqueeze(-1) * c3
    return q / torch.sqrt(t) * 0.5


def quat_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(..., 4)`` (w, x, y, z) to axis-angle ``(..., 3)``; angle in (-pi, pi]."""
    xyz = quat[..., 1:]
    sin_sq = (xyz * xyz).sum(dim=-1)
    sin_theta = torch.sqrt(sin_sq)
    cos_theta = quat[..., 0]
    two_theta = 2.0 * torch.where(cos_theta < 0.0, torch.atan2(-sin_theta, -cos_theta),
                                  torch.atan2(sin_theta, cos_theta))
    k = torch.where(sin_sq > 0.0, two_theta / sin_theta, 2.0 * torch.ones_like(sin_theta))
    return xyz * k.unsqueeze(-1)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)``; NaNs (degenerate input) become 0."""
    batch_shape = rotmat.shape[:-2]
    aa = quat_to_axis_angle(rotmat_to_quat(rotmat.reshape(-1, 3, 3)))
    aa = torch.where(torch.isnan(aa), torch.zeros_like(aa), aa)
    return aa.reshape(*batch_shape, 3)


def axis_angle_to_rotmat(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (:func:`spin_rodrigues` on any batch shape)."""
    return spin_rodrigues(axis_angle.reshape(-1, 3)).reshape(*axis_angle.shape[:-1], 3, 3)


def rotmat_to_euler_zxy(rotmat: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to Euler angles ``(..., 3)`` = ``(z, x, y)`` radians with
    ``R = Rz(z) Rx(x) Ry(y)`` (BVH's ``Zrotation Xrotation Yrotation``); ``x`` in [-pi/2, pi/2].

    At gimbal lock (``cos x`` below ``eps``) only ``z + y`` (``x = pi/2``) or ``z - y`` (``x = -pi/2``) is
    defined: ``y`` is set to 0.
    """
    cos_x = torch.sqrt(rotmat[..., 2, 0] ** 2 + rotmat[..., 2, 2] ** 2)
    x = torch.atan2(rotmat[..., 2, 1], cos_x)
    locked = cos_x < eps
    z = torch.where(locked, torch.atan2(rotmat[..., 1, 0], rotmat[..., 0, 0]),
                    torch.atan2(-rotmat[..., 0, 1], rotmat[..., 1, 1]))
    y = torch.where(locked, torch.zeros_like(x), torch.atan2(-rotmat[..., 2, 0], rotmat[..., 2, 2]))
    return torch.stack([z, x, y], dim=-1)


def weak_perspective_translation(cam: torch.Tensor, focal_length: float = FOCAL_LENGTH,
                                 crop_size: float = CROP_SIZE) -> torch.Tensor:
    """Camera translation ``(..., 3)`` in metres equivalent to weak-perspective ``cam = (s, tx, ty)``."""
    tz = 2 * focal_length / (crop_size * cam[..., 0] + 1e-9)
    return torch.stack([cam[..., 1], cam[..., 2], tz], dim=-1)


def perspective_projection(points: torch.Tensor, translation: torch.Tensor,
                           focal_length: float = FOCAL_LENGTH) -> torch.Tensor:
    """Pinhole projection with identity rotation and principal point (0, 0).

    Args:
        points: ``(B, J, 3)`` in metres. translation: ``(B, 3)``.
    Returns:
        ``(B, J, 2)`` in pixels relative to the principal point.
    """
    p = points + translation.unsqueeze(1)
    return focal_length * p[..., :2] / p[..., 2:3]


def projection(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Project 3D joints ``(B, J, 3)`` with weak-perspective cameras ``(B, 3)`` into the 224 crop.

    Returns:
        ``(B, J, 2)`` normalised so the crop spans [-1, 1] (pixels / 112).
    """
    return perspective_projection(points, weak_perspective_translation(cam)) / (CROP_SIZE / 2.0)


def convert_crop_cam_to_orig_img(cam: torch.Tensor, bbox: torch.Tensor, img_width: float,
                                 img_height: float) -> torch.Tensor:
    """Crop camera ``(N, 3)`` to a camera of the whole image ``(N, 4) = (sx, sy, tx, ty)``.

    ``bbox`` is ``(N, 4) = (cx, cy, w, h)`` in pixels of the square box the crop was taken from (already
    scaled, e.g. by 1.2). Matches the official demo's ``convert_crop_cam_to_orig_img``, which reads the size
    from column 2.
    """
    cx, cy, h = bbox[:, 0], bbox[:, 1], bbox[:, 2]
    hw, hh = img_width / 2.0, img_height / 2.0
    sx = cam[:, 0] * (1.0 / (img_width / h))
    sy = cam[:, 0] * (1.0 / (img_height / h))
    tx = ((cx - hw) / hw / sx) + cam[:, 1]
    ty = ((cy - hh) / hh / sy) + cam[:, 2]
    return torch.stack([sx, sy, tx, ty], dim=-1)
