"""Online-mode speed: sustained frames/s and per-frame latency (ms) of ``demo.py --stream`` on the current
device.

    python scripts/benchmark.py --part stream                        # 60 frames 640x480, 2 people, true boxes
    python scripts/benchmark.py --part stream --detector hog --people 1
    python scripts/benchmark.py --part stream --paced 10,25 --frames 250    # a live source at 10 and 25 fps

Generates (once per ``--root``) the walking-people video of the demo part and reads it as a stream
(:func:`lib.demo.stream.run_stream`). Without ``--paced`` it is read as fast as the pipeline goes, so
``frames/s`` is the rate the online mode sustains. Latency: ``processing`` is the time one input frame takes
(detection, tracking, features, the model for the frame ``seqlen // 2`` behind, rendering, writing);
``arrival -> result`` was measured here with frames arriving as fast as they are processed; from a live source
of ``--live-fps`` frames/s that keeps up, a result comes ``seqlen // 2`` frame intervals plus one processing
time after its frame.

``--paced FPS,...``: the video made at each of these rates and read as a live source at that rate (``--stream
FILE --realtime``): the stride chosen, the processed rate, and arrival-to-result latency p50/p95 in ms and in
units of the bound (seqlen // 2 + 2) x stride frame intervals, for the first and the last quarter of the run
(no growth) and overall.
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
    parser.add_argument('--paced', default='', help='read the video as a live source at these frame rates, e.g. '
                        '10,25')


def run(args) -> None:
    from lib.core.config import load_config, merge_settings
    from lib.demo.pipeline import DemoOptions
    from lib.demo.stream import run_stream

    if args.paced:
        paced(args)
        return
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


def paced(args) -> None:
    """The ``--paced`` table (module docstring)."""
    from lib.core.config import load_config
    from lib.demo.inference import GLoTPredictor, demo_files
    from lib.demo.pipeline import DemoOptions
    from lib.demo.stream import run_stream

    root = Path(args.root)
    cfg = load_config(str(CONFIG), ['DATA_ROOT', str(root), 'DEVICE', args.device, 'DEMO.RENDER_MODE',
                                    args.render_mode, *([] if args.detector == 'bbox' else
                                                        ['DEMO.DETECTOR', args.detector])])
    rows = []
    for fps in (float(f) for f in args.paced.split(',')):
        args.fps = fps
        video, boxes, ckpt = prepare(root, args)
        predictor = GLoTPredictor(cfg, demo_files(cfg, ckpt))
        out = root / 'stream_output'
        shutil.rmtree(out, ignore_errors=True)
        options = DemoOptions(bbox_file=str(boxes) if args.detector == 'bbox' else None)
        result = run_stream(cfg, str(video), out, options, predictor=predictor, realtime=True)
        rows.append((fps, result))
    latency_frames = rows[0][1].latency_frames
    print(f'\npaced stream: {args.frames} frames {args.width}x{args.height}, {args.people} people, detector '
          f'{args.detector}; device {cfg.DEVICE}; torch threads {torch.get_num_threads()}; bound = '
          f'({latency_frames} + 2) x stride frame intervals')
    print(f"  {'fps':>5s} {'read':>5s} {'done':>5s} {'stride':>11s} {'done/s':>7s} {'p50 ms':>8s} {'p95 ms':>8s} "
          f"{'p95/bound':>9s} {'first q.':>8s} {'last q.':>8s}")
    for fps, result in rows:
        # per emitted result: its latency over the bound at the stride in force when it was released
        strides = result.strides.astype(float)
        released = np.array([strides[i:i + latency_frames + 1].max() for i in range(len(strides))])
        people = len(result.latency_ms) // max(len(strides), 1) or 1
        ratio = result.latency_ms / ((latency_frames + 2) * np.repeat(released, people)[:len(result.latency_ms)]
                                     * 1000 / fps)
        quarter = max(len(ratio) // 4, 1)
        print(f'  {fps:5g} {result.frames_read:5d} {result.num_frames:5d} '
              f'{f"{int(strides[-1])} ({strides.mean():.1f})":>11s} {result.fps:7.2f} '
              f'{np.percentile(result.latency_ms, 50):8.0f} {np.percentile(result.latency_ms, 95):8.0f} '
              f'{np.percentile(ratio, 95):9.2f} {np.percentile(ratio[:quarter], 95):8.2f} '
              f'{np.percentile(ratio[-quarter:], 95):8.2f}')
    print('  stride: at the end (mean); first/last q.: p95 of latency / bound over the first and last quarter')
