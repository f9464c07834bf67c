"""Python API of the demo: GLoT on a video from a script, without the command line.

:class:`VideoPredictor` loads the networks once and runs the demo pipeline (``lib/demo/pipeline.py``) on any
number of videos; :meth:`VideoPredictor.run` returns one :class:`Person` per track and, given an output
folder, writes what ``demo.py`` writes (results file, exports, overlay video). docs/demo.md's "Python API"
section has a runnable example (tests/test_predictor.py runs it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from lib.core.config import merge_settings
from lib.demo.inference import GLoTPredictor, PersonResult, demo_files
from lib.demo.pipeline import DemoOptions, run_demo


@dataclass
class Person:
    """One tracked person of a video; ``n`` tracked frames, arrays as in the results file (docs/demo.md table).

    ``frame_ids (n,)`` video frames (0-based); ``theta (n, 85)`` = crop camera (3), SMPL pose (72,
    axis-angle, radians), betas (10); ``verts (n, 6890, 3)`` and ``joints3d (n, 49, 3)`` metres, SMPL frame
    (camera-aligned: x right, y down, z away from the camera; add ``trans_cam`` for the camera frame);
    ``joints2d_img (n, 49, 2)`` pixels; ``bboxes (n, 4)`` cx, cy, w, h pixels (scaled crop boxes);
    ``orig_cam (n, 4)`` weak-perspective image camera; ``trans_cam (n, 3)`` metres; ``focal_length``
    pixels and ``principal_point (2,)`` pixels of the pinhole; ``fps`` of the video. World frame
    (``lib/demo/world.py``; levelled, y down along gravity, the camera at the origin): ``cam_R (n, 3, 3)``
    world-to-camera rotations, ``global_orient_world (n, 3)`` axis-angle radians, ``trans_world (n, 3)`` the
    pelvis in metres.
    """

    track_id: int
    frame_ids: np.ndarray
    theta: np.ndarray
    verts: np.ndarray
    joints3d: np.ndarray
    joints2d_img: np.ndarray
    bboxes: np.ndarray
    orig_cam: np.ndarray
    trans_cam: np.ndarray
    focal_length: float
    principal_point: np.ndarray
    fps: float
    cam_R: np.ndarray
    global_orient_world: np.ndarray
    trans_world: np.ndarray

    @property
    def pose(self) -> np.ndarray:
        """SMPL pose ``(n, 72)``, axis-angle radians, 24 joints."""
        return self.theta[:, 3:75]

    @property
    def betas(self) -> np.ndarray:
        """SMPL shape ``(n, 10)``."""
        return self.theta[:, 75:]

    @classmethod
    def from_result(cls, track_id: int, result: PersonResult, fps: float) -> Person:
        """A person from one of the demo's results and the video's frame rate."""
        theta = np.concatenate([result.pred_cam, result.pose, result.betas], axis=1)
        return cls(int(track_id), result.frame_ids, theta, result.verts, result.joints3d, result.joints2d_img,
                   result.bboxes, result.orig_cam, result.trans_cam, float(result.focal_length),
                   result.principal_point, float(fps), result.cam_R, result.global_orient_world,
                   result.trans_world)


class VideoPredictor:
    """GLoT and SPIN loaded once, for running on videos from Python.

    Args:
        cfg: frozen config (``lib.core.config.load_config``); ``DEMO.*`` settings apply as in ``demo.py``.
        checkpoint: GLoT weights; default ``cfg.TRAIN.PRETRAINED``.
        gender: SMPL body of ``verts``/``joints3d`` and of the exports ('neutral', 'male', 'female'):
            ``DEMO.GENDER``.
    """

    def __init__(self, cfg, checkpoint: str | os.PathLike | None = None, gender: str | None = None):
        self.cfg = merge_settings(cfg, {'DEMO.GENDER': gender} if gender is not None else None)
        self.predictor = GLoTPredictor(self.cfg, demo_files(self.cfg, checkpoint))

    def run(self, video: str | os.PathLike, bbox_file: str | os.PathLike | None = None, detector: str | None = None,
            output_folder: str | os.PathLike | None = None, export: tuple[str, ...] = (), render: bool = False
            ) -> list[Person]:
        """The people of ``video`` (a file or a folder of frames), ordered by track id.

        ``bbox_file``/``detector`` as ``demo.py``'s ``--bbox_file``/``--detector`` (``detector``:
        ``DEMO.DETECTOR``; ``export``: ``DEMO.EXPORT``). With ``output_folder``,
        also writes ``<output_folder>/<video name>/glot_output.pkl``, the ``export`` formats ('glb', 'bvh')
        and, with ``render``, the overlay video; without it nothing is written.

        Raises:
            UserError: unreadable video, bad box file, no person found, bad settings (one line each).
        """
        writes = output_folder is not None
        settings = {'DEMO.EXPORT': list(export), **({'DEMO.DETECTOR': detector} if detector is not None else {})}
        options = DemoOptions(bbox_file=None if bbox_file is None else str(bbox_file), save_pkl=writes,
                              render=render)
        result = run_demo(merge_settings(self.cfg, settings), video, output_folder, options,
                          predictor=self.predictor)
        return [Person.from_result(tid, res, result.fps) for tid, res in sorted(result.results.items())]
