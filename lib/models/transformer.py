"""Transformer building blocks shared by the global and local branches (pre-norm ViT style).

Attribute names follow the official release (``norm1``, ``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ...), so the
state_dict keys of every block match the official checkpoints. Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` with the default scale ``head_dim ** -0.5``.

``Block``, ``Attention`` and ``CrossAttention`` accept ``queries``: a slice of token positions whose outputs
are wanted. Keys and values still come from every token, so the selected outputs equal the corresponding rows
of the full computation; the model's eval path uses it to skip rows it does not return.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LAYER_NORM_EPS = 1e-6


def init_vit_weights(module: nn.Module) -> None:
    """Official ViT initialisation, for ``Module.apply``: xavier-uniform Linear weights with zero bias,
    LayerNorm weight 1 and bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class DropPath(nn.Module):
    """Stochastic depth per sample: in training, zero the residual branch of a whole sample with probability
    ``p`` and scale the kept ones by ``1 / (1 - p)``; identity in eval."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f'p={self.p}'


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout; ``(..., dim) -> (..., dim)``."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, N, C) -> (B, heads, N, C / heads)``; head h takes channels ``[h*hd, (h+1)*hd)``."""
    b, n, c = x.shape
    return x.view(b, n, num_heads, c // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, N, hd) -> (B, N, heads * hd)``."""
    b, h, n, hd = x.shape
    return x.transpose(1, 2).reshape(b, n, h * hd)


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection (rows ``[0:C]`` q, ``[C:2C]`` k,
    ``[2C:3C]`` v) and an output projection ``proj``.

    Args:
        dim: token width C. num_heads: heads (C must be divisible). qkv_bias: bias on ``qkv``.
        attn_drop: dropout on attention weights (training only). proj_drop: dropout after ``proj``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'attention width {dim} is not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, queries: slice | None = None) -> torch.Tensor:
        """``x (B, N, C)`` -> ``(B, N, C)``, or ``(B, N_q, C)`` for the tokens ``x[:, queries]`` only."""
        dim = x.shape[-1]
        if queries is None:
            q, k, v = self.qkv(x).split(dim, dim=-1)
        else:
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, queries], w[:dim], None if b is None else b[:dim])
            k, v = F.linear(x, w[dim:], None if b is None else b[dim:]).split(dim, dim=-1)
        h = self.num_heads
        out = F.scaled_dot_product_attention(_split_heads(q, h), _split_heads(k, h), _split_heads(v, h),
                                             dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(_merge_heads(out)))


class CrossAttention(nn.Module):
    """Multi-head attention of query tokens over memory tokens, with no residual, norm or MLP around it.

    ``q_l`` projects the queries, ``kv_l`` the memory (rows ``[0:C]`` k, ``[C:2C]`` v), ``proj`` the output.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'attention width {dim} is not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.kv_l = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.q_l = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """Queries ``x (B, N_q, C)`` attend to ``mem (B, N_m, C)``; returns ``(B, N_q, C)``."""
        h = self.num_heads
        k, v = self.kv_l(mem).split(mem.shape[-1], dim=-1)
        out = F.scaled_dot_product_attention(_split_heads(self.q_l(x), h), _split_heads(k, h),
                                             _split_heads(v, h),
                                             dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(_merge_heads(out)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + DropPath(Attn(LN(x)))``, then ``x + DropPath(Mlp(LN(x)))``.

    LayerNorm eps is 1e-6; ``drop`` is the dropout inside the MLP and after the attention projection.
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden_dim: int, qkv_bias: bool = False, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, mlp_hidden_dim, drop=drop)

    def forward(self, x: torch.Tensor, queries: slice | None = None) -> torch.Tensor:
        """``x (B, N, C)`` -> ``(B, N, C)``, or only the tokens ``x[:, queries]`` ``(B, N_q, C)``."""
        residual = x if queries is None else x[:, queries]
        x = residual + self.drop_path(self.attn(self.norm1(x), queries))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def drop_path_rates(drop_path: float, depth: int) -> list[float]:
    """Stochastic-depth rate of each of ``depth`` blocks: ``linspace(0, drop_path, depth)``."""
    return torch.linspace(0, drop_path, depth).tolist()


def block_stack(rates: list[float], dim: int, num_heads: int, mlp_hidden_dim: int, drop: float = 0.0,
                attn_drop: float = 0.0) -> nn.ModuleList:
    """One :class:`Block` (qkv bias on) per entry of ``rates``, the block's stochastic-depth rate."""
    return nn.ModuleList([Block(dim, num_heads, mlp_hidden_dim, qkv_bias=True, drop=drop, attn_drop=attn_drop,
                                drop_path=rate) for rate in rates])
