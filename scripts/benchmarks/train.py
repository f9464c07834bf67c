"""Training throughput (iterations/s) at the official batch shape, on the current device.

    python scripts/benchmark.py --part train                       # B=64 (38 2D + 26 3D clips), T=16, 2048
    python scripts/benchmark.py --part train --device cpu --batch-size 8 --iters 5
    python scripts/benchmark.py --part train --amp bf16 --compile

Times ``Trainer.train_step`` (the exact training step: batch merge, forward with masking, GLoT loss on both
branches, finite check, backward, Adam step) on one fixed random batch, so the data loader is not part of
the figure (``--part data`` measures it). Model weights are random: speed does not depend on them. SMPL
files come from the config's DATA_ROOT when present, else generated stand-ins of the same size.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from scripts.benchmarks import benchmark_data_root

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser) -> None:
    parser.add_argument('--cfg', default=str(REPO_ROOT / 'configs' / 'repr_table1_3dpw.yaml'),
                        help='config of the model, loss and optimizer (default: Table 1 3DPW)')
    parser.add_argument('--data-root', default='', help="DATA_ROOT with base_data/ (default: the config's, or "
                        "generated stand-ins)")
    parser.add_argument('--batch-size', type=int, default=0, help='clips per step (default: the config\'s, 64)')
    parser.add_argument('--iters', type=int, default=10, help='timed steps')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    parser.add_argument('--amp', choices=('none', 'bf16', 'fp16'), default='none', help='TRAIN.AMP')
    parser.add_argument('--compile', action='store_true', help='TRAIN.COMPILE')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')


class _SameBatch:
    """A training iterator that serves one fixed ``(target_2d, target_3d)`` batch forever."""

    def __init__(self, target_2d, target_3d):
        self.batch = (target_2d, target_3d)

    def __next__(self):
        return self.batch

    def state_dict(self) -> dict:
        return {}


def _random_batch(n_2d: int, n_3d: int, seqlen: int):
    import torch

    gen = torch.Generator().manual_seed(0)

    def kp_2d(n):
        xy = torch.rand(n, seqlen, 49, 2, generator=gen) * 2 - 1
        return torch.cat([xy, (torch.rand(n, seqlen, 49, 1, generator=gen) > 0.2).float()], dim=-1)

    target_2d = {'features': torch.randn(n_2d, seqlen, 2048, generator=gen), 'kp_2d': kp_2d(n_2d)}
    theta = torch.zeros(n_3d, seqlen, 85)
    theta[..., 3:75] = 0.3 * torch.randn(n_3d, seqlen, 72, generator=gen)
    theta[..., 75:] = torch.randn(n_3d, seqlen, 10, generator=gen)
    target_3d = {'features': torch.randn(n_3d, seqlen, 2048, generator=gen), 'kp_2d': kp_2d(n_3d),
                 'kp_3d': 0.3 * torch.randn(n_3d, seqlen, 49, 3, generator=gen), 'theta': theta,
                 'w_3d': torch.ones(n_3d, seqlen), 'w_smpl': torch.ones(n_3d, seqlen)}
    return target_2d if n_2d else None, target_3d if n_3d else None


def run(args) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from lib.core.config import load_config, resolve_device
    from lib.train.loss import build_loss
    from lib.train.schedule import build_lr_scheduler
    from lib.train.launch import build_optimizer
    from lib.train.loop import Trainer
    from lib.dataset.loaders import batch_split
    from lib.models import build_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = benchmark_data_root(args.cfg, args.data_root, tmp)
        opts = ['DATA_ROOT', str(root), 'DEVICE', str(device), 'TRAIN.AMP', args.amp,
                'TRAIN.COMPILE', str(args.compile)]
        if args.batch_size:
            opts += ['TRAIN.BATCH_SIZE', str(args.batch_size)]
        cfg = load_config(args.cfg, opts)
        torch.manual_seed(0)
        model = build_model(cfg)
        optimizer = build_optimizer(cfg, model)
        n_2d, n_3d = batch_split(cfg.TRAIN.BATCH_SIZE, cfg.TRAIN.DATA_2D_RATIO)
        seqlen = cfg.DATASET.SEQLEN
        trainer = Trainer(cfg, model, build_loss(cfg), optimizer, build_lr_scheduler(cfg, optimizer),
                          _SameBatch(*_random_batch(n_2d, n_3d, seqlen)), None, device=device,
                          out_dir=Path(tmp) / 'out', progress=False)
        trainer.train_model.train()
        sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
        for _ in range(args.warmup):
            trainer.train_step()
        times = []
        for _ in range(args.iters):
            sync()
            start = time.perf_counter()
            trainer.train_step()        # ends with a host sync (loss values), so the step is complete
            times.append(time.perf_counter() - start)
        trainer.close()
    med = statistics.median(times)
    extras = ', '.join(x for x in (f'AMP {args.amp}' if args.amp != 'none' else '',
                                   'torch.compile' if args.compile else '') if x) or 'fp32, eager'
    print(f'GLoT training step, B={n_2d + n_3d} ({n_2d} 2D + {n_3d} 3D clips), T={seqlen}, 2048-d features, '
          f'device {device}, {extras}')
    print(f'{1 / med:.2f} it/s (median {med * 1e3:.0f} ms/step, best {min(times) * 1e3:.0f} ms, '
          f'{(n_2d + n_3d) / med:.1f} clips/s)')
