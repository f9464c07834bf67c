"""The per-epoch warm-up + cosine schedule equals the official one for the three YAMLs."""
import math
from pathlib import Path

import pytest
import torch

from lib.core.config import ConfigError, load_config
from lib.train.schedule import WarmupCosineLR, build_lr_scheduler, warmup_cosine_lr

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'


def _official(epoch, end, warmup, max_lr=1e-4, min_lr=1e-5):
    """The release's formula, written out independently: linear warm-up, then half a cosine."""
    if epoch < warmup:
        return min_lr + (max_lr - min_lr) * epoch / warmup
    return min_lr + (max_lr - min_lr) * (1 + math.cos(math.pi * (epoch - warmup) / (end - warmup))) / 2


def _optimizer():
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)


def test_table1_3dpw_values():
    lrs = [warmup_cosine_lr(e, 1e-4, 1e-5, 5, 50) for e in range(50)]
    assert lrs[:6] == pytest.approx([1e-5, 2.8e-5, 4.6e-5, 6.4e-5, 8.2e-5, 1e-4], rel=1e-12)
    assert lrs[49] == pytest.approx(1.0109617738e-5, rel=1e-9)
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:]))


@pytest.mark.parametrize('name, end, warmup', [('repr_table1_3dpw.yaml', 50, 5),
                                               ('repr_table1_h36m_mpii3d.yaml', 75, 8),
                                               ('repr_table2_3dpw.yaml', 80, 8)])
def test_scheduler_follows_official_formula_for_each_yaml(name, end, warmup):
    cfg = load_config(CONFIGS / name)
    assert (cfg.TRAIN.END_EPOCH, cfg.TRAIN.LR_PATIENCE) == (end, warmup)
    opt = _optimizer()
    sched = build_lr_scheduler(cfg, opt)
    for epoch in range(end):
        assert opt.param_groups[0]['lr'] == pytest.approx(_official(epoch, end, warmup), rel=1e-12, abs=0)
        sched.step()
    if warmup == 8:
        assert _official(1, end, warmup) == pytest.approx(1e-5 + 1.125e-5)


def test_state_dict_round_trip_restores_epoch_and_rate():
    opt = _optimizer()
    sched = WarmupCosineLR(opt, 1e-4, 1e-5, 5, 50)
    for _ in range(7):
        sched.step()
    opt2 = _optimizer()
    sched2 = WarmupCosineLR(opt2, 1e-4, 1e-5, 5, 50)
    sched2.load_state_dict(sched.state_dict())
    assert sched2.epoch == 7
    assert opt2.param_groups[0]['lr'] == opt.param_groups[0]['lr'] == sched.lr(7)


def test_past_the_end_restarts_the_cycle():
    assert warmup_cosine_lr(50, 1e-4, 1e-5, 5, 50) == pytest.approx(1e-5)
    assert warmup_cosine_lr(51, 1e-4, 1e-5, 5, 50) == pytest.approx(2.8e-5)


def test_warmup_not_shorter_than_run_is_rejected():
    with pytest.raises(ConfigError, match='LR_PATIENCE'):
        WarmupCosineLR(_optimizer(), 1e-4, 1e-5, 5, 5)
