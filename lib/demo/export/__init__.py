"""Motion export of the demo's results: GLB (skinned, animated SMPL meshes) and BVH (skeleton animation).

:func:`write_exports` is what ``demo.py --export glb,bvh`` runs after the model stage: each person's result
becomes a :class:`~lib.demo.export.motion.BodyMotion` (optionally smoothed, ``DEMO.SMOOTH``) in the
``DEMO.EXPORT_SPACE`` space (:func:`export_space`) and ``DEMO.EXPORT_FRAME`` axes, then ``glb.py`` writes
``<name>_glot.glb`` (all people) and ``bvh.py`` writes ``bvh/person<k>_frames<first>-<last>.bvh``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lib.core.errors import UserError
from lib.vis.camera import focal_length
from lib.demo.export.bvh import write_bvh
from lib.demo.export.glb import write_glb
from lib.demo.export.motion import body_motion
from lib.demo.smoothing import OneEuro
from lib.demo.world import camera_moves


def export_space(setting: str, cam_R: np.ndarray | None) -> str:
    """'world' or 'camera': ``DEMO.EXPORT_SPACE`` ``setting``, 'auto' meaning world when the world-to-camera
    rotations ``cam_R (N, 3, 3)`` turn (:func:`lib.demo.world.camera_moves`); camera without ``cam_R``."""
    if cam_R is None:
        return 'camera'
    if setting == 'auto':
        return 'world' if camera_moves(cam_R) else 'camera'
    return setting


def write_exports(formats, results: dict[int, dict], body, demo_cfg, fps: float, num_frames: int, width: int,
                  height: int, output_dir: str | Path, name: str, cam_R: np.ndarray | None = None) -> list[Path]:
    """Write the motion of every person in ``results`` (demo results with the camera keys) in ``formats``
    (a subset of ``glb``, ``bvh``, checked with the config as ``DEMO.EXPORT``) into ``output_dir``; ``body`` is
    the SMPL layer the results were decoded with; ``cam_R (num_frames, 3, 3)`` the world-to-camera rotations
    of the video's frames (``lib/demo/world.py``; None: camera space only). Returns the paths.

    Raises:
        UserError: no person to export.
    """
    if not results:
        raise UserError("nothing to export: the run has no tracked person (see the tracking log line; try "
                        "a --bbox_file or a lower DEMO.MIN_TRACK_LEN)")
    smoothing = (OneEuro(demo_cfg.SMOOTH_MIN_CUTOFF, demo_cfg.SMOOTH_BETA, demo_cfg.SMOOTH_D_CUTOFF, fps)
                 if demo_cfg.SMOOTH else None)
    world = cam_R if export_space(demo_cfg.EXPORT_SPACE, cam_R) == 'world' else None
    motions = [body_motion(tid, res, body, demo_cfg.EXPORT_FRAME, smoothing, world)
               for tid, res in sorted(results.items())]
    files = []
    if 'glb' in formats:
        files.append(write_glb(Path(output_dir) / f'{name}_glot.glb', motions, fps, num_frames, width, height,
                               focal_length(demo_cfg.FOCAL_LENGTH, width, height), demo_cfg.EXPORT_FRAME, world))
    if 'bvh' in formats:
        for motion in motions:
            files += write_bvh(Path(output_dir) / 'bvh', motion, fps, demo_cfg.BVH_UNITS)
    return files
