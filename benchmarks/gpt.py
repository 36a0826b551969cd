"""A GPT-2-style decoder in plain PyTorch (flash attention through SDPA), and its LightningModule."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.flops import decoder_flops_per_token


@dataclass
class GPTConfig:
    """Sizes of the decoder; the defaults are GPT-2 small (124M parameters)."""

    vocab_size: int = 50304  # 50257 padded to a multiple of 64 (tensor-core friendly)
    seq_len: int = 1024
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    dropout: float = 0.0


# "gpt2-125m" (124M) and "gpt2-350m" (355M, GPT-2 medium) fit the 125M-350M range; "tiny" is for CPU dry runs
PRESETS: dict[str, GPTConfig] = {
    "gpt2-125m": GPTConfig(),
    "gpt2-350m": GPTConfig(n_layers=24, n_heads=16, d_model=1024),
    "tiny": GPTConfig(vocab_size=512, seq_len=64, n_layers=2, n_heads=2, d_model=64),
}


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention + 4x MLP."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.fc_out = nn.Linear(4 * cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    """Token + position embeddings, blocks, final norm, tied LM head; forward(input_ids) → logits."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02 / (math.sqrt(2 * self.cfg.n_layers) if module.out_features == self.cfg.d_model else 1.0))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids (N, T) → logits (N, T, vocab)."""
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def num_params(self) -> int:
        """Parameters that take part in matmuls: all (tied embedding once) except position embeddings."""
        return sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), PaLM's 6N + 12LHQT."""
        c = self.cfg
        return decoder_flops_per_token(self.num_params(), c.n_layers, c.n_heads, c.d_model // c.n_heads, c.seq_len)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy in fp32 (labels are the inputs shifted by one)."""
    return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.reshape(-1))


class TokenDataset(torch.utils.data.Dataset):
    """Random token sequences {input_ids, labels} (labels shifted by one), identical for every case."""

    def __init__(self, cfg: GPTConfig, samples: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.tokens = torch.randint(0, cfg.vocab_size, (samples, cfg.seq_len + 1), generator=gen)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokens[i, :-1], "labels": self.tokens[i, 1:]}


def token_loader(cfg: GPTConfig, batch_size: int, steps: int, pin_memory: bool) -> torch.utils.data.DataLoader:
    """The same `steps` batches, in order, for the plain loop and the trainer (pinned for async copies on CUDA)."""
    return torch.utils.data.DataLoader(TokenDataset(cfg, batch_size * steps), batch_size=batch_size, shuffle=False,
                                       pin_memory=pin_memory, drop_last=True)


def make_optimizer(params: Any, device_type: str) -> torch.optim.Optimizer:
    """AdamW as GPT-2 reproductions train it; fused kernels on CUDA."""
    return torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=device_type == "cuda")


def lightning_module(cfg: GPTConfig, compile_model: bool) -> Any:
    """A LightningModule training GPT on batches of {input_ids, labels} (imports Lightning lazily)."""
    from benchmarks.gpt_lightning import GPTLightningModule

    return GPTLightningModule(cfg, compile_model=compile_model)
