"""Headless mesh overlay renderer in numpy + OpenCV (no OpenGL): weak-perspective camera, z-buffer, Lambert.

Camera, as in the official (pyrender) renderer: the mesh is first rotated 180 degrees about x (SMPL's y-down,
z-away frame becomes OpenGL's y-up, z-towards-the-viewer frame), then the image camera ``orig_cam = (sx, sy,
tx, ty)`` maps a rotated vertex ``(x, y, z)`` to normalised device coordinates ``(sx (x + tx), sy (y - ty))``.
In pixels of a ``W x H`` frame that is ``u = (1 + sx (X + tx)) W / 2`` and ``v = (1 + sy (Y + ty)) H / 2``
for an SMPL-frame vertex ``(X, Y, Z)``, the same weak-perspective projection the model's camera makes inside
its 224-pixel crop.

Depth: a vertex's depth is ``-z`` after the rotation (metres, smaller is nearer). Weak perspective keeps no
distance to the camera, so each mesh is placed at the distance its scale implies for a camera of focal length
``max(W, H)`` pixels, ``2 max(W, H) / (|sx| W)`` metres, before the depth test: bigger people are nearer, as in
the official demo's ordering of people by camera scale, and overlapping meshes are resolved per pixel.

Perspective (``DEMO.CAMERA perspective``): a renderer given a focal length draws each mesh moved by its
``trans_cam`` into the camera frame and projected by the pinhole of ``lib/vis/camera.py`` (principal point
at the image centre); the depth is then ``-1 / z`` (affine in the image, as the rasteriser needs).

Two rasterisers share the shading: ``'zbuffer'`` covers pixel centres exactly, keeps the nearest surface per
pixel and shades it with interpolated vertex normals; ``'painter'`` fills faces far-to-near with
``cv2.fillConvexPoly`` and flat face normals (faster on large frames, and exact as long as faces do not
intersect). Images are ``(H, W, 3)`` uint8 BGR; colours are RGB in [0, 1].
"""
from __future__ import annotations

import colorsys
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lib.core.io import atomic_write
from lib.vis.camera import principal_point, project_to_image

# 180 degrees about x: SMPL / camera frame (y down, z away) -> OpenGL frame (y up, z towards the viewer).
FLIP_X = np.diag([1.0, -1.0, -1.0])
# Directions towards the lights (OpenGL camera frame: x right, y up, z towards the viewer) and intensities.
LIGHT_DIRECTIONS = np.array([[-0.3, 0.5, 1.0], [0.6, -0.2, 0.7]])
LIGHT_INTENSITIES = np.array([0.6, 0.3])
AMBIENT = 0.3
# Candidate pixels evaluated at once by the z-buffer rasteriser (bounds its memory to ~100 MB).
_CHUNK = 1 << 20


def rotation_y(degrees: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``degrees`` about the y axis (right-handed)."""
    a = np.radians(degrees)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def track_color(track_id: int) -> tuple[float, float, float]:
    """A distinct, stable RGB colour in [0, 1] for a track id (golden-ratio hues, the official demo's
    saturation 0.5 and value 1.0)."""
    hue = (0.61803398875 * (int(track_id) + 1)) % 1.0
    return colorsys.hsv_to_rgb(hue, 0.5, 1.0)


def project(verts: np.ndarray, cam: np.ndarray, width: int, height: int,
            rotation: np.ndarray | None = None, focal_length: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and depths of SMPL-frame vertices under the weak-perspective image camera, or the pinhole.

    ``verts (V, 3)`` metres, ``cam (4,)`` = orig_cam ``(sx, sy, tx, ty)``; ``rotation (3, 3)`` is applied
    after the 180-degree flip (the side view uses a turn about y). With ``focal_length`` (pixels), ``cam``
    is ``trans_cam (3,)`` metres and the pinhole projects instead. Returns ``uv (V, 2)`` pixel coordinates
    (pixel ``(i, j)`` has its centre at ``u = j + 0.5, v = i + 0.5``) and ``depth (V,)``, smaller is nearer:
    metres including the per-mesh distance described in the module docstring, or ``-1 / z`` for the pinhole.
    """
    rot = FLIP_X if rotation is None else rotation @ FLIP_X
    if focal_length is not None:
        points = np.asarray(verts, dtype=np.float64) @ (FLIP_X @ rot).T + np.asarray(cam, dtype=np.float64)
        uv = project_to_image(points[None], np.zeros((1, 3)), focal_length, principal_point(width, height))[0]
        return uv, -1.0 / points[:, 2]
    sx, sy, tx, ty = (float(c) for c in cam)
    v = np.asarray(verts, dtype=np.float64) @ rot.T
    u = (1.0 + sx * (v[:, 0] + tx)) * width / 2.0
    w = (1.0 - sy * (v[:, 1] - ty)) * height / 2.0
    distance = 2.0 * max(width, height) / max(abs(sx) * width, 1e-9)
    return np.stack([u, w], axis=1), distance - v[:, 2]


def face_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised face normals ``(F, 3)`` (length = twice the face area) of ``verts (V, 3)``."""
    tri = verts[faces]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)``."""
    fn = face_normals(verts, faces)
    corners = faces.reshape(-1)
    normals = np.stack([np.bincount(corners, weights=np.repeat(fn[:, k], 3), minlength=len(verts))
                        for k in range(3)], axis=1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _edge_coefficients(uv: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Barycentric coordinates as linear functions of the pixel position: ``w_k(u, v) = A[:, k] u + B[:, k] v
    + C[:, k]`` for each face (``(F, 3)`` each), and the doubled signed area ``(F,)``."""
    p = uv[faces]
    area2 = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    safe = np.where(area2 == 0, 1.0, area2)
    a, b, c = np.empty((len(faces), 3)), np.empty((len(faces), 3)), np.empty((len(faces), 3))
    for k in range(3):
        start, end = p[:, (k + 1) % 3], p[:, (k + 2) % 3]
        ex, ey = end[:, 0] - start[:, 0], end[:, 1] - start[:, 1]
        # w_k = ((end - start) x (q - start)) / area2, the area opposite vertex k.
        a[:, k] = -ey / safe
        b[:, k] = ex / safe
        c[:, k] = (ey * start[:, 0] - ex * start[:, 1]) / safe
    return a, b, c, area2


def rasterize(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of triangles at pixel centres.

    ``uv (V, 2)`` pixel coordinates, ``depth (V,)`` (smaller is nearer), ``faces (F, 3)`` vertex indices.
    Returns ``face_id (H, W)`` int64 (-1 where no face covers the pixel centre) and ``zbuf (H, W)`` (inf
    there). Triangles are grouped by the power-of-two size of their pixel bounding boxes and each group is
    tested against all pixels of its boxes at once.
    """
    faces = np.asarray(faces, dtype=np.int64)
    face_id = np.full(height * width, -1, dtype=np.int64)
    zbuf = np.full(height * width, np.inf)
    if len(faces) == 0:
        return face_id.reshape(height, width), zbuf.reshape(height, width)
    a, b, c, area2 = _edge_coefficients(uv, faces)
    tz = depth[faces]
    # Depth is affine in the pixel position (weak perspective; -1/z in perspective): z(u, v) = du u + dv v + d0.
    du, dv, d0 = (a * tz).sum(1), (b * tz).sum(1), (c * tz).sum(1)
    p = uv[faces]
    x0 = np.ceil(p[:, :, 0].min(1) - 0.5)
    x1 = np.floor(p[:, :, 0].max(1) - 0.5)
    y0 = np.ceil(p[:, :, 1].min(1) - 0.5)
    y1 = np.floor(p[:, :, 1].max(1) - 0.5)
    finite = np.isfinite(p).all(axis=(1, 2)) & np.isfinite(tz).all(1)
    x0, y0 = np.clip(np.nan_to_num(x0), 0, width - 1), np.clip(np.nan_to_num(y0), 0, height - 1)
    x1, y1 = np.clip(np.nan_to_num(x1), -1, width - 1), np.clip(np.nan_to_num(y1), -1, height - 1)
    live = finite & (area2 != 0) & (x1 >= x0) & (y1 >= y0)
    bw = np.where(live, x1 - x0 + 1, 0).astype(np.int64)
    bh = np.where(live, y1 - y0 + 1, 0).astype(np.int64)
    cw = 1 << np.ceil(np.log2(np.maximum(bw, 1))).astype(np.int64)
    ch = 1 << np.ceil(np.log2(np.maximum(bh, 1))).astype(np.int64)
    keys = np.where(live, cw * (1 << 20) + ch, -1)
    hits_pix, hits_depth, hits_face = [], [], []
    for key in np.unique(keys[keys >= 0]):
        group = np.nonzero(keys == key)[0]
        gw, gh = int(key >> 20), int(key & ((1 << 20) - 1))
        step = max(1, _CHUNK // (gw * gh))
        ox, oy = np.arange(gw, dtype=np.float64), np.arange(gh, dtype=np.float64)
        for start in range(0, len(group), step):
            f = group[start:start + step]
            px = x0[f, None, None] + ox[None, None, :]
            py = y0[f, None, None] + oy[None, :, None]
            inside = (px <= x1[f, None, None]) & (py <= y1[f, None, None])
            cu, cv = px + 0.5, py + 0.5
            for k in range(3):
                inside &= (a[f, k, None, None] * cu + b[f, k, None, None] * cv + c[f, k, None, None]) >= -1e-9
            t, iy, ix = np.nonzero(inside)
            if len(t) == 0:
                continue
            face = f[t]
            u_hit, v_hit = x0[face] + ix + 0.5, y0[face] + iy + 0.5
            hits_pix.append((y0[face] + iy).astype(np.int64) * width + (x0[face] + ix).astype(np.int64))
            hits_depth.append(du[face] * u_hit + dv[face] * v_hit + d0[face])
            hits_face.append(face)
    if not hits_pix:
        return face_id.reshape(height, width), zbuf.reshape(height, width)
    pix, dep, fid = np.concatenate(hits_pix), np.concatenate(hits_depth), np.concatenate(hits_face)
    np.minimum.at(zbuf, pix, dep)
    nearest = dep <= zbuf[pix]
    face_id[pix[nearest]] = fid[nearest]
    return face_id.reshape(height, width), zbuf.reshape(height, width)


def paint(uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int) -> np.ndarray:
    """Painter's-algorithm rasterisation: faces filled far-to-near by mean depth with OpenCV.

    Same arguments as :func:`rasterize`; returns ``face_id (H, W)`` int64, -1 where nothing was drawn.
    """
    ids = np.zeros((height, width), dtype=np.int32)
    order = np.argsort(-depth[faces].mean(1), kind='stable')
    shift = 4
    pts = np.round(uv[faces] * (1 << shift) - (1 << (shift - 1))).astype(np.int32)
    finite = np.isfinite(uv[faces]).all(axis=(1, 2))
    for f in order[finite[order]]:
        cv2.fillConvexPoly(ids, pts[f], int(f) + 1, lineType=cv2.LINE_8, shift=shift)
    return ids.astype(np.int64) - 1


@dataclass
class Mesh:
    """One person to draw: ``verts (V, 3)`` SMPL frame metres, ``cam`` orig_cam ``(4,)`` (or ``trans_cam (3,)``
    for a renderer with a focal length), ``color`` RGB [0, 1]."""

    verts: np.ndarray
    cam: np.ndarray
    color: tuple[float, float, float] = (1.0, 1.0, 0.9)


class MeshRenderer:
    """Draws SMPL meshes over frames of one size.

    ``faces (F, 3)`` is the shared triangle list; ``mode`` 'zbuffer' or 'painter'; ``alpha`` the mesh opacity
    over the frame; ``wireframe`` draws only the edges of visible faces; ``focal_length`` (pixels) switches
    from the weak-perspective ``orig_cam`` to the pinhole camera with each mesh's ``trans_cam``.
    """

    def __init__(self, faces: np.ndarray, width: int, height: int, mode: str = 'zbuffer', alpha: float = 1.0,
                 wireframe: bool = False, focal_length: float | None = None):
        if mode not in ('zbuffer', 'painter'):
            raise ValueError(f"render mode must be 'zbuffer' or 'painter', got {mode!r}")
        self.faces = np.asarray(faces, dtype=np.int64)
        self.width, self.height = int(width), int(height)
        self.mode = mode
        self.alpha = float(alpha)
        self.wireframe = wireframe
        self.focal_length = focal_length
        self.lights = LIGHT_DIRECTIONS / np.linalg.norm(LIGHT_DIRECTIONS, axis=1, keepdims=True)

    def render(self, image: np.ndarray, meshes: list[Mesh], side_view: bool = False) -> np.ndarray:
        """``image (H, W, 3)`` uint8 BGR with ``meshes`` drawn over it (a new array). ``side_view`` turns each
        mesh 270 degrees about the vertical axis first (the official side view)."""
        out = image.copy()
        if not meshes:
            return out
        rotation = rotation_y(270.0) if side_view else None
        uv, depth, rotated, faces, colors = [], [], [], [], []
        for index, mesh in enumerate(meshes):
            points, dist = project(mesh.verts, mesh.cam, self.width, self.height, rotation, self.focal_length)
            rot = FLIP_X if rotation is None else rotation @ FLIP_X
            uv.append(points)
            depth.append(dist)
            rotated.append(np.asarray(mesh.verts, dtype=np.float64) @ rot.T)
            faces.append(self.faces + index * len(mesh.verts))
            colors.append(np.broadcast_to(np.asarray(mesh.color, dtype=np.float64), (len(self.faces), 3)))
        uv, depth, verts = np.concatenate(uv), np.concatenate(depth), np.concatenate(rotated)
        faces, colors = np.concatenate(faces), np.concatenate(colors)
        if self.mode == 'zbuffer':
            face_id, _ = rasterize(uv, depth, faces, self.width, self.height)
        else:
            face_id = paint(uv, depth, faces, self.width, self.height)
        rows, cols = np.nonzero(face_id >= 0)
        hit = face_id[rows, cols]
        if self.wireframe:
            return self._draw_edges(out, uv, faces, colors, np.unique(hit))
        if len(hit) == 0:
            return out
        rgb = colors[hit] * self._shade(verts, uv, faces, hit, rows, cols)[:, None]
        drawn = np.clip(rgb[:, ::-1] * 255.0, 0, 255)
        blended = self.alpha * drawn + (1 - self.alpha) * out[rows, cols]
        out[rows, cols] = np.round(blended).astype(np.uint8)
        return out

    def _shade(self, verts, uv, faces, hit, rows, cols) -> np.ndarray:
        """Lambert intensity ``(P,)`` of the pixels ``(rows, cols)`` showing faces ``hit``, two-sided (normals
        turned towards the viewer)."""
        if self.mode == 'zbuffer':
            a, b, c, _ = _edge_coefficients(uv, faces)
            cu, cv = cols[:, None] + 0.5, rows[:, None] + 0.5
            weights = np.clip(a[hit] * cu + b[hit] * cv + c[hit], 0, None)
            weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
            normals = np.einsum('pk,pkc->pc', weights, vertex_normals(verts, faces)[faces[hit]])
        else:
            normals = face_normals(verts, faces)[hit]
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        normals *= np.where(normals[:, 2:] < 0, -1.0, 1.0)
        lambert = np.clip(normals @ self.lights.T, 0, None) @ LIGHT_INTENSITIES
        return np.clip(AMBIENT + lambert, 0.0, 1.0)

    def _draw_edges(self, out, uv, faces, colors, visible) -> np.ndarray:
        shift = 4
        pts = np.round(uv[faces[visible]] * (1 << shift) - (1 << (shift - 1))).astype(np.int32)
        for color in np.unique(colors[visible], axis=0):
            same = (colors[visible] == color).all(1)
            bgr = tuple(float(x) * 255.0 for x in color[::-1])
            cv2.polylines(out, list(pts[same]), True, bgr, 1, cv2.LINE_AA, shift)
        return out


def write_obj(path: str | os.PathLike, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write a mesh as Wavefront .obj, rotated 180 degrees about x like the official demo's exports
    (``verts (V, 3)`` SMPL frame metres, ``faces (F, 3)`` 0-based). Written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    v = np.asarray(verts, dtype=np.float64) @ FLIP_X.T
    lines = ['v %.6f %.6f %.6f' % tuple(p) for p in v]
    lines += ['f %d %d %d' % tuple(f) for f in np.asarray(faces, dtype=np.int64) + 1]
    atomic_write(path, '\n'.join(lines) + '\n')
