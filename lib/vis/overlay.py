"""People drawn into video frames: the one overlay writer of the demo (offline and online) and of
``evaluate.py --render``.

:class:`OverlayStyle` holds every drawing choice: the camera (``'weak'``: each person's weak-perspective
image camera ``orig_cam``, as the official demo; ``'perspective'``: its camera-space ``trans_cam`` and the
pinhole of :mod:`lib.vis.camera`), the focal length setting, the rasteriser, the mesh opacity, wireframe, a
side view next to each frame and a plain (black) background. :class:`OverlayWriter` draws a frame's
:class:`Figure` s with the camera its style names and appends the image to an mp4 (written under a temporary
name and renamed into place when complete, :class:`lib.vis.video.VideoWriter`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from lib.vis.camera import focal_length
from lib.vis.renderer import Mesh, MeshRenderer
from lib.vis.video import VideoWriter

CAMERAS = ('weak', 'perspective')


@dataclass(frozen=True)
class OverlayStyle:
    """How people are drawn: ``camera`` 'weak' or 'perspective'; ``focal_length`` pixels of the pinhole (0 =
    the image diagonal; ``DEMO.FOCAL_LENGTH``); ``mode`` 'zbuffer' or 'painter'; ``alpha`` mesh opacity in
    [0, 1]; ``wireframe`` visible edges only; ``sideview`` the meshes turned 270 degrees about the vertical
    axis on black, right of each frame (output twice as wide); ``plain`` black instead of the frame."""

    camera: str = 'weak'
    focal_length: float = 0.0
    mode: str = 'zbuffer'
    alpha: float = 1.0
    wireframe: bool = False
    sideview: bool = False
    plain: bool = False

    def __post_init__(self):
        if self.camera not in CAMERAS:
            raise ValueError(f"overlay camera must be one of {', '.join(CAMERAS)}, got {self.camera!r}")


@dataclass
class Figure:
    """One person in one frame: ``verts (6890, 3)`` SMPL frame metres, its image camera ``orig_cam (4,)``,
    its camera-space translation ``trans_cam (3,)`` metres (needed by the perspective camera only) and an
    RGB ``color`` in [0, 1]."""

    verts: np.ndarray
    orig_cam: np.ndarray
    trans_cam: np.ndarray | None = None
    color: tuple[float, float, float] = (1.0, 1.0, 0.9)


class OverlayWriter:
    """Figures drawn over ``width x height`` frames in ``style``, written to the mp4 ``path`` at ``fps``;
    ``size`` (width, height) resizes every image (area interpolation), by default the drawn size. Use as a
    context manager, like :class:`lib.vis.video.VideoWriter`."""

    def __init__(self, path: str | os.PathLike, faces: np.ndarray, width: int, height: int, fps: float,
                 style: OverlayStyle = OverlayStyle(), size: tuple[int, int] | None = None):
        self.style = style
        focal = focal_length(style.focal_length, width, height) if style.camera == 'perspective' else None
        self.renderer = MeshRenderer(faces, width, height, style.mode, style.alpha, style.wireframe, focal)
        self.size = size or (width * (2 if style.sideview else 1), height)
        self.video = VideoWriter(path, fps, self.size)
        self.last: np.ndarray | None = None

    def __enter__(self) -> 'OverlayWriter':
        self.video.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.video.__exit__(exc_type, exc, tb)

    def draw(self, frame: np.ndarray, figures: list[Figure]) -> np.ndarray:
        """``frame (H, W, 3)`` uint8 BGR with ``figures`` drawn in the writer's style (a new array; twice as
        wide with the side view)."""
        perspective = self.style.camera == 'perspective'
        meshes = [Mesh(f.verts, f.trans_cam if perspective else f.orig_cam, f.color) for f in figures]
        image = self.renderer.render(np.zeros_like(frame) if self.style.plain else frame, meshes)
        if self.style.sideview:
            image = np.concatenate([image, self.renderer.render(np.zeros_like(frame), meshes, side_view=True)],
                                   axis=1)
        return image

    def write(self, frame: np.ndarray, figures: list[Figure]) -> None:
        """Draw ``figures`` over ``frame`` and append the image to the video."""
        image = self.draw(frame, figures)
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.video.write(image)
        self.last = image

    def repeat_last(self, count: int) -> None:
        """Append the last written image ``count`` more times (nothing before the first image), so that frames
        of the source that were not drawn keep the video's timing."""
        for _ in range(count if self.last is not None else 0):
            self.video.write(self.last)
