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


def render_predictions(cfg, result: EvalResult, image_paths: np.ndarray, db: dict, smpl,
                       out_dir: Path, progress: bool = True) -> list[Path]:
    """Draw the predicted meshes on the dataset frames: one ``<sequence>.mp4`` per sequence in ``out_dir``,
    the first ``EVAL.RENDER_FRAMES`` frames of each (0 = all), at half resolution as the official script.

    The image camera comes from the predicted crop camera and the DB box scaled by 1.2 (the official rule,
    :data:`lib.vis.camera.OFFICIAL_BOX_SCALE`).
    Frames whose image is missing are skipped.
    """
    frames, preds = result.frames, result.predictions
    limit = int(cfg.EVAL.RENDER_FRAMES)
    faces = np.asarray(smpl.faces, dtype=np.int64)
    device = next(smpl.buffers()).device
    bboxes = np.asarray(db['bbox'], dtype=np.float64)
    style = OverlayStyle(mode=cfg.EVAL.RENDER_MODE)
    written = []
    for s, name in enumerate(tqdm(frames.names, desc='rendering', unit='seq', disable=not progress)):
        start, n = int(frames.starts[s]), int(frames.lengths[s])
        count = n if limit <= 0 else min(n, limit)
        pos = np.arange(start, start + count)
        with torch.inference_mode():
            verts = smpl_from_rotmat(smpl, preds.betas[pos].to(device),
                                     preds.rotmat[pos].to(device)).vertices.cpu().numpy()
        first = cv2.imread(str(image_paths[frames.rows[start]]))
        if first is None:
            continue
        height, width = first.shape[:2]
        size = (width // 2 - (width // 2) % 2, height // 2 - (height // 2) % 2)
        cams, _ = image_camera(preds.cam[pos].numpy(), bboxes[frames.rows[pos]], OFFICIAL_BOX_SCALE, width,
                               height)
        path = out_dir / f"{name.replace('/', '_')}.mp4"
        with OverlayWriter(path, faces, width, height, 30.0, style, size) as video:
            for k, p in enumerate(pos):
                image = cv2.imread(str(image_paths[frames.rows[p]]))
                if image is None or image.shape[:2] != (height, width):
                    continue
                video.write(image, [Figure(verts[k], cams[k])])
        if path.is_file():
            written.append(path)
    return written
