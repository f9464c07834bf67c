"""GLoT model: ``build_model(cfg)`` and official-compatible checkpoints (``load_checkpoint``,
``save_checkpoint``)."""
from __future__ import annotations

from lib.core.config import ConfigError, resolve_device, resolve_path
from lib.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lib.models.glot import GLoT
from lib.models.smpl import build_smpl, load_mean_params
from lib.models.spin import load_spin_regressor

__all__ = ['GLoT', 'CheckpointError', 'build_model', 'load_checkpoint', 'save_checkpoint']


def build_model(cfg, pretrained_regressor: bool = False) -> GLoT:
    """GLoT for ``cfg`` (MODEL keys, DATASET.SEQLEN, SMPL files) on ``cfg.DEVICE``.

    Args:
        pretrained_regressor: initialise the global regressor from the SPIN checkpoint
            ``TRAIN.PRETRAINED_REGRESSOR``, as official training from scratch does. Evaluation and inference
            load a GLoT checkpoint afterwards and do not need it.
    Raises:
        UserError: a missing SMPL / mean-parameter file, or (with ``pretrained_regressor``) a missing or
            unusable SPIN checkpoint.
    """
    m = cfg.MODEL
    smpl, mean_params = build_smpl(cfg), load_mean_params(cfg)
    try:
        model = GLoT(smpl, mean_params, seqlen=cfg.DATASET.SEQLEN, n_layers=m.n_layers,
                     d_model=m.d_model, num_head=m.num_head, dropout=m.dropout, drop_path_r=m.drop_path_r,
                     atten_drop=m.atten_drop, mask_ratio=m.mask_ratio, short_n_layers=m.short_n_layers,
                     short_d_model=m.short_d_model, short_num_head=m.short_num_head, short_dropout=m.short_dropout,
                     short_drop_path_r=m.short_drop_path_r, short_atten_drop=m.short_atten_drop,
                     stride_short=m.stride_short, drop_reg_short=m.drop_reg_short,
                     hscr_official_pose_slice=m.HSCR_OFFICIAL_POSE_SLICE, keep_unused_weights=m.KEEP_UNUSED_WEIGHTS)
    except ValueError as err:
        raise ConfigError(f'MODEL settings do not make a GLoT: {err}') from None
    if pretrained_regressor:
        load_spin_regressor(model.global_modeling.regressor, resolve_path(cfg, cfg.TRAIN.PRETRAINED_REGRESSOR))
    return model.to(resolve_device(cfg.DEVICE))
