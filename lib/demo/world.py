"""The world frame: the camera's rotation from the video's background, and the people's motion in a fixed,
upright frame.

**Camera rotation.** The camera is modelled as turning about its own centre (pan, tilt, roll; no
translation). A static background point seen along the unit bearing ``b_0`` in the first frame is seen along
``b_t = R_t b_0`` in frame ``t``, with ``b = normalise(K^-1 (u, v, 1))`` and ``K`` the demo's pinhole
(``DEMO.FOCAL_LENGTH``, principal point at the image centre; ``lib/demo/camera.py``). So the image moves by
the homography ``K R K^-1``, and the rotation between two frames is the one that best turns one set of
bearings into the other: ``R = argmin sum_i |R a_i - b_i|^2``, solved in closed form (Kabsch:
``H = sum_i a_i b_i^T = U S V^T``, ``R = V diag(1, 1, det(V U^T)) U^T``).

:class:`CameraRotationTracker` follows that, frame by frame and causally:

1. Frames are turned grey and shrunk to ``DEMO.CAMERA_MOTION_MAX_SIDE`` pixels on their longest side (the
   focal length shrinks with them). The people's boxes, enlarged by ``BOX_MARGIN``, are masked out.
2. Corners (Shi-Tomasi, ``cv2.goodFeaturesToTrack``) are found on a **key frame** and followed frame to
   frame by pyramidal Lucas-Kanade flow, keeping a track only when flowing it back lands within
   ``FB_ERROR_PX`` of where it started and it stays off the people.
3. The rotation from the key frame to the current one comes from the key-frame and current bearings of the
   surviving tracks: RANSAC over pairs of tracks (two bearings fix a rotation; ``RANSAC_ITERATIONS`` fixed
   random draws), inliers within ``INLIER_PX`` pixels, then Kabsch on all inliers (twice). Outlier tracks
   (people the boxes missed, moving objects) are dropped.
4. ``R_t = R_(t <- key) R_key``: increments are chained only when the key frame changes, which happens when
   fewer than ``REKEY_FRACTION`` of the key frame's tracks survive. Between key frames there is no
   accumulation, so a static camera gives the identity within the flow noise, and drift grows with the
   number of key frames, not of frames.
5. Fewer than ``DEMO.CAMERA_MOTION_MIN_TRACKS`` inlier tracks (a textureless or fully occluded background)
   fails the frame: its rotation is held at the last good one and the tracker falls back on the last good
   frame as its anchor, flowing that frame's corners directly into each new frame until it finds the
   background again; the failed frames between are then interpolated (slerp). Failed frames are named in one
   warning line (:func:`report_failures`).

**Online mode** (:class:`OnlineWorld`): the same tracker, causally; a failed frame keeps the last good
rotation (nothing is interpolated, the frames after it are not known yet), and the levelling is the running
estimate from the torsos emitted so far, frozen after ``ONLINE_UP_SAMPLES`` person-frames (logged): rows
emitted before that carry the estimate of their time, each row's keys consistent with its own ``cam_R``.

**World frame.** The rotation is known relative to the first frame; the world frame is that frame turned so
that its y axis points along gravity (down), with the least rotation: x right and z forward as the first
frame's camera, levelled. Gravity comes from the people: the torso direction (pelvis to neck, SPIN joints 8
and 1) of every person in every frame, carried into the first frame's camera frame, averaged as unit vectors.
When they do not agree (mean resultant length below ``UP_MIN_AGREEMENT``) or point more than ``UP_MAX_TILT_DEG``
from the first frame's image-up, the first frame's own axes are kept (a warning says so).

World-frame keys of each person (``WORLD_KEYS``; row ``i`` is video frame ``frame_ids[i]``):

- ``cam_R (n, 3, 3)``: world-to-camera rotation, ``x_cam = cam_R x_world`` (camera frame: x right, y down,
  z away from the camera, centred on the camera; the camera stays at the world origin).
- ``global_orient_world (n, 3)``: the SMPL global orientation (axis-angle, radians) in the world frame,
  ``cam_R^T R(pose[:3])``.
- ``trans_world (n, 3)``: the pelvis in the world frame, metres, ``cam_R^T (joints3d[:, 8] + trans_cam)``;
  world vertices are ``(verts - joints3d[:, 8]) @ cam_R + trans_world``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lib.vis.camera import focal_length
from lib.utils.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from lib.utils.joints import SPIN_SMPL_ROOT

if TYPE_CHECKING:
    from lib.demo.inference import PersonResult

logger = logging.getLogger(__name__)

# Per-person result keys this module adds after lib/demo/camera.py's CAMERA_KEYS.
WORLD_KEYS = ('cam_R', 'global_orient_world', 'trans_world')
SPIN_NECK = 1                 # 'OP Neck' = SMPL joint 12 (lib/utils/joints.py SPIN_49)
MAX_CORNERS = 300             # corners found on a key frame
CORNER_QUALITY = 0.01         # Shi-Tomasi: a corner's strength relative to the frame's strongest
MIN_CORNER_STRENGTH = 2e-4    # ... and its smallest absolute strength (cv2.cornerMinEigenVal, block 5)
CORNER_SPACING = 8            # pixels between corners (of the shrunk frame)
BOX_MARGIN = 0.1              # people's boxes enlarged by this fraction of their size on every side
FB_ERROR_PX = 1.0             # forward-backward flow error of a kept track (pixels of the shrunk frame)
LK_WINDOW, LK_LEVELS = 21, 4  # Lucas-Kanade window (pixels) and pyramid levels
INLIER_PX = 1.5               # RANSAC inlier threshold (pixels of the shrunk frame)
RANSAC_ITERATIONS = 64
REKEY_FRACTION = 0.5          # new key frame when fewer of the key frame's tracks survive
UP_MIN_AGREEMENT = 0.9        # mean resultant length of the torso directions needed to level the world
UP_MAX_TILT_DEG = 45.0        # largest accepted angle between the torsos' up and the first frame's image-up
ONLINE_UP_SAMPLES = 50        # online mode: person-frames of torsos after which the levelling is frozen
MOVING_CAMERA_DEG = 1.0       # the camera moves when it turns farther than this from the first frame


def kabsch(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rotations ``(..., 3, 3)`` minimising ``sum_i w_i |R a_i - b_i|^2`` for point sets ``a, b (..., n, 3)``
    (module docstring); ``weights (..., n)`` default 1."""
    w = np.ones(a.shape[:-1]) if weights is None else weights
    h = np.einsum('...n,...ni,...nj->...ij', w, a, b)       # H_ij = sum_n w_n a_ni b_nj
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.broadcast_to(np.eye(3), h.shape).copy()
    fix[..., 2, 2] = d
    return np.swapaxes(vt, -1, -2) @ fix @ np.swapaxes(u, -1, -2)


def bearings(points: np.ndarray, focal: float, center: np.ndarray) -> np.ndarray:
    """Unit bearings ``(n, 3)`` (camera frame) of pixels ``points (n, 2)`` under a pinhole (``focal``
    pixels, principal point ``center (2,)``, same pixel convention as ``points``)."""
    rays = np.concatenate([(points - center) / focal, np.ones((len(points), 1))], axis=1)
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def fit_rotation(a: np.ndarray, b: np.ndarray, threshold: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Robust rotation ``R (3, 3)`` with ``b_i ~ R a_i`` from unit bearings ``a, b (n, 3)`` (n >= 2), and the
    inlier mask ``(n,)``: RANSAC over pairs, inliers within ``threshold`` (radians, chord length), Kabsch
    refined twice on the inliers."""
    n = len(a)
    pairs = np.stack([rng.integers(0, n, RANSAC_ITERATIONS), rng.integers(0, n, RANSAC_ITERATIONS)], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    hypotheses = kabsch(a[pairs], b[pairs]) if len(pairs) else np.eye(3)[None]
    errors = np.linalg.norm(np.einsum('hij,nj->hni', hypotheses, a) - b, axis=-1)   # (H, n)
    inliers = errors[np.argmax((errors < threshold).sum(1))] < threshold
    rotation = np.eye(3)
    for _ in range(2):
        if inliers.sum() < 2:
            break
        rotation = kabsch(a[inliers], b[inliers])
        inliers = np.linalg.norm(a @ rotation.T - b, axis=1) < threshold
    return rotation, inliers


def rotation_angle_deg(rotations: np.ndarray) -> np.ndarray:
    """Angles ``(...)`` in degrees of rotations ``(..., 3, 3)``."""
    cos = (np.trace(rotations, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def slerp(r0: np.ndarray, r1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rotations ``(k, 3, 3)`` on the shortest path from ``r0`` to ``r1`` at fractions ``t (k,)``."""
    step = rotmat_to_axis_angle(torch.from_numpy(r1 @ r0.T)[None]).numpy()[0]
    return axis_angle_to_rotmat(torch.from_numpy(t[:, None] * step[None])).numpy() @ r0


@dataclass
class CameraMotion:
    """The camera's rotation over a video: ``rotations (N, 3, 3)`` from the first frame's camera frame to
    each frame's (``b_t = R_t b_0``), ``failed (N,)`` frames with too few background tracks (rotation held
    or interpolated there), ``inliers (N,)`` inlier tracks per frame."""

    rotations: np.ndarray
    failed: np.ndarray
    inliers: np.ndarray

    @property
    def moving(self) -> bool:
        """Whether the camera turns more than ``MOVING_CAMERA_DEG`` from the first frame (:func:`camera_moves`)."""
        return camera_moves(self.rotations)


def camera_moves(cam_R: np.ndarray) -> bool:
    """Whether the rotations ``cam_R (N, 3, 3)`` of a video's frames turn more than ``MOVING_CAMERA_DEG``
    away from the first frame's at some frame."""
    return bool(len(cam_R)) and float(rotation_angle_deg(cam_R @ cam_R[0].T).max()) > MOVING_CAMERA_DEG


class CameraRotationTracker:
    """Causal camera rotation (module docstring, steps 1-5): :meth:`update` takes one frame and its people's
    boxes and returns that frame's rotation from the first frame, and whether the frame failed.

    Args:
        width, height: frame size in pixels.
        focal: pinhole focal length in pixels (of the full-size frame).
        max_side: longest side of the frames the tracks are followed on (pixels; smaller is faster).
        min_tracks: fewest inlier tracks of a good frame.
    """

    def __init__(self, width: int, height: int, focal: float, max_side: int = 480, min_tracks: int = 20):
        self.scale = min(1.0, max_side / max(width, height))
        self.size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        self.focal = focal * self.scale
        # OpenCV pixel indices: the full image's centre (W/2, H/2) (edges convention) is at W s / 2 - 0.5.
        self.center = np.array([width * self.scale / 2 - 0.5, height * self.scale / 2 - 0.5])
        self.min_tracks = int(min_tracks)
        self.rng = np.random.default_rng(0)
        self.key: tuple | None = None        # (key bearings (m, 3), key rotation, initial track count)
        self.points: np.ndarray | None = None  # where the key frame's tracks are in the previous frame (m, 2)
        self.previous: tuple | None = None   # (grey, mask) of the previous frame
        self.last_good: tuple | None = None  # (grey, mask, rotation) of the last good frame
        self.lost = False
        self.rotation = np.eye(3)
        self.inliers = 0                     # inlier tracks of the last frame

    def update(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, bool]:
        """Rotation ``(3, 3)`` of ``frame (H, W, 3)`` BGR uint8 from the first frame, and whether it failed;
        ``boxes (k, >=4)`` x1y1x2y2 pixels of the people in it (masked out)."""
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.scale < 1.0:
            grey = cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA)
        mask = self._mask(boxes)
        self.inliers = 0
        if self.previous is None:                       # first frame: the reference
            ok = self._new_key(grey, mask, np.eye(3))
            self.last_good = (grey, mask, np.eye(3))
        elif self.lost:                                 # flow the last good frame's corners straight here
            anchor_grey, anchor_mask, anchor_rotation = self.last_good
            if self._new_key(anchor_grey, anchor_mask, anchor_rotation):
                ok = self._track(anchor_grey, grey, mask)
            else:                                       # an anchor without corners: start again here, held
                ok = False
                if self._new_key(grey, mask, self.rotation):
                    self.last_good = (grey, mask, self.rotation)
        else:
            ok = self._track(self.previous[0], grey, mask)
        if ok:
            self.lost = False
            self.last_good = (grey, mask, self.rotation)
            key_bearings, _, count = self.key
            if len(key_bearings) < max(REKEY_FRACTION * count, 2 * self.min_tracks):
                self._new_key(grey, mask, self.rotation)
        else:
            self.lost = True
        self.previous = (grey, mask)
        return self.rotation.copy(), not ok

    def _mask(self, boxes: np.ndarray) -> np.ndarray:
        mask = np.full(self.size[::-1], 255, dtype=np.uint8)
        if len(boxes) == 0:
            return mask
        for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)[:, :4]:
            mx, my = BOX_MARGIN * (x2 - x1), BOX_MARGIN * (y2 - y1)
            a = np.floor(np.array([x1 - mx, y1 - my]) * self.scale).astype(int).clip(0, None)
            b = np.ceil(np.array([x2 + mx, y2 + my]) * self.scale).astype(int)
            mask[a[1]:max(b[1], 0), a[0]:max(b[0], 0)] = 0
        return mask

    def _new_key(self, grey: np.ndarray, mask: np.ndarray, rotation: np.ndarray) -> bool:
        """Corners of ``grey`` off the people as the new key frame (of rotation ``rotation``); False when
        there are fewer than ``min_tracks``."""
        corners = cv2.goodFeaturesToTrack(grey, MAX_CORNERS, CORNER_QUALITY, CORNER_SPACING, mask=mask, blockSize=5)
        points = np.zeros((0, 2), dtype=np.float32) if corners is None else corners.reshape(-1, 2)
        if len(points):
            strength = cv2.cornerMinEigenVal(grey, 5)
            points = points[strength[points[:, 1].astype(int), points[:, 0].astype(int)] >= MIN_CORNER_STRENGTH]
        self.points = points
        self.key = (bearings(points.astype(np.float64), self.focal, self.center), rotation, len(points))
        return len(points) >= self.min_tracks

    def _track(self, source: np.ndarray, grey: np.ndarray, mask: np.ndarray) -> bool:
        """Flow the tracks from ``source`` into ``grey``, fit the key-to-current rotation; False (rotation
        held) with too few inliers."""
        key_bearings, key_rotation, count = self.key
        if len(self.points) < max(self.min_tracks, 2):
            return False
        lk = dict(winSize=(LK_WINDOW, LK_WINDOW), maxLevel=LK_LEVELS,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        p0 = self.points.reshape(-1, 1, 2).astype(np.float32)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(source, grey, p0, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(grey, source, p1, None, **lk)
        p1, back = p1.reshape(-1, 2), back.reshape(-1, 2)
        keep = (st1.ravel() == 1) & (st2.ravel() == 1)
        keep &= np.linalg.norm(back - p0.reshape(-1, 2), axis=1) < FB_ERROR_PX
        keep &= np.all((p1 >= 0) & (p1 < np.array(self.size) - 1), axis=1)      # inside the frame
        cols, rows = np.clip(p1.round().astype(int), 0, np.array(self.size) - 1).T
        keep &= mask[rows, cols] > 0                                             # off the people
        if keep.sum() < max(self.min_tracks, 2):
            return False
        a, b = key_bearings[keep], bearings(p1[keep].astype(np.float64), self.focal, self.center)
        rotation, inliers = fit_rotation(a, b, INLIER_PX / self.focal, self.rng)
        if inliers.sum() < self.min_tracks:
            return False
        kept = np.nonzero(keep)[0][inliers]
        self.points = p1[kept]
        self.key = (key_bearings[kept], key_rotation, count)
        self.rotation = rotation @ key_rotation
        self.inliers = int(inliers.sum())
        return True


def estimate_camera_motion(frames: Iterable[np.ndarray], boxes: list[np.ndarray], width: int, height: int,
                           focal: float, max_side: int = 480, min_tracks: int = 20) -> CameraMotion:
    """The :class:`CameraMotion` of a video: ``frames`` BGR uint8 in order (at most ``len(boxes)`` are read),
    ``boxes[t] (k, >=4)`` x1y1x2y2 pixels of the people of frame ``t``. Failed frames between two good ones
    are interpolated (slerp); failed frames at the end keep the last good rotation."""
    tracker = CameraRotationTracker(width, height, focal, max_side, min_tracks)
    rotations, failed, inliers = [], [], []
    for frame, frame_boxes in zip(frames, boxes):
        rotation, bad = tracker.update(frame, frame_boxes)
        rotations.append(rotation)
        failed.append(bad)
        inliers.append(tracker.inliers)
    rotations, failed = np.array(rotations).reshape(-1, 3, 3), np.array(failed, dtype=bool)
    for first, last in failed_runs(failed):
        if first > 0 and last + 1 < len(failed):
            fractions = (np.arange(first, last + 1) - first + 1) / (last - first + 2)
            rotations[first:last + 1] = slerp(rotations[first - 1], rotations[last + 1], fractions)
    return CameraMotion(rotations, failed, np.array(inliers, dtype=np.int64))


def failed_runs(failed: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` frames of each run of consecutive ``True`` in ``failed (N,)``."""
    edges = np.diff(np.concatenate([[0], failed.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), (np.nonzero(edges == -1)[0] - 1).tolist()))


def report_failures(motion: CameraMotion) -> None:
    """One warning line naming the frames where the rotation was held or interpolated (none: no line)."""
    runs = failed_runs(motion.failed)
    if runs:
        n = len(motion.failed)
        names = ', '.join(f'{a}' if a == b else f'{a}-{b}' for a, b in runs)
        how = 'interpolated' if all(a > 0 and b + 1 < n for a, b in runs) else 'interpolated or held'
        logger.warning(f"camera motion: too few background tracks in frames {names} (of {n}; textureless or "
                       f"hidden background); the camera rotation is {how} there")


def camera_motion(frames: Iterable[np.ndarray], detections: list[np.ndarray], width: int, height: int,
                  demo_cfg) -> CameraMotion:
    """The demo's camera-motion stage: :func:`estimate_camera_motion` with the ``DEMO`` settings (all
    identity when ``DEMO.CAMERA_MOTION`` is off), failures reported."""
    n = len(detections)
    if not demo_cfg.CAMERA_MOTION:
        return CameraMotion(np.tile(np.eye(3), (n, 1, 1)), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))
    frames = tqdm(frames, total=n, desc='camera', unit='frame')
    motion = estimate_camera_motion(frames, detections, width, height,
                                    focal_length(demo_cfg.FOCAL_LENGTH, width, height),
                                    demo_cfg.CAMERA_MOTION_MAX_SIDE, demo_cfg.CAMERA_MOTION_MIN_TRACKS)
    report_failures(motion)
    return motion


def torso_directions(joints3d: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Unit pelvis-to-neck directions ``(n, 3)`` of SPIN joints ``joints3d (n, 49, 3)`` carried into the first
    frame's camera axes by their frames' ``rotations (n, 3, 3)`` (``R_t^T torso``)."""
    torso = joints3d[:, SPIN_NECK].astype(np.float64) - joints3d[:, SPIN_SMPL_ROOT]
    torso = torso / np.maximum(np.linalg.norm(torso, axis=1, keepdims=True), 1e-9)
    return np.einsum('nji,nj->ni', rotations, torso)


def _check_up(mean: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The up direction of a mean of unit torso directions ``(3,)``, or None and why (module docstring)."""
    agreement = float(np.linalg.norm(mean))
    up = mean / max(agreement, 1e-9)
    tilt = float(np.degrees(np.arccos(np.clip(-up[1], -1.0, 1.0))))
    if agreement < UP_MIN_AGREEMENT or tilt > UP_MAX_TILT_DEG:
        return None, f"agreement {agreement:.2f}, {tilt:.0f} degrees from the first frame's image-up"
    return up, ''


def up_direction(results: dict[int, PersonResult], rotations: np.ndarray) -> np.ndarray | None:
    """Image-up ``(3,)`` of the first frame's camera frame as the people's torsos show it (the mean unit
    pelvis-to-neck direction, carried into the first frame by ``rotations (N, 3, 3)``), or None when they
    disagree or lean too far (module docstring)."""
    directions = [torso_directions(res.joints3d, rotations[np.asarray(res.frame_ids, dtype=np.int64)])
                  for res in results.values()]
    if not directions:
        return None
    up, why = _check_up(np.concatenate(directions).mean(0))
    if up is None:
        logger.warning(f"world frame: the people's torsos do not give a clear up direction ({why}); the world "
                       f"keeps the first frame's axes (not levelled)")
    return up


def levelling(up: np.ndarray | None) -> np.ndarray:
    """The least rotation ``(3, 3)`` taking ``-up`` (gravity in the first frame's camera frame) to the world
    y axis ``(0, 1, 0)`` (down); the identity for None."""
    if up is None:
        return np.eye(3)
    down, target = -np.asarray(up, dtype=np.float64), np.array([0.0, 1.0, 0.0])
    axis = np.cross(down, target)
    angle = np.arctan2(np.linalg.norm(axis), down @ target)
    if np.linalg.norm(axis) < 1e-12:
        return np.eye(3)
    return axis_angle_to_rotmat(torch.from_numpy(axis / np.linalg.norm(axis) * angle)[None]).numpy()[0]


def world_cam_R(results: dict[int, PersonResult], rotations: np.ndarray) -> np.ndarray:
    """World-to-camera rotations ``(N, 3, 3)`` of every video frame: ``R_t L^T``, ``L`` the
    :func:`levelling` of the people's :func:`up_direction`."""
    return rotations @ levelling(up_direction(results, rotations)).T


def add_world_keys(results: dict[int, PersonResult], rotations: np.ndarray) -> np.ndarray:
    """Add :data:`WORLD_KEYS` (module docstring) to every person's result in place, from the camera's
    ``rotations (N, 3, 3)`` from the first frame (:class:`CameraMotion`), levelled by the people
    (:func:`world_cam_R`); returns the world-to-camera rotations ``cam_R (N, 3, 3)`` of every video frame."""
    cam_R = world_cam_R(results, rotations)
    for res in results.values():
        _set_world_keys(res, cam_R[np.asarray(res.frame_ids, dtype=np.int64)])
    return cam_R


def _set_world_keys(res: PersonResult, rot: np.ndarray) -> None:
    """:data:`WORLD_KEYS` of one person's result from its rows' world-to-camera rotations ``rot (n, 3, 3)``."""
    orient = axis_angle_to_rotmat(torch.as_tensor(np.asarray(res.pose[:, :3], dtype=np.float64))).numpy()
    pelvis = res.joints3d[:, SPIN_SMPL_ROOT].astype(np.float64) + res.trans_cam
    res.cam_R = rot.astype(np.float32)
    res.global_orient_world = rotmat_to_axis_angle(
        torch.from_numpy(np.swapaxes(rot, 1, 2) @ orient)).numpy().astype(np.float32)
    res.trans_world = np.einsum('nji,nj->ni', rot, pelvis).astype(np.float32)   # cam_R^T pelvis


class OnlineWorld:
    """The world frame of the online mode (module docstring): :meth:`update` with every input frame and its
    people's boxes (x1y1x2y2 pixels), :meth:`add_world_keys` on every emitted frame's people."""

    def __init__(self, width: int, height: int, demo_cfg):
        self.tracker = (CameraRotationTracker(width, height, focal_length(demo_cfg.FOCAL_LENGTH, width, height),
                                              demo_cfg.CAMERA_MOTION_MAX_SIDE, demo_cfg.CAMERA_MOTION_MIN_TRACKS)
                        if demo_cfg.CAMERA_MOTION else None)
        self.rotations: dict[int, np.ndarray] = {}
        self.frames = 0
        self.failed: list[int] = []
        self.torso_sum, self.torso_count = np.zeros(3), 0
        self.level, self.frozen = np.eye(3), False

    def update(self, frame: np.ndarray, boxes: np.ndarray) -> None:
        """The camera rotation of the next input frame; a failed frame is held, and warned about once per run
        of failed frames."""
        rotation, failed = self.tracker.update(frame, boxes) if self.tracker is not None else (np.eye(3), False)
        self.rotations[self.frames] = rotation
        if failed and (not self.failed or self.failed[-1] != self.frames - 1):
            logger.warning(f"camera motion: too few background tracks from frame {self.frames} (textureless or "
                           f"hidden background); the camera rotation is held until the background is found again")
        if failed:
            self.failed.append(self.frames)
        self.frames += 1

    def add_world_keys(self, frame: int, people: dict[int, PersonResult]) -> None:
        """Add :data:`WORLD_KEYS` to the one-row results ``people`` of video frame ``frame`` (in place), and
        forget the rotations of earlier frames."""
        rotation = self.rotations[frame]
        if not self.frozen and people:
            for res in people.values():
                self.torso_sum += torso_directions(res.joints3d, rotation[None]).sum(0)
                self.torso_count += len(res.joints3d)
            up, _ = _check_up(self.torso_sum / self.torso_count)
            self.level = levelling(up)
            if self.torso_count >= ONLINE_UP_SAMPLES:
                self.frozen = True
                logger.info(f"world frame: {'levelled by' if up is not None else 'not levelled (unclear up) after'} "
                            f"the torsos of {self.torso_count} person-frames, fixed from frame {frame} on")
        for res in people.values():
            _set_world_keys(res, (rotation @ self.level.T)[None])
        for old in [f for f in self.rotations if f < frame]:
            del self.rotations[old]
