"""Generate small databases in exactly the released formats, from the generated SMPL model.

    python scripts/make_synthetic_data.py --assets                  # data/synthetic: base_data/ + databases
    python scripts/make_synthetic_data.py --root /tmp/glot --assets # also make base_data/ first
    python scripts/make_synthetic_data.py --root /tmp/glot --eval-benchmark   # 3DPW-sized test set

Writes into ``<root>/preprocessed_data/`` (the default ``DATASET.FILES`` names, plus the ``*_occ_*`` training
names the official YAMLs select, as hard links): ``3dpw_{train,val,test}_db.pt``,
``mpii3d_train_scale12_db.pt``, ``mpii3d_val_scale12_db.pt`` (the MPI-INF-3DHP test set),
``h36m_train_25fps_db.pt``, ``h36m_test_25fps_db.pt`` and ``insta_train_db.h5``; with ``raw_3dpw`` also, in
``<root>/3dpw/``, a tiny raw 3DPW release (``sequenceFiles/{train,validation,test}/*.pkl`` in the real pickle
layout and JPEG frames in ``imageFiles/<sequence>/image_%05d.jpg``) for ``scripts/preprocess_3dpw.py``, and
the frames of the generated 3DPW test set (``imageFiles/synth_test_NN/``, the test database's ``img_name``)
for ``evaluate.py --render``: the ground-truth body drawn in blue, over which the evaluation draws its
predicted mesh.

How the data is made:

- motions: per sequence, random betas and smooth body poses (a rest offset plus three sinusoids per axis,
  0.2-1.2 Hz), a camera-frame root orientation (upright, facing the camera, slowly turning) and a
  translation 3-6 m in front of the camera;
- ground truth from SMPL (``lib.models.smpl.SMPL``, neutral): SPIN-49 joints, vertices, and the 17 Human3.6M
  joints from ``J_regressor_h36m``, converted per dataset exactly as the release stores them (3DPW val/test:
  14 LSP joints; MPI-INF-3DHP / Human3.6M: SPIN-49 root-centred at the pelvis, absent joints = minus the root);
- 2D joints by pinhole projection, boxes from the keypoints (smoothed like the preprocessing scripts);
- ``features = z @ W + noise``: a fixed random projection (seeded) of ``z`` = the 24 camera-frame joint
  rotation matrices (216), betas (10) and the crop-normalised 2D positions of the 24 SMPL joints (48), plus
  Gaussian noise (std 0.05). A model can therefore learn pose, shape and camera from the features.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm  # noqa: E402

from lib.core.io import atomic_path, atomic_write  # noqa: E402
from lib.dataset.preprocess import run_smpl, write_db  # noqa: E402
from lib.vis.renderer import Mesh, MeshRenderer  # noqa: E402
from lib.utils.img_utils import (bbox_from_keypoints, bbox_params_to_boxes, normalize_2d_kp,  # noqa: E402
                                 smooth_keypoint_bboxes, transform_keypoints)
from lib.utils.joints import H36M_TO_J14, convert_kps  # noqa: E402
from scripts.make_synthetic_assets import claim_for_stand_ins  # noqa: E402

# (sequences, frames per sequence) of each generated database.
DEFAULT_SIZES = {
    '3dpw_train': (3, 48), '3dpw_val': (2, 40), '3dpw_test': (3, 40),
    'mpii3d_train': (2, 48), 'mpii3d_val': (2, 40),
    'h36m_train': (2, 48), 'h36m_test': (2, 40),
    'insta_train': (4, 48),
}
# 3DPW test is 37 sequences, 35,515 frames; this gives 37 x 946 = 35,002.
EVAL_BENCHMARK_3DPW_TEST = (37, 946)
FILE_NAMES = {
    '3dpw_train': '3dpw_train_db.pt', '3dpw_val': '3dpw_val_db.pt', '3dpw_test': '3dpw_test_db.pt',
    'mpii3d_train': 'mpii3d_train_scale12_db.pt', 'mpii3d_val': 'mpii3d_val_scale12_db.pt',
    'h36m_train': 'h36m_train_25fps_db.pt', 'h36m_test': 'h36m_test_25fps_db.pt',
    'insta_train': 'insta_train_db.h5',
}
OCC_NAMES = {'3dpw_train': '3dpw_train_occ_db.pt', 'mpii3d_train': 'mpii3d_train_scale12_occ_db.pt',
             'h36m_train': 'h36m_train_25fps_occ_db.pt'}
# Generated 3DPW test frames: colour of the ground-truth body (RGB), and the scale it is drawn at before the
# frame is enlarged to full size (evaluate.py --render shows frames at half size anyway).
BODY_RGB = (0.3, 0.5, 0.9)
FRAME_DRAW_SCALE = 0.5
FEATURE_DIM = 2048
FEATURE_NOISE = 0.05
Z_DIM = 24 * 9 + 10 + 24 * 2


@dataclass
class Camera:
    """Pinhole camera: image ``width`` x ``height`` pixels, focal length ``focal`` pixels, centred."""
    width: int
    height: int
    focal: float

    def project(self, points: np.ndarray) -> np.ndarray:
        """``(..., 3)`` camera-frame metres -> ``(..., 2)`` pixels."""
        z = np.maximum(points[..., 2:3], 1e-3)
        return points[..., :2] / z * self.focal + np.array([self.width / 2, self.height / 2])

    def intrinsics(self) -> np.ndarray:
        return np.array([[self.focal, 0, self.width / 2], [0, self.focal, self.height / 2], [0, 0, 1.0]])


CAMERAS = {'3dpw': Camera(1080, 1920, 1900.0), 'mpii3d': Camera(2048, 2048, 1500.0),
           'h36m': Camera(1000, 1000, 1145.0), 'insta': Camera(1280, 720, 1000.0)}
FPS = {'3dpw': 30.0, 'mpii3d': 25.0, 'h36m': 25.0, 'insta': 30.0}


def random_motion(rng: np.random.Generator, n: int, fps: float, depth: tuple[float, float] = (3.0, 6.0)):
    """A smooth random SMPL motion in the camera frame (x right, y down, z forward).

    Returns:
        ``pose (n, 72)`` axis-angle (root = camera-frame orientation), ``betas (n, 10)``, ``transl (n, 3)``.
    """
    t = np.arange(n)[:, None] / fps
    freq = rng.uniform(0.2, 1.2, (3, 69))
    amp = rng.normal(0.0, 0.22, (3, 69)) / np.arange(1, 4)[:, None]
    phase = rng.uniform(0, 2 * np.pi, (3, 69))
    body = rng.normal(0.0, 0.12, (1, 69)) + sum(amp[k] * np.sin(2 * np.pi * freq[k] * t + phase[k]) for k in range(3))
    yaw = rng.uniform(-0.8, 0.8) + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t[:, 0] + rng.uniform(0, 6))
    tilt = 0.08 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t[:, 0] + rng.uniform(0, 6))
    root = (Rotation.from_euler('x', np.pi) * Rotation.from_euler('y', yaw[:, None]) * Rotation.from_euler('x', tilt[:, None])).as_rotvec()
    z0 = rng.uniform(*depth)
    transl = np.stack([rng.uniform(-0.5, 0.5) + 0.3 * np.sin(2 * np.pi * 0.1 * t[:, 0] + rng.uniform(0, 6)),
                       rng.uniform(-0.1, 0.2) + 0.03 * np.sin(2 * np.pi * 0.5 * t[:, 0]),
                       z0 + 0.4 * np.sin(2 * np.pi * 0.07 * t[:, 0] + rng.uniform(0, 6))], axis=1)
    betas = np.repeat(rng.normal(0.0, 1.0, (1, 10)), n, axis=0)
    pose = np.concatenate([root, body], axis=1)
    return pose.astype(np.float32), betas.astype(np.float32), transl.astype(np.float32)


class FeatureMap:
    """The fixed random map from (pose, shape, crop-normalised 2D) to 2048-d features."""

    def __init__(self, seed: int):
        rng = np.random.default_rng([seed, 2048])
        self.weight = (rng.normal(0.0, 1.0, (Z_DIM, FEATURE_DIM)) / np.sqrt(Z_DIM)).astype(np.float32)
        self.rng = np.random.default_rng([seed, 4096])

    def __call__(self, pose: np.ndarray, betas: np.ndarray, kp_norm24: np.ndarray) -> np.ndarray:
        """``pose (N, 72)``, ``betas (N, 10)``, ``kp_norm24 (N, 24, 2)`` in [-1, 1] -> ``(N, 2048)`` float32."""
        rotmats = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(len(pose), 216)
        z = np.concatenate([rotmats, betas, kp_norm24.reshape(len(pose), 48)], axis=1).astype(np.float32)
        noise = self.rng.normal(0.0, FEATURE_NOISE, (len(pose), FEATURE_DIM)).astype(np.float32)
        return z @ self.weight + noise


class Generator:
    """Shared state: SMPL, the H36M regressor and the feature map."""

    def __init__(self, data_root: Path, seed: int):
        from lib.core.config import load_config
        from lib.models.smpl import build_smpl, load_h36m_regressor

        cfg = load_config(None, ['DATA_ROOT', str(data_root)])
        self.smpl = build_smpl(cfg, 'neutral')
        self.j_h36m = load_h36m_regressor(cfg)
        self.features = FeatureMap(seed)
        self.rng = np.random.default_rng(seed)

    def body(self, pose, betas, transl):
        """SMPL in the camera frame: ``spin (N, 49, 3)``, ``h36m (N, 17, 3)``, ``smpl24 (N, 24, 3)``."""
        joints, verts = run_smpl(self.smpl, pose, betas, transl)
        verts = torch.from_numpy(verts)
        h36m = torch.matmul(self.j_h36m, verts).numpy()
        # 24 points for the feature map: the SMPL joint regressor applied to the posed mesh
        smpl24 = torch.matmul(self.smpl.J_regressor, verts).numpy()
        return joints, h36m, smpl24

    def rest_root(self, betas: np.ndarray) -> np.ndarray:
        """``(B, 3)`` root joint of the shaped rest body (the centre of SMPL's global rotation)."""
        shaped = self.smpl.v_template + torch.einsum('vck,bk->bvc', self.smpl.shapedirs,
                                                     torch.as_tensor(betas, dtype=torch.float32))
        return (self.smpl.J_regressor[0] @ shaped).numpy()

    def draw_frames(self, folder: Path, pose, betas, transl, cam: Camera) -> None:
        """Write ``image_%05d.jpg`` frames of the body in ``cam``'s image (``cam.width`` x ``cam.height``), drawn
        with the demo's renderer under the weak-perspective camera of its centroid."""
        _, verts = run_smpl(self.smpl, pose, betas, transl)
        verts = verts.astype(np.float64)
        width, height = int(cam.width * FRAME_DRAW_SCALE), int(cam.height * FRAME_DRAW_SCALE)
        renderer = MeshRenderer(np.asarray(self.smpl.faces, dtype=np.int64), width, height, mode='painter')
        backdrop = np.broadcast_to(np.linspace(70, 30, height)[:, None, None], (height, width, 3)).astype(np.uint8)
        for i, frame_verts in enumerate(verts):
            centre = frame_verts.mean(0)
            # u = W/2 + f x / z with z at the centroid: sx = 2 f / (W z), tx = x (likewise for y)
            weak = np.array([2 * cam.focal / (cam.width * centre[2]), 2 * cam.focal / (cam.height * centre[2]),
                             centre[0], centre[1]])
            image = renderer.render(backdrop, [Mesh(frame_verts - centre, weak, BODY_RGB)])
            image = cv2.resize(image, (cam.width, cam.height), interpolation=cv2.INTER_LINEAR)
            atomic_write(folder / f'image_{i:05d}.jpg', cv2.imencode('.jpg', image)[1].tobytes())

    def features_for(self, pose, betas, smpl24_px, bbox, scale=1.2):
        kp = normalize_2d_kp(transform_keypoints(smpl24_px, bbox, scale))
        return self.features(pose, betas, kp)


def _root_centred_spin(joints: np.ndarray, src: str) -> np.ndarray:
    """Joints in format ``src`` -> SPIN-49 minus the pelvis (joint 39), absent joints = minus the pelvis, as
    the MPI-INF-3DHP / Human3.6M scripts store them."""
    spin = convert_kps(joints, src, 'spin')
    return (spin - spin[:, 39:40]).astype(np.float32)


def _spin_2d(joints_px: np.ndarray, src: str) -> np.ndarray:
    """Pixels ``(N, J, 2)`` of format ``src`` -> SPIN-49 ``(N, 49, 3)`` with confidence 1 where present."""
    with_conf = np.concatenate([joints_px, np.ones(joints_px.shape[:-1] + (1,))], axis=-1)
    return convert_kps(with_conf, src, 'spin')


def _smoothed_boxes(kp_2d: np.ndarray, enlarge: float = 1.1) -> np.ndarray:
    params, start, stop = smooth_keypoint_bboxes(kp_2d, vis_thresh=0.3)
    if (start, stop) != (0, len(kp_2d)):
        raise RuntimeError('synthetic keypoints must be visible in every frame')
    return bbox_params_to_boxes(params, enlarge)


def make_3dpw(gen: Generator, split: str, n_seq: int, n_frames: int, frames_dir: Path | None = None) -> dict:
    """The 3DPW database of ``split``; with ``frames_dir``, also each sequence's frames in ``frames_dir/<seq>/``."""
    cam = CAMERAS['3dpw']
    pieces = {k: [] for k in ('vid_name', 'frame_id', 'img_name', 'joints3D', 'joints2D', 'shape', 'pose',
                              'bbox', 'valid', 'features')}
    for s in range(n_seq):
        seq = f'synth_{split}_{s:02d}'
        pose, betas, transl = random_motion(gen.rng, n_frames, FPS['3dpw'])
        spin, h36m, smpl24 = gen.body(pose, betas, transl)
        spin_px, smpl24_px = cam.project(spin), cam.project(smpl24)
        j2d = np.concatenate([spin_px[:, 25:39], np.ones((n_frames, 14, 1))], axis=2)
        j2d[:, 12:] = np.concatenate([spin_px[:, :1].repeat(2, 1), np.zeros((n_frames, 2, 1))], axis=2)
        j2d[:, :12, :2] += gen.rng.normal(0, 1.0, (n_frames, 12, 2))
        bbox = _smoothed_boxes(j2d)
        valid = np.ones(n_frames, dtype=bool)
        if split == 'test' and s == 0:
            valid[n_frames // 2:n_frames // 2 + 5] = False
        pieces['vid_name'].append(np.array([f'{seq}_0'] * n_frames))
        pieces['frame_id'].append(np.arange(n_frames))
        pieces['img_name'].append(np.array([f'data/3dpw/imageFiles/{seq}/image_{i:05d}.jpg' for i in range(n_frames)]))
        pieces['joints3D'].append(spin if split == 'train' else h36m[:, list(H36M_TO_J14)].astype(np.float32))
        pieces['joints2D'].append(j2d)
        pieces['shape'].append(betas)
        pieces['pose'].append(pose)
        pieces['bbox'].append(bbox)
        pieces['valid'].append(valid)
        pieces['features'].append(gen.features_for(pose, betas, smpl24_px, bbox))
        if frames_dir is not None:
            gen.draw_frames(frames_dir / seq, pose, betas, transl, cam)
    return {k: np.concatenate(v) for k, v in pieces.items()}


def make_mpii3d(gen: Generator, split: str, n_seq: int, n_frames: int) -> dict:
    cam = CAMERAS['mpii3d']
    src = 'mpii3d' if split == 'train' else 'mpii3d_test'
    keys = ['vid_name', 'frame_id', 'joints3D', 'joints2D', 'bbox', 'img_name', 'features']
    pieces = {k: [] for k in keys + ([] if split == 'train' else ['valid_i'])}
    for s in range(n_seq):
        pose, betas, transl = random_motion(gen.rng, n_frames, FPS['mpii3d'])
        spin, _, smpl24 = gen.body(pose, betas, transl)
        native = convert_kps(spin, 'spin', src)                       # the dataset's own joint set
        j2d = _spin_2d(cam.project(native), src)
        j3d = _root_centred_spin(native, src)
        bbox = bbox_from_keypoints(j2d[:, j2d[0, :, 2] > 0])
        if split == 'train':
            subj, seq, vid = 1 + s // 2, 1 + s % 2, 0
            name = f'subj{subj}_seq{seq}_vid{vid}_seg0'
            frame_ids = np.array([f'frame_{i + 1:06d}' for i in range(n_frames)])
            img = [f'data/mpi_inf_3dhp/S{subj}/Seq{seq}/video_{vid}/{f}.jpg' for f in frame_ids]
        else:
            name = f'subj{s + 1}_seg0'
            frame_ids = np.array([f'img_{i + 1:06d}' for i in range(n_frames)])
            img = [f'data/mpi_inf_3dhp/mpi_inf_3dhp_test_set/TS{s + 1}/imageSequence/{f}.jpg' for f in frame_ids]
            valid = np.ones((n_frames, 1))
            valid[:3] = 0
            pieces['valid_i'].append(valid)
        pieces['vid_name'].append(np.array([name] * n_frames))
        pieces['frame_id'].append(frame_ids)
        pieces['img_name'].append(np.array(img))
        pieces['joints3D'].append(j3d)
        pieces['joints2D'].append(j2d)
        pieces['bbox'].append(bbox)
        pieces['features'].append(gen.features_for(pose, betas, cam.project(smpl24), bbox))
    return {k: np.concatenate(v) for k, v in pieces.items()}


def make_h36m(gen: Generator, split: str, n_seq: int, n_frames: int) -> dict:
    cam = CAMERAS['h36m']
    subjects = (1, 5, 6, 7, 8) if split == 'train' else (9, 11)
    pieces = {k: [] for k in ('vid_name', 'frame_id', 'joints3D', 'joints2D', 'shape', 'pose', 'bbox',
                              'img_name', 'features')}
    for s in range(n_seq):
        pose, betas, transl = random_motion(gen.rng, n_frames, FPS['h36m'])
        _, h36m, smpl24 = gen.body(pose, betas, transl)
        j2d = _spin_2d(cam.project(h36m), 'h36m')
        bbox = _smoothed_boxes(j2d)
        subject = subjects[s % len(subjects)]
        seq = f'data/h36m/images/s_{subject:02d}_act_{2 + s:02d}_subact_01_ca_{1 + s % 4:02d}'
        frames = 2 * np.arange(n_frames)                                # 50 -> 25 fps
        pieces['vid_name'].append(np.array([f'{seq}_{subject}'] * n_frames))
        pieces['frame_id'].append(frames)
        pieces['img_name'].append(np.array([f'{seq}/{seq.rsplit("/", 1)[1]}_{f + 1:06d}.jpg' for f in frames]))
        pieces['joints3D'].append(_root_centred_spin(h36m, 'h36m'))
        pieces['joints2D'].append(j2d.astype(np.float32))
        smpl_known = split == 'train'
        pieces['shape'].append(betas if smpl_known else np.zeros_like(betas))
        pieces['pose'].append(pose if smpl_known else np.zeros_like(pose))
        pieces['bbox'].append(bbox)
        pieces['features'].append(gen.features_for(pose, betas, cam.project(smpl24), bbox))
    return {k: np.concatenate(v) for k, v in pieces.items()}


def make_insta(gen: Generator, n_seq: int, n_frames: int) -> dict:
    cam = CAMERAS['insta']
    pieces = {k: [] for k in ('vid_name', 'frame_id', 'joints2D', 'features')}
    for s in range(n_seq):
        pose, betas, transl = random_motion(gen.rng, n_frames, FPS['insta'])
        spin, _, smpl24 = gen.body(pose, betas, transl)
        spin_px = cam.project(spin)
        bbox = bbox_from_keypoints(spin_px)
        crop_px = transform_keypoints(spin_px, bbox, 1.2)              # the clips are pre-cropped 224 images
        j2d = convert_kps(np.concatenate([crop_px, np.ones((n_frames, 49, 1))], axis=2), 'spin', 'insta')
        pieces['vid_name'].append(np.array([f'insta_variety/synth-{s}'.encode()] * n_frames))
        pieces['frame_id'].append(np.arange(n_frames))
        pieces['joints2D'].append(j2d)
        pieces['features'].append(gen.features_for(pose, betas, cam.project(smpl24), bbox))
    return {k: np.concatenate(v) for k, v in pieces.items()}


def write_h5(db: dict, path: Path) -> Path:
    """Save ``db`` as VIBE's h5 layout (``vid_name`` as fixed-length bytes)."""
    with atomic_path(path) as tmp, h5py.File(tmp, 'w') as f:
        for key, value in db.items():
            f.create_dataset(key, data=np.asarray(value, dtype=np.bytes_) if key == 'vid_name' else value)
    return path


# ------------------------------------------------------------------------------------- raw 3DPW release
OPENPOSE18_FROM_SPIN = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def make_raw_3dpw(gen: Generator, out_dir: Path, n_frames: int = 16, n_people: int = 2,
                  image_size: tuple[int, int] = (270, 480), splits=('train', 'validation', 'test')) -> Path:
    """A tiny raw 3DPW release: one sequence per split in the real pickle layout, with JPEG frames.

    World frame y up; the camera looks at the people from 4 m. Returns ``out_dir``.
    """
    claim_for_stand_ins(out_dir)
    width, height = image_size
    cam = Camera(width, height, 0.9 * height)
    for split in splits:
        seq = f'synth_{split}_seq'
        people = []
        for p in range(n_people):
            pose_cam, betas, transl_cam = random_motion(gen.rng, n_frames, FPS['3dpw'], depth=(3.5, 4.5))
            people.append((pose_cam, betas, transl_cam + np.array([0.6 * (p - (n_people - 1) / 2), 0, 0])))
        pan = Rotation.from_euler('y', 0.1 * np.sin(np.arange(n_frames)[:, None] / 10))
        cam_rot = (Rotation.from_euler('x', np.pi) * pan).as_matrix()            # world -> camera rotation
        cam_t = np.tile([0.0, 0.0, 4.0], (n_frames, 1))
        cam_poses = np.tile(np.eye(4), (n_frames, 1, 1))
        cam_poses[:, :3, :3], cam_poses[:, :3, 3] = cam_rot, cam_t
        data = {'sequence': seq, 'betas': [], 'betas_clothed': [], 'poses': [], 'trans': [], 'poses2d': [],
                'jointPositions': [], 'campose_valid': [], 'genders': [], 'v_template_clothed': [],
                'cam_poses': cam_poses, 'cam_intrinsics': cam.intrinsics(), 'img_frame_ids': np.arange(n_frames)}
        frames_px = []
        for p, (pose_cam, betas, transl_cam) in enumerate(people):
            # express the camera-frame motion in the world: X_w = R_c^T (X_c - t_c)
            r_cam = Rotation.from_matrix(cam_rot)
            pose_world = pose_cam.copy()
            pose_world[:, :3] = (r_cam.inv() * Rotation.from_rotvec(pose_cam[:, :3])).as_rotvec()
            spin_c, _, smpl24_c = gen.body(pose_cam, betas, transl_cam)
            # SMPL rotates about its rest root joint J0, so X_w = R_c^T (X_c - t_c) needs
            # trans_w = R_c^T (J0 + transl_c - t_c) - J0
            j0 = gen.rest_root(betas[:1])
            trans_world = np.einsum('nij,nj->ni', cam_rot.transpose(0, 2, 1), j0 + transl_cam - cam_t) - j0
            px = cam.project(spin_c)
            conf = np.full((n_frames, 18, 1), 0.9)
            conf[:, 14:] = 0.2                                           # eyes/ears: below the 0.3 threshold
            op18 = np.concatenate([px[:, OPENPOSE18_FROM_SPIN], conf], axis=2)
            world_joints = np.einsum('nij,nkj->nki', cam_rot.transpose(0, 2, 1), smpl24_c - cam_t[:, None])
            valid = np.ones(n_frames)
            valid[-2:] = 0 if p == 0 else 1
            data['betas'].append(betas[0].astype(np.float64))
            data['betas_clothed'].append(betas[0].astype(np.float64))
            data['poses'].append(pose_world.astype(np.float64))
            data['trans'].append(trans_world.astype(np.float64))
            data['poses2d'].append(op18.transpose(0, 2, 1))
            data['jointPositions'].append(world_joints.reshape(n_frames, 72))
            data['campose_valid'].append(valid)
            data['genders'].append('m' if p % 2 == 0 else 'f')
            data['v_template_clothed'].append(gen.smpl.v_template.numpy().astype(np.float64))
            frames_px.append(px)
        atomic_write(out_dir / 'sequenceFiles' / split / f'{seq}.pkl', pickle.dumps(data, protocol=2))
        _write_frames(out_dir / 'imageFiles' / seq, frames_px, width, height, gen.rng)
    return out_dir


def _write_frames(folder: Path, people_px: list[np.ndarray], width: int, height: int, rng) -> None:
    """JPEG frames with a coloured blob per joint of every person (so crops carry some signal)."""
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(60, 140, height)[:, None, None] + np.linspace(0, 40, width)[None, :, None]
    background = (ramp + rng.uniform(-20, 20, (1, 1, 3))).clip(0, 255).astype(np.uint8)
    for i in range(len(people_px[0])):
        image = background.copy()
        for p, px in enumerate(people_px):
            for j, (x, y) in enumerate(px[i, :25]):
                colour = tuple(int(c) for c in (40 + 8 * j, 200 - 60 * p, 255 - 8 * j))
                cv2.circle(image, (int(round(x)), int(round(y))), 4, colour, -1)
        atomic_write(folder / f'image_{i:05d}.jpg', cv2.imencode('.jpg', image)[1].tobytes())


# ------------------------------------------------------------------------------------------- entry
def make_synthetic_data(data_root: str | os.PathLike, seed: int = 0, sizes: dict | None = None,
                        eval_benchmark: bool = False, raw_3dpw: bool = True, occ_names: bool = True,
                        only: tuple[str, ...] | None = None) -> Path:
    """Write the generated databases into ``data_root/preprocessed_data`` (and the raw 3DPW release into
    ``data_root/3dpw``). ``data_root/base_data`` must hold the SMPL assets (scripts/make_synthetic_assets.py).

    Args:
        data_root: the DATA_ROOT.
        seed: everything is deterministic in it.
        sizes: overrides of :data:`DEFAULT_SIZES`, e.g. ``{'3dpw_test': (37, 946)}``.
        eval_benchmark: 3DPW test at the real test-set size (:data:`EVAL_BENCHMARK_3DPW_TEST`), without frames.
        raw_3dpw: also write the tiny raw 3DPW release and (unless ``eval_benchmark``) the 3DPW test frames.
        occ_names: also link the training files under the ``*_occ_*`` names the official YAMLs select.
        only: restrict to these keys of :data:`DEFAULT_SIZES`.
    Returns:
        the ``preprocessed_data`` folder.
    """
    data_root = Path(data_root)
    out = data_root / 'preprocessed_data'
    claim_for_stand_ins(out)
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    if eval_benchmark:
        sizes['3dpw_test'] = EVAL_BENCHMARK_3DPW_TEST
    gen = Generator(data_root, seed)
    frames_dir = None
    if raw_3dpw and not eval_benchmark:
        claim_for_stand_ins(data_root / '3dpw')
        frames_dir = data_root / '3dpw' / 'imageFiles'
    keys = [key for key in sizes if only is None or key in only]
    with torch.inference_mode(), tqdm(total=len(keys) + raw_3dpw, desc='generating', unit='file') as bar:
        for key in keys:
            n_seq, n_frames = sizes[key]
            bar.set_postfix_str(f'{FILE_NAMES[key]}: {n_seq} x {n_frames} frames')
            name, split = key.split('_')
            if name == 'insta':
                write_h5(make_insta(gen, n_seq, n_frames), out / FILE_NAMES[key])
            elif name == '3dpw':
                write_db(make_3dpw(gen, split, n_seq, n_frames, frames_dir if split == 'test' else None),
                         out / FILE_NAMES[key])
            else:
                make = {'mpii3d': make_mpii3d, 'h36m': make_h36m}[name]
                write_db(make(gen, split, n_seq, n_frames), out / FILE_NAMES[key])
            if occ_names and key in OCC_NAMES:
                _link(out / FILE_NAMES[key], out / OCC_NAMES[key])
            bar.update()
        if raw_3dpw:
            bar.set_postfix_str('raw 3DPW release')
            make_raw_3dpw(gen, data_root / '3dpw')
            bar.update()
    return out


def _link(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        dst.write_bytes(src.read_bytes())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='data/synthetic', help='DATA_ROOT (default: data/synthetic)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--assets', action='store_true', help='first write base_data/ with make_synthetic_assets')
    parser.add_argument('--eval-benchmark', action='store_true',
                        help=f'3DPW test with {EVAL_BENCHMARK_3DPW_TEST[0]} sequences x {EVAL_BENCHMARK_3DPW_TEST[1]} frames')
    parser.add_argument('--frames', type=int, default=0, help='frames per sequence for every database (0: defaults)')
    parser.add_argument('--sequences', type=int, default=0, help='sequences per database (0: defaults)')
    parser.add_argument('--no-raw-3dpw', action='store_true', help='skip the raw 3DPW release')
    args = parser.parse_args(argv)
    if args.assets:
        from scripts.make_synthetic_assets import make_synthetic_assets

        make_synthetic_assets(args.root, args.seed)
    sizes = {key: (args.sequences or s, args.frames or f) for key, (s, f) in DEFAULT_SIZES.items()}
    out = make_synthetic_data(args.root, args.seed, sizes, args.eval_benchmark, raw_3dpw=not args.no_raw_3dpw)
    print(f'synthetic databases written to {out}')


if __name__ == '__main__':
    from lib.core.cli import run_main

    run_main(main)
