"""Demo speed per stage (detection, tracking, features, model, export, render) in frames/s of the input video.

    python scripts/benchmark.py --part demo                                  # 60 frames 640x480, 2 people
    python scripts/benchmark.py --part demo --detector hog --render-mode painter
    python scripts/benchmark.py --part demo --export glb,bvh
    python scripts/benchmark.py --part demo --checkpoint data/pretrained_models/table1_3dpw_weights.pth.tar \
        --root data --frames 120 --width 1280 --height 720
    python scripts/benchmark.py --part demo --sweep --frames 60      # 768x576 street, 5 people, HOG: speed settings

Generates (once per ``--root``) the SMPL stand-ins, a walking-people video and, without ``--checkpoint``, a
randomly initialised Table-1 3DPW GLoT, then runs the demo pipeline in-process (``lib.demo.pipeline.run_demo``)
and prints the seconds and frames/s of every stage, the feature stage's crops/s next to a bare torchvision
``resnet50`` forward at the same batch size, and the process's peak memory. ``--detector bbox`` feeds the
true boxes as a ``--bbox_file`` (detection then costs nothing); ``hog`` and ``torchvision`` run those
detectors.

``--sweep``: the street scene of the tracking part (768x576, five people 69-115 px tall, moving as fast per frame as
in its 150 frames) with the HOG detector, once per speed setting: ``DEMO.FEATURE_DTYPE`` float32 / bfloat16 and
``DEMO.DETECT_EVERY`` 1 / 2 / 3. Per setting: frames/s per stage and end to end, the person-frames covered
(relative to today's defaults, the first row), the mean vertex difference to the first row (mm, on the
person-frames both have, matched by track id) and the tracking scores of the HOG boxes at that
``DETECT_EVERY`` against the true boxes (MOTA, IDF1, coverage: :mod:`scripts.benchmarks.tracking`).
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
    parser.add_argument('--sweep', action='store_true', help='street scene, HOG: float32/bfloat16 features and '
                        'DEMO.DETECT_EVERY 1/2/3 side by side (--frames applies)')


def prepare(root: Path, args) -> tuple[Path, Path, Path]:
    """Assets, video, boxes and checkpoint under ``root`` (each made only when missing); the video at
    ``args.fps`` frames/s (25 when the part has no such argument)."""
    from scripts.make_synthetic_video import make_synthetic_video

    ensure_assets(root)
    fps = getattr(args, 'fps', 25.0)
    name = f'walk_{args.frames}f_{args.width}x{args.height}_{args.people}p' + (f'_{fps:g}fps' if fps != 25.0 else '')
    video, boxes = root / 'videos' / f'{name}.mp4', root / 'videos' / f'{name}.csv'
    if not video.is_file():
        make_synthetic_video(video, root, args.frames, args.width, args.height, fps=fps, people=args.people,
                             body_height_px=0.75 * args.height, bbox_file=boxes)
    return video, boxes, checkpoint(root, args)


def checkpoint(root: Path, args) -> Path:
    """``--checkpoint``, else a random Table-1 3DPW GLoT saved in ``root`` (made once)."""
    from lib.core.config import load_config

    ckpt = Path(args.checkpoint) if args.checkpoint else root / 'glot_random_table1_3dpw.pth.tar'
    if not ckpt.is_file():
        from lib.models import build_model, save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(ckpt, build_model(load_config(str(CONFIG), ['DATA_ROOT', str(root), 'DEVICE', 'cpu'])))
    return ckpt


def run(args) -> None:
    if args.sweep:
        sweep(args)
        return
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


# (DEMO.FEATURE_DTYPE, DEMO.DETECT_EVERY) of the --sweep rows; the first is today's defaults.
SWEEP = (('float32', 1), ('bfloat16', 1), ('bfloat16', 2), ('bfloat16', 3), ('float32', 2))


def sweep(args) -> None:
    """The ``--sweep`` table (module docstring)."""
    import numpy as np

    from lib.core.config import load_config
    from lib.demo.detection import build_detector, read_bbox_file
    from lib.demo.inference import GLoTPredictor, demo_files
    from lib.demo.pipeline import STAGES, DemoOptions, box_appearance, link_tracks, run_demo
    from lib.demo.track_metrics import score_tracks
    from lib.vis.video import FrameReader
    from scripts.benchmarks.tracking import SCENES
    from scripts.make_synthetic_video import Walker, make_crossing_video

    root = Path(args.root)
    args.people, args.width, args.height = 5, 768, 576
    ensure_assets(root)
    ckpt = checkpoint(root, args)
    street = SCENES['street']
    # the scene's first --frames frames: each walker's end point moved so that it walks as fast per frame
    walkers = tuple(Walker(h, foot, a, a + (b - a) * (args.frames - 1) / (street['frames'] - 1), colour, phase)
                    for h, foot, a, b, colour, phase in street['walkers'])
    video, truth_file = root / 'videos' / f'street_{args.frames}f.mp4', root / 'videos' / f'street_{args.frames}f.csv'
    if not video.is_file():
        make_crossing_video(video, root, args.frames, 768, 576, walkers=walkers, bbox_file=truth_file)
    truth = read_bbox_file(truth_file, args.frames, 768, 576)
    base = ['DATA_ROOT', str(root), 'DEVICE', args.device, 'DEMO.CACHE', 'False', 'DEMO.RENDER_MODE', args.render_mode,
            'DEMO.DETECTOR', 'hog']
    reader = FrameReader(video)
    hog = build_detector('hog', 'cpu', load_config(str(CONFIG), base).DEMO)(list(reader))
    print(f'\nstreet scene {video.name}: {args.frames} frames 768x576, {len(walkers)} people; HOG; '
          f'device {args.device}; torch threads {torch.get_num_threads()}')
    stages = [s for s in STAGES if s not in ('export', 'render')]    # render is off
    header = (f"  {'features':<9s} {'every':>5s} " + ' '.join(f'{s[:9]:>9s}' for s in stages) + f" {'total':>7s}"
              f" {'pers-fr':>7s} {'cover':>6s} {'verts mm':>8s} {'MOTA':>6s} {'IDF1':>6s} {'t.cov':>6s}")
    print('  frames/s per stage (render off); pers-fr: person-frames; cover: of the first row\'s' + '\n' + header)
    first = None
    for dtype, every in SWEEP:
        cfg = load_config(str(CONFIG), base + ['DEMO.FEATURE_DTYPE', dtype, 'DEMO.DETECT_EVERY', str(every)])
        out = root / 'demo_output' / f'{dtype}_{every}'
        shutil.rmtree(out, ignore_errors=True)
        result = run_demo(cfg, video, out, DemoOptions(render=False, save_pkl=False),
                          predictor=GLoTPredictor(cfg, demo_files(cfg, ckpt)))
        rates = ' '.join(f'{result.num_frames / result.seconds[s]:9.2f}' if result.seconds.get(s, 0) > 1e-3 else
                         f'{"-":>9s}' for s in stages)
        total = result.num_frames / sum(result.seconds.get(s, 0.0) for s in STAGES)
        frames = {pid: dict(zip(r.frame_ids.tolist(), r.verts)) for pid, r in result.results.items()}
        count = sum(len(f) for f in frames.values())
        first = first or (count, frames)
        diffs = [np.linalg.norm(v - first[1][pid][f], axis=-1).mean() * 1000 for pid, rows in frames.items()
                 for f, v in rows.items() if f in first[1].get(pid, {})]
        dets = [d if f % every == 0 else None for f, d in enumerate(hog)]
        scores = score_tracks(truth.detections, truth.track_ids,
                              link_tracks(dets, cfg.DEMO, None, box_appearance(reader, dets)))
        print(f'  {dtype:<9s} {every:5d} {rates} {total:7.2f} {count:7d} {count / first[0]:6.1%} '
              f'{np.mean(diffs) if diffs else float("nan"):8.2f} {scores.mota:6.3f} {scores.idf1:6.3f} '
              f'{scores.coverage:6.3f}')
