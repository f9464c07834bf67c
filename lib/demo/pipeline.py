"""The demo pipeline: a video in, tracked SMPL meshes, a results file and an overlay video out.

Stages (spec B.8, each with a tqdm bar and a line in the timing summary):

1. **detection**: person boxes per frame from a detector (``lib/demo/detection.py``) or a ``--bbox_file``.
2. **tracking**: Hungarian IoU tracks, gaps filled, tracks shorter than ``DEMO.MIN_TRACK_LEN`` (official 25)
   dropped, square boxes ``(cx, cy, w, h)`` with ``w = h = max``, smoothed over time.
3. **features**: 224 x 224 crops at ``DEMO.BBOX_SCALE`` (1.2), ImageNet-normalised, SPIN ResNet-50 features
   ``(n, 2048)`` per track, in batches across tracks.
4. **model**: GLoT on one 16-frame window per tracked frame (the frame at window index 8, the 8 frames
   before and 7 after, in order), then the crop camera converted to the whole image (``orig_cam``) exactly as
   the official demo.
5. **render**: meshes drawn over the frames (``lib/demo/renderer.py``), written as ``<name>_glot_output.mp4``.

:class:`GLoTPredictor` holds the two networks and runs stages 3-4 on given tracks; :func:`run_demo` runs
everything for one video and writes the outputs. Outputs are only written once the input has been checked
and a person was found; every file is written under a temporary name and renamed into place.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lib.core.config import ConfigError, resolve_device
from lib.core.files import NeededFile, body_model_files, check_files, glot_weights_file, spin_checkpoint_file
from lib.demo.cache import StageCache, file_key, save_joblib, video_key
from lib.demo.detection import BoxFile, build_detector, read_bbox_file
from lib.core.errors import UserError
from lib.utils.geometry import convert_crop_cam_to_orig_img
from lib.utils.img_utils import crop_image
from lib.demo.renderer import Mesh, MeshRenderer, track_color, write_obj
from lib.demo.tracking import (Track, drop_short_tracks, fill_gaps, smooth_boxes, square_boxes,
                                track_detections)
from lib.demo.video import FrameReader, VideoInfo, VideoWriter
from lib.models.smpl import GENDERS

logger = logging.getLogger(__name__)

STAGES = ('detection', 'tracking', 'features', 'model', 'render')
RESULT_KEYS = ('pred_cam', 'orig_cam', 'verts', 'pose', 'betas', 'joints3d', 'joints2d', 'bboxes', 'frame_ids')
RESULTS_FILE = 'glot_output.pkl'


@dataclass
class DemoOptions:
    """The demo's command-line switches (official flag names); ``detector`` None means ``DEMO.DETECTOR``."""

    detector: str | None = None
    bbox_file: str | None = None
    tracker_batch_size: int = 12
    save_pkl: bool = True
    save_obj: bool = False
    sideview: bool = False
    render_plain: bool = False
    wireframe: bool = False
    render: bool = True
    gender: str = 'neutral'


@dataclass
class PersonTrack:
    """A track ready for the networks: ``frames (n,)`` int64 and square boxes ``bboxes (n, 4)`` cx, cy, w, h
    (pixels, before the crop scale)."""

    track_id: int
    frames: np.ndarray
    bboxes: np.ndarray


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the per-person results (``RESULT_KEYS``), the files written and the
    seconds spent per stage."""

    results: dict[int, dict]
    output_dir: Path
    files: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    num_frames: int = 0


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


def build_tracks(detections: list[np.ndarray], demo_cfg, track_ids: list[np.ndarray] | None = None
                 ) -> list[PersonTrack]:
    """Tracks from per-frame detections ``(n_f, 5)``: the given ``track_ids`` or Hungarian IoU tracking, then
    gap filling (``DEMO.FILL_GAPS``), the minimum length, square boxes and smoothing."""
    if track_ids is None:
        tracks = track_detections(detections, demo_cfg.TRACK_IOU_THRESHOLD, demo_cfg.TRACK_MAX_AGE)
    else:
        tracks = _tracks_from_ids(detections, track_ids)
    if demo_cfg.FILL_GAPS:
        tracks = [fill_gaps(t) for t in tracks]
    tracks = drop_short_tracks(tracks, demo_cfg.MIN_TRACK_LEN)
    return [PersonTrack(t.track_id, t.frames, smooth_boxes(square_boxes(t.boxes), demo_cfg.BBOX_SMOOTH_SIGMA))
            for t in tracks]


def _tracks_from_ids(detections: list[np.ndarray], track_ids: list[np.ndarray]) -> list[Track]:
    per_id: dict[int, list] = {}
    for frame, (dets, ids) in enumerate(zip(detections, track_ids)):
        for det, tid in zip(dets, ids):
            per_id.setdefault(int(tid), []).append((frame, det))
    return [Track(tid, np.array([f for f, _ in rows], dtype=np.int64), np.array([d[:4] for _, d in rows]),
                  np.array([d[4] for _, d in rows])) for tid, rows in sorted(per_id.items())]


def required_files(cfg, checkpoint: str | os.PathLike | None = None, gender: str = 'neutral') -> list[NeededFile]:
    """Every file the demo reads besides its input: the GLoT weights (``checkpoint``, relative to the current
    folder, or ``TRAIN.PRETRAINED``), the SPIN checkpoint (``TRAIN.PRETRAINED_REGRESSOR``) and the SMPL assets
    (with the ``gender`` body)."""
    genders = ('neutral',) if gender == 'neutral' else ('neutral', gender)
    return [glot_weights_file(cfg, checkpoint), spin_checkpoint_file(cfg), *body_model_files(cfg, genders)]


def weight_files(cfg, checkpoint: str | os.PathLike | None = None, gender: str = 'neutral') -> tuple[Path, Path]:
    """The GLoT and SPIN checkpoint paths, once every file of :func:`required_files` is checked to exist."""
    check_files(cfg, required_files(cfg, checkpoint, gender), 'run the demo')
    return glot_weights_file(cfg, checkpoint).path, spin_checkpoint_file(cfg).path


class GLoTPredictor:
    """GLoT and the SPIN feature extractor, loaded once; turns frames + tracks into per-person results.

    Args:
        cfg: frozen config (MODEL, SMPL files, DEMO, DEVICE, ``TRAIN.PRETRAINED_REGRESSOR`` = the SPIN
            checkpoint).
        checkpoint: GLoT weights, relative to the current folder; default ``cfg.TRAIN.PRETRAINED``.
        gender: SMPL body the predicted pose and shape are decoded with (verts, joints3d); the official
            demo does the same by swapping the local head's SMPL layer.
    """

    def __init__(self, cfg, checkpoint: str | os.PathLike | None = None, gender: str = 'neutral'):
        from lib.models import build_model, load_checkpoint
        from lib.models.smpl import build_smpl
        from lib.models.spin import load_hmr

        if gender not in GENDERS:
            raise UserError(f"unknown gender '{gender}'; choose {', '.join(GENDERS)}")
        ckpt, spin = weight_files(cfg, checkpoint, gender)
        self.cfg = cfg
        self.device = resolve_device(cfg.DEVICE)
        self.checkpoint, self.spin_checkpoint = Path(ckpt), spin
        self.model = build_model(cfg).eval()
        load_checkpoint(self.model, ckpt)
        self.hmr = load_hmr(spin, self.device)
        self.body = build_smpl(cfg, gender).to(self.device) if gender != 'neutral' else None
        self.faces = np.asarray(self.model.smpl.faces, dtype=np.int64)

    @property
    def seqlen(self) -> int:
        return self.model.seqlen

    @torch.no_grad()
    def features(self, frames, tracks: list[PersonTrack]) -> dict[int, torch.Tensor]:
        """SPIN features ``(n, 2048)`` float32 (CPU) per track id, from one pass over ``frames`` (BGR uint8
        ``(H, W, 3)``): each tracked frame is cropped around its box at ``DEMO.BBOX_SCALE``, and crops of all
        tracks are batched together (``DEMO.FEATURE_BATCH_SIZE``)."""
        scale, batch_size = self.cfg.DEMO.BBOX_SCALE, self.cfg.DEMO.FEATURE_BATCH_SIZE
        out = {t.track_id: torch.zeros(len(t.frames), 2048) for t in tracks}
        where: dict[int, list[tuple[int, int]]] = {}
        for t in tracks:
            for row, frame in enumerate(t.frames):
                where.setdefault(int(frame), []).append((t.track_id, row))
        boxes = {t.track_id: t.bboxes for t in tracks}
        crops, slots = [], []

        def flush():
            feats = self.hmr.feature_extractor(torch.stack(crops).to(self.device)).float().cpu()
            for (tid, row), feat in zip(slots, feats):
                out[tid][row] = feat
            crops.clear()
            slots.clear()

        total = sum(len(t.frames) for t in tracks)
        with tqdm(total=total, desc='features', unit='crop') as bar:
            for frame_index, frame in enumerate(frames):
                if frame_index not in where:
                    continue
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                for tid, row in where[frame_index]:
                    crops.append(crop_image(rgb, boxes[tid][row], scale=scale))
                    slots.append((tid, row))
                    if len(crops) == batch_size:
                        bar.update(len(crops))
                        flush()
            if crops:
                bar.update(len(crops))
                flush()
        return out

    @torch.no_grad()
    def predict(self, features: torch.Tensor, track: PersonTrack, width: int, height: int,
                render_plain: bool = False) -> dict:
        """Run GLoT over the windows of one track and return the official per-person dict (``RESULT_KEYS``).

        ``features (n, 2048)``; ``width``, ``height`` of the frames. ``render_plain`` replaces the predicted
        crop camera by (1, 0, 0) before the conversion, as the official ``--render_plain``.
        """
        idx = torch.from_numpy(window_indices(len(track.frames), self.seqlen, self.cfg.DEMO.WINDOW_PADDING))
        theta, verts, joints = [], [], []
        for start in range(0, len(idx), self.cfg.DEMO.MODEL_BATCH_SIZE):
            windows = features[idx[start:start + self.cfg.DEMO.MODEL_BATCH_SIZE]].to(self.device)
            out = self.model(windows, is_train=False, decode_global=False)[0][0]
            if self.body is not None:
                body = self.body(betas=out['theta'][:, 75:], body_pose=out['rotmat'][:, 1:],
                                 global_orient=out['rotmat'][:, :1])
                out = {**out, 'verts': body.vertices, 'kp_3d': body.joints}
            theta.append(out['theta'].float().cpu())
            verts.append(out['verts'].float().cpu())
            joints.append(out['kp_3d'].float().cpu())
        theta = torch.cat(theta).numpy()
        pred_cam = theta[:, :3].copy()
        if render_plain:
            pred_cam[:, 0], pred_cam[:, 1:] = 1.0, 0.0
        bboxes = track.bboxes.astype(np.float64).copy()
        bboxes[:, 2:] *= self.cfg.DEMO.BBOX_SCALE
        orig_cam = convert_crop_cam_to_orig_img(torch.from_numpy(pred_cam).double(), torch.from_numpy(bboxes),
                                                width, height).numpy()
        return {
            'pred_cam': pred_cam,
            'orig_cam': orig_cam.astype(np.float32),
            'verts': torch.cat(verts).numpy(),
            'pose': theta[:, 3:75],
            'betas': theta[:, 75:],
            'joints3d': torch.cat(joints).numpy(),
            'joints2d': None,
            'bboxes': bboxes.astype(np.float32),
            'frame_ids': track.frames.astype(np.int64),
        }


class _Stopwatch:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def run_demo(cfg, vid_file: str | os.PathLike, output_folder: str | os.PathLike = 'demo_output',
             options: DemoOptions | None = None, checkpoint: str | os.PathLike | None = None,
             predictor: GLoTPredictor | None = None) -> DemoResult:
    """Run the whole demo on one video (file or image folder) and write the outputs into
    ``output_folder/<video name>/``: ``glot_output.pkl``, ``<name>_glot_output.mp4``, ``meshes/`` (with
    ``save_obj``) and ``cache/`` (detections and features, reused when the input and settings match).

    Args:
        checkpoint: GLoT weights, relative to the current folder (default ``TRAIN.PRETRAINED``, under
            ``DATA_ROOT``); unused when ``predictor`` is given.
        predictor: an already loaded :class:`GLoTPredictor` to reuse (its gender applies); by default one is
            built once a person has been found.
    Raises:
        UserError: missing/unreadable/empty video, bad bbox file, no person found, missing weights, a bad
            DEMO setting.
    """
    options = options or DemoOptions()
    _check_settings(cfg, options)
    watch = _Stopwatch()
    reader = FrameReader(vid_file, exact_count=options.bbox_file is not None)
    info = reader.info
    name = info.path.stem if not info.is_folder else info.path.name
    output_dir = Path(output_folder) / name
    box_file = None
    if options.bbox_file is not None:
        box_file = read_bbox_file(options.bbox_file, info.num_frames, info.width, info.height)
    logger.info(f"input {info.path}: {info.num_frames} frames, {info.width}x{info.height}, {info.fps:.2f} fps")
    if predictor is None:
        weight_files(cfg, checkpoint, options.gender)
    cache = StageCache(output_dir / 'cache', enabled=cfg.DEMO.CACHE)

    with watch.stage('detection'):
        detections, track_ids, num_frames, pending = _detections(cfg, reader, options, box_file, cache)
    with watch.stage('tracking'):
        tracks = build_tracks(detections, cfg.DEMO, track_ids)
    if not tracks:
        found = sum(len(d) for d in detections)
        raise UserError(f"no person found in {info.path}: {found} detections in {num_frames} frames and no track "
                        f"of at least {cfg.DEMO.MIN_TRACK_LEN} frames (try another --detector, a --bbox_file, "
                        f"or a lower DEMO.MIN_TRACK_LEN)")
    logger.info(f"tracking: {len(tracks)} person track(s): "
                + ', '.join(f'id {t.track_id} ({len(t.frames)} frames)' for t in tracks))
    if pending is not None:
        cache.save(*pending)
    if predictor is None:
        with watch.stage('setup'):
            predictor = GLoTPredictor(cfg, checkpoint, options.gender)

    with watch.stage('features'):
        features = _features(predictor, reader, tracks, info, cache)
    results = {}
    with watch.stage('model'):
        for track in tqdm(tracks, desc='model', unit='track'):
            results[track.track_id] = predictor.predict(features[track.track_id], track, info.width, info.height,
                                                        options.render_plain)

    files = []
    if options.save_pkl:
        files.append(save_joblib(results, output_dir / RESULTS_FILE))
    if options.render or options.save_obj:
        with watch.stage('render'):
            files += _render(cfg, reader, info, results, predictor.faces, output_dir, name, options, num_frames)
    result = DemoResult(results, output_dir, files, dict(watch.seconds), num_frames)
    _log_summary(result)
    return result


def _check_settings(cfg, options: DemoOptions) -> None:
    """Fail before any work on settings that would only be read late in the run."""
    choices = {'DEMO.WINDOW_PADDING': (cfg.DEMO.WINDOW_PADDING, ('clamp', 'repeat')),
               'DEMO.RENDER_MODE': (cfg.DEMO.RENDER_MODE, ('zbuffer', 'painter')),
               'DEMO.DETECTOR': (options.detector or cfg.DEMO.DETECTOR, ('auto', 'torchvision', 'hog')),
               'gender': (options.gender, GENDERS)}
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"{key} '{value}' is not one of {', '.join(allowed)}")
    if not 0.0 <= cfg.DEMO.RENDER_ALPHA <= 1.0:
        raise ConfigError(f"DEMO.RENDER_ALPHA {cfg.DEMO.RENDER_ALPHA} must be in [0, 1]")


def _detections(cfg, reader: FrameReader, options: DemoOptions, box_file: BoxFile | None, cache: StageCache):
    """Per-frame detections ``(n_f, 5)``, track ids from a box file (or None), the decoded frame count, and
    the cache entry still to be written (written only once a person is found)."""
    info = reader.info
    if box_file is not None:
        return box_file.detections, box_file.track_ids, info.num_frames, None
    kind = options.detector or cfg.DEMO.DETECTOR
    key = {'video': video_key(info), 'detector': kind,
           'settings': {k: cfg.DEMO[k] for k in ('TORCHVISION_MODEL', 'DETECTOR_WEIGHTS', 'DETECTION_THRESHOLD',
                                                 'HOG_HIT_THRESHOLD', 'HOG_RESIZE')}}
    cached = cache.load('detections', key)
    if cached is not None:
        logger.info('detection: reusing cached detections')
        return cached, None, len(cached), None
    detector = build_detector(kind, resolve_device(cfg.DEVICE), cfg.DEMO, options.tracker_batch_size)
    detections, batch = [], []
    with tqdm(total=info.num_frames, desc=f'detection ({detector.name})', unit='frame') as bar:
        for frame in reader:
            batch.append(frame)
            if len(batch) == max(1, options.tracker_batch_size):
                detections += detector(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            detections += detector(batch)
            bar.update(len(batch))
    if not detections:
        raise UserError(f"{info.path} has no decodable frame")
    return detections, None, len(detections), ('detections', key, detections)


def _features(predictor: GLoTPredictor, reader: FrameReader, tracks: list[PersonTrack], info: VideoInfo,
              cache: StageCache) -> dict[int, torch.Tensor]:
    digest = hashlib.sha1()
    for t in tracks:
        digest.update(np.int64(t.track_id).tobytes() + t.frames.tobytes() + t.bboxes.astype(np.float64).tobytes())
    key = {'video': video_key(info), 'tracks': digest.hexdigest(), 'scale': predictor.cfg.DEMO.BBOX_SCALE,
           'spin': file_key(predictor.spin_checkpoint)}
    cached = cache.load('features', key)
    if cached is not None:
        logger.info('features: reusing cached SPIN features')
        return cached
    features = predictor.features(reader, tracks)
    cache.save('features', key, features)
    return features


def _render(cfg, reader: FrameReader, info: VideoInfo, results: dict, faces: np.ndarray, output_dir: Path,
            name: str, options: DemoOptions, num_frames: int) -> list[Path]:
    per_frame: list[list[tuple[int, int]]] = [[] for _ in range(num_frames)]
    for pid, res in results.items():
        for row, frame in enumerate(res['frame_ids']):
            per_frame[int(frame)].append((pid, row))
    renderer = MeshRenderer(faces, info.width, info.height, cfg.DEMO.RENDER_MODE, cfg.DEMO.RENDER_ALPHA,
                            options.wireframe)
    files = []
    video_path = output_dir / f'{name}_glot_output.mp4'
    width = info.width * (2 if options.sideview else 1)
    writer = VideoWriter(video_path, info.fps, (width, info.height)) if options.render else None
    with writer if writer is not None else _nothing(), \
            tqdm(total=num_frames, desc='render', unit='frame') as bar:
        for frame_index, frame in enumerate(reader):
            if frame_index >= num_frames:
                break
            people = per_frame[frame_index]
            if options.save_obj:
                for pid, row in people:
                    path = output_dir / 'meshes' / f'{pid:04d}' / f'{frame_index:06d}.obj'
                    write_obj(path, results[pid]['verts'][row], faces)
            if writer is not None:
                meshes = [Mesh(results[pid]['verts'][row], results[pid]['orig_cam'][row], track_color(pid))
                          for pid, row in people]
                base = np.zeros_like(frame) if options.render_plain else frame
                image = renderer.render(base, meshes)
                if options.sideview:
                    image = np.concatenate([image, renderer.render(np.zeros_like(frame), meshes, side_view=True)],
                                           axis=1)
                writer.write(image)
            bar.update(1)
    if writer is not None:
        files.append(video_path)
    if options.save_obj:
        files.append(output_dir / 'meshes')
    return files


@contextmanager
def _nothing():
    yield None


def _log_summary(result: DemoResult) -> None:
    lines = ["timing (seconds, and frames/s over the video's frames):"]
    for stage in ('setup',) + STAGES:
        if stage in result.seconds:
            lines.append(f'  {stage:<10s} {result.seconds[stage]:8.2f} s'
                         + ('' if stage == 'setup' else _rate(result.num_frames, result.seconds[stage])))
    total = sum(result.seconds.values())
    lines.append(f'  {"total":<10s} {total:8.2f} s' + _rate(result.num_frames, total))
    lines += [f'wrote {path}' for path in result.files]
    logger.info('\n'.join(lines))


def _rate(frames: int, seconds: float) -> str:
    return f'  {frames / seconds:8.1f} frames/s' if seconds >= 1e-3 else f'  {"-":>8s} frames/s'
