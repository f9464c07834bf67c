"""Tracking quality on generated videos with ground-truth ids: MOTA, IDF1, identity switches, coverage.

    python scripts/benchmark.py --part tracking                     # crossing scene: 4 people, 4 crossings
    python scripts/benchmark.py --part tracking --scene street      # 5 people 69-115 px in 768x576, overtakes
    python scripts/benchmark.py --part tracking --hog-min-height 70 DEMO.TRACK_MAX_AGE 30

Generates (once per ``--root``) the SMPL stand-ins and the scene's video with its true boxes, then tracks
(``lib.demo.pipeline.link_tracks``, the demo's own settings plus any ``KEY VALUE`` overrides) the true boxes
given without ids (what ``--bbox_file`` without ``track_id`` gets) and the HOG detector's boxes, with the
colour cue, with motion only, and with motion only and ``max_age`` 1 (what the demo had before); then both
with the detector run on every 2nd and 3rd frame only (``DEMO.DETECT_EVERY``, the Kalman tracker carrying the
boxes in between). Scores are
computed by ``motmetrics`` against the true boxes (IoU >= 0.5); coverage is the fraction of true
person-frames that a kept track covers.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from scripts.benchmarks import ensure_assets

# A 768x576 street: five people 69-115 px tall at different speeds; besides crossings, two overtakes in which
# the faster person stays hidden behind the slower one for more than a second.
SCENES = {
    'crossing': dict(frames=100, width=384, height=288, walkers=None),
    'street': dict(frames=150, width=768, height=576, walkers=(
        (0.20, 0.90, 0.05, 0.80, (0.75, 0.20, 0.25), 0.0),
        (0.17, 0.80, 0.95, 0.15, (0.20, 0.60, 0.35), 1.0),
        (0.14, 0.70, 0.25, 0.75, (0.20, 0.30, 0.85), 2.0),
        (0.16, 0.76, 0.85, 0.30, (0.85, 0.75, 0.25), 3.0),
        (0.12, 0.64, 0.10, 0.95, (0.55, 0.55, 0.60), 4.0))),
}


def add_arguments(parser) -> None:
    parser.add_argument('--root', default='/tmp/glot_tracking_benchmark',
                        help='DATA_ROOT (generated stand-ins are written here when base_data is missing)')
    parser.add_argument('--scene', choices=tuple(SCENES), default='crossing')
    parser.add_argument('--hog-min-height', type=int, default=0,
                        help='DEMO.HOG_MIN_HEIGHT for the HOG rows (default: the config default)')
    parser.add_argument('opts', nargs='*', metavar='KEY VALUE', help='DEMO config overrides')


def run(args) -> None:
    from lib.core.config import load_config
    from lib.demo.detection import build_detector, read_bbox_file
    from lib.demo.pipeline import box_appearance, link_tracks
    from lib.demo.track_metrics import score_tracks
    from lib.vis.video import FrameReader
    from scripts.make_synthetic_video import CROSSING_WALKERS, Walker, make_crossing_video

    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    root = ensure_assets(Path(args.root), spin=False)
    scene = SCENES[args.scene]
    walkers = CROSSING_WALKERS if scene['walkers'] is None else tuple(Walker(*w) for w in scene['walkers'])
    name = f"{args.scene}_{scene['frames']}f_{scene['width']}x{scene['height']}"
    video, truth_file = root / 'videos' / f'{name}.mp4', root / 'videos' / f'{name}_truth.csv'
    if not video.is_file():
        make_crossing_video(video, root, scene['frames'], scene['width'], scene['height'], walkers=walkers,
                            bbox_file=truth_file)
    opts = list(args.opts) + (['DEMO.HOG_MIN_HEIGHT', str(args.hog_min_height)] if args.hog_min_height else [])
    cfg = load_config(None, opts)
    truth = read_bbox_file(truth_file, scene['frames'], scene['width'], scene['height'])
    reader = FrameReader(video)

    start = time.perf_counter()
    hog = build_detector('hog', 'cpu', cfg.DEMO)(list(reader))
    hog_seconds = (time.perf_counter() - start) / scene['frames']
    motion = load_config(None, opts + ['DEMO.TRACK_APPEARANCE', 'False'])
    previous = load_config(None, opts + ['DEMO.TRACK_APPEARANCE', 'False', 'DEMO.TRACK_MAX_AGE', '1'])
    rows = [('boxes without ids', truth.detections, cfg), ('HOG', hog, cfg), ('HOG, motion only', hog, motion),
            ('HOG, motion only, max_age 1', hog, previous)]
    for every in (2, 3):   # what the demo's detection stage gives with DEMO.DETECT_EVERY: None = not run
        rows += [(f'{label}, DETECT_EVERY {every}', [d if f % every == 0 else None for f, d in enumerate(dets)], cfg)
                 for label, dets in (('boxes without ids', truth.detections), ('HOG', hog))]
    print(f"\n{args.scene} scene: {video.name}, {len(walkers)} people, {truth_file.name} as ground truth; HOG "
          f"(DEMO.HOG_MIN_HEIGHT {cfg.DEMO.HOG_MIN_HEIGHT}) {hog_seconds:.2f} s/frame; DEMO.TRACK_MAX_AGE "
          f"{cfg.DEMO.TRACK_MAX_AGE}, DEMO.MIN_TRACK_LEN {cfg.DEMO.MIN_TRACK_LEN}")
    print(f"  {'source / tracker':<36s} {'MOTA':>6s} {'IDF1':>6s} {'ID sw.':>6s} {'coverage':>8s} {'tracks':>6s}")
    for label, detections, row_cfg in rows:
        appearance = box_appearance(reader, detections) if row_cfg.DEMO.TRACK_APPEARANCE else None
        tracks = link_tracks(detections, row_cfg.DEMO, None, appearance)
        s = score_tracks(truth.detections, truth.track_ids, tracks)
        print(f'  {label:<36s} {s.mota:6.3f} {s.idf1:6.3f} {s.id_switches:6d} {s.coverage:8.3f} '
              f'{s.num_tracks:3d}/{s.num_people}')
