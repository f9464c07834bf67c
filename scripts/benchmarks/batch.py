"""Batch-mode speed: videos/hour of ``demo.py --vid_file FOLDER`` in one process on the current device.

    python scripts/benchmark.py --part batch                         # 4 videos of 60 frames 640x480, 2 people
    python scripts/benchmark.py --part batch --videos 8 --frames 300 --detector hog

Generates (once per ``--root``) the walking-people video of the demo part and copies it ``--videos`` times
into a folder, then runs :func:`lib.demo.batch.run_batch` on it (models loaded once, included in the time)
and prints the summary table, the wall time, videos/hour and frames/s. Under torchrun each process would take
its share; this part measures one process.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from scripts.benchmarks.demo import CONFIG, add_arguments as add_demo_arguments, prepare


def add_arguments(parser) -> None:
    add_demo_arguments(parser)
    parser.add_argument('--videos', type=int, default=4, help='copies of the generated video in the folder')


def run(args) -> None:
    from lib.core.config import load_config, merge_settings
    from lib.demo.batch import run_batch
    from lib.demo.pipeline import DemoOptions

    root = Path(args.root)
    video, boxes, ckpt = prepare(root, args)
    folder, box_folder, out = root / 'batch_videos', root / 'batch_boxes', root / 'batch_output'
    for path in (folder, box_folder, out):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    for k in range(args.videos):
        shutil.copyfile(video, folder / f'clip{k:03d}.mp4')
        shutil.copyfile(boxes, box_folder / f'clip{k:03d}.csv')
    cfg = load_config(str(CONFIG), ['DATA_ROOT', str(root), 'DEVICE', args.device, 'DEMO.CACHE', 'False',
                                    'DEMO.RENDER_MODE', args.render_mode])
    cfg = merge_settings(cfg, {'DEMO.SIDEVIEW': args.sideview,
                               **({} if args.detector == 'bbox' else {'DEMO.DETECTOR': args.detector})})
    options = DemoOptions(bbox_file=str(box_folder) if args.detector == 'bbox' else None)
    start = time.perf_counter()
    rows = run_batch(cfg, sorted(folder.iterdir()), out, options, ckpt)
    wall = time.perf_counter() - start
    frames = sum(row.frames for row in rows)
    print(f'\nbatch of {len(rows)} videos x {rows[0].frames} frames, {args.width}x{args.height}, {args.people} '
          f'people, detector {args.detector}; device {cfg.DEVICE}; torch threads {torch.get_num_threads()}')
    print(f'  wall {wall:.1f} s (models loaded once, included) = {len(rows) / wall * 3600:.0f} videos/hour, '
          f'{frames / wall:.1f} frames/s')
