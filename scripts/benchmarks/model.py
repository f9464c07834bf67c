"""GLoT eval forward throughput (windows/s) at the official test shape, on the current device.

    python scripts/benchmark.py --part model
    python scripts/benchmark.py --part model --device cpu --threads 1 --iters 30
    python scripts/benchmark.py --part model --compare-official /path/to/harness

Times ``model(features, is_train=False, J_regressor=...)`` on random features ``(B, T, 2048)`` with random
weights (speed does not depend on the weights), after warm-up; reports the median and best iteration.
Variants: with the H36M regressor (evaluation), without it (demo), and ``decode_global=False`` (what
evaluation and the demo need: no SMPL decoding of the global branch).

SMPL files come from the config's DATA_ROOT when it has them, else synthetic stand-ins of the same size are
generated in a temporary folder. ``--compare-official DIR`` also times the official model in a worker
process (DIR is a harness folder with ``_harness.py`` that can build the official GLoT), interleaved with our
runs so that both see the same machine load.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.benchmarks import benchmark_data_root

REPO_ROOT = Path(__file__).resolve().parents[2]

_OFFICIAL_WORKER = r'''
import json, os, sys, time
harness, cfg_path, base_data, batch, device, threads, clock = sys.argv[1:8]
now = time.process_time if clock == 'cpu' else time.perf_counter
sys.path.insert(0, harness)
import _harness
_harness.setup(base_data=base_data, quiet_warnings=True)
import numpy as np
import torch
if int(threads) > 0:
    torch.set_num_threads(int(threads))
from lib.core.config import update_cfg
cfg = update_cfg(cfg_path)
model = _harness.build_official_glot(cfg, device).eval()
J = torch.from_numpy(np.load(os.path.join(base_data, 'J_regressor_h36m.npy'))).float().to(device)
x = torch.from_numpy(np.random.default_rng(0).standard_normal(
    (int(batch), cfg.DATASET.SEQLEN, 2048)).astype('float32')).to(device)
sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
print('ready', flush=True)
for line in sys.stdin:
    use_j, n = line.split()
    times = []
    with torch.no_grad():
        for _ in range(int(n)):
            sync()
            t0 = now()
            model(x, is_train=False, J_regressor=J if use_j == '1' else None)
            sync()
            times.append(now() - t0)
    print(json.dumps(times), flush=True)
'''


def add_arguments(parser) -> None:
    parser.add_argument('--cfg', default=str(REPO_ROOT / 'configs' / 'repr_table1_3dpw.yaml'),
                        help='config whose MODEL keys are used (default: Table 1 3DPW)')
    parser.add_argument('--data-root', default='', help='DATA_ROOT with base_data/ (default: the config\'s, '
                        'or generated stand-ins)')
    parser.add_argument('--batch-size', type=int, default=32, help='windows per forward (default 32)')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations per variant and round')
    parser.add_argument('--warmup', type=int, default=3, help='untimed iterations first')
    parser.add_argument('--rounds', type=int, default=2, help='repeat all variants this many times')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    parser.add_argument('--clock', choices=('wall', 'cpu'), default='wall',
                        help="'cpu': process CPU time instead of wall time (steadier on a shared machine; "
                        "CPU device only)")
    parser.add_argument('--compare-official', metavar='DIR', default='',
                        help='harness folder that builds the official GLoT; also time it')
    parser.add_argument('--official-cfg', default='', help='official YAML for the worker (default: '
                        'DIR/official/configs/repr_table1_3dpw.yaml)')


def _device_name(device) -> str:
    import torch

    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                name = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return f'{name}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs'


def _summary(label: str, times: list[float], batch: int) -> str:
    med, best = statistics.median(times), min(times)
    return (f'{label:40s} {batch / med:8.1f} windows/s (median {med * 1e3:7.1f} ms/batch; '
            f'best {batch / best:8.1f} windows/s)')


def run(args) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import numpy as np
    import torch

    from lib.core.config import load_config, resolve_device
    from lib.models import build_model
    from lib.models.smpl import load_h36m_regressor

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = benchmark_data_root(args.cfg, args.data_root, tmp)
        cfg = load_config(args.cfg, ['DATA_ROOT', str(root), 'DEVICE', str(device)])
        torch.manual_seed(0)
        model = build_model(cfg).eval()
        joint_regressor = load_h36m_regressor(cfg).to(device)
        batch, seqlen = args.batch_size, cfg.DATASET.SEQLEN
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((batch, seqlen, 2048)).astype('float32'))
        x = x.to(device)
        sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

        now = time.process_time if args.clock == 'cpu' else time.perf_counter

        def time_ours(J, decode_global, n):
            times = []
            with torch.inference_mode():
                for _ in range(n):
                    sync()
                    t0 = now()
                    model(x, is_train=False, J_regressor=J, decode_global=decode_global)
                    sync()
                    times.append(now() - t0)
            return times

        worker = _start_official(args, root, device, batch) if args.compare_official else None
        print(f'GLoT eval forward, B={batch}, T={seqlen}, device {device} ({_device_name(device)}), '
              f'{args.clock} clock')
        variants = [('ours, J_regressor', joint_regressor, True, '1'),
                    ('ours, no J_regressor', None, True, '0'),
                    ('ours, J_regressor, decode_global=False', joint_regressor, False, None)]
        results = {}
        try:
            for label, J, decode_global, official_flag in variants:
                time_ours(J, decode_global, args.warmup)
                if worker and official_flag:
                    _official_times(worker, official_flag, args.warmup)
            for _ in range(args.rounds):
                for label, J, decode_global, official_flag in variants:
                    results.setdefault(label, []).extend(time_ours(J, decode_global, args.iters))
                    if worker and official_flag:
                        key = f'official, {"J_regressor" if official_flag == "1" else "no J_regressor"}'
                        results.setdefault(key, []).extend(_official_times(worker, official_flag, args.iters))
        finally:
            if worker:
                worker.stdin.close()
                worker.wait(timeout=60)
        for label, times in results.items():
            print(_summary(label, times, batch))
        if worker:
            med = {label: statistics.median(times) for label, times in results.items()}
            for ours, official in (('ours, J_regressor', 'official, J_regressor'),
                                   ('ours, no J_regressor', 'official, no J_regressor'),
                                   (variants[2][0], 'official, J_regressor')):
                print(f'speed-up {ours} vs {official}: {med[official] / med[ours]:.2f}x')


def _start_official(args, root: Path, device, batch: int) -> subprocess.Popen:
    harness = Path(args.compare_official).resolve()
    if not (harness / '_harness.py').is_file():
        from lib.core.errors import UserError
        raise UserError(f'--compare-official {harness}: no _harness.py there')
    official_cfg = args.official_cfg or str(harness / 'official' / 'configs' / 'repr_table1_3dpw.yaml')
    cmd = [sys.executable, '-c', _OFFICIAL_WORKER, str(harness), official_cfg, str(root / 'base_data'),
           str(batch), str(device), str(args.threads), args.clock]
    worker = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(harness))
    for line in worker.stdout:
        if line.strip() == 'ready':
            return worker
    raise RuntimeError(f'official worker exited with status {worker.wait()} before it was ready')


def _official_times(worker: subprocess.Popen, use_j: str, n: int) -> list[float]:
    worker.stdin.write(f'{use_j} {n}\n')
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())
