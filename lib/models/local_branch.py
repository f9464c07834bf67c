"""Local transformer encoder of GLoT's Local Parameter Correction (official ``local_trans_en``).

The ``2 * stride_short + 1`` frames around the middle frame, projected to width d, get a learned position
embedding and go through ``depth`` pre-norm blocks and a final LayerNorm.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lib.models.transformer import LAYER_NORM_EPS, block_stack, drop_path_rates


class LocalTransformer(nn.Module):
    """Args:
        length: tokens (2 * stride_short + 1 = 9). depth, embed_dim, mlp_hidden_dim, num_heads: block shape.
        drop: dropout, drop_path: the last block's stochastic-depth rate (``linspace(0, drop_path, depth)``),
        attn_drop: attention dropout.
    """

    def __init__(self, length: int = 9, depth: int = 3, embed_dim: int = 256, mlp_hidden_dim: int = 1024,
                 num_heads: int = 8, drop: float = 0.1, drop_path: float = 0.2, attn_drop: float = 0.0):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, length, embed_dim))
        self.blocks = block_stack(drop_path_rates(drop_path, depth), embed_dim, num_heads, mlp_hidden_dim, drop,
                                  attn_drop)
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, queries: slice | None = None) -> torch.Tensor:
        """``x (B, length, d)`` -> ``(B, length, d)``, or only the tokens ``queries`` of the output (the last
        block then computes just those rows; the values equal the full computation's)."""
        x = x + self.pos_embed
        for i, block in enumerate(self.blocks):
            x = block(x, queries if i == len(self.blocks) - 1 else None)
        return self.norm(x)
