"""The whole pipeline on generated data, on the CPU, in a few minutes.

    python scripts/quickstart.py                    # results in results/quickstart/
    python scripts/quickstart.py --root /tmp/glot   # another place

Steps (each one is the command a user would run on real data, printed before it runs):
1. generated stand-ins for the licensed assets (SMPL, SPIN checkpoint, ...) in <root>/data/base_data;
2. generated databases in the released formats in <root>/data/preprocessed_data and a short video;
3. ``train.py --cfg configs/synthetic.yaml``: GLoT on the generated 3D/2D clips;
4. ``evaluate.py --dataset 3dpw --render``: the official test protocol on the generated 3DPW test set, with
   the trained model and with the untrained one, each drawing its meshes over the test frames;
5. ``demo.py`` on the generated video, with the motion exported as GLB and BVH;
6. a picture, ``<root>/trained_vs_untrained.jpg``: test frames with the untrained (top row) and the trained
   (bottom row) model's meshes over the ground-truth body (blue).
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import joblib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lib.core.io import atomic_write  # noqa: E402
from lib.vis.video import FrameReader  # noqa: E402

CFG = 'configs/synthetic.yaml'
# The picture: frames of this generated test sequence (all valid), cropped around the person, one row per model.
PICTURE_SEQUENCE = 'synth_test_01'
PICTURE_FRAMES = (0, 13, 26, 39)
PICTURE_TILE = 300


def _run(args: list[str]) -> None:
    print('\n$ ' + shlex.join(['python', *args]), flush=True)
    proc = subprocess.run([sys.executable, *args], cwd=REPO)
    if proc.returncode:
        sys.exit(f'quickstart: step failed with exit code {proc.returncode}: {shlex.join(args)}')


def _results(path: Path) -> dict:
    return json.loads(path.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='results/quickstart',
                        help='folder for data and results (relative to the current folder)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    root = Path(args.root).absolute()
    data, runs = root / 'data', root / 'runs'
    start = time.time()

    from scripts.make_synthetic_assets import make_synthetic_assets
    from scripts.make_synthetic_data import make_synthetic_data
    from scripts.make_synthetic_video import make_synthetic_video

    if not (data / 'base_data' / 'SMPL_NEUTRAL.pkl').is_file():
        print(f'generating stand-in assets in {data / "base_data"}', flush=True)
        make_synthetic_assets(data, seed=args.seed)
    if not (data / '3dpw' / 'imageFiles' / PICTURE_SEQUENCE).is_dir():
        print(f'generating databases in {data / "preprocessed_data"}', flush=True)
        make_synthetic_data(data, seed=args.seed)
    video, boxes = root / 'walk.mp4', root / 'walk_boxes.csv'
    if not video.is_file():
        make_synthetic_video(video, data, num_frames=40, bbox_file=boxes)

    common = ['DATA_ROOT', str(data), 'OUTPUT_DIR', str(runs), 'SEED_VALUE', str(args.seed)]
    _run(['train.py', '--cfg', CFG, *common, 'TRAIN.RESUME', 'auto'])  # a finished run is not trained again

    from lib.core.config import load_config
    exp_dir = runs / load_config(REPO / CFG).EXP_NAME
    best = exp_dir / 'model_best.pth.tar'
    initial = exp_dir / 'initial.pth.tar'
    if not initial.is_file():
        _save_initial_model(REPO / CFG, data, args.seed, initial)

    for name, ckpt in (('trained', best), ('untrained', initial)):
        _run(['evaluate.py', '--cfg', CFG, '--dataset', '3dpw', '--checkpoint', str(ckpt), '--render',
              '--output_dir', str(root / f'eval_3dpw_{name}'), *common])
    _run(['demo.py', '--cfg', CFG, '--vid_file', str(video), '--bbox_file', str(boxes), '--checkpoint', str(best),
          '--output_folder', str(root / 'demo'), '--export', 'glb,bvh', *common])

    picture = _picture(root, data)
    trained = _results(root / 'eval_3dpw_trained' / 'results.json')
    untrained = _results(root / 'eval_3dpw_untrained' / 'results.json')
    units = _results(root / 'eval_3dpw_trained' / 'eval_info.json')['units']
    print(f'\nquickstart done in {time.time() - start:.0f} s. Generated 3DPW test set, corrected protocol:')
    for label, res in (('untrained', untrained), ('trained', trained)):
        print(f'  {label:9s}  ' + '  '.join(f'{k} {v:6.1f} {units[k]}' for k, v in res['corrected'].items()))
    print(f"picture: {picture}\n  test frames with the untrained (top) and trained (bottom) model's meshes over "
          f"the ground-truth body (blue)\n"
          f"videos:  {root / 'eval_3dpw_trained' / 'render'} (trained model, every test sequence), "
          f"{root / 'demo' / video.stem} (demo)\n"
          f"outputs: {root} ({_megabytes(root):.0f} MB)")


def _picture(root: Path, data: Path) -> Path:
    """``root/trained_vs_untrained.jpg``: :data:`PICTURE_FRAMES` of :data:`PICTURE_SEQUENCE` from the two
    evaluations' rendered videos (half-size frames), cropped square around the person's box."""
    db = joblib.load(data / 'preprocessed_data' / '3dpw_test_db.pt')
    boxes = np.asarray(db['bbox'])[np.asarray(db['vid_name']) == f'{PICTURE_SEQUENCE}_0'] / 2   # half size
    rows = []
    for name in ('untrained', 'trained'):
        frames = list(FrameReader(root / f'eval_3dpw_{name}' / 'render' / f'{PICTURE_SEQUENCE}_0.mp4'))
        tiles = []
        for k in PICTURE_FRAMES:
            cx, cy, _, h = boxes[k]
            half = int(0.6 * h)
            pad = cv2.copyMakeBorder(frames[k], half, half, half, half, cv2.BORDER_CONSTANT)
            crop = pad[int(cy):int(cy) + 2 * half, int(cx):int(cx) + 2 * half]
            tiles.append(cv2.resize(crop, (PICTURE_TILE, PICTURE_TILE), interpolation=cv2.INTER_AREA))
        row = np.concatenate(tiles, axis=1)
        cv2.putText(row, name, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
        rows.append(row)
    return atomic_write(root / 'trained_vs_untrained.jpg', cv2.imencode('.jpg', np.concatenate(rows))[1].tobytes())


def _megabytes(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file() and not f.is_symlink()) / 1e6


def _save_initial_model(cfg_file: Path, data: Path, seed: int, path: Path) -> None:
    """The model as training starts (same seed), for the before/after comparison."""
    import torch

    from lib.core.config import load_config
    from lib.models import build_model, save_checkpoint

    cfg = load_config(cfg_file, ['DATA_ROOT', str(data), 'DEVICE', 'cpu'])
    torch.manual_seed(seed)
    save_checkpoint(path, build_model(cfg, pretrained_regressor=True), epoch=0)


if __name__ == '__main__':
    main()
