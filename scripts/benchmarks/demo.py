"""Demo speed per stage (detection, tracking, features, model, export, render) in frames/s of the input video.

    python scripts/benchmark.py --part demo                                  # 60 frames 640x480, 2 people
    python scripts/benchmark.py --part demo --detector hog --render-mode painter
    python scripts/benchmark.py --part demo --export glb,bvh
    python scripts/benchmark.py --part demo --checkpoint data/pretrained_models/table1_3dpw_weights.pth.tar \
        --root data --frames 120 --width 1280 --height 720

Generates (once per ``--root``) the SMPL stand-ins, a walking-people video and, without ``--checkpoint``, a
randomly initialised Table-1 3DPW GLoT, then runs the demo pipeline in-process (``lib.demo.pipeline.run_demo``)
and prints the seconds and frames/s of every stage, the feature stage's crops/s next to a bare torchvision
``resnet50`` forward at the same batch size, and the process's peak memory. ``--detector bbox`` feeds the
true boxes as a ``--bbox_file`` (detection then costs nothing); ``hog`` and ``torchvision`` run those
detectors.
"""
from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import torch

from scripts.benchmarks import ensure_assets

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'repr_table1_3dpw.yaml'


def add_arguments(parser) -> None:
    parser.add_argument('--root', default='/tmp/glot_demo_benchmark',
                        help='DATA_ROOT (generated stand-ins are written here when base_data is missing)')
    parser.add_argument('--checkpoint', default='', help='GLoT weights (default: a random GLoT saved in --root)')
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--people', type=int, default=2)
    parser.add_argument('--detector', choices=('bbox', 'hog', 'torchvision'), default='bbox')
    parser.add_argument('--render-mode', choices=('zbuffer', 'painter'), default='zbuffer')
    parser.add_argument('--sideview', action='store_true')
    parser.add_argument('--export', default='', help='also time the motion export, e.g. glb,bvh')


def prepare(root: Path, args) -> tuple[Path, Path, Path]:
    """Assets, video, boxes and checkpoint under ``root`` (each made only when missing)."""
    from lib.core.config import load_config
    from scripts.make_synthetic_video import make_synthetic_video

    ensure_assets(root)
    name = f'walk_{args.frames}f_{args.width}x{args.height}_{args.people}p'
    video, boxes = root / 'videos' / f'{name}.mp4', root / 'videos' / f'{name}.csv'
    if not video.is_file():
        make_synthetic_video(video, root, args.frames, args.width, args.height, people=args.people,
                             body_height_px=0.75 * args.height, bbox_file=boxes)
    ckpt = Path(args.checkpoint) if args.checkpoint else root / 'glot_random_table1_3dpw.pth.tar'
    if not ckpt.is_file():
        from lib.models import build_model, save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(ckpt, build_model(load_config(str(CONFIG), ['DATA_ROOT', str(root), 'DEVICE', 'cpu'])))
    return video, boxes, ckpt


def run(args) -> None:
    from lib.core.config import load_config, merge_settings
    from lib.demo.inference import GLoTPredictor, demo_files
    from lib.demo.pipeline import STAGES, DemoOptions, run_demo

    root = Path(args.root)
    video, boxes, ckpt = prepare(root, args)
    cfg = load_config(str(CONFIG), ['DATA_ROOT', str(root), 'DEVICE', args.device, 'DEMO.CACHE', 'False',
                                    'DEMO.RENDER_MODE', args.render_mode])
    start = time.perf_counter()
    predictor = GLoTPredictor(cfg, demo_files(cfg, ckpt))
    setup = time.perf_counter() - start
    out = root / 'demo_output'
    shutil.rmtree(out, ignore_errors=True)
    cfg = merge_settings(cfg, {'DEMO.SIDEVIEW': args.sideview,
                               'DEMO.EXPORT': [f for f in args.export.split(',') if f] if args.export else [],
                               **({} if args.detector == 'bbox' else {'DEMO.DETECTOR': args.detector})})
    options = DemoOptions(bbox_file=str(boxes) if args.detector == 'bbox' else None)
    result = run_demo(cfg, video, out, options, predictor=predictor)
    people = sum(len(r.frame_ids) for r in result.results.values()) / max(result.num_frames, 1)
    print(f'\nvideo {video.name}: {result.num_frames} frames, {args.width}x{args.height}, '
          f'{len(result.results)} track(s), {people:.2f} people per frame; device {predictor.device}; '
          f'torch threads {torch.get_num_threads()}; model + SPIN setup {setup:.1f} s')
    for stage in STAGES:
        sec = result.seconds.get(stage, 0.0)
        rate = f'{result.num_frames / sec:9.1f}' if sec >= 1e-3 else f'{"-":>9s}'
        print(f'  {stage:<10s} {sec:8.2f} s  {rate} frames/s')
    total = sum(result.seconds.get(s, 0.0) for s in STAGES)
    print(f'  {"total":<10s} {total:8.2f} s  {result.num_frames / total:9.1f} frames/s (setup excluded)')
    crops = sum(len(r.frame_ids) for r in result.results.values())
    batch = cfg.DEMO.FEATURE_BATCH_SIZE
    bare = bare_resnet_rate(predictor, batch)
    features = crops / max(result.seconds.get('features', 0.0), 1e-9)
    print(f'features: {crops} crops, {features:.1f} crops/s (decode, crop, normalise, ResNet); a bare torchvision '
          f'resnet50 forward at batch {batch}: {bare:.1f} crops/s ({features / bare:.0%})')
    print(f'peak memory of this process (RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB')


def bare_resnet_rate(predictor, batch: int, seconds: float = 5.0) -> float:
    """Crops/s of a plain torchvision ResNet-50 trunk (random weights, same device and memory format as the
    predictor's SPIN network) on random ``batch x 3 x 224 x 224`` input, the ceiling of the feature stage."""
    import torchvision

    trunk = torch.nn.Sequential(*list(torchvision.models.resnet50(weights=None).children())[:-1]).eval()
    trunk.to(predictor.device, memory_format=predictor.memory_format)
    images = torch.randn(batch, 3, 224, 224, device=predictor.device).contiguous(memory_format=predictor.memory_format)
    with torch.inference_mode():
        trunk(images[:1])
        start, runs = time.perf_counter(), 0
        while runs < 2 or time.perf_counter() - start < seconds:
            trunk(images)
            runs += 1
        if predictor.device.type == 'cuda':
            torch.cuda.synchronize()
    return batch * runs / (time.perf_counter() - start)
