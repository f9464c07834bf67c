"""The whole pipeline on generated data, on the CPU, in a few minutes.

    python scripts/quickstart.py                    # results in results/quickstart/
    python scripts/quickstart.py --root /tmp/glot   # another place

Steps (each one is the command a user would run on real data, printed before it runs):
1. generated stand-ins for the licensed assets (SMPL, SPIN checkpoint, ...) in <root>/data/base_data;
2. generated databases in the released formats in <root>/data/preprocessed_data and a short video;
3. ``train.py --cfg configs/synthetic.yaml``: GLoT on the generated 3D/2D clips;
4. ``evaluate.py --dataset 3dpw``: the official test protocol on the generated 3DPW test set, with the
   trained model and with the untrained one, so the improvement is visible;
5. ``demo.py`` on the generated video, with the motion exported as GLB and BVH.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CFG = 'configs/synthetic.yaml'


def _run(args: list[str]) -> None:
    print('\n$ ' + shlex.join(['python', *args]), flush=True)
    proc = subprocess.run([sys.executable, *args], cwd=REPO)
    if proc.returncode:
        sys.exit(f'quickstart: step failed with exit code {proc.returncode}: {shlex.join(args)}')


def _results(path: Path) -> dict:
    return json.loads(path.read_text())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='results/quickstart', help='folder for data and results')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    root = (REPO / args.root).resolve() if not Path(args.root).is_absolute() else Path(args.root)
    data, runs = root / 'data', root / 'runs'
    start = time.time()

    from scripts.make_synthetic_assets import make_synthetic_assets
    from scripts.make_synthetic_data import make_synthetic_data
    from scripts.make_synthetic_video import make_synthetic_video

    if not (data / 'base_data' / 'SMPL_NEUTRAL.pkl').is_file():
        print(f'generating stand-in assets in {data / "base_data"}', flush=True)
        make_synthetic_assets(data, seed=args.seed)
    if not (data / 'preprocessed_data' / '3dpw_test_db.pt').is_file():
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
        _run(['evaluate.py', '--cfg', CFG, '--dataset', '3dpw', '--checkpoint', str(ckpt),
              '--output_dir', str(root / f'eval_3dpw_{name}'), *common])
    _run(['demo.py', '--cfg', CFG, '--vid_file', str(video), '--bbox_file', str(boxes), '--checkpoint', str(best),
          '--output_folder', str(root / 'demo'), '--export', 'glb,bvh', *common])

    trained = _results(root / 'eval_3dpw_trained' / 'results.json')
    untrained = _results(root / 'eval_3dpw_untrained' / 'results.json')
    print(f'\nquickstart done in {time.time() - start:.0f} s. Generated 3DPW test set, corrected protocol, mm:')
    for label, res in (('untrained', untrained), ('trained', trained)):
        r = res['corrected']
        print(f"  {label:9s}  PA-MPJPE {r['pa_mpjpe']:7.1f}  MPJPE {r['mpjpe']:7.1f}  "
              f"MPVPE {r['mpvpe']:7.1f}  Accel {r['accel_err']:6.1f}")
    print(f'outputs: {root}')


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
