"""Render a short video of the SMPL body walking across the frame, for tests and the quick start.

    python scripts/make_synthetic_video.py --data_root data --out demo_input/walk.mp4 --bbox_file walk_boxes.csv

The body comes from ``<data_root>/base_data/SMPL_NEUTRAL.pkl`` (the generated stand-in from
scripts/make_synthetic_assets.py, or the real model), posed with the arms down and swinging legs, and drawn
with the demo's own renderer (lib/demo/renderer.py) over a plain background. The true person boxes can be
written as a ``--bbox_file`` for demo.py (CSV ``frame,x1,y1,x2,y2,score``).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.core.io import atomic_write  # noqa: E402
from lib.demo.renderer import Mesh, MeshRenderer, project  # noqa: E402
from lib.demo.video import VideoWriter  # noqa: E402

# SMPL joint numbers (body_pose row = joint - 1).
LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER = 1, 2, 16, 17


@dataclass
class SyntheticVideo:
    """The written video and, per person, its true boxes ``(num_frames, 4)`` x1y1x2y2 in pixels and true
    image cameras ``cams (num_frames, 4)`` (``orig_cam`` layout ``sx, sy, tx, ty`` of the renderer)."""

    path: Path
    boxes: list[np.ndarray]
    num_frames: int
    width: int
    height: int
    cams: list[np.ndarray]


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


def body_vertices(data_root: str | Path, num_frames: int, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Posed SMPL vertices ``(N, 6890, 3)`` (metres) of the walking body, and the faces ``(13776, 3)``."""
    import torch

    from lib.models.smpl import SMPL

    base = Path(data_root) / 'base_data'
    smpl = SMPL(base, j_regressor_extra=base / 'J_regressor_extra.npy')
    body, orient = walking_poses(num_frames, phase)
    with torch.no_grad():
        out = smpl(betas=torch.zeros(num_frames, 10), body_pose=torch.tensor(body, dtype=torch.float32),
                   global_orient=torch.tensor(orient, dtype=torch.float32))
    return out.vertices.numpy().astype(np.float64), smpl.faces.astype(np.int64)


def background(width: int, height: int) -> np.ndarray:
    """A plain, softly lit BGR background (a vertical grey gradient)."""
    ramp = np.linspace(200, 150, height)[:, None, None]
    return np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()


def make_synthetic_video(out_path: str | Path, data_root: str | Path, num_frames: int = 36,
                         width: int = 320, height: int = 240, fps: float = 25.0, people: int = 1,
                         body_height_px: float = 190.0, bbox_file: str | Path | None = None) -> SyntheticVideo:
    """Write ``out_path`` (mp4) with ``people`` bodies walking left to right across the frame.

    Each body is about ``body_height_px`` pixels tall; person ``k`` walks in its own lane at its own scale.
    With ``bbox_file``, also writes the true boxes there as a demo box file (CSV).
    """
    verts_one, faces = body_vertices(data_root, num_frames)
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


def write_bbox_csv(path: str | Path, boxes: list[np.ndarray]) -> Path:
    """Write per-person boxes ``(N, 4)`` x1y1x2y2 as a demo box file ``frame,x1,y1,x2,y2,score``."""
    rows = ['frame,x1,y1,x2,y2,score']
    for person in boxes:
        rows += [f'{f},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},1.0' for f, b in enumerate(person)]
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
    parser.add_argument('--bbox_file', default=None, help='also write the true boxes here (CSV)')
    args = parser.parse_args(argv)
    video = make_synthetic_video(args.out, args.data_root, args.frames, args.width, args.height, args.fps,
                                 args.people, bbox_file=args.bbox_file)
    print(f'wrote {video.path} ({video.num_frames} frames, {video.width}x{video.height})')


if __name__ == '__main__':
    main()
