"""BVH export: one person's motion on the SMPL skeleton with the person's bone lengths, as Biovision text.

One file per person and per run of consecutive tracked frames (a frame the track skipped ends the file, so
no motion is invented for it): ``bvh/person<k>_frames<first>-<last>.bvh``, ``first``/``last`` the video
frames it covers; ``Frame Time`` is ``1 / fps`` of the video.

- Skeleton: the 24 SMPL joints named as ``lib.utils.joints.SMPL_24`` (``hips`` is the root), each joint's
  ``OFFSET`` its rest bone vector (the person's median shape, T-pose, ``lib/demo/export/motion.py``); the
  root's ``OFFSET`` is zero, so its position channels are the pelvis position itself. Leaves end in an
  ``End Site`` half as long as their own bone, in the same direction (display only).
- Channels: the root has ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``, every other joint
  ``Zrotation Xrotation Yrotation``: Euler angles in degrees with ``R = Rz Rx Ry`` (the rotation about y is
  applied to the bone first), the usual BVH reading. Axes are those of ``DEMO.EXPORT_FRAME``; lengths are
  in ``DEMO.BVH_UNITS`` (centimetres by default, as most BVH files and tools; metres with ``m``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lib.core.io import atomic_write
from lib.demo.export.motion import BodyMotion, frame_runs
from lib.utils.geometry import rotmat_to_euler_zxy

UNITS = {'cm': 100.0, 'm': 1.0}


def continuous_euler(angles: np.ndarray) -> np.ndarray:
    """ZXY Euler angles ``(n, k, 3)`` radians re-expressed without jumps over time: each frame takes whichever
    of the two equivalent triples ``(z, x, y)`` and ``(z + pi, pi - x, y + pi)`` is nearer to the previous
    frame's, then each angle is shifted by whole turns to within pi of the previous one."""
    out = angles.copy()
    for i in range(1, len(out)):
        z, x, y = np.moveaxis(out[i], -1, 0)
        other = np.stack([z + np.pi, np.pi - x, y + np.pi], axis=-1)
        use_other = (_wrap(other - out[i - 1]) ** 2).sum(-1) < (_wrap(out[i] - out[i - 1]) ** 2).sum(-1)
        out[i] = out[i - 1] + _wrap(np.where(use_other[..., None], other, out[i]) - out[i - 1])
    return out


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Angles shifted by whole turns into [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


def bvh_text(motion: BodyMotion, rows: slice, fps: float, scale: float = 100.0) -> str:
    """The BVH file (module docstring) of ``motion``'s frames ``rows``; lengths times ``scale`` (100: cm)."""
    bones = motion.bones * scale
    lines, order = ['HIERARCHY'], []

    def joint(j: int, depth: int) -> None:
        order.append(j)
        pad, root = '\t' * depth, motion.parents[j] < 0
        children = [c for c, parent in enumerate(motion.parents) if parent == j]
        lines.extend([f"{pad}{'ROOT' if root else 'JOINT'} {motion.names[j]}", f'{pad}{{',
                      f'{pad}\tOFFSET ' + _numbers(np.zeros(3) if root else bones[j]),
                      f'{pad}\tCHANNELS ' + ('6 Xposition Yposition Zposition ' if root else '3 ')
                      + 'Zrotation Xrotation Yrotation'])
        for child in children:
            joint(child, depth + 1)
        if not children:
            lines.extend([f'{pad}\tEnd Site', f'{pad}\t{{', f'{pad}\t\tOFFSET ' + _numbers(bones[j] / 2),
                          f'{pad}\t}}'])
        lines.append(f'{pad}}}')

    joint(motion.parents.index(-1), 0)
    euler = rotmat_to_euler_zxy(torch.from_numpy(motion.rotations[rows][:, order])).numpy()
    degrees = np.degrees(continuous_euler(euler)).reshape(len(euler), -1)
    values = np.concatenate([motion.root_position[rows] * scale, degrees], axis=1)
    lines += ['MOTION', f'Frames: {len(values)}', f'Frame Time: {1.0 / fps:.8f}']
    lines += [_numbers(row) for row in values]
    return '\n'.join(lines) + '\n'


def _numbers(values: np.ndarray) -> str:
    return ' '.join(f'{v:.6f}' for v in values)


def write_bvh(folder: str | os.PathLike, motion: BodyMotion, fps: float, units: str = 'cm') -> list[Path]:
    """Write one BVH per run of consecutive frames of ``motion`` into ``folder`` (atomically); returns the
    paths."""
    paths = []
    for rows in frame_runs(motion.frame_ids):
        first, last = motion.frame_ids[rows][[0, -1]]
        path = Path(folder) / f'person{motion.track_id}_frames{first}-{last}.bvh'
        paths.append(atomic_write(path, bvh_text(motion, rows, fps, UNITS[units])))
    return paths

