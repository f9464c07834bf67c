"""Video input and output with OpenCV only: frames from a video file or an image folder, a live source
(camera, URL, or a file read as if live: :class:`StreamSource`), mp4 writing.

Output videos are H.264 (``avc1``, previewed by browsers) where the installed OpenCV/FFmpeg can encode it;
the PyPI OpenCV wheels cannot, and then they are MPEG-4 Part 2 (``mp4v``), which video players open but
browsers do not preview; this is said once per process (:class:`VideoWriter`).

Frames are ``(H, W, 3)`` uint8 BGR arrays (OpenCV order) everywhere in this module. A video keeps its own
frame rate; an image folder is read in sorted file-name order at :data:`IMAGE_FOLDER_FPS` unless told
otherwise. A video that ends before the frame count in its header (a truncated or partly undecodable file)
is read up to its last decodable frame, with one warning saying how many frames were decoded of how many.
Output videos are written under a temporary name and renamed into place when complete, so a failed run
never leaves a half-written file behind.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import cv2
import numpy as np

from lib.core.errors import UserError
from lib.core.io import atomic_path

logger = logging.getLogger(__name__)

# Frame rate given to image folders unless told otherwise (frames/s).
IMAGE_FOLDER_FPS = 30.0
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a frame source before decoding it all.

    ``num_frames`` is exact for image folders and for videos probed with ``exact=True``; otherwise it is the
    container's frame count, which a few containers report wrongly (the full pass then has the last word).
    ``fps`` is in frames per second.
    """

    path: Path
    num_frames: int
    fps: float
    width: int
    height: int
    is_folder: bool


class FrameReader:
    """Iterable over the frames of a video file or an image folder.

    ``FrameReader(path)`` checks that the source exists and that its first frame decodes; iterating yields
    ``(H, W, 3)`` uint8 BGR frames in order. It can be iterated several times (each pass reopens the source).

    Args:
        fps: frame rate to report instead of the video's own (image folders: :data:`IMAGE_FOLDER_FPS`).
        exact_count: count a video's frames by decoding them instead of trusting the container.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None, exact_count: bool = False):
        self.path = Path(path).expanduser()
        self._warned_short = False
        if not self.path.exists():
            raise UserError(f"input video not found: {self.path}")
        if self.path.is_dir():
            self._files = _image_files(self.path)
            first = _read_image(self._files[0])
            height, width = first.shape[:2]
            self.info = VideoInfo(self.path, len(self._files), float(fps or IMAGE_FOLDER_FPS), width, height,
                                  True)
        else:
            self._files = []
            self.info, announced = _probe_video(self.path, fps, exact_count)
            self._check_length(self.info.num_frames, announced)

    def __len__(self) -> int:
        return self.info.num_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.info.is_folder:
            yield from self._iter_folder()
        else:
            yield from self._iter_video()

    def _iter_folder(self) -> Iterator[np.ndarray]:
        size = (self.info.height, self.info.width)
        for file in self._files:
            frame = _read_image(file)
            if frame.shape[:2] != size:
                raise UserError(f"{file} is {frame.shape[1]}x{frame.shape[0]}, the first image of "
                                f"{self.path} is {size[1]}x{size[0]}; all frames must have one size")
            yield frame

    def _iter_video(self) -> Iterator[np.ndarray]:
        capture = _open_capture(self.path)
        decoded = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                decoded += 1
                yield frame
        finally:
            capture.release()
        self._check_length(decoded, self.info.num_frames)

    def _check_length(self, decoded: int, announced: int) -> None:
        """Warn once when fewer frames decode than the header announces."""
        if decoded < announced and not self._warned_short:
            self._warned_short = True
            logger.warning(f"{self.path}: decoded {decoded} of the {announced} frames its header announces "
                           f"(truncated or partly undecodable file); continuing with the {decoded} decoded frames")


class StreamSource:
    """Frames ``(H, W, 3)`` uint8 BGR from a camera index (``'0'``), a URL OpenCV can open, or a video file,
    read once, in order, as they come. ``path`` is the file (None for cameras and URLs); ``fps`` the
    source's rate (29.97 when it reports none); ``capture`` the open ``cv2.VideoCapture`` and ``first`` the
    frame read to check it (for a reader of its own: :class:`lib.demo.live.LatestFrame`). Iterating to the end,
    or :meth:`close`, releases it."""

    def __init__(self, source: str):
        self.source = str(source)
        self.path: Path | None = None
        if self.source.isdigit():
            target, self.name = int(self.source), f'camera{self.source}'
        elif '://' in self.source:
            target = self.source
            self.name = re.sub(r'[^A-Za-z0-9_.-]+', '_', Path(urlparse(self.source).path).stem) or 'stream'
        else:
            self.path = Path(self.source).expanduser()
            if not self.path.is_file():
                raise UserError(f"stream source not found: {self.path} (give a camera index, a URL or a video file)")
            target, self.name = str(self.path), self.path.stem
        self.capture = cv2.VideoCapture(target)
        ok, self.first = self.capture.read() if self.capture.isOpened() else (False, None)
        if not ok or self.first is None:
            self.capture.release()
            raise UserError(f"cannot read a frame from stream {self.source} (no such camera, an unreachable URL, "
                            f"or a file OpenCV cannot decode)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else IMAGE_FOLDER_FPS
        self.height, self.width = self.first.shape[:2]

    def __iter__(self):
        try:
            frame = self.first
            while frame is not None:
                yield frame
                ok, frame = self.capture.read()
                frame = frame if ok else None
        finally:
            self.close()

    def close(self) -> None:
        self.capture.release()


def count_frames(path: Path) -> int:
    """Exact number of frames of a video file, by decoding it (containers may report a wrong count)."""
    capture = _open_capture(path)
    try:
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def _probe_video(path: Path, fps: float | None, exact_count: bool) -> tuple[VideoInfo, int]:
    """The video's info and the frame count its header announces (0 if none)."""
    capture = _open_capture(path)
    try:
        ok, frame = capture.read()
        if not ok or frame is None:
            raise UserError(f"{path} has no decodable frame (empty, truncated or not a video)")
        reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        video_fps = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    num_frames = count_frames(path) if exact_count or reported <= 0 else reported
    if not video_fps or not np.isfinite(video_fps) or video_fps <= 0:
        video_fps = IMAGE_FOLDER_FPS
    height, width = frame.shape[:2]
    return VideoInfo(path, num_frames, float(fps or video_fps), width, height, False), max(reported, 0)


def _open_capture(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise UserError(f"cannot open {path} as a video (unreadable file or a codec OpenCV lacks)")
    return capture


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"image folder {folder} holds no {'/'.join(IMAGE_EXTENSIONS)} files")
    return files


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path}")
    return image


# mp4 codecs in order of preference: H.264, else MPEG-4 Part 2 (every OpenCV build with FFmpeg writes it).
VIDEO_CODECS = ('avc1', 'mp4v')
NO_H264_NOTE = ("OpenCV could not open an H.264 encoder here (the PyPI wheels have none), so videos are written "
                "as MPEG-4 Part 2 (mp4v): video players open them, browsers do not preview them (convert with: "
                "ffmpeg -i IN.mp4 -c:v libx264 -pix_fmt yuv420p OUT.mp4)")
_unusable_codecs: set[str] = set()     # codecs this process failed to open once, not tried again


class VideoWriter:
    """mp4 writer (OpenCV; the first codec of :data:`VIDEO_CODECS` it can open) that renames the finished
    file into place.

    Use as a context manager: frames go to a temporary file next to ``path`` (:func:`lib.core.io.atomic_path`);
    on a clean exit with at least one frame it is renamed to ``path``, otherwise it is deleted. Frames are ``(H, W, 3)`` uint8 BGR of
    the size given here.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.fps = float(fps)
        self.count = 0
        self._target = atomic_path(self.path)
        self._tmp: Path | None = None
        self._writer: cv2.VideoWriter | None = None
        self.codec: str | None = None       # the codec in use, once entered

    def __enter__(self) -> 'VideoWriter':
        self._tmp = self._target.__enter__()
        for codec in (c for c in VIDEO_CODECS if c not in _unusable_codecs):
            with _quiet_stderr():       # FFmpeg prints errors for each encoder it cannot open
                self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*codec), self.fps, self.size)
            if self._writer.isOpened():
                self.codec = codec
                return self
            self._writer.release()
            _unusable_codecs.add(codec)
            if codec == VIDEO_CODECS[0]:
                logger.info('note: %s', NO_H264_NOTE)
        self._target.__exit__(UserError, None, None)
        raise UserError(f"OpenCV cannot write mp4 video {self._tmp} (none of the codecs {', '.join(VIDEO_CODECS)} "
                        f"in this OpenCV build)")

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame of the writer's size."""
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size:
            raise ValueError(f"frame is {frame_bgr.shape[1]}x{frame_bgr.shape[0]}, writer expects "
                             f"{self.size[0]}x{self.size[1]}")
        self._writer.write(np.ascontiguousarray(frame_bgr, dtype=np.uint8))
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.release()
        if exc_type is None and self.count == 0:
            exc_type = exc = _NoFrames()
        self._target.__exit__(exc_type, exc, tb)  # renames on success, removes the file otherwise


class _NoFrames(Exception):
    """A video writer closed without frames: nothing is written."""


@contextmanager
def _quiet_stderr():
    """Silence the process's file descriptor 2 (native libraries' messages) while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
