"""Online (streaming) mode: per-frame results of a camera, a stream URL or a video file read as if live.

Frames come from a reader thread that keeps only the newest one (:class:`lib.demo.live.LatestFrame`): a live
source never waits for the processing, so the processing never works on stale frames and nothing queues up.
A video file is read as fast as it is processed, every frame in order, or with ``realtime`` (``demo.py
--stream FILE --realtime``) paced at its own frame rate as a camera would deliver it. When the processing of
a frame takes longer than ``DEMO.STREAM_LOAD`` of the frame interval, only every k-th frame is processed,
with one uniform stride k chosen from the measured processing time (:class:`StrideControl`), raised or
lowered as the load changes, each change logged; GLoT's windows then span k times the time, and every
result carries its true frame number and time. Everything below is about the processed frames.

Each frame is detected (or read from a ``--bbox_file``) and tracked causally (:class:`lib.demo.tracking.Tracker`, one
``update`` per frame), its people's SPIN features go into per-track ring buffers, and when frame ``t``
arrives the result of frame ``t - L`` is emitted, ``L = seqlen // 2`` (8 frames for GLoT's 16-frame
windows). At the end of the stream (or Ctrl-C) the last ``L`` frames are flushed. Windows are the offline
demo's (:func:`lib.demo.inference.window_indices`, ``DEMO.WINDOW_PADDING``) over a track's rows: a track's
last rows are its last rows so far, which equals the offline windows whenever a track has a box in every
frame of its span.

Settings that need future frames are not applied online: box smoothing (``DEMO.BBOX_SMOOTH_SIGMA``), gap
filling (``DEMO.FILL_GAPS``) and dropping short tracks (``DEMO.MIN_TRACK_LEN``, and the tracker's 3-hit
minimum). With ``DEMO.BBOX_SMOOTH_SIGMA 0`` and tracks without gaps that are longer than ``MIN_TRACK_LEN``
the online results equal the offline demo's on the same (processed) frames (float tolerance). GLoT runs
once per emitted frame for all its people (one batch). ``DEMO.DETECT_EVERY`` k: the detector runs on every
k-th processed frame, the tracker carries the boxes in between.

Outputs in ``<output_folder>/<name>/`` (``name``: the file's stem, ``camera<N>``, or the URL's last path
part): ``config.yaml`` and ``log.txt`` (the run record, written at the end); :data:`STREAM_FILE`, JSON
lines, one per person per frame, written to its final name and flushed line by line as results come (the
one output not written atomically, so a reader can follow it live); and, unless ``render`` is off,
``<name>_glot_stream.mp4``, the overlay video of the processed frames (drawn as the offline demo's,
:func:`lib.demo.pipeline.overlay_style`, with ``DEMO.CAMERA``) encoded as they come (renamed into place when
the stream ends). Each line holds ``frame`` (its number in the source), ``track_id``, ``time_s`` (frame /
fps), the frame whose processing released it (``emitted_at``; ``flushed`` for the tail), the ``stride`` it
was processed at, ``latency_ms`` (wall time from the frame's arrival to its result) and the keys of
``glot_output.pkl`` for that person and frame (``verts`` only with ``DEMO.STREAM_VERTS``), including the
world-frame keys of ``lib/demo/world.py`` (causal: :class:`OnlineWorld`, over the processed frames).
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lib.core.config import resolve_device
from lib.core.dist import DistContext
from lib.core.errors import UserError
from lib.core.io import atomic_write, probe_output_dir
from lib.core.logs import LOG_FILE, captured_log, log_run, write_run_config
from lib.demo.camera import PER_PERSON_KEYS
from lib.demo.detection import build_detector, read_bbox_file
from lib.demo.inference import GLoTPredictor, PersonResult, PersonTrack, demo_files
from lib.demo.live import LatestFrame
from lib.demo.pipeline import DemoOptions, check_settings, figure, overlay_style, render_frame
from lib.demo.appearance import box_histograms
from lib.demo.tracking import Tracker, square_boxes
from lib.demo.world import OnlineWorld
from lib.vis.overlay import OverlayWriter
from lib.vis.video import StreamSource, count_frames

logger = logging.getLogger(__name__)

STREAM_FILE = 'glot_stream.jsonl'


@dataclass
class FrameOutput:
    """The results of one frame: ``people`` maps track id -> the :class:`PersonResult` of
    :meth:`GLoTPredictor.predict` with one row; ``frame`` counts the pushed frames, ``emitted_at`` is the pushed
    frame that released it (``frame + L`` except for the ``flushed`` tail)."""

    frame: int
    emitted_at: int
    flushed: bool
    people: dict[int, PersonResult]


class OnlineGLoT:
    """Causal GLoT: :meth:`push` one frame with its tracked boxes, get the results of the frame ``latency``
    frames earlier; :meth:`flush` at the end.

    Per track a ring buffer keeps the last ``seqlen // 2 + latency + 1`` rows (frame, SPIN feature (2048,),
    square box cx, cy, w, h pixels): every row the window of the frame being emitted can reach. A track with
    no row for more than ``latency`` frames has nothing left to emit and is forgotten.
    """

    def __init__(self, predictor: GLoTPredictor, width: int, height: int, render_plain: bool = False):
        self.predictor = predictor
        self.width, self.height = width, height
        self.render_plain = render_plain
        self.latency = predictor.seqlen // 2
        self.keep = predictor.seqlen // 2 + self.latency + 1
        self.buffers: dict[int, deque] = {}
        self.frames = 0          # frames pushed
        self.emitted = 0         # frames emitted

    def push(self, frame: np.ndarray, tracked: list[tuple[int, np.ndarray]]) -> FrameOutput | None:
        """Add frame ``frames`` (BGR ``(H, W, 3)``) with its ``(track id, box x1y1x2y2)`` list; returns the
        output of frame ``frames - latency`` once there is one."""
        boxes = {int(tid): square_boxes(box)[0] for tid, box in tracked}
        people = [PersonTrack(tid, np.zeros(1, dtype=np.int64), box[None]) for tid, box in boxes.items()]
        features = self.predictor.features([frame], people, progress=False) if people else {}
        for tid, box in boxes.items():
            self.buffers.setdefault(tid, deque(maxlen=self.keep)).append((self.frames, features[tid][0], box))
        self.frames += 1
        if self.frames - 1 - self.emitted < self.latency:
            return None
        return self._emit(self.frames - 1, flushed=False)

    def flush(self) -> list[FrameOutput]:
        """The outputs of the frames not emitted yet (the stream's last ``latency`` frames)."""
        return [self._emit(self.frames - 1, flushed=True) for _ in range(self.emitted, self.frames)]

    def _emit(self, now: int, flushed: bool) -> FrameOutput:
        frame, items = self.emitted, []
        for tid, buffer in list(self.buffers.items()):
            frames = np.array([row[0] for row in buffer], dtype=np.int64)
            if frames[-1] < frame:
                del self.buffers[tid]
                continue
            rows = np.flatnonzero(frames == frame)
            if len(rows):
                track = PersonTrack(tid, frames, np.stack([row[2] for row in buffer]))
                items.append((torch.stack([row[1] for row in buffer]), track, [int(rows[0])]))
        results = self.predictor.predict_many(items, self.width, self.height, self.render_plain)  # one batch
        self.emitted += 1
        return FrameOutput(frame, now, flushed, {track.track_id: person
                                                 for (_, track, _), person in zip(items, results)})


class StrideControl:
    """The stride k of the online mode for a source of ``fps`` frames/s: processing one frame may take
    ``load`` x k frame intervals. When even the faster of the last two processed frames took longer, k is
    raised at once; when the slowest of the last :attr:`WINDOW` took less than half, k is lowered; either way
    to the smallest stride that fits the slowest of those frames (a single slow frame, such as the first,
    changes nothing)."""

    WINDOW = 4

    def __init__(self, fps: float, load: float):
        self.budget = load / fps                  # seconds of processing per frame interval of the source
        self.stride = 1
        self._seconds: deque = deque(maxlen=self.WINDOW)

    def update(self, seconds: float) -> int | None:
        """Add the processing time (seconds) of one frame; returns the new stride when it changes."""
        self._seconds.append(seconds)
        recent = np.array(self._seconds)
        slow = len(recent) >= 2 and recent[-2:].min() > self.budget * self.stride
        fast = len(recent) == self.WINDOW and recent.max() < self.budget * self.stride / 2
        stride = max(1, math.ceil(float((recent[-2:] if slow else recent).max()) / self.budget))
        if not (slow or fast) or stride == self.stride:
            return None
        self.stride = stride
        self._seconds.clear()
        return stride


@dataclass
class StreamResult:
    """What :func:`run_stream` did: frames processed (``num_frames``) and read from the source
    (``frames_read``), wall seconds, how many processed frames results lag their input (``latency_frames``),
    per processed frame its number in the source (``frame_ids``), the stride it was processed at
    (``strides``) and the processing time ``step_ms`` (waiting for the frame excluded), per emitted
    person-frame the ``latency_ms`` from arrival to result and ``latency_stride``, the largest stride from its
    frame to the one that released it (the latency is bounded by ``latency_frames + 2`` such strides of
    frame intervals), and the frames the reader replaced before they were processed (``dropped``)."""

    output_dir: Path
    files: list[Path]
    num_frames: int
    seconds: float
    latency_frames: int
    step_ms: np.ndarray
    latency_ms: np.ndarray
    frames_read: int = 0
    frame_ids: np.ndarray | None = None
    strides: np.ndarray | None = None
    dropped: int = 0
    latency_stride: np.ndarray | None = None

    @property
    def fps(self) -> float:
        return self.num_frames / self.seconds if self.seconds > 0 else 0.0


def run_stream(cfg, source: str, output_folder: str | os.PathLike = 'demo_output',
               options: DemoOptions | None = None, checkpoint: str | os.PathLike | None = None,
               predictor: GLoTPredictor | None = None, realtime: bool = False) -> StreamResult:
    """``demo.py --stream SOURCE``: run the online mode (module docstring) until the source ends or Ctrl-C.

    ``options``: as for :func:`lib.demo.pipeline.run_demo` (``save_pkl`` does not apply); a ``bbox_file``
    needs a video file as ``source``. ``predictor``: an already loaded one to reuse. ``realtime``: read a
    video file at its own frame rate, as a camera delivers frames (cameras and URLs always are).

    Raises:
        UserError: an unreadable source, a bad box file, missing weights, a bad DEMO setting, torchrun, an
            output folder that cannot be written (:class:`lib.core.io.OutputError`).
    """
    options = options or DemoOptions()
    check_settings(cfg, options, writes=True)
    if DistContext.from_env().enabled:
        raise UserError('--stream runs in one process; torchrun is for --vid_file with a folder or .txt list')
    stream = StreamSource(source)
    try:
        with captured_log() as lines:
            log_run(cfg, resolve_device(cfg.DEVICE), None)
            result = _run_stream(cfg, stream, Path(output_folder), options, checkpoint, predictor, realtime)
    finally:
        stream.close()
    # the run's record and log beside its outputs
    result.files += [write_run_config(result.output_dir, cfg),
                     atomic_write(result.output_dir / LOG_FILE, '\n'.join(lines) + '\n')]
    return result


def _run_stream(cfg, stream: StreamSource, output_folder: Path, options: DemoOptions, checkpoint,
                predictor: GLoTPredictor | None, realtime: bool) -> StreamResult:
    probe_output_dir(output_folder / stream.name)    # before any work or write
    boxes = None
    if options.bbox_file is not None:
        if stream.path is None:
            raise UserError('--bbox_file with --stream needs a video file as the source (frame numbers are 0-based '
                            'indices into it)')
        boxes = read_bbox_file(options.bbox_file, count_frames(stream.path), stream.width, stream.height)
    files = demo_files(cfg, checkpoint) if predictor is None else None
    future = [f'{key} {cfg.DEMO[key]}' for key in ('BBOX_SMOOTH_SIGMA', 'FILL_GAPS', 'MIN_TRACK_LEN',
                                                    'TRACK_MIN_HITS', 'DROP_STATIC_TRACKS') if cfg.DEMO[key]]
    if future:
        logger.info(f"stream: not applied online (they need future frames): {', '.join(future)}")
    detector = None if boxes is not None else build_detector(cfg.DEMO.DETECTOR,
                                                             resolve_device(cfg.DEVICE), cfg.DEMO, 1)
    demo = cfg.DEMO
    # min_hits 1: a person is emitted from the first frame it is detected in (confirming it after
    # DEMO.TRACK_MIN_HITS detections would need those frames' future)
    tracker = Tracker(demo.TRACK_IOU_THRESHOLD, demo.TRACK_MAX_AGE, 1, demo.TRACK_APPEARANCE_WEIGHT,
                      demo.TRACK_APPEARANCE_MIN)

    def track(frame: np.ndarray, dets: np.ndarray) -> list[tuple[int, np.ndarray]]:
        return tracker.update(dets, box_histograms(frame, dets) if demo.TRACK_APPEARANCE else None)
    predictor = predictor or GLoTPredictor(cfg, files)
    online = OnlineGLoT(predictor, stream.width, stream.height, cfg.DEMO.RENDER_PLAIN)
    world = OnlineWorld(stream.width, stream.height, cfg.DEMO)
    if boxes is None and demo.DETECT_EVERY > 1:
        logger.info(f'stream: the detector runs on 1 processed frame in {demo.DETECT_EVERY} (DEMO.DETECT_EVERY '
                    f'{demo.DETECT_EVERY}); the tracker carries the boxes in between')

    def tracked(index: int, frame: np.ndarray) -> list[tuple[int, np.ndarray]]:
        if boxes is None:
            if online.frames % demo.DETECT_EVERY:
                return tracker.coast()
            return track(frame, detector([frame])[0])
        dets = boxes.detections[index] if index < len(boxes.detections) else np.zeros((0, 5))
        if boxes.track_ids is not None:
            return list(zip(boxes.track_ids[index].tolist(), dets[:, :4]))
        return track(frame, dets)

    output_dir = output_folder / stream.name
    lines_path = output_dir / STREAM_FILE
    video_path = output_dir / f'{stream.name}_glot_stream.mp4'
    writer = (OverlayWriter(video_path, predictor.faces, stream.width, stream.height, stream.fps,
                            overlay_style(cfg.DEMO)) if options.render else None)
    pending: deque = deque()  # (frame number, image, arrival time, stride) of the processed frames not emitted yet
    latencies, latency_strides, steps, frame_ids, strides = [], [], [], [], []
    output_dir.mkdir(parents=True, exist_ok=True)
    live = LatestFrame(stream, realtime=realtime, lossless=stream.path is not None and not realtime)
    control = None if live.lossless else StrideControl(stream.fps, demo.STREAM_LOAD)
    logger.info(f'stream {stream.source}: {stream.width}x{stream.height}, {stream.fps:.2f} fps'
                f'{" paced in real time" if realtime else ""}, results {online.latency} processed frames behind'
                f'{"" if control is None else "; every k-th frame processed, k from the processing time"}; '
                f'writing {lines_path}')

    drawn = []  # the source frame number of the last overlay image

    def emit(out: FrameOutput, lines) -> None:
        released_by, window_stride = pending[-1][0], max(entry[3] for entry in pending)
        index, image, arrived, stride = pending.popleft()
        if writer is not None and drawn:
            writer.repeat_last(index - drawn[-1] - 1)    # frames skipped by the stride hold the last image
        drawn[:] = [index]
        now = time.perf_counter()
        people = []
        world.add_world_keys(out.frame, out.people)
        for tid, person in out.people.items():
            latencies.append((now - arrived) * 1000)
            latency_strides.append(window_stride)
            record = {'frame': index, 'track_id': tid, 'time_s': index / stream.fps, 'emitted_at': released_by,
                      'flushed': out.flushed, 'stride': stride, 'latency_ms': round(latencies[-1], 3)}
            record.update({key: np.asarray(value if key in PER_PERSON_KEYS else value[0]).tolist()
                           for key, value in person.to_dict().items() if value is not None and key != 'frame_ids'
                           and (key != 'verts' or cfg.DEMO.STREAM_VERTS)})
            lines.write(json.dumps(record) + '\n')
            people.append((tid, figure(person, 0, tid)))
        lines.flush()
        render_frame(writer, image, index, people, predictor.faces, output_dir, options)

    start = time.perf_counter()
    try:
        with writer if writer is not None else nullcontext(), open(lines_path, 'w', encoding='utf-8') as lines, \
                tqdm(desc='stream', unit='frame') as bar:
            try:
                while (arrival := live.get()) is not None:
                    taken = time.perf_counter()
                    pending.append((arrival.index, arrival.image, arrival.time, arrival.stride))
                    frame_ids.append(arrival.index)
                    strides.append(arrival.stride)
                    people_boxes = tracked(arrival.index, arrival.image)
                    world.update(arrival.image, np.array([box[:4] for _, box in people_boxes]).reshape(-1, 4))
                    out = online.push(arrival.image, people_boxes)
                    if out is not None:
                        emit(out, lines)
                    seconds = time.perf_counter() - taken
                    steps.append(seconds * 1000)
                    stride = control.update(seconds) if control is not None else None
                    if stride is not None:
                        logger.info(f'stream: frame {arrival.index}: processing takes {seconds * 1000:.0f} ms per '
                                    f'frame, {demo.STREAM_LOAD:g} of the interval is {control.budget * 1000:.0f} '
                                    f'ms: stride {live.stride} -> {stride} (1 frame in {stride}, '
                                    f'{stream.fps / stride:.2f} frames/s)')
                        live.set_stride(stride)
                    bar.update(1)
            except KeyboardInterrupt:
                logger.info('stream: interrupted; flushing the last frames')
            for out in online.flush():
                emit(out, lines)
    finally:
        live.close()
    seconds = time.perf_counter() - start
    files = [lines_path] + ([video_path] if writer is not None else [])
    if options.save_obj:
        files.append(output_dir / 'meshes')
    result = StreamResult(output_dir, files, online.frames, seconds, online.latency, np.array(steps),
                          np.array(latencies), live.read, np.array(frame_ids, dtype=np.int64),
                          np.array(strides, dtype=np.int64), live.dropped, np.array(latency_strides, dtype=np.int64))
    logger.info(stream_summary(result))
    return result


def stream_summary(result: StreamResult) -> str:
    """A small table of the online run: frames, sustained frames/s, processing and result latency (ms)."""
    def stats(values: np.ndarray) -> str:
        if not len(values):
            return f'{"-":>8s} {"-":>8s} {"-":>8s}'
        return ' '.join(f'{v:8.1f}' for v in (values.mean(), np.percentile(values, 50), np.percentile(values, 95)))

    strides = result.strides if result.strides is not None and len(result.strides) else np.ones(1, dtype=np.int64)
    lines = [f'stream: {result.num_frames} of {result.frames_read} frames processed in {result.seconds:.2f} s = '
             f'{result.fps:.1f} frames/s; stride {int(strides[-1])} at the end (from {int(strides.min())} to '
             f'{int(strides.max())}, mean {strides.mean():.2f}); {result.dropped} frame(s) replaced before '
             f'processing; results {result.latency_frames} processed frames behind their input',
             f'  {"ms":<34s} {"mean":>8s} {"p50":>8s} {"p95":>8s}',
             f'  {"processing per processed frame":<34s} {stats(result.step_ms)}',
             f'  {"arrival -> result, per person":<34s} {stats(result.latency_ms)}']
    lines += [f'wrote {path}' for path in result.files]
    return '\n'.join(lines)
