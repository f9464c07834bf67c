"""Global Motion Modeling (official module ``global_modeling``): a masked transformer over the whole window
and a SPIN-style regressor.

Data flow for features ``(B, T, 2048)``:

1. ``proj``: Linear(2048 -> D) per frame.
2. ``trans`` encoder: + ``pos_embed``; in training, MAE-style random masking keeps ``int(T * (1 - mask_ratio))``
   frames per sample; ``depth`` blocks; LayerNorm -> ``mem`` (B, T_kept, D).
3. ``trans`` decoder: ``decoder_embed`` (D -> D/2); masked slots are filled with the *human-prior* mask token
   ``mask_token_mlp(mean SMPL params)`` and un-shuffled; + ``decoder_pos_embed``; ``depth // 2`` blocks;
   LayerNorm -> (B, T, D/2).
4. ``out_proj``: Linear(D/2 -> 2048), all frames in training, the middle frame ``T // 2`` at test.
5. ``regressor``: 3 IEF steps from the mean parameters -> pose (6D), shape, camera per frame.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from lib.models.regressor import FEATURE_DIM, NCAM, NPOSE, NSHAPE, IterativeRegressor
from lib.models.transformer import LAYER_NORM_EPS, block_stack, drop_path_rates, init_vit_weights

MASK_TOKEN_INPUT_DIM = NPOSE + NSHAPE + NCAM   # 157


class MaskedTransformer(nn.Module):
    """MAE-style encoder-decoder (official ``trans``).

    Args:
        mean_params: SPIN mean ``pose (144,)``, ``shape (10,)``, ``cam (3,)``; their concatenation (157,) is the
            input of ``mask_token_mlp`` (kept as a non-persistent buffer, not in the state_dict).
        length: frames T. depth: encoder blocks (decoder: depth // 2). embed_dim: D. mlp_hidden_dim: encoder
            MLP width (decoder: 2 * D). num_heads, drop, drop_path (encoder rates ``linspace(0, drop_path,
            depth)``; the decoder reuses the first ones), attn_drop.
    """

    def __init__(self, mean_params: dict[str, torch.Tensor], length: int = 16, depth: int = 2,
                 embed_dim: int = 512, mlp_hidden_dim: int = 2048, num_heads: int = 8, drop: float = 0.1,
                 drop_path: float = 0.2, attn_drop: float = 0.0):
        super().__init__()
        dec_dim = embed_dim // 2
        self.mask_token_mlp = nn.Sequential(
            nn.Linear(MASK_TOKEN_INPUT_DIM, 256), nn.ReLU(),
            nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, dec_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, length, embed_dim))
        rates = drop_path_rates(drop_path, depth)
        self.blocks = block_stack(rates, embed_dim, num_heads, mlp_hidden_dim, drop, attn_drop)
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        # depth // 2 decoder blocks with the first of the encoder's drop-path rates (official)
        self.decoder_blocks = block_stack(rates[:depth // 2], dec_dim, num_heads, embed_dim * 2, drop, attn_drop)
        self.decoder_embed = nn.Linear(embed_dim, dec_dim)
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, length, dec_dim))
        self.decoder_norm = nn.LayerNorm(dec_dim, eps=LAYER_NORM_EPS)
        mean_vector = torch.cat([mean_params['pose'], mean_params['shape'], mean_params['cam']]).reshape(-1)
        self.register_buffer('mask_token_input', mean_vector.clone(), persistent=False)

    @staticmethod
    def random_masking(x: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample random frame dropping (MAE).

        Args:
            x: ``(B, T, D)``.
        Returns:
            kept tokens ``(B, int(T * (1 - mask_ratio)), D)`` in shuffled order; mask ``(B, T, 1)`` bool in frame
            order, True = dropped; ``ids_restore (B, T)``, the permutation that un-shuffles [kept, dropped].
        """
        b, t, d = x.shape
        n_keep = int(t * (1 - mask_ratio))
        noise = torch.rand(b, t, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)          # ascending: the smallest noise values are kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        kept = torch.gather(x, 1, ids_shuffle[:, :n_keep, None].expand(-1, -1, d))
        mask = torch.ones(b, t, device=x.device, dtype=torch.bool)
        mask[:, :n_keep] = False
        mask = torch.gather(mask, 1, ids_restore).unsqueeze(-1)
        return kept, mask, ids_restore

    def encode(self, x: torch.Tensor, mask_ratio: float | None = None):
        """``x (B, T, D)`` -> ``mem (B, T_kept, D)``, mask ``(B, T, 1)``, ids_restore ``(B, T)``; the last two are
        None when ``mask_ratio`` is None (no masking, as at test time)."""
        x = x + self.pos_embed
        mask = ids_restore = None
        if mask_ratio is not None:
            x, mask, ids_restore = self.random_masking(x, mask_ratio)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def mask_token(self) -> torch.Tensor:
        """The human-prior mask token ``(D/2,)``: ``mask_token_mlp`` of the mean SMPL parameters."""
        return self.mask_token_mlp(self.mask_token_input)

    def fill_masked(self, kept: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Kept tokens ``(B, T_kept, D/2)`` (shuffled order) -> ``(B, T, D/2)`` in frame order, with the mask
        token in every dropped frame."""
        b, t = ids_restore.shape
        tokens = self.mask_token().expand(b, t - kept.shape[1], -1)
        x = torch.cat([kept, tokens], dim=1)
        return torch.gather(x, 1, ids_restore[:, :, None].expand(-1, -1, x.shape[2]))

    def decode(self, mem: torch.Tensor, ids_restore: torch.Tensor | None = None,
               queries: slice | None = None) -> torch.Tensor:
        """``mem (B, T_kept, D)`` -> ``(B, T, D/2)``; dropped frames (``ids_restore`` given) start from the mask
        token. ``queries`` returns only those frames (the last block then computes just those rows)."""
        x = self.decoder_embed(mem)
        if ids_restore is not None:
            x = self.fill_masked(x, ids_restore)
        x = x + self.decoder_pos_embed
        for i, block in enumerate(self.decoder_blocks):
            x = block(x, queries if i == len(self.decoder_blocks) - 1 else None)
        if not self.decoder_blocks and queries is not None:
            x = x[:, queries]
        return self.decoder_norm(x)


class GlobalOutput(NamedTuple):
    """Global-branch result. pose/shape/cam: ``(B, n, 144 | 10 | 3)`` with n = T in training and 1 (middle
    frame) at test; mask: ``(B, T, 1)`` bool (True = masked) or None; mem: encoder tokens ``(B, T_kept, D)``."""
    pose: torch.Tensor
    shape: torch.Tensor
    cam: torch.Tensor
    mask: torch.Tensor | None
    mem: torch.Tensor


class GlobalModeling(nn.Module):
    """Global branch (official ``GMM``). Arguments mirror the official MODEL keys; ``smpl`` is the shared body
    model stored as ``regressor.smpl``; ``keep_unused`` keeps the regressor's dead ``fc2``."""

    def __init__(self, smpl: nn.Module, mean_params: dict[str, torch.Tensor], seqlen: int = 16,
                 n_layers: int = 2, d_model: int = 512, num_head: int = 8, dropout: float = 0.1,
                 drop_path_r: float = 0.2, atten_drop: float = 0.0, mask_ratio: float = 0.5,
                 keep_unused: bool = True):
        super().__init__()
        self.proj = nn.Linear(FEATURE_DIM, d_model)
        self.trans = MaskedTransformer(mean_params, length=seqlen, depth=n_layers, embed_dim=d_model,
                                       mlp_hidden_dim=d_model * 4, num_heads=num_head, drop=dropout,
                                       drop_path=drop_path_r, attn_drop=atten_drop)
        self.out_proj = nn.Linear(d_model // 2, FEATURE_DIM)
        self.mask_ratio = mask_ratio
        self.regressor = IterativeRegressor(mean_params, use_fc2=False, keep_unused=keep_unused, smpl=smpl)
        nn.init.normal_(self.trans.pos_embed, std=0.02)
        nn.init.normal_(self.trans.decoder_pos_embed, std=0.02)
        self.apply(init_vit_weights)

    def forward(self, features: torch.Tensor, is_train: bool = False) -> GlobalOutput:
        """``features (B, T, 2048)`` -> ``GlobalOutput``. Training masks frames and regresses all T frames;
        test regresses the middle frame only."""
        b, t, _ = features.shape
        mem, mask, ids_restore = self.trans.encode(self.proj(features), self.mask_ratio if is_train else None)
        queries = None if is_train else slice(t // 2, t // 2 + 1)
        feature = self.out_proj(self.trans.decode(mem, ids_restore, queries))   # (B, n, 2048)
        n = feature.shape[1]
        pose, shape, cam = self.regressor(feature.reshape(b * n, -1))
        return GlobalOutput(pose.view(b, n, -1), shape.view(b, n, -1), cam.view(b, n, -1), mask, mem)
