"""Golden outputs that pin the numerical behaviour of the model, loss, evaluation and training loop.

Everything is computed from generated stand-in assets and data with fixed seeds, on the CPU:

- ``model/*``: eval and train (masked, seeded) forward outputs of a seeded GLoT (official architecture of
  ``configs/repr_table1_3dpw.yaml``), local and global branch: theta, kp_3d, and every 97th vertex;
- ``loss/*``: the 12 loss terms and the total of the train forward against a fixed generated batch;
- ``eval/<dataset>/<row>/<metric>``: ``evaluate.py``'s numbers (both protocols, mm) of that model on the
  generated 3DPW, Human3.6M and MPI-INF-3DHP test databases;
- ``train/*``: a tiny seeded training run (2 epochs x 3 steps, with validation): per-epoch loss and
  PA-MPJPE, and per-tensor sums of the final weights.

``tests/test_golden.py`` recomputes them and compares with ``tests/fixtures/golden.npz``. Regenerating the
file is a deliberate act: run this script (``python scripts/make_golden_fixtures.py``) only when a change of
the numbers is intended, and say why in the commit.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from lib.core.config import load_config  # noqa: E402
from lib.core.io import atomic_path  # noqa: E402
from lib.eval.run import run_evaluation  # noqa: E402
from lib.models import build_model, save_checkpoint  # noqa: E402
from lib.models.smpl import load_h36m_regressor  # noqa: E402
from lib.train.launch import train  # noqa: E402
from lib.train.loss import build_loss  # noqa: E402
from scripts.make_synthetic_assets import make_synthetic_assets  # noqa: E402
from scripts.make_synthetic_data import make_synthetic_data  # noqa: E402

GOLDEN_FILE = REPO_ROOT / 'tests' / 'fixtures' / 'golden.npz'
MODEL_CFG = 'configs/repr_table1_3dpw.yaml'
VERTEX_STRIDE = 97
EVAL_DATASETS = ('3dpw', 'h36m', 'mpii3d')
TEST_SIZES = {'3dpw_test': (2, 24), 'h36m_test': (2, 24), 'mpii3d_val': (2, 24)}
TRAIN_SIZES = {'3dpw_train': (2, 32), '3dpw_val': (1, 32), 'insta_train': (2, 32)}
TRAIN_OPTS = {
    'DEVICE': 'cpu', 'NUM_WORKERS': 0, 'SEED_VALUE': 5, 'DATASET.SEQLEN': 16,
    'TRAIN.BATCH_SIZE': 4, 'TRAIN.DATA_2D_RATIO': 0.5, 'TRAIN.NUM_ITERS_PER_EPOCH': 3, 'TRAIN.END_EPOCH': 2,
    'TRAIN.LR_PATIENCE': 0, 'TRAIN.val_epoch': 1, 'TRAIN.DATASETS_2D': "['Insta']",
    'TRAIN.DATASETS_3D': "['ThreeDPW']", 'TRAIN.DATASET_EVAL': 'ThreeDPW',
    'MODEL.d_model': 64, 'MODEL.n_layers': 1, 'MODEL.short_d_model': 64, 'MODEL.short_n_layers': 1,
    'MODEL.dropout': 0.0, 'MODEL.drop_path_r': 0.0, 'MODEL.mask_ratio': 0.0, 'MODEL.drop_reg_short': 0.5,
}


def make_golden_data(root: Path) -> Path:
    """Generated assets and the small databases the golden values are computed on, under ``root``."""
    make_synthetic_assets(root, seed=0)
    make_synthetic_data(root, seed=0, sizes={**TEST_SIZES, **TRAIN_SIZES}, raw_3dpw=False, occ_names=False,
                        only=tuple(TEST_SIZES) + tuple(TRAIN_SIZES))
    return root


def _branch_values(prefix: str, out: dict) -> dict[str, np.ndarray]:
    return {f'{prefix}/theta': out['theta'].numpy(), f'{prefix}/kp_3d': out['kp_3d'].numpy(),
            f'{prefix}/verts': out['verts'][..., ::VERTEX_STRIDE, :].numpy()}


def model_and_loss_values(root: Path) -> dict[str, np.ndarray]:
    """Eval and train forward of a seeded GLoT, and the loss of the train forward."""
    cfg = load_config(str(REPO_ROOT / MODEL_CFG), ['DATA_ROOT', str(root), 'DEVICE', 'cpu'])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(2, 16, 2048, generator=gen)
    values = {}
    with torch.no_grad():
        local, _, glob = model(features, J_regressor=load_h36m_regressor(cfg))
        values.update(_branch_values('model/eval/local', local[-1]))
        values.update(_branch_values('model/eval/global', glob[-1]))
        model.train()
        torch.manual_seed(3)
        local, mask, glob = model(features, is_train=True)
        values.update(_branch_values('model/train/local', local[-1]))
        values.update(_branch_values('model/train/global', glob[-1]))
        values['model/train/mask'] = mask.numpy()
    target = {
        'kp_2d': torch.cat([torch.rand(2, 16, 49, 2, generator=gen) * 2 - 1,
                            (torch.rand(2, 16, 49, 1, generator=gen) > 0.3).float()], dim=-1),
        'kp_3d': torch.randn(2, 16, 49, 3, generator=gen) * 0.3,
        'theta': torch.randn(2, 16, 85, generator=gen) * 0.2,
        'w_3d': torch.tensor([[1.0] * 16, [0.0] * 16]), 'w_smpl': torch.tensor([[1.0] * 16, [0.0] * 16]),
    }
    total, terms = build_loss(cfg)(local[-1], glob[-1], target, mask)
    values['loss/total'] = total.detach().numpy()
    values.update({f'loss/{name}': term.detach().numpy() for name, term in terms.items()})
    model.eval()
    return values, cfg, model


def eval_values(root: Path, cfg, model) -> dict[str, np.ndarray]:
    """``run_evaluation`` of the seeded model on each generated test database (both protocols, mm)."""
    ckpt = root / 'golden_glot.pth.tar'
    save_checkpoint(ckpt, model)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.TRAIN.PRETRAINED = str(ckpt)
    cfg.EVAL.BATCH_SIZE = 16
    cfg.freeze()
    values = {}
    for dataset in EVAL_DATASETS:
        result = run_evaluation(cfg, dataset, output_dir=root / 'eval' / dataset, progress=False)
        for row, metrics in result.summary.items():
            for metric, value in metrics.items():
                if value is not None:
                    values[f'eval/{dataset}/{row}/{metric}'] = np.float64(value)
    return values


def train_values(root: Path) -> dict[str, np.ndarray]:
    """A tiny seeded training run: per-epoch loss and PA-MPJPE, per-tensor sums of the final weights."""
    opts = {**TRAIN_OPTS, 'DATA_ROOT': str(root), 'OUTPUT_DIR': str(root / 'runs'), 'EXP_NAME': 'golden'}
    cfg = load_config(None, [str(x) for kv in opts.items() for x in kv])
    result = train(cfg, progress=False)
    values = {'train/loss': np.array([h['loss'] for h in result['history']]),
              'train/pa_mpjpe': np.array([h['pa_mpjpe'] for h in result['history']])}
    state = torch.load(root / 'runs' / 'golden' / 'checkpoint.pth.tar', map_location='cpu',
                       weights_only=False)['gen_state_dict']
    names = sorted(k for k, v in state.items() if v.is_floating_point() and '.smpl.' not in k)
    values['train/weight_names'] = np.array(names)
    values['train/weight_sums'] = np.array([_pinned_sum(k, state[k]) for k in names])
    return values


def _pinned_sum(name: str, weight: torch.Tensor) -> float:
    """The sum of a trained weight, without the key rows of attention biases (``attn.qkv.bias`` rows
    ``[C:2C]``, cross-attention ``kv_l.bias`` rows ``[0:C]``): softmax ignores a bias added to every key, so
    their gradient is zero up to rounding, and Adam turns that rounding (other CPUs, other torch builds) into
    lr-sized steps of either sign."""
    weight = weight.double()
    if name.endswith('attn.qkv.bias'):
        c = weight.numel() // 3
        weight = torch.cat([weight[:c], weight[2 * c:]])
    elif name.endswith('kv_l.bias'):
        weight = weight[weight.numel() // 2:]
    return weight.sum().item()


def compute_golden(root: Path) -> dict[str, np.ndarray]:
    """All golden values, computed on the data under ``root`` (:func:`make_golden_data`)."""
    values, cfg, model = model_and_loss_values(root)
    values.update(eval_values(root, cfg, model))
    values.update(train_values(root))
    return values


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=str(GOLDEN_FILE), help=f'output file (default: {GOLDEN_FILE})')
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        values = compute_golden(make_golden_data(Path(tmp)))
    with atomic_path(args.out) as tmp:
        np.savez_compressed(tmp, **values)
    print(f'{len(values)} golden arrays written to {args.out}')


if __name__ == '__main__':
    main()
