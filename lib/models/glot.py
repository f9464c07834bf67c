"""GLoT: Global-to-Local modeling for video-based 3D human pose and shape (CVPR 2023).

Submodules keep the official names, so official checkpoints load (``lib.models.checkpoint``):

- ``global_modeling``: masked transformer + SPIN-style regressor over the whole window (``global_branch``);
- ``proj_short`` / ``local_trans_en``: the 2s+1 frames around the middle frame, through a local transformer;
- ``proj_mem`` / ``local_trans_de``: the middle local tokens attend to the global *encoder* tokens;
- ``regressor``: HSCR, correcting the global estimate with the local feature (``hscr``).

One SMPL instance is shared by ``regressor.smpl`` and ``global_modeling.regressor.smpl``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lib.models.global_branch import GlobalModeling
from lib.models.hscr import HSCR
from lib.models.local_branch import LocalTransformer
from lib.models.regressor import FEATURE_DIM, smpl_output
from lib.models.transformer import CrossAttention, init_vit_weights


class GLoT(nn.Module):
    """The GLoT network. Arguments are the official MODEL config keys (see ``lib/core/config.py``) plus:

    Args:
        smpl: body model (``lib.models.smpl.SMPL``), shared by both heads.
        mean_params: SPIN mean ``pose (144,)``, ``shape (10,)``, ``cam (3,)`` (``load_mean_params``).
        seqlen: window length T (frames).
        hscr_official_pose_slice: ``MODEL.HSCR_OFFICIAL_POSE_SLICE``. keep_unused_weights:
            ``MODEL.KEEP_UNUSED_WEIGHTS``.

    Initialisation follows the official order: the local modules and HSCR are built and re-initialised
    (xavier-uniform Linear, zero bias, LayerNorm 1/0, N(0, 0.02) position embedding) before the global
    branch is built and initialised the same way.
    """

    def __init__(self, smpl: nn.Module, mean_params: dict[str, torch.Tensor], seqlen: int = 16,
                 n_layers: int = 2, d_model: int = 512, num_head: int = 8, dropout: float = 0.1,
                 drop_path_r: float = 0.2, atten_drop: float = 0.0, mask_ratio: float = 0.5,
                 short_n_layers: int = 3, short_d_model: int = 256, short_num_head: int = 8,
                 short_dropout: float = 0.1, short_drop_path_r: float = 0.2, short_atten_drop: float = 0.0,
                 stride_short: int = 4, drop_reg_short: float = 0.25, hscr_official_pose_slice: bool = True,
                 keep_unused_weights: bool = True):
        super().__init__()
        if not 1 <= stride_short <= (seqlen - 1) // 2:
            raise ValueError(f'stride_short {stride_short} does not fit a window of {seqlen} frames '
                             f'(need 1 <= stride_short <= {(seqlen - 1) // 2})')
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f'mask_ratio {mask_ratio} must be in [0, 1)')
        self.seqlen = seqlen
        self.stride_short = stride_short
        self.proj_short = nn.Linear(FEATURE_DIM, short_d_model)
        self.proj_mem = nn.Linear(d_model, short_d_model)
        self.local_trans_de = CrossAttention(short_d_model, num_heads=8, qkv_bias=False)
        self.local_trans_en = LocalTransformer(length=2 * stride_short + 1, depth=short_n_layers,
                                               embed_dim=short_d_model, mlp_hidden_dim=short_d_model * 4,
                                               num_heads=short_num_head, drop=short_dropout,
                                               drop_path=short_drop_path_r, attn_drop=short_atten_drop)
        self.regressor = HSCR(smpl, in_dim=short_d_model, drop=drop_reg_short,
                              official_pose_slice=hscr_official_pose_slice, keep_unused=keep_unused_weights)
        nn.init.normal_(self.local_trans_en.pos_embed, std=0.02)
        self.apply(init_vit_weights)
        self.global_modeling = GlobalModeling(smpl, mean_params, seqlen=seqlen, n_layers=n_layers,
                                              d_model=d_model, num_head=num_head, dropout=dropout,
                                              drop_path_r=drop_path_r, atten_drop=atten_drop,
                                              mask_ratio=mask_ratio, keep_unused=keep_unused_weights)

    @property
    def smpl(self) -> nn.Module:
        """The shared body model."""
        return self.regressor.smpl

    def forward(self, features: torch.Tensor, is_train: bool = False, J_regressor: torch.Tensor | None = None,
                decode_global: bool = True):
        """Run GLoT on windows of per-frame SPIN features.

        Args:
            features: ``(B, T, 2048)`` ResNet-50 features, T = seqlen.
            is_train: training mode of the official model (masking; 3 local frames; all T global frames).
                Dropout follows ``self.training`` as usual.
            J_regressor: ``(17, 6890)`` Human3.6M regressor; at test ``kp_3d`` then holds the 14 LSP joints.
            decode_global: False skips SMPL decoding of the global branch and returns None in its place
                (evaluation and the demo use only ``smpl_output``).
        Returns:
            ``(smpl_output, mask_ids, smpl_output_global)``:

            - ``smpl_output``: ``[dict]`` for HSCR, at test for the middle frame T // 2: ``theta (B, 85)``,
              ``verts (B, 6890, 3)``, ``kp_2d (B, J, 2)``, ``kp_3d (B, J, 3)`` (J = 14 with ``J_regressor``,
              else 49), ``rotmat (B, 24, 3, 3)``; in training for frames T//2-1 .. T//2+1: ``(B, 3, ...)``
              with J = 49.
            - ``mask_ids``: ``(B, T, 1)`` bool, True = frame masked in the global encoder; None at test.
            - ``smpl_output_global``: ``[dict]`` with the same keys, ``(B, T, ...)`` in training and
              ``(B, 1, ...)`` at test; None if ``decode_global`` is False.
        """
        if features.dim() != 3 or features.shape[1] != self.seqlen or features.shape[2] != FEATURE_DIM:
            raise ValueError(f'GLoT expects features of shape (B, {self.seqlen}, {FEATURE_DIM}), '
                             f'got {tuple(features.shape)}')
        b, t, _ = features.shape
        mid, s = t // 2, self.stride_short
        glob = self.global_modeling(features, is_train=is_train)

        # Local branch: tokens s-1..s+1 (frames mid-1..mid+1) in training, token s (frame mid) at test.
        local_tokens = slice(s - 1, s + 2) if is_train else slice(s, s + 1)
        x_short = self.local_trans_en(self.proj_short(features[:, mid - s:mid + s + 1]), local_tokens)
        local_feature = self.local_trans_de(x_short, self.proj_mem(glob.mem))
        if is_train:
            init = (glob.pose[:, mid - 1:mid + 2], glob.shape[:, mid - 1:mid + 2], glob.cam[:, mid - 1:mid + 2])
        else:
            init = (glob.pose, glob.shape, glob.cam)
        pose, shape, cam = self.regressor(local_feature, *init)

        # Both heads share one SMPL: decode their parameters in one call (rows: local, then global).
        heads = [(pose, shape, cam)]
        if decode_global:
            heads.append((glob.pose, glob.shape, glob.cam))
        rows = [p.shape[0] * p.shape[1] for p, _, _ in heads]
        flat = [torch.cat([h[i].reshape(-1, h[i].shape[-1]) for h in heads]) for i in range(3)]
        decoded = smpl_output(self.smpl, *flat, J_regressor=None if is_train else J_regressor)
        parts = [{key: value[start:start + n] for key, value in decoded.items()}
                 for start, n in zip((0, rows[0]), rows)]
        local = _unflatten(parts[0], (b, pose.shape[1]) if is_train else (b,))
        global_out = [_unflatten(parts[1], (b, glob.pose.shape[1]))] if decode_global else None
        return [local], glob.mask, global_out


def _unflatten(out: dict[str, torch.Tensor], lead: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Reshape every ``(N, ...)`` entry to ``(*lead, ...)``."""
    return {key: value.reshape(*lead, *value.shape[1:]) for key, value in out.items()}
