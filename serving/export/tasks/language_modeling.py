"""Language-model export: the KVDecoder (input_ids, attention_mask, past) with dynamic B, T, P; parity on
validation logits and on greedy generations from fixed prompts (eager HF model, no cache, vs the export's KV cache)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from serving.export.parity import ParityResult, Tolerance
from trainers.nets.kv_decoder import KVDecoder, empty_past

INPUT_NAMES = ("input_ids", "attention_mask", "past")
# fixed prompts for the greedy check: code and prose, of different lengths (a left-padded batch)
PROMPTS = ("def ", "import os\n", "class Model:\n    ", "The ")
GREEDY_TOKENS = 12


@dataclass
class LMParity(ParityResult):
    """The classifiers' logit figures on validation windows, plus greedy tokens from PROMPTS."""

    greedy_identical: bool = False
    greedy_prompts: int = 0
    greedy_tokens: int = 0


def export_net(net: torch.nn.Module) -> torch.nn.Module:
    """What the targets export: the decoder with its KV cache, sharing the CausalLM's weights."""
    return KVDecoder(net)


def input_names(spec: Any = None) -> tuple[str, ...]:
    """The decoder's positional inputs."""
    return INPUT_NAMES


def dynamic_shapes(spec: Any = None) -> tuple[dict[int, Any], ...]:
    """Batch, new tokens and past tokens are dynamic; the mask's length is a dim too (forward checks S = P + T)."""
    dim = torch.export.Dim
    batch, tokens, past = dim("batch", min=1, max=1024), dim("tokens", min=1, max=8192), dim("past", min=0, max=8192)
    return ({0: batch, 1: tokens}, {0: batch, 1: dim("total", min=1, max=16384)}, {2: batch, 4: past})


def example_args(batch: dict[str, torch.Tensor], spec: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """A validation window as a prefill: all tokens real, an empty cache (spec: the decoder metadata)."""
    ids = batch["input_ids"]
    return ids, torch.ones_like(ids), empty_past(spec, ids.shape[0])


def trace_example(meta: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    """Tracing inputs with B, T, P >= 2 (torch.export specializes a dim that is 0 or 1 in its example)."""
    return torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 5, dtype=torch.long), empty_past(meta, 2, 2)


def greedy(step: Callable[..., tuple[torch.Tensor, torch.Tensor]], meta: dict[str, Any], prompts: list[list[int]],
           new_tokens: int) -> list[list[int]]:
    """Greedy tokens from left-padded prompts with the KV cache (one forward per step for the whole batch)."""
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    logits, past = step(ids, mask, empty_past(meta, len(prompts)))
    out: list[list[int]] = [[] for _ in prompts]
    for _ in range(new_tokens):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        for row, token in enumerate(nxt[:, 0].tolist()):
            out[row].append(int(token))
        mask = torch.cat((mask, torch.ones_like(nxt)), dim=1)
        logits, past = step(nxt, mask, past)
    return out


def greedy_full(net: Callable[[torch.Tensor], torch.Tensor], prompt: list[int], new_tokens: int) -> list[int]:
    """Reference greedy tokens: the eager model on the whole sequence each step (no cache, no padding)."""
    seq = list(prompt)
    for _ in range(new_tokens):
        seq.append(int(net(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(prompt):]


def compare(eager: Callable[..., torch.Tensor], exported: Callable[..., Any], batches: Sequence[tuple],
            tolerance: Tolerance, prompts: Sequence[list[int]] = (), meta: dict[str, Any] | None = None) -> LMParity:
    """Logits of eager(input_ids) vs exported(prefill) on every batch; greedy tokens of both from `prompts`."""
    result = LMParity()
    total_abs, total, agree, positions = 0.0, 0, 0, 0
    with torch.no_grad():
        for ids, mask, past in batches:
            a = eager(ids).float()
            b = exported(ids, mask, past)[0].float()
            diff = (a - b).abs() if a.shape == b.shape and torch.isfinite(b).all() else torch.full_like(a, float("inf"))
            result.max_abs_diff = max(result.max_abs_diff, float(diff.max()))
            total_abs, total = total_abs + float(diff.sum()), total + diff.numel()
            if a.shape == b.shape:
                agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            positions += a.shape[0] * a.shape[1]
            result.samples += a.shape[0]
            result.batches += 1
            result.batch_sizes.append(int(a.shape[0]))
        result.mean_abs_diff = total_abs / max(total, 1)
        result.argmax_agreement = agree / max(positions, 1)
        if prompts and meta is not None:
            expected = [greedy_full(eager, list(p), GREEDY_TOKENS) for p in prompts]
            got = greedy(exported, meta, [list(p) for p in prompts], GREEDY_TOKENS)
            result.greedy_identical = got == expected
            result.greedy_prompts, result.greedy_tokens = len(prompts), GREEDY_TOKENS
    result.passed = (result.samples > 0 and result.max_abs_diff <= tolerance.max_abs_diff
                     and result.argmax_agreement >= tolerance.min_argmax_agreement
                     and (result.greedy_identical or not prompts))
    return result


def failure_message(target: str, result: LMParity, tolerance: Tolerance) -> str:
    """What failed, by how much, and which knob to turn if the difference is expected."""
    return (f"parity check FAILED for {target}: max |exported - eager| logit = {result.max_abs_diff:.3g} "
            f"(tolerance {tolerance.max_abs_diff:.3g}), argmax agreement {result.argmax_agreement:.4f} over "
            f"{result.samples} validation windows, greedy tokens identical: {result.greedy_identical} "
            f"({result.greedy_prompts} prompts x {result.greedy_tokens} tokens). The export does not compute what "
            "the trained model computes; if a small numeric drift is expected, raise parity.max_abs_diff explicitly")
