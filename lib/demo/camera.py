"""Camera-space translation: each frame's weak-perspective image camera turned into a pinhole camera.

Image coordinates (pixels) are those of ``orig_cam`` and the boxes: ``u`` from the left edge, ``v`` from the
top edge, the image centre at ``(W/2, H/2)`` (pixel ``(row i, column j)`` covers ``[j, j+1] x [i, i+1]``).

The official demo keeps ``orig_cam = (sx, sy, tx, ty)`` per frame: an SMPL-frame point ``(X, Y, Z)`` (metres;
x right, y down, z away from the camera) lands at ``u = (1 + sx (X + tx)) W/2``, ``v = (1 + sy (Y + ty)) H/2``.
A pinhole camera of focal length ``f`` pixels and principal point ``(W/2, H/2)`` maps the camera-frame point
``P = (X, Y, Z) + trans_cam`` to ``u = f P_x / P_z + W/2``, ``v = f P_y / P_z + H/2``. The two agree for
every point at depth ``P_z = d = 2 f / (sx W)`` when ``trans_cam`` has ``x = tx``, ``y = ty``; the depth is
the same vertically, ``2 f / (sy H)``, because ``sx W = sy H`` is the crop scale times the box size (also for
non-square images). The SMPL root joint (pelvis, joint 0, at SMPL-frame depth ``Z_root``) is put at that
depth::

    trans_cam = (tx, ty, 2 f / (sx W) - Z_root)          metres, added to the SMPL vertices and joints

so the root lands exactly where ``orig_cam`` puts it, and a point ``dz`` metres nearer or farther than the
root is scaled about the principal point by ``d / (d + dz)`` (a body +-0.15 m deep at 4 m: within 4 %).

Focal length (:func:`lib.vis.camera.focal_length`): ``DEMO.FOCAL_LENGTH`` pixels, or by default (0) the image
diagonal ``sqrt(W^2 + H^2)``, about 53 degrees of diagonal field of view, the usual guess for images of
unknown intrinsics (CLIFF, BEDLAM, WHAM). It sets the depth (``d`` grows with ``f``) and the strength of
perspective, not where the root lands.
"""
from __future__ import annotations

import numpy as np

from lib.utils.joints import SPIN_SMPL_ROOT
from lib.vis.camera import focal_length, principal_point, project_to_image

# Per-person result keys this module adds beside the official ones (lib/demo/pipeline.py RESULT_KEYS).
CAMERA_KEYS = ('trans_cam', 'focal_length', 'principal_point', 'joints2d_img')
# The keys of a person's results that hold one value for the whole track rather than one row per frame.
PER_PERSON_KEYS = ('focal_length', 'principal_point')


def trans_cam_from_orig_cam(orig_cam: np.ndarray, root: np.ndarray, focal: float, width: int) -> np.ndarray:
    """Camera-space translation ``(n, 3)`` metres from ``orig_cam (n, 4)`` and the SMPL-frame root joint
    ``root (n, 3)`` metres: ``(tx, ty, 2 f / (sx W) - root_z)`` (module docstring). A non-positive ``sx``
    (a camera the model should not predict) gives a depth at or behind the camera, which projects the same
    way as ``orig_cam`` does, mirrored."""
    orig_cam = np.asarray(orig_cam, dtype=np.float64)
    sx = orig_cam[:, 0]
    with np.errstate(divide='ignore'):
        depth = 2.0 * focal / (sx * width)
    return np.stack([orig_cam[:, 2], orig_cam[:, 3], depth - np.asarray(root, dtype=np.float64)[:, 2]], axis=1)


def camera_outputs(joints3d: np.ndarray, orig_cam: np.ndarray, width: int, height: int,
                   focal_setting: float) -> dict:
    """The :data:`CAMERA_KEYS` of one person from its ``joints3d (n, 49, 3)`` (SPIN-49, SMPL frame, metres)
    and ``orig_cam (n, 4)``: ``trans_cam (n, 3)`` metres, ``focal_length`` pixels, ``principal_point (2,)``
    pixels, and ``joints2d_img (n, 49, 2)``, the 49 joints projected into the full image in pixels."""
    focal, center = focal_length(focal_setting, width, height), principal_point(width, height)
    trans = trans_cam_from_orig_cam(orig_cam, joints3d[:, SPIN_SMPL_ROOT], focal, width)
    return {
        'trans_cam': trans.astype(np.float32),
        'focal_length': focal,
        'principal_point': center.astype(np.float32),
        'joints2d_img': project_to_image(joints3d, trans, focal, center).astype(np.float32),
    }
