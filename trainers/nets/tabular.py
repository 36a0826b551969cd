"""Tabular nets: an MLP with categorical embeddings and an FT-Transformer (Gorishniy et al., 2021).

Both take `forward(x_num: float [B, D], x_cat: long [B, C])` as runtime/tabular.py encodes rows and
return [B, num_classes] (logits, or the standardised target when num_classes == 1). Plain nn.Modules:
TorchScript-scriptable and torch.export-able with a dynamic batch dimension. `num_numeric` and
`cardinalities` come from the fitted preprocessing (datamodule.net_config(), written into config.yaml).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CategoricalEmbeddings(nn.Module):
    """One table for all categorical columns (row offsets per column); index 0 of a column = its unknown bucket."""

    def __init__(self, cardinalities: Sequence[int], dim: int) -> None:
        super().__init__()
        cards = [int(c) for c in cardinalities]
        offsets = [0] * len(cards)
        for i in range(1, len(cards)):
            offsets[i] = offsets[i - 1] + cards[i - 1]
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.embedding = nn.Embedding(max(sum(cards), 1), dim)
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(dim))

    def forward(self, x_cat: torch.Tensor) -> torch.Tensor:
        """[B, C] indices → [B, C, dim]."""
        return self.embedding(x_cat + self.offsets)


class TabularMLP(nn.Module):
    """Numeric inputs + flattened categorical embeddings → Linear/ReLU/Dropout blocks → head."""

    def __init__(self, num_numeric: int, cardinalities: Sequence[int], num_classes: int,
                 hidden: Sequence[int] = (128, 64), embedding_dim: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.embeddings = CategoricalEmbeddings(cardinalities, embedding_dim)
        width = int(num_numeric) + len(cardinalities) * embedding_dim
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(size)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, int(num_classes))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """[B, D], [B, C] → [B, num_classes]."""
        cats = self.embeddings(x_cat).flatten(1)
        return self.head(self.body(torch.cat([x_num, cats], dim=1)))


class Block(nn.Module):
    """Pre-norm Transformer block: multi-head self-attention (SDPA) + ReLU feed-forward, residuals."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"d_token={dim} must be divisible by n_heads={heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, dim] → [B, T, dim]."""
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.dropout(self.proj(attn.transpose(1, 2).reshape(b, t, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class FTTransformer(nn.Module):
    """Feature tokenizer (one token per numeric and categorical feature) + [CLS] + Transformer → head on [CLS]."""

    def __init__(self, num_numeric: int, cardinalities: Sequence[int], num_classes: int, d_token: int = 32,
                 n_blocks: int = 2, n_heads: int = 4, ffn_factor: float = 2.0, dropout: float = 0.1) -> None:
        super().__init__()
        scale = 1.0 / math.sqrt(d_token)
        self.num_weight = nn.Parameter(torch.empty(int(num_numeric), d_token).uniform_(-scale, scale))
        self.num_bias = nn.Parameter(torch.empty(int(num_numeric), d_token).uniform_(-scale, scale))
        self.embeddings = CategoricalEmbeddings(cardinalities, d_token)
        self.cat_bias = nn.Parameter(torch.empty(len(cardinalities), d_token).uniform_(-scale, scale))
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-scale, scale))
        ffn = int(d_token * ffn_factor)
        self.blocks = nn.ModuleList([Block(d_token, n_heads, ffn, dropout) for _ in range(n_blocks)])
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, int(num_classes)))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """[B, D], [B, C] → [B, num_classes]."""
        num_tokens = x_num.unsqueeze(-1) * self.num_weight + self.num_bias
        cat_tokens = self.embeddings(x_cat) + self.cat_bias
        cls = self.cls.expand(x_num.shape[0], -1, -1)
        x = torch.cat([cls, num_tokens, cat_tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(x[:, 0])
