"""One tracked person's motion ready for export: rest body, skeleton, per-frame joint rotations and root positions.

Export space (``DEMO.EXPORT_SPACE``): the camera frame, or the levelled world frame of ``lib/demo/world.py``
(the root's rotation and position turned by ``cam_R^T`` of each frame; the camera stays at the origin and
turns). Export frame (``DEMO.EXPORT_FRAME``), the axes of either space, right-handed, in metres:

- ``'yup'`` (default): x to the image's right, y up, z towards the viewer; the person is in front of the
  camera at negative z, and the camera looks down -z. This is the demo's camera frame turned 180 degrees
  about x, and the frame glTF prescribes and Blender's importers expect. (World space: the same axes of the
  levelled world, whose y is exactly up.)
- ``'camera'``: the demo's camera frame unchanged (x right, y down, z away from the camera, as OpenCV), or
  the world frame's own axes (y down).

Rest body: SMPL's T-pose in its own canonical frame (y up, facing +z) with the person's shape baked in: the
median ``betas`` over the track (one body per person; the estimate's small frame-to-frame shape changes are
dropped), ``rest_verts = v_template + shapedirs @ betas`` and ``rest_joints = J_regressor @ rest_verts``.
Per frame: the local rotations of the 24 SMPL joints from ``pose``, the root's turned into the export frame
(``F @ R_0``, ``F`` the frame change; ``F cam_R^T R_0`` in world space), and the root joint's position
``F (rest_joints[0] + trans_cam)`` (``F cam_R^T (rest_joints[0] + trans_cam)`` in world space).
Skinning the rest body with these (linear blend skinning, no pose correctives) gives exactly SMPL without its
pose blend shapes, with ``transl = trans_cam``, in the export frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.demo.smoothing import OneEuro
from lib.utils.geometry import axis_angle_to_rotmat
from lib.utils.joints import SMPL_24

# Rotation from the demo's camera frame to each export frame.
EXPORT_FRAMES = {'yup': np.diag([1.0, -1.0, -1.0]), 'camera': np.eye(3)}


@dataclass
class BodyMotion:
    """A person's exportable motion (module docstring); lengths in metres, frames of the video.

    ``frame_ids (n,)`` video frames, ``betas (10,)``, ``rest_verts (V, 3)``, ``rest_joints (24, 3)``,
    ``rotations (n, 24, 3, 3)`` local joint rotations (the root's in the export frame), ``root_position
    (n, 3)`` export frame, ``faces (F, 3)``, ``weights (V, 24)`` skinning weights, ``parents`` per joint (-1
    for the root), ``names`` the SMPL joint names of ``lib.utils.joints.SMPL_24``.
    """

    track_id: int
    frame_ids: np.ndarray
    betas: np.ndarray
    rest_verts: np.ndarray
    rest_joints: np.ndarray
    rotations: np.ndarray
    root_position: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    parents: tuple[int, ...]
    names: tuple[str, ...] = SMPL_24

    @property
    def bones(self) -> np.ndarray:
        """Rest bone vectors ``(24, 3)``: each joint's rest position minus its parent's (the root's own)."""
        parent_joints = np.array([self.rest_joints[p] if p >= 0 else np.zeros(3) for p in self.parents])
        return self.rest_joints - parent_joints


def frame_runs(frame_ids: np.ndarray) -> list[slice]:
    """Rows of each run of consecutive video frames in ``frame_ids (n,)`` (a skipped frame starts a new run)."""
    breaks = np.nonzero(np.diff(frame_ids) != 1)[0] + 1
    edges = [0, *breaks.tolist(), len(frame_ids)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def body_motion(track_id: int, result: dict, body, frame: str = 'yup', smoothing: OneEuro | None = None,
                cam_R: np.ndarray | None = None) -> BodyMotion:
    """The :class:`BodyMotion` of one person from its demo result (``pose (n, 72)``, ``betas (n, 10)``,
    ``trans_cam (n, 3)``, ``frame_ids (n,)``) and the SMPL ``body`` it was decoded with; ``smoothing``
    filters the rotations and translation of each run of consecutive frames (in the export space). With
    ``cam_R (N, 3, 3)``, the world-to-camera rotations of the video's frames, the motion is in world space."""
    flip = EXPORT_FRAMES[frame]
    frame_ids = np.asarray(result['frame_ids'], dtype=np.int64)
    betas = np.median(np.asarray(result['betas'], dtype=np.float64), axis=0)
    rest_verts = _numpy(body.v_template) + _numpy(body.shapedirs) @ betas
    rest_joints = _numpy(body.J_regressor) @ rest_verts
    rotations = axis_angle_to_rotmat(torch.as_tensor(result['pose'], dtype=torch.float64).reshape(-1, 24, 3)).numpy()
    trans = np.asarray(result['trans_cam'], dtype=np.float64).copy()
    if cam_R is not None:                       # world space: x_world = cam_R^T x_cam
        to_world = np.swapaxes(np.asarray(cam_R, dtype=np.float64)[frame_ids], 1, 2)
        rotations[:, 0] = to_world @ rotations[:, 0]
        trans = np.einsum('nij,nj->ni', to_world, rest_joints[0] + trans) - rest_joints[0]
    if smoothing is not None:
        for rows in frame_runs(frame_ids):
            rotations[rows] = smoothing.rotations(rotations[rows])
            trans[rows] = smoothing.vectors(trans[rows, None])[:, 0]
    rotations[:, 0] = flip @ rotations[:, 0]
    return BodyMotion(int(track_id), frame_ids, betas, rest_verts, rest_joints, rotations,
                      (rest_joints[0] + trans) @ flip.T, np.asarray(body.faces, dtype=np.int64),
                      _numpy(body.lbs_weights), tuple(int(p) for p in body.parents.tolist()))


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()
