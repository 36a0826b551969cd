"""Decoder language models from `transformers`: Llama (RMSNorm, RoPE, SwiGLU, GQA) or GPT-2, random or pretrained.

The LM net contract (PLAN.md): `self.hf` is the `*ForCausalLM`; `forward(input_ids) -> logits [B, T, V]`;
`flops_per_token(seq_len)`; the decoder blocks are `blocks()` (`hf.model.layers` / `hf.transformer.h`).
"""
from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ConfigError
from trainers.flops import decoder_flops_per_token

ARCHS = ("llama", "gpt2")
ATTENTION = "sdpa"  # torch's scaled_dot_product_attention: flash/memory-efficient kernels where the device has them


class NetConfigError(ConfigError):
    """A net setting that cannot work, named with its fix."""


def _plain(value: Any) -> Any:
    """Hydra containers → builtins (transformers' strict config fields refuse DictConfig)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value)


def _hf_config(arch: str, config: dict[str, Any], vocab_size: int | None, max_seq_len: int | None) -> Any:
    """A transformers config for `arch` from our sizes; vocabulary and context length come from the data."""
    from transformers import GPT2Config, LlamaConfig

    if arch not in ARCHS:
        raise NetConfigError(f"model.net.arch={arch!r}: use one of {', '.join(ARCHS)}")
    values = _plain(config)
    # GPT-2's 50256 / Llama's 1-2 defaults mean nothing for our tokenizer (its <|endoftext|> id is the data's)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        values.setdefault(key, None)
    if vocab_size is not None:
        values["vocab_size"] = int(vocab_size)
    if arch == "llama":
        if max_seq_len is not None:
            values.setdefault("max_position_embeddings", int(max_seq_len))
        heads, kv = values.get("num_attention_heads", 32), values.get("num_key_value_heads")
        if kv is not None and heads % kv:
            raise NetConfigError(f"model.net.config.num_key_value_heads={kv} must divide num_attention_heads={heads} "
                                 "(grouped-query attention shares each key/value head among a group of query heads)")
        cls = LlamaConfig
    else:
        if max_seq_len is not None:
            values.setdefault("n_positions", int(max_seq_len))
        cls = GPT2Config
    known = set(cls().to_dict()) | set(inspect.signature(cls.__init__).parameters)
    unknown = sorted(set(values) - known)
    if unknown:  # transformers configs keep unknown keys as attributes: a typo would be silently ignored
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        hints = ", ".join(f"{k!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for k, c in close.items())
        raise NetConfigError(f"model.net.config: {cls.__name__} has no key {hints}")
    cfg = cls(**values)
    cfg._attn_implementation = ATTENTION
    return cfg


class CausalLM(nn.Module):
    """A `transformers` decoder LM: forward(input_ids [B, T]) → logits [B, T, V] (no KV cache in training)."""

    def __init__(self, arch: str = "llama", config: dict[str, Any] | None = None, pretrained: str | None = None,
                 vocab_size: int | None = None, max_seq_len: int | None = None, seed: int | None = None) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM

        if pretrained is not None:
            folder = Path(pretrained)
            if not (folder / "config.json").is_file():
                raise NetConfigError(f"model.net.pretrained={pretrained!r} is not a Hugging Face model folder "
                                     "(no config.json): give a local folder saved with save_pretrained (offline)")
            self.hf = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True,
                                                           attn_implementation=ATTENTION, dtype=torch.float32)
            # from_pretrained returns eval mode and Lightning keeps each submodule's mode: fine-tune with dropout on
            self.hf.train()
            if vocab_size is not None and self.hf.config.vocab_size < int(vocab_size):
                raise NetConfigError(f"the pretrained model at {pretrained} has vocab_size={self.hf.config.vocab_size} "
                                     f"but the data's tokenizer has {vocab_size} ids: tokenize the data with the "
                                     "model's own tokenizer (its tokenizer.json)")
        else:
            cfg = _hf_config(arch, config or {}, vocab_size, max_seq_len)
            if seed is not None:  # the same weights whatever was drawn before (strategy runs compare exactly)
                torch.manual_seed(seed)
            self.hf = AutoModelForCausalLM.from_config(cfg, attn_implementation=ATTENTION, dtype=torch.float32)
        self.hf.config.use_cache = False  # training and teacher-forced scoring never reuse keys/values

    @property
    def arch(self) -> str:
        """'llama' or 'gpt2' (any other HF decoder loaded from a folder keeps its own model_type)."""
        return str(self.hf.config.model_type)

    def blocks(self) -> nn.ModuleList:
        """The decoder layers: the units of FSDP2 sharding, activation checkpointing and per-block compile."""
        inner = getattr(self.hf, "model", None) or getattr(self.hf, "transformer", None)
        layers = getattr(inner, "layers", None) or getattr(inner, "h", None)
        if not isinstance(layers, nn.ModuleList):
            raise NetConfigError(f"{type(self.hf).__name__}: no decoder layer list (model.layers or transformer.h)")
        return layers

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids [B, T] → next-token logits [B, T, V]."""
        return self.hf(input_ids=input_ids, use_cache=False).logits

    def matmul_params(self) -> int:
        """Parameters in matmuls: all, minus position embeddings and an untied input embedding (lookups)."""
        total = sum(p.numel() for p in self.parameters())  # a tied embedding is one Parameter: counted once
        wpe = getattr(getattr(self.hf, "transformer", None), "wpe", None)
        if wpe is not None:
            total -= wpe.weight.numel()
        if not self.hf.config.tie_word_embeddings:
            total -= self.hf.get_input_embeddings().weight.numel()
        return total

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (forward + backward): PaLM's 6N + 12·L·H·Q·T."""
        c = self.hf.config
        layers = getattr(c, "num_hidden_layers", None) or c.n_layer
        heads = getattr(c, "num_attention_heads", None) or c.n_head
        hidden = getattr(c, "hidden_size", None) or c.n_embd
        head_dim = getattr(c, "head_dim", None) or hidden // heads
        return decoder_flops_per_token(self.matmul_params(), layers, heads, head_dim, seq_len)

    def enable_activation_checkpointing(self) -> None:
        """Recompute each decoder layer's activations in backward (HF's per-layer checkpointing: keys unchanged)."""
        # non-reentrant: works with FSDP2, compiled blocks and inputs that need no grad
        self.hf.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})

    def compile_blocks(self, **kwargs: Any) -> None:
        """torch.compile each decoder layer in place (Module.compile: state-dict keys keep their names)."""
        for block in self.blocks():
            block.compile(**kwargs)
