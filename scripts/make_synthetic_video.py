"""Render short videos of SMPL bodies walking across the frame, for tests, benchmarks and the quick start.

    python scripts/make_synthetic_video.py --data_root data --out demo_input/walk.mp4 --bbox_file walk_boxes.csv
    python scripts/make_synthetic_video.py --data_root data --pan 40 --frames 120 --out demo_input/pan.mp4
    python scripts/make_synthetic_video.py --data_root data --crossing --out demo_input/crossing.mp4 \
        --bbox_file crossing_gt.csv

The body comes from ``<data_root>/base_data/SMPL_NEUTRAL.pkl`` (the generated stand-in from
scripts/make_synthetic_assets.py, or the real model), posed with the arms down and swinging legs, and drawn
with the demo's own renderer (lib/vis/renderer.py) over a plain background. The true person boxes can be
written as a ``--bbox_file`` for demo.py (CSV ``frame,x1,y1,x2,y2,score``; the crossing video adds the true
``track_id``, so the same file is the tracking ground truth).

``--pan DEGREES`` makes the camera-motion test scene (:func:`make_panning_video`): a pinhole camera turning
about its centre (a pan of that many degrees and a smaller tilt, known per frame) over a strongly textured
far background, with people walking straight lines in the world (:data:`PAN_WALKERS`); ``--pan 0`` is the
same scene from a static camera.

``--crossing`` makes the tracking test scene (:data:`CROSSING_WALKERS`): four people of different sizes
(nearer is bigger and lower in the frame) walk in opposite directions and cross four times, the nearer one
hiding the farther one for several frames each time, over a lightly textured background.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.io import atomic_write  # noqa: E402
from lib.vis.camera import focal_length as pinhole_focal  # noqa: E402
from lib.vis.renderer import Mesh, MeshRenderer, project, rotation_y  # noqa: E402
from lib.vis.video import VideoWriter  # noqa: E402
from lib.models.smpl import SMPL  # noqa: E402

# SMPL joint numbers (body_pose row = joint - 1).
LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER = 1, 2, 16, 17


@dataclass
class SyntheticVideo:
    """The written video and, per person, its true boxes ``(num_frames, 4)`` x1y1x2y2 in pixels (person ``k``
    has ground-truth id ``k + 1``) and true image cameras ``cams (num_frames, 4)`` (``orig_cam`` layout
    ``sx, sy, tx, ty`` of the renderer)."""

    path: Path
    boxes: list[np.ndarray]
    num_frames: int
    width: int
    height: int
    cams: list[np.ndarray]


@dataclass(frozen=True)
class Walker:
    """One person of the crossing scene, in fractions of the frame: body height (of the frame height), row of
    the feet (of the height), horizontal centre at the first and the last frame (of the width); RGB colour in
    [0, 1] and gait phase (radians)."""

    height: float
    foot: float
    start: float
    end: float
    color: tuple[float, float, float]
    phase: float = 0.0


# The crossing scene: A and C walk right, B and D walk left; crossings C-D (t = 0.32 of the video), C-B
# (0.47), A-D (0.48) and A-B (0.63), each time the nearer (bigger) person passes in front.
CROSSING_WALKERS = (
    Walker(0.42, 0.95, 0.08, 0.72, (0.85, 0.25, 0.20), 0.0),   # A
    Walker(0.37, 0.88, 0.92, 0.22, (0.25, 0.70, 0.30), 1.6),   # B
    Walker(0.30, 0.78, 0.30, 0.92, (0.25, 0.35, 0.90), 3.1),   # C
    Walker(0.34, 0.83, 0.70, 0.06, (0.90, 0.80, 0.20), 4.7),   # D
)


@dataclass
class PanningVideo(SyntheticVideo):
    """A :class:`SyntheticVideo` seen by a turning camera, with the truth: ``cam_R (num_frames, 3, 3)``
    world-to-camera rotations (world: y down along gravity, x right and z forward of the camera at rest),
    ``focal`` pixels (principal point at the image centre), per person the pelvis ``trans_world
    (num_frames, 3)`` (straight lines, metres) and ``trans_cam (num_frames, 3)`` (``cam_R trans_world``)."""

    cam_R: np.ndarray = None
    focal: float = 0.0
    trans_world: list[np.ndarray] = None
    trans_cam: list[np.ndarray] = None


@dataclass(frozen=True)
class WorldWalker:
    """One person of the panning scene: pelvis start and end points in the world (metres; y down, the camera
    at the origin, 1.5 m above the ground), RGB colour in [0, 1] and gait phase (radians)."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    color: tuple[float, float, float]
    phase: float = 0.0


# The panning scene: two people walking right, followed by a camera panning right (the nearer one walks
# 4.4 m, the farther 3.2 m over the video).
PAN_WALKERS = (
    WorldWalker((-2.0, 0.6, 5.5), (2.4, 0.6, 6.0), (0.85, 0.25, 0.20), 0.0),
    WorldWalker((-1.4, 0.6, 8.0), (1.8, 0.6, 7.2), (0.25, 0.35, 0.90), 1.6),
)


def pan_rotations(num_frames: int, pan_deg: float, tilt_deg: float) -> np.ndarray:
    """World-to-camera rotations ``(N, 3, 3)`` of a camera panning (about the world's vertical y) from
    ``-pan/2`` to ``+pan/2`` degrees and tilting from 0 to ``tilt`` degrees down, both eased in and out."""
    s = 0.5 - 0.5 * np.cos(np.pi * np.arange(num_frames) / max(num_frames - 1, 1))
    rotations = []
    for yaw, tilt in zip(np.radians(pan_deg) * (s - 0.5), np.radians(tilt_deg) * s):
        # camera-to-world = yaw about y, then tilt about the camera's x (positive looks down: y down frame)
        to_world = _axis_angle_matrix([0, 1, 0], yaw) @ _axis_angle_matrix([1, 0, 0], -tilt)
        rotations.append(to_world.T)
    return np.array(rotations)


def pan_texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A strongly textured BGR background (two scales of blurred noise, +-50 and +-30 grey levels, over
    :func:`background`'s gradient) that corner trackers can follow; the same for a given seed."""
    rng = np.random.default_rng(seed)
    texture = np.zeros((height, width), dtype=np.float32)
    for sigma, amplitude in ((2.0, 50.0), (10.0, 30.0)):
        noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), sigmaX=sigma)
        texture += noise * amplitude / max(float(np.abs(noise).max()), 1e-6)
    return np.clip(background(width, height) + texture[:, :, None], 0, 255).astype(np.uint8)


def make_panning_video(out_path: str | Path, data_root: str | Path, num_frames: int = 120, width: int = 320,
                       height: int = 240, fps: float = 25.0, pan_deg: float = 40.0, tilt_deg: float = 6.0,
                       walkers: tuple[WorldWalker, ...] = PAN_WALKERS, focal: float = 0.0,
                       bbox_file: str | Path | None = None) -> PanningVideo:
    """Write ``out_path`` (mp4): ``walkers`` walking straight lines in the world at constant speed, seen by a
    pinhole (``focal`` pixels, 0: the image diagonal as the demo's default) that pans ``pan_deg`` and tilts
    ``tilt_deg`` degrees (:func:`pan_rotations`) over a far textured background (:func:`pan_texture`, drawn
    as the image ``K R_t^T K_canvas^-1`` of a large canvas at infinity). Returns the truth
    (:class:`PanningVideo`); ``cams`` are left zero (the people are drawn in perspective, not by orig_cam)."""
    focal = pinhole_focal(focal, width, height)
    cam_R = pan_rotations(num_frames, pan_deg, tilt_deg)
    k_inv = np.linalg.inv(np.array([[focal, 0, width / 2 - 0.5], [0, focal, height / 2 - 0.5], [0, 0, 1]]))
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float)
    rays = np.einsum('nji,cj->nci', cam_R, corners @ k_inv.T)              # R_t^T K^-1 p: world directions
    ends = rays[..., :2] / rays[..., 2:] * focal
    low, high = np.floor(ends.reshape(-1, 2).min(0)) - 8, np.ceil(ends.reshape(-1, 2).max(0)) + 8
    canvas = pan_texture(int(high[0] - low[0]), int(high[1] - low[1]), seed=1)
    k_canvas = np.array([[focal, 0, -low[0]], [0, focal, -low[1]], [0, 0, 1]])
    verts_all, faces = body_vertices(data_root, num_frames, tuple(w.phase for w in walkers))
    pelvis = rest_pelvis(data_root)
    renderer = MeshRenderer(faces, width, height, focal_length=focal)
    boxes = [np.zeros((num_frames, 4)) for _ in walkers]
    trans_world = [np.zeros((num_frames, 3)) for _ in walkers]
    trans_cam = [np.zeros((num_frames, 3)) for _ in walkers]
    with VideoWriter(out_path, fps, (width, height)) as writer:
        for f in range(num_frames):
            t = f / max(num_frames - 1, 1)
            homography = k_canvas @ cam_R[f].T @ k_inv                       # frame pixel -> canvas pixel
            image = cv2.warpPerspective(canvas, homography, (width, height),
                                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
            meshes = []
            for k, walker in enumerate(walkers):
                start, end = np.asarray(walker.start), np.asarray(walker.end)
                heading = np.degrees(np.arctan2(start[0] - end[0], start[2] - end[2]))   # facing the walk
                world = (verts_all[k][f] - pelvis) @ rotation_y(heading).T + start + (end - start) * t
                trans_world[k][f] = start + (end - start) * t
                trans_cam[k][f] = cam_R[f] @ trans_world[k][f]
                camera = world @ cam_R[f].T
                meshes.append(Mesh(camera, np.zeros(3), walker.color))
                uv, _ = project(camera, np.zeros(3), width, height, focal_length=focal)
                boxes[k][f] = [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()]
            writer.write(renderer.render(image, meshes))
    if bbox_file is not None:
        write_bbox_csv(bbox_file, boxes, with_ids=True)
    return PanningVideo(Path(out_path), boxes, num_frames, width, height, [np.zeros((num_frames, 4))] * len(walkers),
                        cam_R, focal, trans_world, trans_cam)


def _axis_angle_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def walking_poses(num_frames: int, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``body_pose (N, 23, 3, 3)`` with arms down and legs swinging +-20 degrees, and ``global_orient
    (N, 1, 3, 3)``: upright in the image (180 degrees about x, as SMPL fits to images are)."""
    body = np.tile(np.eye(3), (num_frames, 23, 1, 1))
    swing = np.radians(20.0) * np.sin(2 * np.pi * np.arange(num_frames) / 16.0 + phase)
    for f in range(num_frames):
        body[f, LEFT_SHOULDER - 1] = _axis_angle_matrix([0, 0, 1], np.radians(-70.0))
        body[f, RIGHT_SHOULDER - 1] = _axis_angle_matrix([0, 0, 1], np.radians(70.0))
        body[f, LEFT_HIP - 1] = _axis_angle_matrix([1, 0, 0], swing[f])
        body[f, RIGHT_HIP - 1] = _axis_angle_matrix([1, 0, 0], -swing[f])
    orient = np.tile(_axis_angle_matrix([1, 0, 0], np.pi), (num_frames, 1, 1, 1))
    return body, orient


def body_vertices(data_root: str | Path, num_frames: int, phases: tuple[float, ...] = (0.0,)
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """Posed SMPL vertices ``(N, 6890, 3)`` (metres) of the walking body, one array per gait phase in
    ``phases``, and the faces ``(13776, 3)``."""
    base = Path(data_root) / 'base_data'
    smpl = SMPL(base, j_regressor_extra=base / 'J_regressor_extra.npy')
    verts = []
    for phase in phases:
        body, orient = walking_poses(num_frames, phase)
        with torch.no_grad():
            out = smpl(betas=torch.zeros(num_frames, 10), body_pose=torch.tensor(body, dtype=torch.float32),
                       global_orient=torch.tensor(orient, dtype=torch.float32))
        verts.append(out.vertices.numpy().astype(np.float64))
    return verts, smpl.faces.astype(np.int64)


def rest_pelvis(data_root: str | Path) -> np.ndarray:
    """The SMPL pelvis (joint 0, metres; zero betas) of the model under ``data_root``: the point the global
    orientation turns about, so it stays put in :func:`body_vertices`."""
    base = Path(data_root) / 'base_data'
    smpl = SMPL(base, j_regressor_extra=base / 'J_regressor_extra.npy')
    return (smpl.J_regressor[0] @ smpl.v_template).double().numpy()


def background(width: int, height: int) -> np.ndarray:
    """A plain, softly lit BGR background (a vertical grey gradient)."""
    ramp = np.linspace(200, 150, height)[:, None, None]
    return np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()


def textured_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """:func:`background` with soft blotches (blurred noise, +-12 grey levels) so that edge-based detectors
    see some clutter; the same for a given seed."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, (height, width)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=6.0)
    noise *= 12.0 / max(float(np.abs(noise).max()), 1e-6)
    return np.clip(background(width, height) + noise[:, :, None], 0, 255).astype(np.uint8)


def place_camera(verts: np.ndarray, height_px: float, centre_u: float, foot_v: float, width: int,
                 height: int) -> tuple[np.ndarray, np.ndarray]:
    """The image camera ``orig_cam (4,)`` drawing SMPL vertices ``verts (V, 3)`` with their vertical extent
    ``height_px`` pixels tall, centred at column ``centre_u`` with the lowest point at row ``foot_v``, and
    the box ``(4,)`` x1y1x2y2 (pixels) of the drawn body."""
    extent = verts[:, 1].max() - verts[:, 1].min()
    sx, sy = 2 * height_px / extent / width, 2 * height_px / extent / height
    cam = np.array([sx, sy, (2 * centre_u / width - 1) / sx, 0.0])
    uv, _ = project(verts, cam, width, height)
    cam[3] = (foot_v - uv[:, 1].max()) * 2 / (sy * height)   # v grows by sy * H / 2 per unit of ty
    uv, _ = project(verts, cam, width, height)
    return cam, np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])


def make_crossing_video(out_path: str | Path, data_root: str | Path, num_frames: int = 100, width: int = 384,
                        height: int = 288, fps: float = 25.0, walkers: tuple[Walker, ...] = CROSSING_WALKERS,
                        bbox_file: str | Path | None = None) -> SyntheticVideo:
    """Write ``out_path`` (mp4) with the people of ``walkers`` crossing each other at constant speed.

    The true boxes are those of the whole drawn body, occluded parts included (as in MOT ground truth). With
    ``bbox_file``, they are also written there as a demo box file with ``track_id`` (person k -> id k + 1).
    """
    verts, faces = body_vertices(data_root, num_frames, tuple(walker.phase for walker in walkers))
    renderer = MeshRenderer(faces, width, height)
    scene = textured_background(width, height)
    boxes = [np.zeros((num_frames, 4)) for _ in walkers]
    cams = [np.zeros((num_frames, 4)) for _ in walkers]
    with VideoWriter(out_path, fps, (width, height)) as writer:
        for f in range(num_frames):
            t = f / max(num_frames - 1, 1)
            meshes = []
            for k, walker in enumerate(walkers):
                centre = width * (walker.start + (walker.end - walker.start) * t)
                cams[k][f], boxes[k][f] = place_camera(verts[k][f], walker.height * height, centre,
                                                walker.foot * height, width, height)
                meshes.append(Mesh(verts[k][f], cams[k][f], walker.color))
            writer.write(renderer.render(scene, meshes))
    if bbox_file is not None:
        write_bbox_csv(bbox_file, boxes, with_ids=True)
    return SyntheticVideo(Path(out_path), boxes, num_frames, width, height, cams)


def make_synthetic_video(out_path: str | Path, data_root: str | Path, num_frames: int = 36,
                         width: int = 320, height: int = 240, fps: float = 25.0, people: int = 1,
                         body_height_px: float = 190.0, bbox_file: str | Path | None = None) -> SyntheticVideo:
    """Write ``out_path`` (mp4) with ``people`` bodies walking left to right across the frame.

    Each body is about ``body_height_px`` pixels tall; person ``k`` walks in its own lane at its own scale.
    With ``bbox_file``, also writes the true boxes there as a demo box file (CSV).
    """
    (verts_one,), faces = body_vertices(data_root, num_frames)
    renderer = MeshRenderer(faces, width, height)
    extent = verts_one[0, :, 1].max() - verts_one[0, :, 1].min()
    boxes = [np.zeros((num_frames, 4)) for _ in range(people)]
    cams = [np.zeros((num_frames, 4)) for _ in range(people)]
    with VideoWriter(out_path, fps, (width, height)) as writer:
        for f in range(num_frames):
            meshes = []
            for k in range(people):
                scale = body_height_px * (1.0 - 0.2 * k) / extent
                sy, sx = 2 * scale / height, 2 * scale / width
                progress = f / max(num_frames - 1, 1)
                centre_u = width * (0.3 + 0.4 * progress if k % 2 == 0 else 0.7 - 0.4 * progress)
                tx = (2 * centre_u / width - 1) / sx
                cam = cams[k][f] = np.array([sx, sy, tx, 0.0])
                meshes.append(Mesh(verts_one[f], cam, (0.85, 0.75, 0.6)))
                uv, _ = project(verts_one[f], cam, width, height)
                boxes[k][f] = [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()]
            writer.write(renderer.render(background(width, height), meshes))
    if bbox_file is not None:
        write_bbox_csv(bbox_file, boxes)
    return SyntheticVideo(Path(out_path), boxes, num_frames, width, height, cams)


def write_bbox_csv(path: str | Path, boxes: list[np.ndarray], with_ids: bool = False) -> Path:
    """Write per-person boxes ``(N, 4)`` x1y1x2y2 as a demo box file ``frame,x1,y1,x2,y2,score``, plus
    ``track_id`` (person k -> k + 1) with ``with_ids``; rows in frame order."""
    rows = ['frame,x1,y1,x2,y2,score' + (',track_id' if with_ids else '')]
    for f in range(len(boxes[0]) if boxes else 0):
        for k, person in enumerate(boxes):
            b = person[f]
            rows.append(f'{f},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},1.0' + (f',{k + 1}' if with_ids else ''))
    return atomic_write(path, '\n'.join(rows) + '\n')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data_root', default='data', help='folder holding base_data/SMPL_NEUTRAL.pkl')
    parser.add_argument('--out', default='demo_input/synthetic_walk.mp4')
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--fps', type=float, default=25.0)
    parser.add_argument('--people', type=int, default=1)
    parser.add_argument('--pan', type=float, default=None,
                        help='the panning-camera scene with a pan of this many degrees (0: static camera)')
    parser.add_argument('--crossing', action='store_true',
                        help='the four-person crossing scene (frames, size and fps as given; --people ignored)')
    parser.add_argument('--bbox_file', default=None, help='also write the true boxes here (CSV)')
    args = parser.parse_args(argv)
    if args.pan is not None:
        video = make_panning_video(args.out, args.data_root, args.frames, args.width, args.height, args.fps,
                                   pan_deg=args.pan, tilt_deg=0.15 * args.pan, bbox_file=args.bbox_file)
    elif args.crossing:
        video = make_crossing_video(args.out, args.data_root, args.frames, args.width, args.height, args.fps,
                                    bbox_file=args.bbox_file)
    else:
        video = make_synthetic_video(args.out, args.data_root, args.frames, args.width, args.height, args.fps,
                                     args.people, bbox_file=args.bbox_file)
    print(f'wrote {video.path} ({video.num_frames} frames, {video.width}x{video.height})')


if __name__ == '__main__':
    main()
