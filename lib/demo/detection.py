"""Person detectors for the demo, and the reader of user-supplied box files.

Every detector is called on a list of ``(H, W, 3)`` uint8 BGR frames and returns, per frame, an ``(n, 5)``
float array ``x1, y1, x2, y2, score`` in pixels. Three sources:

- ``torchvision``: a COCO detector from torchvision (Faster R-CNN / RetinaNet), person class only. Its weights
  are downloaded only with ``DEMO.DOWNLOAD_WEIGHTS True`` (through torchvision's own mechanism): the file
  must be in the torch hub cache (``$TORCH_HOME/hub/checkpoints``, where torchvision itself puts it) or at
  ``DEMO.DETECTOR_WEIGHTS``; otherwise a :class:`UserError` names the file and where to put it.
- ``hog``: OpenCV's HOG + linear SVM people detector (Dalal & Triggs), needs no download. It finds upright,
  mostly unoccluded people from ``DEMO.HOG_MIN_HEIGHT`` (50) pixels tall up (frames are upscaled first, see
  ``HOGDetector``).
- a box file (``--bbox_file``, :func:`read_bbox_file`) with the user's own per-frame boxes.

Both detectors merge duplicate boxes on one person (a box mostly inside a better one,
``DEMO.DUPLICATE_OVERLAP``) before tracking; boxes from a file are used as given.

Box file format (frames are 0-based indices into the video; coordinates are pixels of the original frame):

- CSV: one box per row, ``frame,x1,y1,x2,y2[,score][,track_id]``. A header row naming the columns is optional
  (with a header, ``track_id`` may come without ``score``); without a header, 5, 6 or 7 columns mean no score,
  a score, and a score plus a track id.
- JSON: a list whose items are either objects ``{"frame": 0, "x1": .., "y1": .., "x2": .., "y2": ..,
  "score": .., "track_id": ..}`` (score and track_id optional) or arrays in the CSV column order.

When every box has a ``track_id`` the demo uses those tracks as given; otherwise it tracks the boxes itself.
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lib.core.errors import UserError
from lib.demo.boxes import box_containment, box_iou

logger = logging.getLogger(__name__)

# COCO category id of 'person' in torchvision's detection models.
COCO_PERSON = 1
# torchvision architectures accepted for DEMO.TORCHVISION_MODEL.
TORCHVISION_MODELS = ('fasterrcnn_resnet50_fpn_v2', 'fasterrcnn_resnet50_fpn', 'retinanet_resnet50_fpn_v2',
                      'retinanet_resnet50_fpn', 'fasterrcnn_mobilenet_v3_large_fpn',
                      'fasterrcnn_mobilenet_v3_large_320_fpn')
# In the INRIA windows the HOG people model was trained on (64 x 128 px), the person spans about the middle
# 96 px of the height and 32 px of the width; detections are shrunk to that part so boxes hug the body.
HOG_PERSON_HEIGHT = 96 / 128
HOG_PERSON_WIDTH = 32 / 64
# Height in pixels of the person the HOG window fits (the smallest person it finds in an unscaled image).
HOG_WINDOW_PERSON_PX = 128 * HOG_PERSON_HEIGHT


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
                        containment_threshold: float = 1.0) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    ``boxes (n, 4)`` x1y1x2y2, ``scores (n,)``. A box is suppressed by a better-scored kept box when their
    IoU exceeds ``iou_threshold`` or when their intersection covers at least ``containment_threshold`` of
    the smaller of the two (a duplicate nested in a bigger box, e.g. a hit on the upper body inside a hit on
    the whole person; 1.0 suppresses only boxes entirely inside another).
    """
    order = np.argsort(-np.asarray(scores), kind='stable')
    keep = []
    while len(order):
        best = order[0]
        keep.append(best)
        if len(order) == 1:
            break
        rest = boxes[order[1:]]
        duplicate = ((box_iou(boxes[best:best + 1], rest)[0] > iou_threshold)
                     | (box_containment(boxes[best:best + 1], rest)[0] >= containment_threshold))
        order = order[1:][~duplicate]
    return np.asarray(keep, dtype=np.int64)


class HOGDetector:
    """OpenCV's default HOG people detector.

    The window fits a person :data:`HOG_WINDOW_PERSON_PX` (96) pixels tall and ``detectMultiScale`` only
    shrinks the image, so each frame is first scaled by ``96 / min_height``: people from ``min_height``
    pixels tall (in the original frame) upwards are searched, over an image pyramid with step
    ``pyramid_scale``. Windows with SVM margin above ``hit_threshold`` are kept, and duplicates removed by
    :func:`non_max_suppression` (IoU above ``nms_iou``, or ``duplicate_overlap`` of the smaller box covered).
    Scores are the SVM margins. The search costs about the scaled image's area (a 768x576 frame at the
    default 50 px: see docs/tracking.md for measured times).
    """

    name = 'hog'

    def __init__(self, hit_threshold: float = 0.0, min_height: float = 50.0, pyramid_scale: float = 1.05,
                 win_stride: int = 8, nms_iou: float = 0.4, duplicate_overlap: float = 0.8):
        if not hasattr(cv2, 'HOGDescriptor'):
            raise UserError(f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 moved it out of "
                            "the main package): install opencv-python-headless<5 or "
                            "opencv-contrib-python-headless, or use --detector torchvision or --bbox_file")
        if min_height <= 0:
            raise UserError(f"DEMO.HOG_MIN_HEIGHT must be a positive number of pixels, got {min_height}")
        if pyramid_scale <= 1.0:
            raise UserError(f"DEMO.HOG_PYRAMID_SCALE must be above 1 (the step between pyramid levels), got "
                            f"{pyramid_scale}")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.hit_threshold = float(hit_threshold)
        self.factor = HOG_WINDOW_PERSON_PX / float(min_height)
        self.pyramid_scale = float(pyramid_scale)
        self.win_stride = int(win_stride)
        self.nms_iou = float(nms_iou)
        self.duplicate_overlap = float(duplicate_overlap)

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        return [self._detect(frame) for frame in frames]

    def _detect(self, frame: np.ndarray) -> np.ndarray:
        factor = self.factor
        image = frame if factor == 1.0 else cv2.resize(frame, None, fx=factor, fy=factor,
                                                       interpolation=cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(image, hitThreshold=self.hit_threshold,
                                                   winStride=(self.win_stride, self.win_stride),
                                                   padding=(8, 8), scale=self.pyramid_scale)
        if len(rects) == 0:
            return np.zeros((0, 5))
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / factor
        scores = np.asarray(weights, dtype=np.float64).reshape(-1)
        cx = rects[:, 0] + rects[:, 2] / 2
        cy = rects[:, 1] + rects[:, 3] / 2
        half_w = rects[:, 2] * HOG_PERSON_WIDTH / 2
        half_h = rects[:, 3] * HOG_PERSON_HEIGHT / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        keep = non_max_suppression(boxes, scores, self.nms_iou, self.duplicate_overlap)
        return np.concatenate([boxes[keep], scores[keep, None]], axis=1)


def torchvision_weights_file(arch: str) -> tuple[str, str]:
    """``(file name, download URL)`` of the COCO weights torchvision uses for ``arch``."""
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    return weights.url.rsplit('/', 1)[-1], weights.url


def find_torchvision_weights(arch: str, weights_path: str | Path = '') -> Path | None:
    """The local weights file for ``arch``: ``weights_path`` when given (it must exist), else the file in
    the torch hub cache (``$TORCH_HOME/hub/checkpoints``) if present, else None."""
    import torch

    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise UserError(f"detector weights file not found: {path} (DEMO.DETECTOR_WEIGHTS)")
        return path
    name, _ = torchvision_weights_file(arch)
    path = Path(torch.hub.get_dir()) / 'checkpoints' / name
    return path if path.is_file() else None


def download_torchvision_weights(arch: str) -> Path:
    """Download the COCO weights of ``arch`` with torchvision's own mechanism (``torch.hub``, checked against
    the hash in the file name, renamed into ``$TORCH_HOME/hub/checkpoints`` only when complete); returns the
    file. Only called with ``DEMO.DOWNLOAD_WEIGHTS True``.

    Raises:
        UserError: the download failed (offline, blocked, corrupt), naming the file and where to put it.
    """
    import torch
    from torchvision.models import get_model_weights

    name, url = torchvision_weights_file(arch)
    target = Path(torch.hub.get_dir()) / 'checkpoints' / name
    logger.info(f"detector: downloading {name} from {url} to {target.parent} (DEMO.DOWNLOAD_WEIGHTS True)")
    try:
        get_model_weights(arch).DEFAULT.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as err:   # URLError / HTTPError are OSErrors; a hash mismatch is a RuntimeError
        reason = ' '.join(str(err).split())[:120]
        raise UserError(f"could not download {name} from {url} ({reason}); place the file at {target} "
                        f"yourself, or use --detector hog / --bbox_file") from None
    return target


class TorchvisionDetector:
    """A torchvision COCO detector restricted to people, loaded from a local weights file only.

    Frames are run in batches of ``batch_size`` on ``device``; detections with score below
    ``score_threshold`` are dropped (the official demo kept YOLOv3 boxes above 0.7), and a box whose area is
    at least ``duplicate_overlap`` inside a better-scored one is merged into it
    (:func:`non_max_suppression`; the detector's own NMS only removes boxes of high IoU).
    """

    name = 'torchvision'

    def __init__(self, arch: str, device, weights_path: str | Path = '', score_threshold: float = 0.7,
                 batch_size: int = 12, duplicate_overlap: float = 0.8):
        import torch
        import torchvision

        if arch not in TORCHVISION_MODELS:
            raise UserError(f"unknown torchvision detector '{arch}'; choose one of {', '.join(TORCHVISION_MODELS)}")
        path = find_torchvision_weights(arch, weights_path)
        if path is None:
            name, url = torchvision_weights_file(arch)
            target = Path(torch.hub.get_dir()) / 'checkpoints' / name
            raise UserError(f"the torchvision detector needs {name} (from {url}); place it at {target}, set "
                            f"DEMO.DETECTOR_WEIGHTS or DEMO.DOWNLOAD_WEIGHTS True, or use --detector hog / "
                            f"--bbox_file")
        model = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=91)
        state = torch.load(path, map_location='cpu', weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise UserError(f"{path} does not hold {arch} weights: {str(err).splitlines()[0]}") from None
        self.model = model.eval().to(device)
        self.device = device
        self.score_threshold = float(score_threshold)
        self.batch_size = max(1, int(batch_size))
        self.duplicate_overlap = float(duplicate_overlap)

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        results = []
        for start in range(0, len(frames), self.batch_size):
            batch = [torch.from_numpy(np.ascontiguousarray(f[:, :, ::-1])).to(self.device).permute(2, 0, 1)
                     .float().div_(255.0) for f in frames[start:start + self.batch_size]]
            with torch.inference_mode():
                outputs = self.model(batch)
            for out in outputs:
                keep = (out['labels'] == COCO_PERSON) & (out['scores'] >= self.score_threshold)
                dets = torch.cat([out['boxes'][keep], out['scores'][keep, None]], dim=1).double().cpu().numpy()
                results.append(dets[non_max_suppression(dets[:, :4], dets[:, 4], 1.0, self.duplicate_overlap)])
        return results


def build_detector(kind: str, device, demo_cfg, batch_size: int = 12):
    """The detector for ``kind`` in {'auto', 'torchvision', 'hog'} configured from the ``DEMO`` config node.

    'auto' takes the torchvision detector when its weights are on disk (or, with ``DEMO.DOWNLOAD_WEIGHTS``,
    could be downloaded) and the HOG detector otherwise, and logs which and why. 'torchvision' without the
    weights (or with a failed download) is a :class:`UserError`.
    """
    if kind not in ('auto', 'torchvision', 'hog'):
        raise UserError(f"unknown detector '{kind}'; choose auto, torchvision or hog")
    arch, weights = demo_cfg.TORCHVISION_MODEL, demo_cfg.DETECTOR_WEIGHTS
    if kind in ('auto', 'torchvision') and find_torchvision_weights(arch, weights) is None:
        name, _ = torchvision_weights_file(arch)
        if demo_cfg.DOWNLOAD_WEIGHTS:
            try:
                download_torchvision_weights(arch)
            except UserError as err:
                if kind == 'torchvision':
                    raise
                logger.warning(f"detector: {err}; using OpenCV HOG")
                kind = 'hog'
        elif kind == 'auto':
            logger.info(f"detector: no local {name} for the torchvision detector (see docs/tracking.md), "
                        f"using OpenCV HOG")
            kind = 'hog'
    if kind in ('auto', 'torchvision'):
        return TorchvisionDetector(arch, device, weights, demo_cfg.DETECTION_THRESHOLD, batch_size,
                                   demo_cfg.DUPLICATE_OVERLAP)
    return HOGDetector(demo_cfg.HOG_HIT_THRESHOLD, demo_cfg.HOG_MIN_HEIGHT, demo_cfg.HOG_PYRAMID_SCALE,
                       duplicate_overlap=demo_cfg.DUPLICATE_OVERLAP)


@dataclass
class BoxFile:
    """Boxes read from a ``--bbox_file``: ``detections[f]`` is ``(n_f, 5)`` x1, y1, x2, y2, score for every
    frame of the video, and ``track_ids[f]`` the ``(n_f,)`` int ids when the file gives them (else None)."""

    detections: list[np.ndarray]
    track_ids: list[np.ndarray] | None


_COLUMNS = ('frame', 'x1', 'y1', 'x2', 'y2', 'score', 'track_id')


def read_bbox_file(path: str | Path, num_frames: int, width: int, height: int) -> BoxFile:
    """Read and check a box file (format in the module docstring) against a video of ``num_frames`` frames
    of ``width`` x ``height`` pixels. Any row that does not fit the video is a :class:`UserError`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"bbox file not found: {path}")
    rows = _read_json_rows(path) if path.suffix.lower() == '.json' else _read_csv_rows(path)
    if not rows:
        raise UserError(f"bbox file {path} holds no boxes")
    has_ids = ['track_id' in r for r in rows]
    if any(has_ids) and not all(has_ids):
        raise UserError(f"bbox file {path}: give a track_id on every box or on none")
    detections = [[] for _ in range(num_frames)]
    ids = [[] for _ in range(num_frames)]
    for number, row in enumerate(rows, start=1):
        frame = int(row['frame'])
        if row['frame'] != frame or not 0 <= frame < num_frames:
            raise UserError(f"bbox file {path} box {number}: frame {row['frame']:g} is not a frame of the video "
                            f"(0-based, the video has {num_frames} frames)")
        x1, y1, x2, y2 = (row[k] for k in ('x1', 'y1', 'x2', 'y2'))
        if not (x2 > x1 and y2 > y1):
            raise UserError(f"bbox file {path} box {number}: need x2 > x1 and y2 > y1 (x1,y1,x2,y2 pixels)")
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise UserError(f"bbox file {path} box {number}: ({x1:g},{y1:g},{x2:g},{y2:g}) lies outside the "
                            f"{width}x{height} video")
        detections[frame].append([x1, y1, x2, y2, row.get('score', 1.0)])
        if all(has_ids):
            ids[frame].append(int(row['track_id']))
    if all(has_ids):
        for frame, frame_ids in enumerate(ids):
            if len(set(frame_ids)) != len(frame_ids):
                raise UserError(f"bbox file {path}: frame {frame} has two boxes with the same track_id")
    dets = [np.asarray(d, dtype=np.float64).reshape(-1, 5) for d in detections]
    track_ids = [np.asarray(i, dtype=np.int64) for i in ids] if all(has_ids) else None
    return BoxFile(dets, track_ids)


def _row_from_values(values: list, names: tuple[str, ...], path: Path, number: int) -> dict:
    try:
        row = {name: float(v) for name, v in zip(names, values) if v not in ('', None)}
    except (TypeError, ValueError):
        raise UserError(f"bbox file {path} box {number}: non-numeric value in {values}") from None
    missing = [k for k in _COLUMNS[:5] if k not in row]
    if missing:
        raise UserError(f"bbox file {path} box {number}: missing {', '.join(missing)}")
    return row


def _positional_names(count: int, path: Path, number: int) -> tuple[str, ...]:
    if count not in (5, 6, 7):
        raise UserError(f"bbox file {path} box {number}: expected 5-7 values frame,x1,y1,x2,y2[,score]"
                        f"[,track_id], got {count}")
    return _COLUMNS[:count]


def _read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline='') as handle:
        lines = [r for r in csv.reader(handle) if r and not r[0].lstrip().startswith('#')]
    if not lines:
        return []
    header = [c.strip().lower() for c in lines[0]]
    named = 'frame' in header
    if named:
        unknown = [c for c in header if c not in _COLUMNS]
        if unknown:
            raise UserError(f"bbox file {path}: unknown column(s) {', '.join(unknown)}; use {','.join(_COLUMNS)}")
        lines = lines[1:]
    rows = []
    for number, line in enumerate(lines, start=1):
        values = [v.strip() for v in line]
        names = tuple(header) if named else _positional_names(len(values), path, number)
        rows.append(_row_from_values(values, names, path, number))
    return rows


def _read_json_rows(path: Path) -> list[dict]:
    try:
        items = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"bbox file {path} is not valid JSON: {err}") from None
    if not isinstance(items, list):
        raise UserError(f"bbox file {path}: expected a JSON list of boxes")
    rows = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            unknown = [k for k in item if k not in _COLUMNS]
            if unknown:
                raise UserError(f"bbox file {path} box {number}: unknown key(s) {', '.join(unknown)}")
            rows.append(_row_from_values(list(item.values()), tuple(item), path, number))
        elif isinstance(item, list):
            rows.append(_row_from_values(item, _positional_names(len(item), path, number), path, number))
        else:
            raise UserError(f"bbox file {path} box {number}: expected an object or a list")
    return rows
