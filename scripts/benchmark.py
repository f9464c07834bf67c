"""Print speed figures for one part of the pipeline on the current device.

    python scripts/benchmark.py --part model          # GLoT eval forward, windows/s at B=32, T=16
    python scripts/benchmark.py --part data           # training loader samples/s
    python scripts/benchmark.py --part train          # training iterations/s, official batch shape
    python scripts/benchmark.py --part eval           # evaluate.py wall time on a 3DPW-sized generated DB
    python scripts/benchmark.py --part demo           # demo frames/s per stage, feature crops/s, peak memory
    python scripts/benchmark.py --part batch          # batch mode videos/hour (a folder of videos)
    python scripts/benchmark.py --part stream         # online mode sustained frames/s and latency (ms)
    python scripts/benchmark.py --part tracking       # MOTA, IDF1, ID switches on a generated crossing video
    python scripts/benchmark.py --part world          # camera rotation (deg) and world trajectories, panning video

Each part lives in scripts/benchmarks/<part>.py and exposes ``add_arguments(parser)`` and ``run(args)``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS = ('model', 'data', 'train', 'eval', 'demo', 'tracking', 'batch', 'stream', 'world')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--part', choices=PARTS, required=True)
    parser.add_argument('--device', default='auto', help="'auto', 'cpu', 'cuda', ...")
    known, rest = parser.parse_known_args(argv)
    module = importlib.import_module(f'scripts.benchmarks.{known.part}')
    part_parser = argparse.ArgumentParser(prog=f'benchmark.py --part {known.part}')
    module.add_arguments(part_parser)
    args = part_parser.parse_args(rest)
    args.device = known.device
    module.run(args)


if __name__ == '__main__':
    main()
