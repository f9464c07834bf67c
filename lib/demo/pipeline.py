"""The demo pipeline: a video in, tracked SMPL meshes, a results file and an overlay video out.

Stages (each with a tqdm bar and a line in the timing summary):

1. **detection**: person boxes per frame from a detector (``lib/demo/detection.py``) or a ``--bbox_file``.
2. **tracking**: the SORT-style Kalman tracker with a colour cue (``lib/demo/tracking.py``), gaps filled and
   marked (``frame_filled``), tracks shorter than ``DEMO.MIN_TRACK_LEN`` (official 25) dropped and static
   tracks reported, square boxes ``(cx, cy, w, h)`` with ``w = h = max``, smoothed over time.
   **camera**: the camera's rotation from the background, people masked out (``lib/demo/world.py``).
3. **features**: 224 x 224 crops at ``DEMO.BBOX_SCALE`` (1.2), ImageNet-normalised, SPIN ResNet-50 features
   ``(n, 2048)`` per track, in batches of ``DEMO.FEATURE_BATCH_SIZE`` crops across tracks.
4. **model**: GLoT on one 16-frame window per tracked frame (the frame at window index 8, the 8 frames
   before and 7 after, in order), then the crop camera converted to the whole image (``orig_cam``) exactly as
   the official demo.
5. **export** (``--export glb,bvh``): each person's motion as a skinned, animated GLB and as BVH
   (``lib/demo/export/``).
6. **render**: meshes drawn over the frames (``lib/vis/overlay.py``), written as ``<name>_glot_output.mp4``.

Each person's result is a :class:`lib.demo.inference.PersonResult`; written to ``glot_output.pkl`` (and read by
the exports) it becomes the official dict (``RESULT_KEYS``) with, beside them, the camera-space ``CAMERA_KEYS``
of ``lib/demo/camera.py`` (``trans_cam``, ``focal_length``, ``principal_point``, ``joints2d_img``), then the
world-frame ``WORLD_KEYS`` of ``lib/demo/world.py`` (``cam_R``, ``global_orient_world``, ``trans_world``).

:class:`lib.demo.inference.GLoTPredictor` holds the two networks and runs stages 3-4 on given tracks;
:func:`run_demo` runs everything for one video and writes the outputs. Outputs are only written once the input has been checked
and a person was found; every file is written under a temporary name and renamed into place.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lib.core.config import resolve_device
from lib.core.io import atomic_write, probe_output_dir
from lib.core.logs import LOG_FILE, captured_log, log_run, write_run_config
from lib.demo.cache import StageCache, file_key, save_joblib, video_key
from lib.demo.detection import BoxFile, build_detector, read_bbox_file
from lib.demo.export import write_exports
from lib.demo.inference import GLoTPredictor, PersonResult, PersonTrack, demo_files
from lib.core.errors import UserError
from lib.demo.appearance import box_histograms
from lib.demo.boxes import cxcywh_to_xyxy
from lib.demo.tracking import (Track, fill_gaps, select_tracks, smooth_boxes, square_boxes,
                                track_detections)
from lib.demo.world import add_world_keys, camera_motion
from lib.vis.overlay import Figure, OverlayStyle, OverlayWriter
from lib.vis.renderer import track_color, write_obj
from lib.vis.video import FrameReader, VideoInfo

logger = logging.getLogger(__name__)

STAGES = ('detection', 'tracking', 'camera', 'features', 'model', 'export', 'render')
RESULTS_FILE = 'glot_output.pkl'


@dataclass
class DemoOptions:
    """What a run reads besides the video and writes: per-frame person boxes (``bbox_file``, instead of the
    detector), ``glot_output.pkl``, per-frame .obj meshes, the overlay video. Every behaviour setting is a
    ``DEMO.*`` config key (``--detector``, ``--gender``, ``--export``, ``--sideview``, ... set them)."""

    bbox_file: str | None = None
    save_pkl: bool = True
    save_obj: bool = False
    render: bool = True


@dataclass
class DemoResult:
    """What :func:`run_demo` produced: the per-person results by track id, the files written (``output_dir``
    None: none), the seconds spent per stage, and the video's frame count and rate."""

    results: dict[int, PersonResult]
    output_dir: Path | None
    files: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    num_frames: int = 0
    fps: float = 0.0


def link_tracks(detections: list[np.ndarray], demo_cfg, track_ids: list[np.ndarray] | None = None,
                appearance: list[np.ndarray] | None = None) -> list[Track]:
    """Tracks (x1y1x2y2 boxes) from per-frame detections ``(n_f, 5)``: the given ``track_ids`` or the SORT
    tracker (with the colour descriptions ``appearance`` when given), then gap filling (``DEMO.FILL_GAPS``)
    and :func:`lib.demo.tracking.select_tracks` (minimum length, static tracks)."""
    if track_ids is None:
        tracks = track_detections(detections, demo_cfg.TRACK_IOU_THRESHOLD, demo_cfg.TRACK_MAX_AGE,
                                  demo_cfg.TRACK_MIN_HITS, appearance, demo_cfg.TRACK_APPEARANCE_WEIGHT,
                                  demo_cfg.TRACK_APPEARANCE_MIN)
    else:
        tracks = _tracks_from_ids(detections, track_ids)
    if demo_cfg.FILL_GAPS:
        tracks = [fill_gaps(t) for t in tracks]
    return select_tracks(tracks, demo_cfg.MIN_TRACK_LEN, demo_cfg.STATIC_TRACK_MOTION,
                         demo_cfg.STATIC_TRACK_FRACTION, demo_cfg.DROP_STATIC_TRACKS)


def build_tracks(detections: list[np.ndarray], demo_cfg, track_ids: list[np.ndarray] | None = None,
                 appearance: list[np.ndarray] | None = None) -> list[PersonTrack]:
    """:func:`link_tracks`, then square boxes and smoothing (``DEMO.BBOX_SMOOTH_SIGMA``)."""
    return [PersonTrack(t.track_id, t.frames, smooth_boxes(square_boxes(t.boxes), demo_cfg.BBOX_SMOOTH_SIGMA),
                        t.filled)
            for t in link_tracks(detections, demo_cfg, track_ids, appearance)]


def box_appearance(reader: FrameReader, detections: list[np.ndarray]) -> list[np.ndarray]:
    """Colour descriptions (:func:`lib.demo.appearance.box_histograms`) of every frame's detections, in one
    pass over the frames (None where the detections are None: the detector did not run there)."""
    return [None if dets is None else box_histograms(frame, dets)
            for frame, dets in zip(tqdm(reader, total=len(detections), desc='appearance', unit='frame'), detections)]


def _tracks_from_ids(detections: list[np.ndarray], track_ids: list[np.ndarray]) -> list[Track]:
    per_id: dict[int, list] = {}
    for frame, (dets, ids) in enumerate(zip(detections, track_ids)):
        for det, tid in zip(dets, ids):
            per_id.setdefault(int(tid), []).append((frame, det))
    return [Track(tid, np.array([f for f, _ in rows], dtype=np.int64), np.array([d[:4] for _, d in rows]),
                  np.array([d[4] for _, d in rows])) for tid, rows in sorted(per_id.items())]


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
    ``save_obj``), the ``export`` files, ``log.txt`` and ``cache/`` (detections and features, reused when the input and
    settings match). ``output_folder`` None writes nothing (no cache either; only the results are returned).

    Args:
        checkpoint: GLoT weights, relative to the current folder (default ``TRAIN.PRETRAINED``, under
            ``DATA_ROOT``); unused when ``predictor`` is given.
        predictor: an already loaded :class:`GLoTPredictor` to reuse (its gender applies); by default one is
            built once a person has been found.
    Raises:
        UserError: missing/unreadable/empty video, bad bbox file, no person found, missing weights, a bad
            DEMO setting.
    """
    with captured_log() as lines:
        result = _run_demo(cfg, vid_file, output_folder, options or DemoOptions(), checkpoint, predictor)
    if result.output_dir is not None:     # the run's record and log beside its outputs, written with them
        result.files += [write_run_config(result.output_dir, cfg),
                         atomic_write(result.output_dir / LOG_FILE, '\n'.join(lines) + '\n')]
    return result


def _run_demo(cfg, vid_file, output_folder, options: DemoOptions, checkpoint, predictor) -> DemoResult:
    """The work of :func:`run_demo`, whose log it captures."""
    check_settings(cfg, options, output_folder is not None)
    log_run(cfg, resolve_device(cfg.DEVICE), None)
    watch = _Stopwatch()
    reader = FrameReader(vid_file, fps=cfg.DEMO.FPS or None, exact_count=options.bbox_file is not None)
    info = reader.info
    name = info.path.stem if not info.is_folder else info.path.name
    output_dir = Path(output_folder) / name if output_folder is not None else None
    box_file = None
    if options.bbox_file is not None:
        box_file = read_bbox_file(options.bbox_file, info.num_frames, info.width, info.height)
    fps_source = ('DEMO.FPS / --fps' if cfg.DEMO.FPS else
                  'a folder of frames has none: default, set it with --fps' if info.is_folder else "the video's own")
    logger.info(f"input {info.path}: {info.num_frames} frames, {info.width}x{info.height}, {info.fps:.2f} fps "
                f"({fps_source})")
    files = demo_files(cfg, checkpoint) if predictor is None else None
    if output_dir is not None:
        probe_output_dir(output_dir)
    cache = StageCache((output_dir or Path()) / 'cache', enabled=cfg.DEMO.CACHE and output_dir is not None)

    with watch.stage('detection'):
        detections, track_ids, num_frames, pending, appearance = _detections(cfg, reader, options, box_file, cache)
    with watch.stage('tracking'):
        if appearance is None and track_ids is None and cfg.DEMO.TRACK_APPEARANCE:
            appearance = box_appearance(reader, detections)
        tracks = build_tracks(detections, cfg.DEMO, track_ids, appearance)
    if not tracks:
        found = sum(len(d) for d in detections if d is not None)
        raise UserError(f"no person found in {info.path}: {found} detections in {num_frames} frames and no track "
                        f"of at least {cfg.DEMO.MIN_TRACK_LEN} frames (try another --detector, a --bbox_file, "
                        f"or a lower DEMO.MIN_TRACK_LEN)")
    logger.info(f"tracking: {len(tracks)} person track(s): "
                + ', '.join(f'id {t.track_id} ({len(t.frames)} frames, {int(t.filled.sum())} filled)'
                            for t in tracks))
    if pending is not None:
        cache.save(*pending)
    with watch.stage('camera'):
        motion = camera_motion(reader, _person_boxes(detections, tracks), info.width, info.height, cfg.DEMO)
    if predictor is None:
        with watch.stage('setup'):
            predictor = GLoTPredictor(cfg, files)

    with watch.stage('features'):
        features = _features(predictor, reader, tracks, info, cache)
    results = {}
    with watch.stage('model'):
        for track in tqdm(tracks, desc='model', unit='track'):
            results[track.track_id] = predictor.predict(features[track.track_id], track, info.width, info.height,
                                                        cfg.DEMO.RENDER_PLAIN)
    report_camera_scale(results)
    cam_R = add_world_keys(results, motion.rotations)

    files = []
    if options.save_pkl:
        files.append(save_joblib(official_results(results), output_dir / RESULTS_FILE))
    if cfg.DEMO.EXPORT:
        with watch.stage('export'):
            files += write_exports(tuple(cfg.DEMO.EXPORT), official_results(results), predictor.body_model, cfg.DEMO,
                                   info.fps, num_frames, info.width, info.height, output_dir, name, cam_R)
    if options.render or options.save_obj:
        with watch.stage('render'):
            files += _render(cfg, reader, info, results, predictor.faces, output_dir, name, options, num_frames)
    if output_dir is not None:
        _remove_stale_outputs(output_dir, name, files)
    result = DemoResult(results, output_dir, files, dict(watch.seconds), num_frames, info.fps)
    _log_summary(result)
    return result


def official_results(results: dict[int, PersonResult]) -> dict[int, dict]:
    """The results as ``glot_output.pkl`` holds them (and the exports read them): track id -> official dict."""
    return {tid: res.to_dict() for tid, res in results.items()}


def report_camera_scale(results: dict[int, dict]) -> None:
    """Warn about predictions whose weak-perspective camera scale is not positive: such a mesh is mirrored or
    a few pixels big, so it would be drawn as nothing without a word."""
    for pid, res in results.items():
        bad = np.nonzero(res.pred_cam[:, 0] <= 0)[0]
        if len(bad):
            logger.warning(f"model: person {pid}: camera scale not positive in {len(bad)} of "
                           f"{len(res.pred_cam)} frames (first at frame {int(res.frame_ids[bad[0]])}); "
                           f"those meshes are degenerate and do not show in the video")



def check_settings(cfg, options: DemoOptions, writes: bool) -> None:
    """Fail before any work on settings that would only be read late in the run; ``writes`` says whether
    there is an output folder."""
    if not writes and (options.save_pkl or options.render or options.save_obj or cfg.DEMO.EXPORT):
        raise UserError("no output folder given for the results file, video, meshes or exports")


def _detections(cfg, reader: FrameReader, options: DemoOptions, box_file: BoxFile | None, cache: StageCache):
    """Per-frame detections ``(n_f, 5)`` (None on the frames ``DEMO.DETECT_EVERY`` skips), track ids from a
    box file (or None), the decoded frame count, the cache entry still to be written (written only once a
    person is found) and, when the detector ran with ``DEMO.TRACK_APPEARANCE``, the detections' colour
    descriptions from the same decode of the video (else None)."""
    info = reader.info
    every = cfg.DEMO.DETECT_EVERY
    if box_file is not None:
        if every > 1:
            logger.info(f'detection: DEMO.DETECT_EVERY {every} does not apply to a --bbox_file (boxes on every frame)')
        return box_file.detections, box_file.track_ids, info.num_frames, None, None
    kind = cfg.DEMO.DETECTOR
    key = {'video': video_key(info), 'detector': kind,
           'settings': {k: cfg.DEMO[k] for k in ('TORCHVISION_MODEL', 'DETECTOR_WEIGHTS', 'DETECTION_THRESHOLD',
                                                 'HOG_HIT_THRESHOLD', 'HOG_MIN_HEIGHT', 'HOG_PYRAMID_SCALE',
                                                 'DUPLICATE_OVERLAP', 'DETECT_EVERY')}}
    cached = cache.load('detections', key)
    if cached is not None:
        logger.info('detection: reusing cached detections')
        return cached, None, len(cached), None, None
    detector = build_detector(kind, resolve_device(cfg.DEVICE), cfg.DEMO, cfg.DEMO.TRACKER_BATCH_SIZE)
    if every > 1:
        logger.info(f'detection: the detector runs on 1 frame in {every} (DEMO.DETECT_EVERY {every}); the Kalman '
                    f'tracker carries the boxes over the frames in between (frame_filled True there)')
    colour = cfg.DEMO.TRACK_APPEARANCE
    detections, appearance, batch = [], [], []

    def detect() -> None:
        for (index, frame), dets in zip(batch, detector([frame for _, frame in batch])):
            detections[index] = dets
            appearance[index] = box_histograms(frame, dets) if colour else None
        batch.clear()

    with tqdm(total=info.num_frames, desc=f'detection ({detector.name})', unit='frame') as bar:
        for index, frame in enumerate(reader):
            detections.append(None)
            appearance.append(None)
            if index % every == 0:
                batch.append((index, frame))
                if len(batch) == cfg.DEMO.TRACKER_BATCH_SIZE:
                    detect()
            bar.update(1)
        if batch:
            detect()
    if not detections:
        raise UserError(f"{info.path} has no decodable frame")
    return detections, None, len(detections), ('detections', key, detections), appearance if colour else None


def _person_boxes(detections: list[np.ndarray | None], tracks: list[PersonTrack]) -> list[np.ndarray]:
    """Per-frame person boxes ``(n_f, 4+)`` x1y1x2y2 for the camera stage's people mask: the detections, and on
    the frames the detector skipped (None, ``DEMO.DETECT_EVERY``) the tracks' square boxes there."""
    if all(d is not None for d in detections):
        return detections
    carried = [[] for _ in detections]
    for t in tracks:
        for frame, box in zip(t.frames, cxcywh_to_xyxy(t.bboxes)):
            carried[int(frame)].append(box)
    return [d if d is not None else np.array(boxes, dtype=np.float64).reshape(-1, 4)
            for d, boxes in zip(detections, carried)]


def _features(predictor: GLoTPredictor, reader: FrameReader, tracks: list[PersonTrack], info: VideoInfo,
              cache: StageCache) -> dict[int, torch.Tensor]:
    digest = hashlib.sha1()
    for t in tracks:
        digest.update(np.int64(t.track_id).tobytes() + t.frames.tobytes() + t.bboxes.astype(np.float64).tobytes())
    key = {'video': video_key(info), 'tracks': digest.hexdigest(), 'scale': predictor.cfg.DEMO.BBOX_SCALE,
           'spin': file_key(predictor.spin_checkpoint), 'dtype': predictor.cfg.DEMO.FEATURE_DTYPE}
    cached = cache.load('features', key)
    if cached is not None:
        logger.info('features: reusing cached SPIN features')
        return cached
    features = predictor.features(reader, tracks)
    cache.save('features', key, features)
    return features


def overlay_style(demo_cfg) -> OverlayStyle:
    """The drawing settings of the demo's overlay videos (offline and online) from ``cfg.DEMO``."""
    return OverlayStyle(demo_cfg.CAMERA, demo_cfg.FOCAL_LENGTH, demo_cfg.RENDER_MODE, demo_cfg.RENDER_ALPHA,
                        demo_cfg.WIREFRAME, demo_cfg.SIDEVIEW, demo_cfg.RENDER_PLAIN)


def _render(cfg, reader: FrameReader, info: VideoInfo, results: dict, faces: np.ndarray, output_dir: Path,
            name: str, options: DemoOptions, num_frames: int) -> list[Path]:
    per_frame: list[list[tuple[int, int]]] = [[] for _ in range(num_frames)]
    for pid, res in results.items():
        for row, frame in enumerate(res.frame_ids):
            per_frame[int(frame)].append((pid, row))
    files = []
    video_path = output_dir / f'{name}_glot_output.mp4'
    overlay = (OverlayWriter(video_path, faces, info.width, info.height, info.fps, overlay_style(cfg.DEMO))
               if options.render else None)
    with overlay if overlay is not None else nullcontext(), \
            tqdm(total=num_frames, desc='render', unit='frame') as bar:
        for frame_index, frame in enumerate(reader):
            if frame_index >= num_frames:
                break
            people = [(pid, figure(results[pid], row, pid)) for pid, row in per_frame[frame_index]]
            render_frame(overlay, frame, frame_index, people, faces, output_dir, options)
            bar.update(1)
    if overlay is not None:
        files.append(video_path)
    if options.save_obj:
        files.append(output_dir / 'meshes')
    return files


def figure(result: PersonResult, row: int, track_id: int) -> Figure:
    """Row ``row`` of a person's results as a :class:`Figure` in the track's colour."""
    return Figure(result.verts[row], result.orig_cam[row], result.trans_cam[row], track_color(track_id))


def render_frame(overlay: OverlayWriter | None, frame: np.ndarray, frame_index: int,
                 people: list[tuple[int, Figure]], faces: np.ndarray, output_dir: Path, options: DemoOptions) -> None:
    """The outputs of one frame: ``meshes/<id>/<frame>.obj`` (``save_obj``) and the overlay image (when
    ``overlay`` is given). ``people`` lists ``(track id, figure)``."""
    if options.save_obj:
        for pid, fig in people:
            write_obj(output_dir / 'meshes' / f'{pid:04d}' / f'{frame_index:06d}.obj', fig.verts, faces)
    if overlay is not None:
        overlay.write(frame, [fig for _, fig in people])


def _remove_stale_outputs(output_dir: Path, name: str, written: list[Path]) -> None:
    """Delete the outputs an earlier run left in ``output_dir`` that this run did not rewrite (e.g. the overlay
    video of a rerun with ``--no_render``, the BVH files of people no longer tracked), and say which."""
    kept = {Path(p).resolve() for p in written}
    earlier = [output_dir / RESULTS_FILE, output_dir / f'{name}_glot_output.mp4', output_dir / f'{name}_glot.glb',
               output_dir / 'meshes', *sorted((output_dir / 'bvh').glob('*.bvh'))]
    stale = [p for p in earlier if p.exists() and p.resolve() not in kept]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if stale:
        logger.info('removed outputs of an earlier run that this run did not rewrite: '
                    + ', '.join(str(p.relative_to(output_dir)) for p in stale))


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
