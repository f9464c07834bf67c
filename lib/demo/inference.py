"""The demo's networks: SPIN ResNet-50 features of person crops and GLoT over each track's windows.

:class:`GLoTPredictor` loads both once (from the files checked once, :func:`demo_files`) and turns
frames and :class:`PersonTrack` s into the per-person results: the official ``RESULT_KEYS``, ``frame_filled``
and the camera-space ``CAMERA_KEYS`` of :mod:`lib.demo.camera`. :func:`window_indices` is the window of every
frame of a track (the offline and the online mode share it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lib.core.config import ConfigError, resolve_device
from lib.core.files import NeededFile, body_model_files, check_files, glot_weights_file, spin_checkpoint_file
from lib.demo.camera import CAMERA_KEYS, camera_outputs
from lib.demo.world import WORLD_KEYS
from lib.models import build_model, load_checkpoint
from lib.models.params import smpl_from_rotmat, split_theta
from lib.models.smpl import build_smpl
from lib.models.spin import load_hmr
from lib.utils.img_utils import crop_patch, normalize_images
from lib.vis.camera import image_camera

RESULT_KEYS = ('pred_cam', 'orig_cam', 'verts', 'pose', 'betas', 'joints3d', 'joints2d', 'bboxes', 'frame_ids')


@dataclass
class PersonResult:
    """One tracked person's results over its ``n`` frames, typed (the smplx ``SMPLOutput`` habit); the
    official per-person dict of ``glot_output.pkl`` is made only where it is written (:meth:`to_dict`).

    ``pred_cam (n, 3)`` crop camera ``(s, tx, ty)``; ``orig_cam (n, 4)`` float32 image camera ``(sx, sy, tx,
    ty)``; ``verts (n, 6890, 3)`` and ``joints3d (n, 49, 3)`` float32 metres, SMPL frame; ``pose (n, 72)``
    axis-angle radians; ``betas (n, 10)``; ``bboxes (n, 4)`` float32 cx, cy, w, h pixels (the scaled crop
    boxes); ``frame_ids (n,)`` int64 video frames; ``frame_filled (n,)`` bool, interpolated boxes; the
    camera-space ``trans_cam (n, 3)`` float32 metres, ``focal_length`` pixels, ``principal_point (2,)``
    float32 pixels and ``joints2d_img (n, 49, 2)`` float32 pixels (:mod:`lib.demo.camera`); the world-frame
    ``cam_R (n, 3, 3)``, ``global_orient_world (n, 3)`` radians and ``trans_world (n, 3)`` metres
    (:mod:`lib.demo.world`), None until the camera motion is known. The official ``joints2d`` is always None.
    """

    pred_cam: np.ndarray
    orig_cam: np.ndarray
    verts: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    joints3d: np.ndarray
    bboxes: np.ndarray
    frame_ids: np.ndarray
    frame_filled: np.ndarray
    trans_cam: np.ndarray
    focal_length: float
    principal_point: np.ndarray
    joints2d_img: np.ndarray
    joints2d: None = None
    cam_R: np.ndarray | None = None
    global_orient_world: np.ndarray | None = None
    trans_world: np.ndarray | None = None

    def to_dict(self) -> dict:
        """The official per-person dict (``RESULT_KEYS`` in the official order), then ``frame_filled``, the
        ``CAMERA_KEYS`` and, once set, the ``WORLD_KEYS``: one entry of ``glot_output.pkl``."""
        keys = RESULT_KEYS + ('frame_filled',) + CAMERA_KEYS + (WORLD_KEYS if self.cam_R is not None else ())
        return {key: getattr(self, key) for key in keys}


@dataclass
class PersonTrack:
    """A track ready for the networks: ``frames (n,)`` int64, square boxes ``bboxes (n, 4)`` cx, cy, w, h
    (pixels, before the crop scale) and ``filled (n,)`` bool, True where the box was interpolated over a gap
    rather than detected (all False when not given)."""

    track_id: int
    frames: np.ndarray
    bboxes: np.ndarray
    filled: np.ndarray | None = None

    def __post_init__(self):
        if self.filled is None:
            self.filled = np.zeros(len(self.frames), dtype=bool)


def window_indices(length: int, seqlen: int = 16, padding: str = 'clamp') -> np.ndarray:
    """Frame indices ``(length, seqlen)`` of the window predicting each frame of a track of ``length`` frames.

    Window ``k`` covers frames ``k - seqlen//2 .. k + seqlen//2 - 1`` so that frame ``k`` sits at the model's
    target index ``seqlen // 2`` (the official FeatureDataset's interior windows). Near the ends,
    ``'clamp'`` repeats the end frames of the track, ``'repeat'`` fills the whole window with frame ``k``
    (the official FeatureDataset for the first ``seqlen//2`` and last ``seqlen//2 - 1`` frames).
    """
    if padding not in ('clamp', 'repeat'):
        raise ConfigError(f"DEMO.WINDOW_PADDING must be 'clamp' or 'repeat', got '{padding}'")
    mid = seqlen // 2
    target = np.arange(length)[:, None]
    idx = target - mid + np.arange(seqlen)[None, :]
    if padding == 'clamp':
        return np.clip(idx, 0, length - 1)
    inside = (idx[:, :1] >= 0) & (idx[:, -1:] <= length - 1)
    return np.where(inside, idx, target)


def required_files(cfg, checkpoint: str | os.PathLike | None = None) -> list[NeededFile]:
    """Every file the demo reads besides its input: the GLoT weights (``checkpoint``, relative to the current
    folder, or ``TRAIN.PRETRAINED``), the SPIN checkpoint (``TRAIN.PRETRAINED_REGRESSOR``) and the SMPL assets
    (with the ``DEMO.GENDER`` body)."""
    gender = cfg.DEMO.GENDER
    genders = ('neutral',) if gender == 'neutral' else ('neutral', gender)
    return [glot_weights_file(cfg, checkpoint), spin_checkpoint_file(cfg), *body_model_files(cfg, genders)]


@dataclass(frozen=True)
class DemoFiles:
    """The demo's weights, resolved and checked once (:func:`demo_files`): the GLoT and SPIN checkpoints."""

    glot: Path
    spin: Path


def demo_files(cfg, checkpoint: str | os.PathLike | None = None) -> DemoFiles:
    """The weight paths, once every file of :func:`required_files` is checked to exist (one report of all
    missing ones, :func:`lib.core.files.check_files`)."""
    glot, spin, *_ = check_files(cfg, required_files(cfg, checkpoint), 'run the demo')
    return DemoFiles(glot, spin)


class GLoTPredictor:
    """GLoT and the SPIN feature extractor, loaded once; turns frames + tracks into per-person results.

    Args:
        cfg: frozen config (MODEL, SMPL files, DEMO, DEVICE, ``TRAIN.PRETRAINED_REGRESSOR`` = the SPIN
            checkpoint).
        files: the weights (:func:`demo_files`).

    ``DEMO.GENDER`` is the SMPL body the predicted pose and shape are decoded with (verts, joints3d); the
    official demo does the same by swapping the local head's SMPL layer.
    """

    def __init__(self, cfg, files: DemoFiles):
        gender = cfg.DEMO.GENDER
        self.cfg = cfg
        self.device = resolve_device(cfg.DEVICE)
        self.checkpoint, self.spin_checkpoint = files.glot, files.spin
        self.model = build_model(cfg).eval()
        load_checkpoint(self.model, files.glot, cfg)
        self.hmr = load_hmr(files.spin, self.device)
        # Channels-last convolutions run the ResNet ~1.5x faster on the CPU (oneDNN); same results to ~1e-6.
        self.memory_format = torch.channels_last if self.device.type == 'cpu' else torch.contiguous_format
        self.hmr.to(memory_format=self.memory_format)
        # DEMO.FEATURE_DTYPE bfloat16: the ResNet under autocast (features returned as float32 all the same)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=cfg.DEMO.FEATURE_DTYPE == 'bfloat16')
        self.body = build_smpl(cfg, gender).to(self.device) if gender != 'neutral' else None
        self.faces = np.asarray(self.model.smpl.faces, dtype=np.int64)

    @property
    def seqlen(self) -> int:
        return self.model.seqlen

    @property
    def body_model(self):
        """The SMPL layer the results are decoded with (the gendered one, else the model's neutral one)."""
        return self.body if self.body is not None else self.model.smpl

    @torch.no_grad()
    def features(self, frames, tracks: list[PersonTrack], progress: bool = True) -> dict[int, torch.Tensor]:
        """SPIN features ``(n, 2048)`` float32 (CPU) per track id, from one pass over ``frames`` (BGR uint8
        ``(H, W, 3)``): each tracked frame is decoded once and cropped around each of its boxes at
        ``DEMO.BBOX_SCALE``; the 224 x 224 uint8 crops of all tracks are normalised and run through the
        ResNet (in ``DEMO.FEATURE_DTYPE``) together, ``DEMO.FEATURE_BATCH_SIZE`` at a time (memory is bounded
        by that batch, whatever the video's length or resolution)."""
        scale, batch_size = self.cfg.DEMO.BBOX_SCALE, self.cfg.DEMO.FEATURE_BATCH_SIZE
        out = {t.track_id: torch.zeros(len(t.frames), 2048) for t in tracks}
        where: dict[int, list[tuple[int, int]]] = {}
        for t in tracks:
            for row, frame in enumerate(t.frames):
                where.setdefault(int(frame), []).append((t.track_id, row))
        boxes = {t.track_id: t.bboxes for t in tracks}
        patches, slots = [], []

        def flush():
            images = normalize_images(np.stack(patches)).to(self.device, memory_format=self.memory_format)
            with self.autocast:
                feats = self.hmr.feature_extractor(images).float().cpu()
            for (tid, row), feat in zip(slots, feats):
                out[tid][row] = feat
            patches.clear()
            slots.clear()

        total = sum(len(t.frames) for t in tracks)
        with tqdm(total=total, desc='features', unit='crop', disable=not progress) as bar:
            for frame_index, frame in enumerate(frames):
                if frame_index not in where:
                    continue
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                for tid, row in where[frame_index]:
                    patches.append(crop_patch(rgb, boxes[tid][row], scale=scale))
                    slots.append((tid, row))
                    if len(patches) == batch_size:
                        bar.update(len(patches))
                        flush()
            if patches:
                bar.update(len(patches))
                flush()
        return out

    @torch.no_grad()
    def predict(self, features: torch.Tensor, track: PersonTrack, width: int, height: int,
                render_plain: bool = False, rows: list[int] | None = None) -> PersonResult:
        """Run GLoT over the windows of one track and return its :class:`PersonResult`.

        ``features (n, 2048)``; ``width``, ``height`` of the frames. ``render_plain`` replaces the predicted
        crop camera by (1, 0, 0) before the conversion, as the official ``--render_plain``. ``rows``: only the
        windows of these rows of the track (default all); the result then has ``len(rows)`` rows.
        """
        return self.predict_many([(features, track, rows)], width, height, render_plain)[0]

    @torch.no_grad()
    def predict_many(self, items: list[tuple[torch.Tensor, PersonTrack, list[int] | None]], width: int, height: int,
                     render_plain: bool = False) -> list[PersonResult]:
        """:meth:`predict` of several ``(features, track, rows)`` at once, one result each: their windows go
        through GLoT together, ``DEMO.MODEL_BATCH_SIZE`` at a time (the online mode: every person of a frame in
        one batch)."""
        if not items:
            return []
        windows, tracks = [], []   # (features, window indices (m, seqlen)) and the track rows, per item
        for features, track, rows in items:
            idx = torch.from_numpy(window_indices(len(track.frames), self.seqlen, self.cfg.DEMO.WINDOW_PADDING))
            if rows is not None:
                idx = idx[rows]
                track = PersonTrack(track.track_id, track.frames[rows], track.bboxes[rows], track.filled[rows])
            windows.append((features, idx))
            tracks.append(track)
        theta, verts, joints = [], [], []
        for batch in _batches(windows, self.cfg.DEMO.MODEL_BATCH_SIZE):
            out = self.model(batch.to(self.device), is_train=False, decode_global=False)[0][0]
            if self.body is not None:
                body = smpl_from_rotmat(self.body, split_theta(out['theta'])[2], out['rotmat'])
                out = {**out, 'verts': body.vertices, 'kp_3d': body.joints}
            theta.append(out['theta'].float().cpu())
            verts.append(out['verts'].float().cpu())
            joints.append(out['kp_3d'].float().cpu())
        counts = [len(idx) for _, idx in windows]
        return [self._person(track, *outputs, width, height, render_plain)
                for track, *outputs in zip(tracks, *(torch.cat(x).split(counts) for x in (theta, verts, joints)))]

    def _person(self, track: PersonTrack, theta: torch.Tensor, verts: torch.Tensor, joints: torch.Tensor,
                width: int, height: int, render_plain: bool) -> PersonResult:
        """The :class:`PersonResult` of :meth:`predict` from GLoT's ``theta (m, 85)``, ``verts (m, 6890, 3)`` and
        ``joints (m, 49, 3)`` for the ``m`` rows of ``track``."""
        cam, pose, betas = split_theta(theta.numpy())
        pred_cam = cam.copy()
        if render_plain:
            pred_cam[:, 0], pred_cam[:, 1:] = 1.0, 0.0
        orig_cam, bboxes = image_camera(pred_cam, track.bboxes, self.cfg.DEMO.BBOX_SCALE, width, height)
        joints3d = joints.numpy()
        return PersonResult(pred_cam, orig_cam.astype(np.float32), verts.numpy(), pose, betas, joints3d,
                            bboxes.astype(np.float32), track.frames.astype(np.int64), track.filled.astype(bool),
                            **camera_outputs(joints3d, orig_cam, width, height, self.cfg.DEMO.FOCAL_LENGTH))


def _batches(windows: list[tuple[torch.Tensor, torch.Tensor]], size: int):
    """GLoT inputs ``(<= size, seqlen, 2048)``: the windows ``features[idx]`` of every ``(features (n, 2048),
    idx (m, seqlen))`` in order, cut into batches of ``size`` across items (gathered batch by batch, so memory
    stays that of one batch whatever the tracks' lengths)."""
    pending, count = [], 0
    for features, idx in windows:
        start = 0
        while start < len(idx):
            take = min(size - count, len(idx) - start)
            pending.append(features[idx[start:start + take]])
            count, start = count + take, start + take
            if count == size:
                yield torch.cat(pending) if len(pending) > 1 else pending[0]
                pending, count = [], 0
    if pending:
        yield torch.cat(pending) if len(pending) > 1 else pending[0]
