"""LM decode: tokens/s with the exported KV cache against recomputing the whole sequence, and per-token decode
time at a long context against a short one.

Model: a small Llama (4 layers, 256 wide, GQA 8/2 heads, 8192-id vocabulary; larger than lm_llama_tiny's 3 x 128
so that the weights, not Python, dominate a step; random weights: speed does not depend on training) as the
TorchScript KVDecoder that export.py writes and TorchServe serves; batch 1.
- kv_vs_recompute: greedy decode of `new_tokens` after a 32-token prompt, (a) prefill + one-token steps through
  the cache, (b) the same module on the whole sequence each step (P = 0, no cache). ratio = (a) ÷ (b) tokens/s.
- context: ms per decode step after prefilling 512 tokens against after 32 (target ≤ 1.5×: the cached step is
  dominated by the weights, not by attention over the context).
"""
from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.common import interleaved

LLAMA_TINY = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8,
              "num_key_value_heads": 2, "tie_word_embeddings": True}
VOCAB, CONTEXT = 8192, 1024


def scripted_decoder() -> tuple[Any, dict[str, Any]]:
    """The TorchScript KVDecoder of a random small Llama, and its metadata."""
    from trainers.nets.causal_lm import CausalLM
    from trainers.nets.kv_decoder import KVDecoder

    net = CausalLM("llama", LLAMA_TINY, vocab_size=VOCAB, max_seq_len=CONTEXT, seed=0).eval()
    decoder = KVDecoder(net)
    return torch.jit.script(decoder), decoder.meta


def decode_cached(model: Any, meta: dict[str, Any], prompt: torch.Tensor, steps: int) -> float:
    """Seconds for `steps` greedy tokens through the cache (prefill excluded)."""
    from trainers.nets.kv_decoder import empty_past

    with torch.no_grad():
        mask = torch.ones_like(prompt)
        logits, past = model(prompt, mask, empty_past(meta, prompt.shape[0]))
        started = time.perf_counter()
        for _ in range(steps):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            mask = torch.cat((mask, torch.ones_like(nxt)), dim=1)
            logits, past = model(nxt, mask, past)
        return time.perf_counter() - started


def decode_recompute(model: Any, meta: dict[str, Any], prompt: torch.Tensor, steps: int) -> float:
    """Seconds for `steps` greedy tokens, each from a forward over the whole sequence (no cache)."""
    from trainers.nets.kv_decoder import empty_past

    with torch.no_grad():
        seq = prompt
        started = time.perf_counter()
        for _ in range(steps):
            logits, _ = model(seq, torch.ones_like(seq), empty_past(meta, seq.shape[0]))
            seq = torch.cat((seq, logits[:, -1].argmax(-1, keepdim=True)), dim=1)
        return time.perf_counter() - started


def bench(repeats: int = 3, new_tokens: int = 128, context_steps: int = 32) -> dict[str, Any]:
    """Both comparisons, interleaved repeats after a warm-up."""
    model, meta = scripted_decoder()
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, VOCAB, (1, 32), generator=gen)
    long_prompt = torch.randint(0, VOCAB, (1, 512), generator=gen)
    for _ in range(2):  # TorchScript's profiling executor optimises after the first calls
        decode_cached(model, meta, prompt, 4)
        decode_recompute(model, meta, prompt, 4)
        decode_cached(model, meta, long_prompt, 4)
    times = interleaved({"cached": lambda: decode_cached(model, meta, prompt, new_tokens),
                         "recompute": lambda: decode_recompute(model, meta, prompt, new_tokens)}, repeats)
    cached_tps = new_tokens / times["cached"]["median"]
    recompute_tps = new_tokens / times["recompute"]["median"]
    ctx = interleaved({"short": lambda: decode_cached(model, meta, prompt, context_steps),
                       "long": lambda: decode_cached(model, meta, long_prompt, context_steps)}, repeats)
    short_ms = 1000 * ctx["short"]["median"] / context_steps
    long_ms = 1000 * ctx["long"]["median"] / context_steps
    return {"model": {"arch": "llama", **LLAMA_TINY, "vocab_size": VOCAB, "target": "torchscript", "batch": 1},
            "kv_vs_recompute": {"prompt_tokens": 32, "new_tokens": new_tokens, "cached_tokens_per_s": cached_tps,
                                "recompute_tokens_per_s": recompute_tps, "ratio": cached_tps / recompute_tps},
            "context": {"short_context": 32, "long_context": 512, "steps": context_steps, "short_ms_per_token": short_ms,
                        "long_ms_per_token": long_ms, "ratio": long_ms / short_ms}}
