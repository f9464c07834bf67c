"""``evaluate.py --render``: the predicted meshes drawn over the dataset's own frames, one video per sequence."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lib.core.config import resolve_path
from lib.core.errors import UserError
from lib.dataset.eval_sequences import as_str
from lib.eval.protocol import EvalResult
from lib.models.params import smpl_from_rotmat
from lib.vis.camera import OFFICIAL_BOX_SCALE, image_camera
from lib.vis.overlay import Figure, OverlayStyle, OverlayWriter


def dataset_image_paths(cfg, dataset: str, db: dict) -> np.ndarray:
    """``(N,)`` image file of every DB row, for ``--render``.

    ``img_name`` is used as stored when that file exists; otherwise 3DPW frames are looked up as
    ``DATASET.THREEDPW_DIR/imageFiles/<sequence>/<file>`` and other datasets under ``DATA_ROOT`` with the
    stored relative path. Raises UserError if the DB has no image names or the first image is missing.
    """
    if 'img_name' not in db or 'bbox' not in db:
        raise UserError(f"--render needs 'img_name' and 'bbox' in the {dataset} test database")
    names = [as_str(n) for n in np.asarray(db['img_name'])]
    if not names:
        return np.asarray(names)
    if Path(names[0]).is_file():
        return np.asarray(names)
    if dataset == '3dpw':
        root = resolve_path(cfg, cfg.DATASET.THREEDPW_DIR) / 'imageFiles'
        paths = [str(root / Path(n).parent.name / Path(n).name) for n in names]
    else:
        paths = [str(resolve_path(cfg, n.lstrip('/'))) for n in names]
    if not Path(paths[0]).is_file():
        where = 'DATASET.THREEDPW_DIR/imageFiles' if dataset == '3dpw' else 'DATA_ROOT'
        raise UserError(f"--render needs the {dataset} images: neither {names[0]} nor {paths[0]} exists "
                        f"(put the dataset's images under {where}, or run without --render)")
    return np.asarray(paths)


def frame_numbers(image_paths: np.ndarray) -> np.ndarray:
    """``(N,)`` frame number of each image, the digits after the last ``_`` of its file name as the official
    ``--frame`` reads them (``image_00042.jpg`` -> 42); -1 where the name has none."""
    stems = (Path(str(p)).stem.rsplit('_', 1)[-1] for p in image_paths)
    return np.asarray([int(s) if s.isdigit() else -1 for s in stems], dtype=np.int64)


def render_predictions(cfg, result: EvalResult, image_paths: np.ndarray, db: dict, smpl,
                       out_dir: Path, progress: bool = True, plain: bool = False, start_frame: int = 0) -> list[Path]:
    """Draw the predicted meshes on the dataset frames: one ``<sequence>.mp4`` per sequence in ``out_dir``,
    ``EVAL.RENDER_FRAMES`` frames of each (0 = all) from frame number ``start_frame`` on (``--frame``; the
    number in the image file name, :func:`frame_numbers`; else the frame's index in its sequence), at half
    resolution as the official script.

    The image camera comes from the predicted crop camera and the DB box scaled by 1.2 (the official rule,
    :data:`lib.vis.camera.OFFICIAL_BOX_SCALE`). ``plain`` (``--render_plain``): on a black background, with
    the official fixed camera ``(1, 0, 0)`` in the sequence's first box, so the body stays centred; written as
    ``<sequence>_plain.mp4``. Frames whose image is missing are skipped.
    """
    frames, preds = result.frames, result.predictions
    limit = int(cfg.EVAL.RENDER_FRAMES)
    faces = np.asarray(smpl.faces, dtype=np.int64)
    device = next(smpl.buffers()).device
    bboxes = np.asarray(db['bbox'], dtype=np.float64)
    style = OverlayStyle(mode=cfg.EVAL.RENDER_MODE, plain=plain)
    written = []
    numbers = frame_numbers(image_paths)
    for s, name in enumerate(tqdm(frames.names, desc='rendering', unit='seq', disable=not progress)):
        start, n = int(frames.starts[s]), int(frames.lengths[s])
        pos = np.arange(start, start + n)
        number = numbers[frames.rows[pos]]
        pos = pos[(number if (number >= 0).all() else pos - start) >= start_frame]
        pos = pos if limit <= 0 else pos[:limit]
        if pos.size == 0:
            continue
        with torch.inference_mode():
            verts = smpl_from_rotmat(smpl, preds.betas[pos].to(device),
                                     preds.rotmat[pos].to(device)).vertices.cpu().numpy()
        first = cv2.imread(str(image_paths[frames.rows[start]]))
        if first is None:
            continue
        height, width = first.shape[:2]
        size = (width // 2 - (width // 2) % 2, height // 2 - (height // 2) % 2)
        crop_cam = np.tile([1.0, 0.0, 0.0], (len(pos), 1)) if plain else preds.cam[pos].numpy()
        box_rows = frames.rows[np.full_like(pos, start) if plain else pos]
        cams, _ = image_camera(crop_cam, bboxes[box_rows], OFFICIAL_BOX_SCALE, width, height)
        path = out_dir / f"{name.replace('/', '_')}{'_plain' if plain else ''}.mp4"
        with OverlayWriter(path, faces, width, height, 30.0, style, size) as video:
            for k, p in enumerate(pos):
                image = cv2.imread(str(image_paths[frames.rows[p]]))
                if image is None or image.shape[:2] != (height, width):
                    continue
                video.write(image, [Figure(verts[k], cams[k])])
        if path.is_file():
            written.append(path)
    return written
