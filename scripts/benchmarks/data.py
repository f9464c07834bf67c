"""Training and validation loader throughput (clips/s) at the official batch shape.

    python scripts/benchmark.py --part data                        # workers 0 and 4, 200 batches each
    python scripts/benchmark.py --part data --workers 0 2 8 --batches 500

Generates (once per ``--root``) small databases in the released formats with
``scripts/make_synthetic_data.py`` (3DPW, MPI-INF-3DHP, Human3.6M train, 3DPW val, InstaVariety h5), builds the
mixed loader of ``lib.dataset.loaders`` with BATCH_SIZE 64, DATA_2D_RATIO 0.6 (38 InstaVariety + 26 3D clips),
SEQLEN 16, OVERLAP 0, and times ``next()`` after a warm-up, for each worker count (wall time, and the main
process's CPU time, which a busy machine distorts less). The figure to compare with is the training step time
(``--part train``): the loader keeps up when its ms/batch is below it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from lib.core.io import atomic_write
from scripts.benchmarks import ensure_assets

REPO = Path(__file__).resolve().parents[2]
SIZES = {'3dpw_train': (8, 320), '3dpw_val': (4, 320), 'mpii3d_train': (8, 320), 'h36m_train': (8, 320),
         'insta_train': (16, 320)}


def add_arguments(parser) -> None:
    parser.add_argument('--root', default='/tmp/glot_data_benchmark',
                        help='DATA_ROOT for the generated files (reused when already there)')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 4], help='NUM_WORKERS values to time')
    parser.add_argument('--batches', type=int, default=200, help='timed batches per setting')
    parser.add_argument('--batch-size', type=int, default=64)


def prepare(root: Path) -> None:
    """base_data and the databases under ``root`` (skipped when a stamp says they are there)."""
    import sys

    sys.path.insert(0, str(REPO))
    from scripts.make_synthetic_data import make_synthetic_data

    stamp = root / 'preprocessed_data' / 'data_benchmark.json'
    if stamp.is_file() and json.loads(stamp.read_text()) == {k: list(v) for k, v in SIZES.items()}:
        return
    root.mkdir(parents=True, exist_ok=True)
    ensure_assets(root, spin=False)
    make_synthetic_data(root, seed=0, sizes=SIZES, only=tuple(SIZES), raw_3dpw=False)
    atomic_write(stamp, json.dumps({k: list(v) for k, v in SIZES.items()}))


def run(args) -> None:
    from lib.core.config import load_config
    from lib.dataset.loaders import build_train_loaders, build_val_loader

    root = Path(args.root)
    prepare(root)
    base = ['DATA_ROOT', str(root), 'DEVICE', args.device, 'TRAIN.BATCH_SIZE', str(args.batch_size),
            'TRAIN.DATA_2D_RATIO', '0.6', 'DATASET.SEQLEN', '16', 'TRAIN.OVERLAP', '0.0',
            'TRAIN.DATASETS_2D', "['Insta']", 'TRAIN.DATASETS_3D', "['ThreeDPW', 'MPII3D', 'Human36M']"]
    print(f'training loader: batch {args.batch_size} (38 + 26 clips at ratio 0.6), T = 16, device {args.device}')
    for workers in args.workers:
        cfg = load_config(None, base + ['NUM_WORKERS', str(workers)])
        train_iter = build_train_loaders(cfg, seed=0)
        for _ in range(5):
            next(train_iter)
        start, cpu_start = time.perf_counter(), time.process_time()
        clips = 0
        for _ in range(args.batches):
            t2d, t3d = next(train_iter)
            clips += len(t2d['features']) + len(t3d['features'])
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        train_iter.close()
        print(f'  workers {workers:2d}: {clips / seconds:8.0f} clips/s, {1000 * seconds / args.batches:6.2f} ms/batch '
              f'(main process CPU {1000 * cpu / args.batches:.2f} ms/batch)')
    for workers in args.workers:
        cfg = load_config(None, base + ['NUM_WORKERS', str(workers), 'TRAIN.VAL_BATCH_SIZE', '256'])
        start = time.perf_counter()
        windows = sum(len(batch['features']) for batch in build_val_loader(cfg))
        seconds = time.perf_counter() - start
        print(f'validation loader, workers {workers:2d}: {windows / seconds:8.0f} windows/s ({windows} windows)')
