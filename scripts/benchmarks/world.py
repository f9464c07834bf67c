"""Camera motion and the world frame on generated videos with a known camera (lib/demo/world.py).

    python scripts/benchmark.py --part world                      # 120 frames 320x240, a 40-degree pan
    python scripts/benchmark.py --part world --pan 60 --frames 200 --width 640 --height 480

Generates (once per ``--root`` and size) a panning video and a static-camera video of the same scene
(``scripts/make_synthetic_video.py`` ``make_panning_video``: two people walking straight lines in the world)
and prints:

- the camera rotation error from the first frame (degrees: mean, largest, last frame) against the known
  rotation, and for the static camera the largest angle from the identity;
- the people's world trajectories: the true camera-frame pelvis ``trans_cam`` carried into the world with the
  estimated rotation, against the truth (mean error in metres, first frames aligned) and their straightness
  (largest distance from the best line, centimetres per metre walked), next to the same figures for the
  uncompensated camera-frame trajectories. The people's depth from the model is left out on purpose: these
  figures isolate what the camera compensation adds;
- the speed of the camera-motion stage against the feature stage of the demo pipeline on the same panning
  video (``run_demo`` with the true boxes, random GLoT weights without ``--checkpoint``).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from scripts.benchmarks import ensure_assets

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'repr_table1_3dpw.yaml'


def add_arguments(parser) -> None:
    parser.add_argument('--root', default='/tmp/glot_world_benchmark',
                        help='DATA_ROOT (generated stand-ins are written here when base_data is missing)')
    parser.add_argument('--checkpoint', default='', help='GLoT weights (default: a random GLoT saved in --root)')
    parser.add_argument('--frames', type=int, default=120)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--pan', type=float, default=40.0, help='pan in degrees (the tilt is 0.15 of it)')
    parser.add_argument('--no-demo', action='store_true', help='skip the pipeline timing')


def _video(root: Path, args, pan: float):
    from scripts.make_synthetic_video import make_panning_video

    name = f'pan{pan:g}_{args.frames}f_{args.width}x{args.height}'
    video = make_panning_video(root / 'videos' / f'{name}.mp4', root, args.frames, args.width, args.height,
                               pan_deg=pan, tilt_deg=0.15 * pan, bbox_file=root / 'videos' / f'{name}.csv')
    capture, frames = cv2.VideoCapture(str(video.path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return video, frames


def straightness(points: np.ndarray) -> float:
    """Largest distance (cm) of ``points (n, 3)`` metres from their best line, per metre between the ends."""
    centred = points - points.mean(0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    off = centred - np.outer(centred @ direction, direction)
    return 100.0 * float(np.linalg.norm(off, axis=1).max()) / max(float(np.linalg.norm(points[-1] - points[0])), 1e-9)


def run(args) -> None:
    from lib.demo.world import estimate_camera_motion, rotation_angle_deg

    root = ensure_assets(Path(args.root))
    (root / 'videos').mkdir(parents=True, exist_ok=True)
    print(f'{args.frames} frames, {args.width}x{args.height}, pan {args.pan:g} deg, tilt {0.15 * args.pan:g} deg')
    for pan in (args.pan, 0.0):
        video, frames = _video(root, args, pan)
        boxes = [np.array([b[f] for b in video.boxes]) for f in range(video.num_frames)]
        start = time.perf_counter()
        motion = estimate_camera_motion(frames, boxes, video.width, video.height, video.focal)
        seconds = time.perf_counter() - start
        truth = video.cam_R @ video.cam_R[0].T                          # from the first frame
        error = rotation_angle_deg(motion.rotations @ np.swapaxes(truth, 1, 2))
        print(f'\ncamera {"panning" if pan else "static"}: true turn {rotation_angle_deg(truth)[-1]:.1f} deg; '
              f'estimate {seconds / len(frames) * 1000:.1f} ms/frame, {int(motion.failed.sum())} failed frames, '
              f'{motion.inliers[1:].mean():.0f} inlier tracks/frame')
        print(f'  rotation error (deg): mean {error.mean():.3f}, max {error.max():.3f}, last frame {error[-1]:.3f}')
        print(f'  {"trajectory (per person)":<28s} {"error m (mean)":>15s} {"straightness cm/m":>18s} '
              f'{"walked m":>9s}')
        for k, (trans_cam, trans_world) in enumerate(zip(video.trans_cam, video.trans_world)):
            expected = trans_world @ video.cam_R[0].T                   # the world in the first frame's axes
            compensated = np.einsum('nji,nj->ni', motion.rotations, trans_cam)
            walked = np.linalg.norm(expected[-1] - expected[0])
            for label, traj in (('camera frame (uncompensated)', trans_cam), ('world (compensated)', compensated)):
                err = np.linalg.norm(traj - expected, axis=1).mean()
                print(f'  {label:<28s} {err:15.3f} {straightness(traj):18.2f} {walked:9.2f}'
                      + (f'   person {k + 1}' if label.startswith('camera') else ''))
    if not args.no_demo:
        _pipeline_cost(root, args)


def _pipeline_cost(root: Path, args) -> None:
    """The demo on the panning video: camera-motion stage against the feature stage."""
    import torch

    from lib.core.config import load_config
    from lib.demo.inference import GLoTPredictor, demo_files
    from lib.demo.pipeline import DemoOptions, run_demo

    name = f'pan{args.pan:g}_{args.frames}f_{args.width}x{args.height}'
    ckpt = Path(args.checkpoint) if args.checkpoint else root / 'glot_random_table1_3dpw.pth.tar'
    cfg = load_config(str(CONFIG), ['DATA_ROOT', str(root), 'DEVICE', args.device, 'DEMO.CACHE', 'False',
                                    'DEMO.MIN_TRACK_LEN', '10'])
    if not ckpt.is_file():
        from lib.models import build_model, save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(ckpt, build_model(cfg))
    predictor = GLoTPredictor(cfg, demo_files(cfg, ckpt))
    out = root / 'demo_output'
    shutil.rmtree(out, ignore_errors=True)
    result = run_demo(cfg, root / 'videos' / f'{name}.mp4', out,
                      DemoOptions(bbox_file=str(root / 'videos' / f'{name}.csv'), render=False), predictor=predictor)
    camera, features = result.seconds['camera'], result.seconds['features']
    print(f'\ndemo pipeline on the panning video ({result.num_frames} frames, {len(result.results)} people, device '
          f'{predictor.device}, torch threads {torch.get_num_threads()}): camera motion {camera:.2f} s, features '
          f'{features:.2f} s: the camera-motion stage costs {camera / features:.0%} of the feature stage')
