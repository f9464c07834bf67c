"""Online-mode speed: sustained frames/s and per-frame latency (ms) of ``demo.py --stream`` on the current
device.

    python scripts/benchmark.py --part stream                        # 60 frames 640x480, 2 people, true boxes
    python scripts/benchmark.py --part stream --detector hog --people 1

Generates (once per ``--root``) the walking-people video of the demo part and reads it as a stream as fast
as the pipeline goes (:func:`lib.demo.stream.run_stream`), so ``frames/s`` is the rate the online mode
sustains. Latency: ``processing`` is the time one input frame takes (detection, tracking, features, the
model for the frame ``seqlen // 2`` behind, rendering, writing); ``arrival -> result`` was measured here with
frames arriving as fast as they are processed; from a live source of ``--live-fps`` frames/s that keeps up,
a result comes ``seqlen // 2`` frame intervals plus one processing time after its frame.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from scripts.benchmarks.demo import CONFIG, add_arguments as add_demo_arguments, prepare


def add_arguments(parser) -> None:
    add_demo_arguments(parser)
    parser.add_argument('--live-fps', type=float, default=30.0, help='frame rate of the live source the latency '
                        'estimate assumes')


def run(args) -> None:
    from lib.core.config import load_config, merge_settings
    from lib.demo.pipeline import DemoOptions
    from lib.demo.stream import run_stream

    root = Path(args.root)
    video, boxes, ckpt = prepare(root, args)
    out = root / 'stream_output'
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(str(CONFIG), ['DATA_ROOT', str(root), 'DEVICE', args.device, 'DEMO.RENDER_MODE',
                                    args.render_mode])
    cfg = merge_settings(cfg, {'DEMO.SIDEVIEW': args.sideview,
                               **({} if args.detector == 'bbox' else {'DEMO.DETECTOR': args.detector})})
    options = DemoOptions(bbox_file=str(boxes) if args.detector == 'bbox' else None)
    result = run_stream(cfg, str(video), out, options, ckpt)
    latency = result.latency_frames
    step = np.asarray(result.step_ms)[latency:]  # steady state: every step emits a frame
    live = latency * 1000 / args.live_fps + step.mean()
    print(f'\nstream {video.name}: {result.num_frames} frames, {args.width}x{args.height}, {args.people} people, '
          f'detector {args.detector}; device {cfg.DEVICE}; torch threads {torch.get_num_threads()}')
    print(f'  sustained {result.fps:.1f} frames/s (model loading excluded)')
    print(f'  processing per frame (steady state): mean {step.mean():.1f} ms, p95 {np.percentile(step, 95):.1f} ms')
    print(f'  arrival -> result here: mean {result.latency_ms.mean():.0f} ms; from a live {args.live_fps:g} fps '
          f'source that keeps up: {latency} frames = {latency * 1000 / args.live_fps:.0f} ms + processing '
          f'= {live:.0f} ms' + ('' if step.mean() <= 1000 / args.live_fps else
                                f' (but {1000 / step.mean():.1f} frames/s < {args.live_fps:g}: it falls behind)'))
