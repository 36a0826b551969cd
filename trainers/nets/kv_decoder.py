"""KVDecoder: a CausalLM's decoder as pure torch with a functional KV cache (what export.py exports for LM runs).

    logits, present = KVDecoder(net)(input_ids, attention_mask, past)
      input_ids       int64   [B, T]                  new tokens (prefill: left-padded prompts; decode: T = 1)
      attention_mask  int64   [B, P + T]              1 = real token, 0 = left padding, over past + new tokens
      past            float32 [L, 2, B, Hkv, P, D]    keys (0) and values (1) of earlier tokens
      logits          float32 [B, T, V]
      present         float32 [L, 2, B, Hkv, P + T, D]

The cache goes in and comes out (no state inside), so TorchScript (script) and torch.export (dynamic B, T, P)
both take the module. Positions come from the mask (cumsum - 1, clamped at 0), so left padding is exact.

The P rule, the same for eager, TorchScript and torch.export: any P >= 0 (prefill from `empty_past(meta, B)`,
P = 0), any B >= 1 and T >= 1; the mask's length must be P + T. torch.export takes B, T, P and the mask's length
as dims with S = P + T checked inside forward (serving/export/tasks/language_modeling.py gives the dims).

The blocks read the Hugging Face module's own parameters (shared, not copied): Llama (RMSNorm, RoPE from the
model's `inv_freq`, SwiGLU, grouped-query attention) and GPT-2 (LayerNorm, learned positions, GELU MLP).
"""
from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "gelu_fast": "gelu_tanh", "relu": "relu"}


class KVDecoderError(ValueError):
    """The HF model cannot be expressed by KVDecoder (another architecture, an unsupported option)."""


def _activate(x: Tensor, kind: str) -> Tensor:
    """The MLP nonlinearity named by the HF config."""
    if kind == "silu":
        return F.silu(x)
    if kind == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    if kind == "gelu":
        return F.gelu(x)
    return F.relu(x)


def _activation(config: Any, key: str) -> str:
    """Our name for the config's activation, or a clear refusal."""
    name = str(getattr(config, key))
    if name not in ACTIVATIONS:
        raise KVDecoderError(f"{key}={name!r} is not supported by KVDecoder (supported: {sorted(ACTIVATIONS)})")
    return ACTIVATIONS[name]


def attention_bias(attention_mask: Tensor, t: int) -> Tensor:
    """bool [B, 1, T, P+T]: a query sees real keys at or before its own slot, and always itself (no empty row)."""
    s = attention_mask.shape[1]
    p = s - t
    keys = torch.arange(s, device=attention_mask.device)
    queries = torch.arange(t, device=attention_mask.device) + p
    causal = keys.unsqueeze(0) <= queries.unsqueeze(1)
    own = keys.unsqueeze(0) == queries.unsqueeze(1)
    real = (attention_mask != 0).unsqueeze(1).unsqueeze(2)
    return (causal.unsqueeze(0).unsqueeze(1) & real) | own.unsqueeze(0).unsqueeze(1)


def positions_from_mask(attention_mask: Tensor, t: int) -> Tensor:
    """int64 [B, T]: each new token's position counted over real tokens only (left padding → 0)."""
    pos = (attention_mask.to(torch.long).cumsum(-1) - 1).clamp(min=0)
    return pos[:, pos.shape[1] - t:]


class RMSNorm(nn.Module):
    """Llama's RMSNorm (in float32, then back), over a shared weight."""

    def __init__(self, weight: nn.Parameter, eps: float) -> None:
        super().__init__()
        self.weight = weight
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """x / rms(x) * weight."""
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, groups: int, scale: float) -> Tensor:
    """SDPA over [B, H, T, D] queries and [B, Hkv, S, D] keys/values (each key/value head shared by `groups`)."""
    if groups > 1:
        b, hkv, s, d = k.shape
        k = k.unsqueeze(2).expand(b, hkv, groups, s, d).reshape(b, hkv * groups, s, d)
        v = v.unsqueeze(2).expand(b, hkv, groups, s, d).reshape(b, hkv * groups, s, d)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


class LlamaBlock(nn.Module):
    """One Llama decoder layer: x + attn(norm(x)) with RoPE and GQA; then x + down(silu(gate(h)) * up(h))."""

    def __init__(self, layer: nn.Module, config: Any, head_dim: int) -> None:
        super().__init__()
        attn, mlp = layer.self_attn, layer.mlp
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj
        self.gate_proj, self.up_proj, self.down_proj = mlp.gate_proj, mlp.up_proj, mlp.down_proj
        self.input_norm = RMSNorm(layer.input_layernorm.weight, float(config.rms_norm_eps))
        self.post_norm = RMSNorm(layer.post_attention_layernorm.weight, float(config.rms_norm_eps))
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads or config.num_attention_heads)
        self.head_dim = head_dim
        self.scale = head_dim ** -0.5
        self.act = _activation(config, "hidden_act")

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, past: Tensor) -> Tuple[Tensor, Tensor]:
        """x [B, T, C], past [2, B, Hkv, P, D] → (x, present [2, B, Hkv, P+T, D])."""
        b, t = x.shape[0], x.shape[1]
        h = self.input_norm(x)
        q = self.q_proj(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k = torch.cat((past[0], k), dim=2)
        v = torch.cat((past[1], v), dim=2)
        out = _attend(q, k, v, mask, self.heads // self.kv_heads, self.scale)
        x = x + self.o_proj(out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim))
        h = self.post_norm(x)
        x = x + self.down_proj(_activate(self.gate_proj(h), self.act) * self.up_proj(h))
        return x, torch.stack((k, v))


class Conv1D(nn.Module):
    """GPT-2's Conv1D (a linear layer with a transposed weight [in, out]) over shared parameters."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, x: Tensor) -> Tensor:
        """x @ W + b."""
        return torch.matmul(x, self.weight) + self.bias


class GPT2Block(nn.Module):
    """One GPT-2 layer: x + attn(ln_1(x)); then x + proj(gelu(fc(ln_2(x))))."""

    def __init__(self, layer: nn.Module, config: Any, index: int) -> None:
        super().__init__()
        if getattr(config, "reorder_and_upcast_attn", False) or getattr(config, "add_cross_attention", False):
            raise KVDecoderError("GPT-2 with reorder_and_upcast_attn or cross-attention is not supported by KVDecoder")
        self.ln_1, self.ln_2 = layer.ln_1, layer.ln_2
        self.c_attn, self.attn_proj = Conv1D(layer.attn.c_attn), Conv1D(layer.attn.c_proj)
        self.c_fc, self.mlp_proj = Conv1D(layer.mlp.c_fc), Conv1D(layer.mlp.c_proj)
        self.heads = int(config.n_head)
        self.head_dim = int(config.n_embd) // self.heads
        scale = self.head_dim ** -0.5 if config.scale_attn_weights else 1.0
        self.scale = scale / (index + 1) if config.scale_attn_by_inverse_layer_idx else scale
        self.act = _activation(config, "activation_function")

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, past: Tensor) -> Tuple[Tensor, Tensor]:
        """x [B, T, C], past [2, B, H, P, D] → (x, present [2, B, H, P+T, D]); cos/sin unused (learned positions)."""
        b, t, c = x.shape[0], x.shape[1], x.shape[2]
        qkv = self.c_attn(self.ln_1(x)).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k = torch.cat((past[0], qkv[1]), dim=2)
        v = torch.cat((past[1], qkv[2]), dim=2)
        out = _attend(qkv[0], k, v, mask, 1, self.scale)
        x = x + self.attn_proj(out.transpose(1, 2).reshape(b, t, c))
        x = x + self.mlp_proj(_activate(self.c_fc(self.ln_2(x)), self.act))
        return x, torch.stack((k, v))


class LlamaEmbedding(nn.Module):
    """Token embedding + RoPE tables (the HF rotary module's inv_freq and attention scaling)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.tokens = inner.embed_tokens
        rotary = inner.rotary_emb
        self.register_buffer("inv_freq", rotary.inv_freq.detach().clone().float(), persistent=False)
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))

    def forward(self, input_ids: Tensor, positions: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(x [B, T, C], cos [B, 1, T, D], sin [B, 1, T, D])."""
        freqs = positions.float().unsqueeze(-1) * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        x = self.tokens(input_ids)
        cos = (emb.cos() * self.rope_scale).to(x.dtype).unsqueeze(1)
        sin = (emb.sin() * self.rope_scale).to(x.dtype).unsqueeze(1)
        return x, cos, sin


class GPT2Embedding(nn.Module):
    """Token + learned position embeddings (cos/sin are empty placeholders)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.wte, self.wpe = inner.wte, inner.wpe

    def forward(self, input_ids: Tensor, positions: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(x [B, T, C], empty, empty)."""
        x = self.wte(input_ids) + self.wpe(positions)
        empty = x.new_zeros(0)
        return x, empty, empty


def _llama_parts(hf: nn.Module) -> tuple[nn.Module, list[nn.Module], nn.Module, dict[str, Any]]:
    c = hf.config
    head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)
    if getattr(c, "sliding_window", None) or getattr(c, "use_sliding_window", False):
        raise KVDecoderError("sliding-window attention is not supported by KVDecoder")
    blocks = [LlamaBlock(layer, c, head_dim) for layer in hf.model.layers]
    norm = RMSNorm(hf.model.norm.weight, float(c.rms_norm_eps))
    meta = {"num_layers": len(blocks), "num_kv_heads": int(c.num_key_value_heads or c.num_attention_heads),
            "head_dim": head_dim, "max_seq_len": int(c.max_position_embeddings)}
    return LlamaEmbedding(hf.model), blocks, norm, meta


def _gpt2_parts(hf: nn.Module) -> tuple[nn.Module, list[nn.Module], nn.Module, dict[str, Any]]:
    c = hf.config
    blocks = [GPT2Block(layer, c, i) for i, layer in enumerate(hf.transformer.h)]
    meta = {"num_layers": len(blocks), "num_kv_heads": int(c.n_head), "head_dim": int(c.n_embd) // int(c.n_head),
            "max_seq_len": int(c.n_positions)}
    return GPT2Embedding(hf.transformer), blocks, hf.transformer.ln_f, meta


PARTS = {"llama": _llama_parts, "gpt2": _gpt2_parts}


class KVDecoder(nn.Module):
    """forward(input_ids [B, T], attention_mask [B, P+T], past [L, 2, B, Hkv, P, D]) → (logits, present)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        hf = net.hf
        arch = str(hf.config.model_type)
        if arch not in PARTS:
            raise KVDecoderError(f"model_type={arch!r}: KVDecoder knows {sorted(PARTS)}")
        embed, blocks, norm, meta = PARTS[arch](hf)
        self.embed, self.layers, self.norm, self.lm_head = embed, nn.ModuleList(blocks), norm, hf.lm_head
        eos = hf.config.eos_token_id
        self.meta = {**meta, "arch": arch, "vocab_size": int(hf.config.vocab_size),
                                     "eos_token_id": int(eos) if isinstance(eos, int) else None, "dtype": "float32"}
        self.eval()

    def forward(self, input_ids: Tensor, attention_mask: Tensor, past: Tensor) -> Tuple[Tensor, Tensor]:
        """New tokens + mask over past and new + the cache → (logits [B, T, V], present cache)."""
        t = input_ids.shape[1]
        if not torch.jit.is_scripting():  # tells torch.export how the three dynamic lengths relate (S = P + T)
            torch._check(attention_mask.shape[1] == past.shape[4] + t)
        positions = positions_from_mask(attention_mask, t)
        mask = attention_bias(attention_mask, t)
        x, cos, sin = self.embed(input_ids, positions)
        presents: List[Tensor] = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cos, sin, mask, past[i])
            presents.append(kv)
        logits = self.lm_head(self.norm(x)).float()
        return logits, torch.stack(presents)


def empty_past(meta: dict[str, Any], batch: int, length: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    """A zero cache [L, 2, B, Hkv, length, D] for `meta` (KVDecoder.meta / metadata.json's "decoder")."""
    return torch.zeros(meta["num_layers"], 2, batch, meta["num_kv_heads"], length, meta["head_dim"], dtype=dtype)


def kv_cache_bytes(meta: dict[str, Any], batch: int, length: int) -> int:
    """Bytes of a float32 cache of `length` tokens (for sizing a batch)."""
    return 4 * 2 * meta["num_layers"] * batch * meta["num_kv_heads"] * length * meta["head_dim"]

